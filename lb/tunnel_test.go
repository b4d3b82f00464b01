package lb

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"gearbox/internal/testutil"
)

// pusher answers an "Upgrade: echo" request with 101, then writes n
// lines, one every gap, and reads until its connection ends.
func pusher(n int, gap time.Duration) func(w http.ResponseWriter, r *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		brw.Flush()
		tick := time.NewTicker(gap)
		defer tick.Stop()
		for i := range n {
			<-tick.C
			fmt.Fprintf(brw, "tick %d\n", i)
			if brw.Flush() != nil {
				return
			}
		}
		io.Copy(io.Discard, brw)
	}
}

// TestTunnelIdleTimeout opens tunnels that pass bytes for longer than
// TunnelTimeout, either both ways or from the backend only, and then fall
// silent: traffic either way keeps a tunnel open, and silence closes it,
// both its sides, after the timeout.
func TestTunnelIdleTimeout(t *testing.T) {
	const (
		timeout = 400 * time.Millisecond
		gap     = timeout / 4
		rounds  = 8 // 2 timeouts' worth of traffic
	)
	tests := []struct {
		name   string
		handle func(w http.ResponseWriter, r *http.Request)
		client bool // the client writes and reads echoes, else reads pushes only
	}{
		{"both ways", echoUpgrade, true},
		{"backend to client only", pusher(rounds, gap), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			be := newTestBackend(t, "a")
			be.handle = tt.handle
			cfg := testConfig(newFakeClock())
			cfg.Backends = []Backend{be.backend()}
			cfg.TunnelTimeout = timeout
			p := newTestPool(t, cfg)
			url, _ := front(t, p)

			conn, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(20 * time.Second))
			io.WriteString(conn, "GET /chat HTTP/1.1\r\nHost: app\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
			br := bufio.NewReader(conn)
			res, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			if res.StatusCode != http.StatusSwitchingProtocols {
				t.Fatalf("status %d, want 101", res.StatusCode)
			}
			start := time.Now()
			if tt.client {
				tick := time.NewTicker(gap)
				defer tick.Stop()
				for i := range rounds {
					<-tick.C
					msg := fmt.Sprintf("message %d\n", i)
					io.WriteString(conn, msg)
					if line, err := br.ReadString('\n'); line != "echo: "+msg {
						t.Fatalf("after %s: echo %q, %v; want %q", time.Since(start), line, err, "echo: "+msg)
					}
				}
			} else {
				for i := range rounds {
					if line, err := br.ReadString('\n'); line != fmt.Sprintf("tick %d\n", i) {
						t.Fatalf("after %s: %q, %v; want tick %d", time.Since(start), line, err, i)
					}
				}
			}
			if d := time.Since(start); d < timeout {
				t.Fatalf("traffic lasted %s, less than the timeout %s: the test proves nothing", d, timeout)
			}

			// Silence: the tunnel ends, on the client's side with an end
			// of stream, not this test's deadline.
			silent := time.Now()
			conn.SetReadDeadline(silent.Add(10 * timeout))
			b, err := br.ReadByte()
			if err == nil {
				t.Fatalf("read %q from a silent tunnel", b)
			}
			if isTimeout(err) {
				t.Fatalf("the silent tunnel stayed open: %v", err)
			}
			if d := time.Since(silent); d < timeout*3/4 {
				t.Errorf("the tunnel closed %s after the last byte, before its timeout %s", d, timeout)
			}
			testutil.WaitFor(t, 5*time.Second, "the tunnel's session to end", func() bool { return p.Sessions() == 0 })
		})
	}
}

// TestTunnelTimeoutDefault checks the documented default.
func TestTunnelTimeoutDefault(t *testing.T) {
	p, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if got := p.cfg.TunnelTimeout; got != time.Minute {
		t.Errorf("TunnelTimeout default %s, want 1m", got)
	}
	if _, err := New(Config{TunnelTimeout: -time.Second}); err == nil || !strings.Contains(err.Error(), "TunnelTimeout") {
		t.Errorf("New with a negative TunnelTimeout: %v, want an error naming the field", err)
	}
}
