package lb

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"gearbox/internal/testutil"
)

// guarded serves h on 127.0.0.1 under l and returns its address and guard.
func guarded(t *testing.T, l Limits, h http.Handler) (string, *ServerGuard) {
	t.Helper()
	if handlerPath {
		t.Skip("the guard has one path; it runs once")
	}
	srv := &http.Server{Handler: h}
	g := GuardServer(srv, l)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln)
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	return ln.Addr().String(), g
}

// dialFrom connects to addr from the local address from ("" for any),
// with a deadline that ends a test that would otherwise hang.
func dialFrom(t *testing.T, from, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{}
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	return c
}

// readToEnd reads what the server sends until it closes the connection,
// and fails the test if the connection stays open (the test's deadline).
func readToEnd(t *testing.T, c net.Conn) string {
	t.Helper()
	b, err := io.ReadAll(c)
	if err != nil {
		if isTimeout(err) {
			t.Fatalf("the server kept the connection open; read %q", b)
		}
		// A reset after the answer is an end too.
	}
	return string(b)
}

// TestGuardBodyTimeout performs the trickle attack: headers announce 1000
// bytes of body, one comes, then nothing. The server answers and closes
// the connection once BodyTimeout has passed, whether the handler reads
// the body (it gets ErrBodyTimeout) or ignores it (net/http reads it
// before it answers). Without the guard the connection stays open for as
// long as the client likes.
func TestGuardBodyTimeout(t *testing.T) {
	const timeout = 300 * time.Millisecond
	tests := []struct {
		name  string
		read  bool
		code  string
		timed bool // the handler saw ErrBodyTimeout
	}{
		{"handler reads the body", true, "408", true},
		{"handler ignores the body", false, "200", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := make(chan error, 1)
			// The write time-out is as short: it must not run out while
			// net/http reads the unread body before it answers.
			addr, _ := guarded(t, Limits{BodyTimeout: timeout, WriteTimeout: timeout}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if !tt.read {
					io.WriteString(w, "ok")
					return
				}
				_, err := io.ReadAll(r.Body)
				got <- err
				if errors.Is(err, ErrBodyTimeout) {
					w.WriteHeader(http.StatusRequestTimeout)
				}
			}))
			c := dialFrom(t, "", addr)
			start := time.Now()
			io.WriteString(c, "POST / HTTP/1.1\r\nHost: app\r\nContent-Length: 1000\r\n\r\nx")
			answer := readToEnd(t, c)
			took := time.Since(start)
			if !strings.HasPrefix(answer, "HTTP/1.1 "+tt.code+" ") {
				t.Errorf("answer %q, want a %s", answer, tt.code)
			}
			if took < timeout*3/4 || took > timeout+3*time.Second {
				t.Errorf("connection closed after %s, want about %s", took, timeout)
			}
			if tt.read {
				err := <-got
				if !errors.Is(err, ErrBodyTimeout) || !isTimeout(err) {
					t.Errorf("handler's read: %v, want ErrBodyTimeout that is a timeout", err)
				}
			}
		})
	}
}

// TestGuardMinBodyRate sends a body a byte at a time, each well within
// BodyTimeout of the last: below MinBodyRate it is cut once its bytes
// fall behind their due times; above it, it arrives whole.
func TestGuardMinBodyRate(t *testing.T) {
	const (
		timeout = 300 * time.Millisecond
		rate    = 40 // bytes a second
		size    = 60
	)
	tests := []struct {
		name string
		gap  time.Duration // between bytes
		cut  bool
	}{
		// 10 bytes a second: the n-th byte is due at 0.3 s + n/40 s and
		// comes at n/10 s, late from about the 4th on (0.4 s); whole,
		// the body would take 6 s.
		{"below the rate", 100 * time.Millisecond, true},
		// 200 bytes a second: 60 bytes in 0.3 s.
		{"above the rate", 5 * time.Millisecond, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := make(chan error, 1)
			addr, _ := guarded(t, Limits{BodyTimeout: timeout, MinBodyRate: rate}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, err := io.ReadAll(r.Body)
				if err == nil && len(b) != size {
					err = fmt.Errorf("read %d bytes", len(b))
				}
				got <- err
			}))
			c := dialFrom(t, "", addr)
			start := time.Now()
			fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: app\r\nContent-Length: %d\r\n\r\n", size)
			sent := make(chan struct{})
			go func() {
				defer close(sent)
				tick := time.NewTicker(tt.gap)
				defer tick.Stop()
				for range size {
					if _, err := c.Write([]byte{'x'}); err != nil {
						return
					}
					<-tick.C
				}
			}()
			defer func() { c.Close(); <-sent }()
			err := <-got
			took := time.Since(start)
			switch {
			case tt.cut && !errors.Is(err, ErrBodyTimeout):
				t.Errorf("slow body: %v after %s, want ErrBodyTimeout", err, took)
			case tt.cut && took > 3*time.Second:
				t.Errorf("slow body cut after %s, want within about 0.5 s", took)
			case !tt.cut && err != nil:
				t.Errorf("body above the rate: %v after %s", err, took)
			}
		})
	}
}

