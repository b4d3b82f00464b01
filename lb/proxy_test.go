package lb

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"gearbox/internal/testutil"
)

func TestForwardedHeaders(t *testing.T) {
	tests := []struct {
		name    string
		host    string         // Config.Host
		trusted []netip.Prefix // Config.TrustedProxies
		in      http.Header    // sent by the client
		want    map[string]string
	}{
		{
			name: "first hop",
			want: map[string]string{"X-Forwarded-For": "127.0.0.1", "X-Forwarded-Proto": "http",
				"X-Forwarded-Host": "app-ns.example.com", "Host": "app-ns.example.com"},
		},
		{
			name: "untrusted peer cannot claim https",
			in:   http.Header{"X-Forwarded-For": {"203.0.113.9"}, "X-Forwarded-Proto": {"https"}, "X-Forwarded-Host": {"evil.example"}},
			want: map[string]string{"X-Forwarded-For": "203.0.113.9, 127.0.0.1", "X-Forwarded-Proto": "http",
				"X-Forwarded-Host": "app-ns.example.com"},
		},
		{
			name:    "trusted router",
			trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
			in:      http.Header{"X-Forwarded-For": {"203.0.113.9"}, "X-Forwarded-Proto": {"https"}, "X-Forwarded-Host": {"ha-app-ns.example.com"}},
			want: map[string]string{"X-Forwarded-For": "203.0.113.9, 127.0.0.1", "X-Forwarded-Proto": "https",
				"X-Forwarded-Host": "ha-app-ns.example.com"},
		},
		{
			name:    "trusted elsewhere",
			trusted: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
			in:      http.Header{"X-Forwarded-Proto": {"https"}},
			want:    map[string]string{"X-Forwarded-Proto": "http"},
		},
		{
			name: "router rewrites Host",
			host: "app-ns.apps.example.com",
			want: map[string]string{"Host": "app-ns.apps.example.com", "X-Forwarded-Host": "app-ns.example.com"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			be := newTestBackend(t, "a")
			cfg := testConfig(newFakeClock())
			cfg.Host = tt.host
			cfg.TrustedProxies = tt.trusted
			cfg.Backends = []Backend{be.backend()}
			p := newTestPool(t, cfg)
			url, c := front(t, p)
			req, _ := http.NewRequest(http.MethodGet, url+"/x", nil)
			req.Host = "app-ns.example.com"
			for k, v := range tt.in {
				req.Header[k] = v
			}
			res, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			seen := be.requests()[0]
			for k, want := range tt.want {
				got := seen.header.Get(k)
				if k == "Host" {
					got = seen.host
				}
				if got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
		})
	}
}

func TestErrorPages(t *testing.T) {
	slow := newTestBackend(t, "slow")
	hang := newGate(t)
	slow.handle = hang.hold
	tests := []struct {
		name     string
		backends []Backend
		path     string
		code     int
		text     string
	}{
		{"no backend", nil, "/", 503, "No server is available"},
		{"all refuse", []Backend{{ID: "x", Addr: refusedAddr(t)}}, "/", 503, "No server is available"},
		{"server timeout", []Backend{slow.backend()}, "/block", 504, "didn't respond in time"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(newFakeClock())
			cfg.ServerTimeout = 100 * time.Millisecond
			cfg.Backends = tt.backends
			p := newTestPool(t, cfg)
			url, c := front(t, p)
			r := get(t, c, url+tt.path, "")
			if r.code != tt.code || !strings.Contains(r.body, tt.text) {
				t.Errorf("status %d %q, want %d saying %q", r.code, r.body, tt.code, tt.text)
			}
			if ct := r.header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
				t.Errorf("Content-Type %q", ct)
			}
			if len(r.body) > 200 || strings.Contains(r.body, "dial") || strings.Contains(r.body, "127.0.0.1") {
				t.Errorf("page %q is not a short page free of internals", r.body)
			}
		})
	}
}

