package lb

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"gearbox/internal/testutil"
)

// switcher is a backend that answers every request, whether it asked to
// upgrade or not, with a 101 carrying fields, then echoes lines: a gear
// trying to turn a shared front connection into a raw pipe.
type switcher struct {
	fields string       // the 101's fields, each line ending in CRLF
	ended  atomic.Int64 // connections that ended
}

func (s *switcher) handle(w http.ResponseWriter, r *http.Request) {
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer s.ended.Add(1)
	defer conn.Close()
	brw.WriteString("HTTP/1.1 101 Switching Protocols\r\n" + s.fields + "\r\n")
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

// TestUpgradeOnlyAsked sends requests that ask to upgrade or not to a
// backend that answers 101 with various Upgrade fields: the tunnel opens
// only when the client asked (Connection: upgrade and Upgrade) for the
// protocols the 101 names; otherwise the client gets 502, no byte passes
// between it and the backend, and the backend's connection is closed.
func TestUpgradeOnlyAsked(t *testing.T) {
	const (
		ws      = "Connection: Upgrade\r\nUpgrade: websocket\r\n"
		toWS    = "Connection: Upgrade\r\nUpgrade: websocket\r\n"
		toH2C   = "Connection: Upgrade\r\nUpgrade: h2c\r\n"
		refused = false
	)
	tests := []struct {
		name   string
		ask    string // the request's fields
		answer string // the 101's fields
		tunnel bool
	}{
		{"plain GET answered 101 websocket", "", toWS, refused},
		{"plain GET answered bare 101", "", "", refused},
		{"Upgrade without Connection upgrade", "Upgrade: websocket\r\n", toWS, refused},
		{"Connection upgrade without Upgrade", "Connection: Upgrade\r\n", toWS, refused},
		{"websocket answered h2c", ws, toH2C, refused},
		{"websocket answered without Upgrade", ws, "Connection: Upgrade\r\n", refused},
		{"websocket answered without Connection", ws, "Upgrade: websocket\r\n", refused},
		{"websocket answered with more", ws, "Connection: Upgrade\r\nUpgrade: websocket, h2c\r\n", refused},
		{"websocket", ws, toWS, true},
		{"websocket in other cases", "Connection: keep-alive, upgrade\r\nUpgrade: WebSocket\r\n",
			"Connection: upgrade\r\nUpgrade: websocket\r\n", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sw := &switcher{fields: tt.answer}
			be := newTestBackend(t, "a")
			be.handle = sw.handle
			cfg := testConfig(newFakeClock())
			cfg.Backends = []Backend{be.backend()}
			p := newTestPool(t, cfg)
			url, _ := front(t, p)

			conn, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(10 * time.Second))
			io.WriteString(conn, "GET /chat HTTP/1.1\r\nHost: app\r\n"+tt.ask+"\r\n")
			br := bufio.NewReader(conn)
			res, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			io.WriteString(conn, "ping\n")
			if tt.tunnel {
				if res.StatusCode != http.StatusSwitchingProtocols {
					t.Fatalf("status %d, want 101", res.StatusCode)
				}
				if line, err := br.ReadString('\n'); line != "echo: ping\n" {
					t.Fatalf("through the tunnel: %q, %v", line, err)
				}
				conn.Close()
			} else {
				if res.StatusCode != http.StatusBadGateway {
					t.Fatalf("status %d, want 502", res.StatusCode)
				}
				// What follows is no tunnel: at most an answer to "ping"
				// as a malformed request, then the end.
				rest, _ := io.ReadAll(br)
				if strings.Contains(string(rest), "echo") {
					t.Fatalf("bytes passed to the backend after the 502: %q", rest)
				}
				testutil.WaitFor(t, 5*time.Second, "the backend's connection to close", func() bool { return sw.ended.Load() == 1 })
				if n := backendByID(t, p, "a").errors.Load(); n != 1 {
					t.Errorf("backend errors = %d, want 1", n)
				}
			}
			testutil.WaitFor(t, 5*time.Second, "no session left", func() bool { return p.Sessions() == 0 })
		})
	}
}

// TestSameProtocols is the rule both server paths apply to a 101.
func TestSameProtocols(t *testing.T) {
	tests := []struct {
		asked, answered string
		want            bool
	}{
		{"websocket", "websocket", true},
		{"websocket", "WebSocket", true},
		{" websocket ", "websocket", true},
		{"websocket, h2c", "WEBSOCKET ,h2c", true},
		{"websocket", "h2c", false},
		{"websocket", "websocket, h2c", false},
		{"websocket, h2c", "websocket", false},
		{"websocket", "websockets", false},
		{"websocket", "", false},
		{"", "", false},
		{"", "websocket", false},
		{",", ",", false},
	}
	for _, tt := range tests {
		if got := sameProtocols(tt.asked, tt.answered); got != tt.want {
			t.Errorf("sameProtocols(%q, %q) = %v, want %v", tt.asked, tt.answered, got, tt.want)
		}
		if got := sameProtocols([]byte(tt.asked), []byte(tt.answered)); got != tt.want {
			t.Errorf("sameProtocols([]byte %q, %q) = %v, want %v", tt.asked, tt.answered, got, tt.want)
		}
	}
}