// TestGuardWriteTimeout answers a client that never reads: the handler's
// write fails once WriteTimeout has passed without the client taking a
// byte.
func TestGuardWriteTimeout(t *testing.T) {
	const timeout = 300 * time.Millisecond
	failed := make(chan time.Time, 1)
	addr, _ := guarded(t, Limits{WriteTimeout: timeout}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chunk := make([]byte, 32<<10)
		for range 2048 { // 64 MiB, far more than socket buffers hold
			if _, err := w.Write(chunk); err != nil {
				failed <- time.Now()
				return
			}
		}
	}))
	c := dialFrom(t, "", addr)
	start := time.Now()
	io.WriteString(c, "GET /big HTTP/1.1\r\nHost: app\r\n\r\n")
	select {
	case at := <-failed:
		if took := at.Sub(start); took > timeout+3*time.Second {
			t.Errorf("the write failed after %s, want about %s", took, timeout)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the handler's writes to a client that does not read never failed")
	}
}

// TestGuardStreamsLast streams an answer whose lines come further apart
// than WriteTimeout and BodyTimeout, after a request with no body and one
// with a body: neither time-out cuts it, as neither is of a whole answer.
func TestGuardStreamsLast(t *testing.T) {
	const (
		timeout = 200 * time.Millisecond
		gap     = 2 * timeout
		lines   = 4
	)
	addr, _ := guarded(t, Limits{BodyTimeout: timeout, WriteTimeout: timeout}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body)
		rc := http.NewResponseController(w)
		tick := time.NewTicker(gap)
		defer tick.Stop()
		for i := range lines {
			fmt.Fprintf(w, "line %d\n", i)
			if rc.Flush() != nil {
				return
			}
			select {
			case <-tick.C:
			case <-r.Context().Done():
				return
			}
		}
	}))
	for _, req := range []string{
		"GET /follow HTTP/1.1\r\nHost: app\r\n\r\n",
		"POST /follow HTTP/1.1\r\nHost: app\r\nContent-Length: 2\r\n\r\nhi",
	} {
		c := dialFrom(t, "", addr)
		io.WriteString(c, req)
		br := bufio.NewReader(c)
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(res.Body)
		if want := "line 0\nline 1\nline 2\nline 3\n"; string(b) != want || err != nil {
			t.Errorf("%s: streamed %q, %v; want %q", strings.Fields(req)[0], b, err, want)
		}
	}
}

