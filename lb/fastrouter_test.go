package lb

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// A FastServer made by NewFastRouter picks the pool by Host, rewrites
// Host to the pool's, and answers unknown hosts with its 404 page.
func TestFastRouterPicksPoolByHost(t *testing.T) {
	clk := newFakeClock()
	one, two := newTestBackend(t, "one"), newTestBackend(t, "two")
	pools := map[string]*Pool{}
	for host, b := range map[string]*testBackend{"ha-a-ns.example.com": one, "ha-b-ns.example.com": two} {
		cfg := testConfig(clk)
		cfg.NoAffinity = true
		cfg.Host = strings.TrimPrefix(host, "ha-")
		cfg.Backends = []Backend{b.backend()}
		p := newTestPool(t, cfg)
		if err := p.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		pools[host] = p
	}
	srv := NewFastRouter(FastConfig(), func(host string) *Pool {
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		return pools[strings.ToLower(host)]
	}, "<p>no such app</p>")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	c := &http.Client{Timeout: 5 * time.Second}
	for _, tc := range []struct {
		host, want string
		code       int
	}{
		{"ha-a-ns.example.com", "one", 200},
		{"HA-B-NS.example.com:8080", "two", 200},
		{"ha-c-ns.example.com", "no such app", 404},
		{"ha-a-ns.example.com", "one", 200}, // the connection is still usable after a 404
	} {
		req, _ := http.NewRequest("GET", "http://"+ln.Addr().String()+"/x", nil)
		req.Host = tc.host
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", tc.host, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.code || !strings.Contains(string(body), tc.want) {
			t.Errorf("%s: got %d %q, want %d with %q", tc.host, resp.StatusCode, body, tc.code, tc.want)
		}
	}
	if got := one.requests(); len(got) != 2 || got[0].host != "a-ns.example.com" {
		t.Errorf("backend one saw %+v, want two requests with Host a-ns.example.com", got)
	}
	if got := two.requests(); len(got) != 1 || got[0].host != "b-ns.example.com" {
		t.Errorf("backend two saw %+v, want one request with Host b-ns.example.com", got)
	}
}
