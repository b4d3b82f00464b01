package router

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"gearbox/internal/testutil"
	"gearbox/store/state"
)

// TestRouterListenerLimits checks the router's listener (an
// lb.FastServer under the LB config's client settings) against the
// attacks that item 18 of issue #12 lists: a trickled body is cut after
// ClientTimeout, whether the request goes to an app or to no one, and
// connections over MaxClientConns are answered 503 at once while the ones
// held still serve.
func TestRouterListenerLimits(t *testing.T) {
	const (
		timeout = 300 * time.Millisecond
		max     = 2
	)
	testutil.CheckNoLeaks(t, leakPatterns...)
	m := startMember(t, "r1")
	f := fixture{m}
	nodeIP := ips.Next()
	f.node("n1", nodeIP)
	blog := newLBGear(t, "blog1", nodeIP, "/")
	f.app(state.App{Name: "blog", Domain: "ns", State: state.GearStarted})
	f.m.put(state.BucketGears, "blog1", state.Gear{ID: "blog1", App: "ns/blog", AppName: "blog", Domain: "ns", Node: "n1",
		State: state.GearStarted, Ordinal: 1, Port: blog.port()})
	r := startRouter(t, m, func(c *Config) { c.LB.ClientTimeout, c.LB.MaxClientConns = timeout, max })
	waitServed(t, r, "blog-ns.example.test", 200, "gear blog1")

	dial := func(t *testing.T) net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", r.HTTPAddr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(20 * time.Second))
		return c
	}

	for _, host := range []string{"blog-ns.example.test", "unknown.example.test"} {
		t.Run("trickled body to "+host, func(t *testing.T) {
			c := dial(t)
			start := time.Now()
			io.WriteString(c, "POST / HTTP/1.1\r\nHost: "+host+"\r\nContent-Length: 1000\r\n\r\nx")
			got, err := io.ReadAll(c)
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatalf("the router kept the connection open; read %q", got)
			}
			if took := time.Since(start); took > timeout+3*time.Second {
				t.Errorf("connection closed after %s, want about %s", took, timeout)
			}
		})
	}

	t.Run("connection cap", func(t *testing.T) {
		type held struct {
			c  net.Conn
			br *bufio.Reader
		}
		request := func(t *testing.T, h held) {
			t.Helper()
			io.WriteString(h.c, "GET / HTTP/1.1\r\nHost: blog-ns.example.test\r\n\r\n")
			res, err := http.ReadResponse(h.br, nil)
			if err != nil {
				t.Fatalf("held connection: %v", err)
			}
			io.Copy(io.Discard, res.Body)
			if res.StatusCode != http.StatusOK {
				t.Fatalf("held connection: %d", res.StatusCode)
			}
		}
		// The connections of the subtests above may still be let go.
		var conns []held
		for range max {
			testutil.WaitFor(t, 5*time.Second, "a place under the cap", func() bool {
				c := dial(t)
				h := held{c, bufio.NewReader(c)}
				io.WriteString(c, "GET / HTTP/1.1\r\nHost: blog-ns.example.test\r\n\r\n")
				res, err := http.ReadResponse(h.br, nil)
				if err != nil || res.StatusCode != http.StatusOK {
					c.Close()
					return false
				}
				io.Copy(io.Discard, res.Body)
				conns = append(conns, h)
				return true
			})
		}
		start := time.Now()
		b, _ := io.ReadAll(dial(t))
		if !strings.HasPrefix(string(b), "HTTP/1.1 503 ") {
			t.Errorf("over the cap: %q, want a 503", b)
		}
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("over the cap: answered after %s, want at once", took)
		}
		for _, h := range conns {
			request(t, h)
		}
		conns[0].c.Close()
		testutil.WaitFor(t, 5*time.Second, "a place under the cap", func() bool {
			code, _ := get(r, "blog-ns.example.test")
			return code == http.StatusOK
		})
	})
}