// TestGuardConnCaps fills the per-client cap from one address and the
// total cap from another: the connections over a cap get Refusal and are
// closed before their request is read, the ones held still serve, and a
// place freed is taken again.
func TestGuardConnCaps(t *testing.T) {
	const refusal = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\nConnection: close\r\n\r\nfull"
	addr, g := guarded(t, Limits{MaxConns: 3, MaxConnsPerClient: 2, Refusal: refusal}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	type conn struct {
		c  net.Conn
		br *bufio.Reader
	}
	get := func(t *testing.T, c conn) {
		t.Helper()
		io.WriteString(c.c, "GET / HTTP/1.1\r\nHost: app\r\n\r\n")
		res, err := http.ReadResponse(c.br, nil)
		if err != nil {
			t.Fatalf("held connection: %v", err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("held connection: status %d", res.StatusCode)
		}
	}
	open := func(t *testing.T, from string) conn {
		t.Helper()
		c := dialFrom(t, from, addr)
		cc := conn{c, bufio.NewReader(c)}
		get(t, cc)
		return cc
	}
	refused := func(t *testing.T, from string) {
		t.Helper()
		c := dialFrom(t, from, addr)
		start := time.Now()
		if got := readToEnd(t, c); got != refusal {
			t.Errorf("over the cap from %s: %q, want the refusal", from, got)
		}
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("over the cap from %s: answered after %s, want at once", from, took)
		}
	}

	a1, a2 := open(t, "127.0.0.1"), open(t, "127.0.0.1")
	refused(t, "127.0.0.1") // over the per-client cap
	b1 := open(t, "127.0.0.2")
	refused(t, "127.0.0.3") // over the total cap
	if n := g.Conns(); n != 3 {
		t.Errorf("%d connections counted, want 3", n)
	}
	if n := g.Refused(); n != 2 {
		t.Errorf("%d connections refused, want 2", n)
	}
	for _, c := range []conn{a1, a2, b1} {
		get(t, c)
	}

	a1.c.Close()
	testutil.WaitFor(t, 5*time.Second, "the closed connection to be let go", func() bool { return g.Conns() == 2 })
	a3 := open(t, "127.0.0.1")
	get(t, a3)
}

// TestGuardTunnel takes a connection over (as ReverseProxy does for an
// upgrade) and echoes lines: traffic for longer than TunnelTimeout keeps
// it open, silence closes it, and its place under the caps comes back
// when the handler closes it.
func TestGuardTunnel(t *testing.T) {
	const (
		timeout = 300 * time.Millisecond
		gap     = timeout / 3
		rounds  = 9
	)
	addr, g := guarded(t, Limits{TunnelTimeout: timeout, WriteTimeout: timeout, MaxConns: 10}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		brw.Flush()
		br := bufio.NewReader(conn)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			if _, err := io.WriteString(conn, "echo: "+line); err != nil {
				return
			}
		}
	}))
	c := dialFrom(t, "", addr)
	io.WriteString(c, "GET /chat HTTP/1.1\r\nHost: app\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
	br := bufio.NewReader(c)
	res, err := http.ReadResponse(br, nil)
	if err != nil || res.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v, %v", res, err)
	}
	start := time.Now()
	tick := time.NewTicker(gap)
	defer tick.Stop()
	for i := range rounds {
		<-tick.C
		msg := fmt.Sprintf("message %d\n", i)
		io.WriteString(c, msg)
		if line, err := br.ReadString('\n'); line != "echo: "+msg {
			t.Fatalf("after %s: echo %q, %v", time.Since(start), line, err)
		}
	}
	silent := time.Now()
	if b, err := br.ReadByte(); err == nil || isTimeout(err) {
		t.Fatalf("a silent tunnel stayed open: %q, %v", b, err)
	}
	if d := time.Since(silent); d < timeout*3/4 {
		t.Errorf("the tunnel closed %s after its last byte, before its timeout %s", d, timeout)
	}
	testutil.WaitFor(t, 5*time.Second, "the tunnel's place to come back", func() bool { return g.Conns() == 0 })
}

// TestLimitsValidate names the fields that are wrong.
func TestLimitsValidate(t *testing.T) {
	if err := (Limits{}).Validate(); err != nil {
		t.Errorf("zero Limits: %v", err)
	}
	err := Limits{BodyTimeout: -1, MaxConnsPerClient: -1}.Validate()
	for _, f := range []string{"BodyTimeout", "MaxConnsPerClient"} {
		if err == nil || !strings.Contains(err.Error(), f) {
			t.Errorf("negative %s: %v, want an error naming it", f, err)
		}
	}
	if err := (Limits{MinBodyRate: 100}).Validate(); err == nil || !strings.Contains(err.Error(), "MinBodyRate") {
		t.Errorf("MinBodyRate without BodyTimeout: %v, want an error", err)
	}
}

// TestClientKey counts IPv4 clients by address and IPv6 ones by /64.
func TestClientKey(t *testing.T) {
	tests := []struct{ addr, want string }{
		{"192.0.2.7:1234", "192.0.2.7"},
		{"[::ffff:192.0.2.7]:1234", "192.0.2.7"},
		{"[2001:db8:1:2:aaaa:bbbb:cccc:dddd]:80", "2001:db8:1:2::"},
		{"[2001:db8:1:2::1]:80", "2001:db8:1:2::"},
	}
	for _, tt := range tests {
		a, err := net.ResolveTCPAddr("tcp", tt.addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := clientKey(a).String(); got != tt.want {
			t.Errorf("clientKey(%s) = %s, want %s", tt.addr, got, tt.want)
		}
	}
}

// TestServerGuards checks that Server applies the pool's client limits.
func TestServerGuards(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ClientTimeout = 3 * time.Second
	srv := Server(cfg, ":0", http.NotFoundHandler())
	if srv.ReadHeaderTimeout != 3*time.Second || srv.IdleTimeout != 3*time.Second || srv.ConnState == nil {
		t.Errorf("Server: ReadHeaderTimeout %s, IdleTimeout %s, ConnState set %v", srv.ReadHeaderTimeout, srv.IdleTimeout, srv.ConnState != nil)
	}
	l := ClientLimits(cfg)
	if l.BodyTimeout != 3*time.Second || l.WriteTimeout != 3*time.Second || l.TunnelTimeout != time.Minute || l.MaxConns != 10000 {
		t.Errorf("ClientLimits = %+v", l)
	}
}