// TestUpgrade opens upgraded connections (a WebSocket-like echo protocol)
// through the pool with raw connections: the 101 and the bytes after it
// pass through, the affinity cookie is honoured and set on the 101, and an
// open tunnel counts as a session.
func TestUpgrade(t *testing.T) {
	cfg := testConfig(newFakeClock())
	bes := map[string]*testBackend{}
	for _, id := range []string{"a", "b", "c"} {
		be := newTestBackend(t, id)
		be.handle = echoUpgrade
		bes[id] = be
		cfg.Backends = append(cfg.Backends, be.backend())
	}
	p := newTestPool(t, cfg)
	url, _ := front(t, p)
	addr := strings.TrimPrefix(url, "http://")

	tests := []struct {
		name   string
		cookie string
		want   string // backend, "" for any
		set    bool   // whether the 101 sets the cookie
	}{
		{"sticky", gearCookie("", "b"), "b", false},
		{"sticky again", gearCookie("", "b"), "b", false},
		{"no cookie", "", "", true},
		{"dead cookie", gearCookie("", "gone"), "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(10 * time.Second))
			fmt.Fprintf(conn, "GET /chat HTTP/1.1\r\nHost: app\r\nConnection: Upgrade\r\nUpgrade: echo\r\n")
			if tt.cookie != "" {
				fmt.Fprintf(conn, "Cookie: %s; other=1\r\n", tt.cookie)
			}
			io.WriteString(conn, "\r\n")
			br := bufio.NewReader(conn)
			res, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			if res.StatusCode != http.StatusSwitchingProtocols || res.Header.Get("Upgrade") != "echo" {
				t.Fatalf("status %d, Upgrade %q: want 101 echo", res.StatusCode, res.Header.Get("Upgrade"))
			}
			got := res.Header.Get("X-Backend")
			if got == "" || (tt.want != "" && got != tt.want) {
				t.Fatalf("upgraded on %q, want %q", got, tt.want)
			}
			setCookie := ""
			for _, ck := range res.Cookies() {
				if ck.Name == "GEAR" {
					setCookie = ck.Value
				}
			}
			if want := CookieValue(nil, got); (setCookie == want) != tt.set || (!tt.set && setCookie != "") {
				t.Errorf("101 set cookie %q; want set: %v", setCookie, tt.set)
			}
			for i := range 3 {
				msg := fmt.Sprintf("message %d\n", i)
				io.WriteString(conn, msg)
				line, err := br.ReadString('\n')
				if err != nil || line != "echo: "+msg {
					t.Fatalf("echo %q, %v: want %q", line, err, "echo: "+msg)
				}
			}
			if n := p.Sessions(); n != 1 {
				t.Errorf("Sessions = %d with a tunnel open, want 1", n)
			}
			if ck := bes[got].requests(); ck[len(ck)-1].header.Get("Cookie") != cookieWant(tt.cookie) {
				t.Errorf("backend saw Cookie %q, want %q", ck[len(ck)-1].header.Get("Cookie"), cookieWant(tt.cookie))
			}
			conn.Close()
			testutil.WaitFor(t, 5*time.Second, "the tunnel to close", func() bool { return p.Sessions() == 0 })
		})
	}
}

func cookieWant(sent string) string {
	if sent == "" {
		return ""
	}
	return "other=1"
}

// echoUpgrade answers an "Upgrade: echo" request with 101 and echoes lines.
func echoUpgrade(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Upgrade") != "echo" {
		http.Error(w, "upgrade required", http.StatusUpgradeRequired)
		return
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	fmt.Fprintf(brw, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\nX-Backend: %s\r\n\r\n", w.Header().Get("X-Backend"))
	brw.Flush()
	for {
		line, err := brw.ReadString('\n')
		if err != nil {
			return
		}
		brw.WriteString("echo: " + line)
		brw.Flush()
	}
}

func TestClosedPoolRefuses(t *testing.T) {
	be := newTestBackend(t, "a")
	cfg := testConfig(newFakeClock())
	cfg.Backends = []Backend{be.backend()}
	p := newTestPool(t, cfg)
	url, c := front(t, p)
	if r := get(t, c, url+"/", ""); r.code != http.StatusOK {
		t.Fatalf("status %d", r.code)
	}
	p.Close()
	if r := get(t, c, url+"/", ""); r.code != http.StatusServiceUnavailable {
		t.Errorf("after Close: status %d, want 503", r.code)
	}
}
