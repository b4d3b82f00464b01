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
	ln := serveFastRouter(t, srv)

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

// SetACMEAnswers has a FastServer answer the ACME HTTP-01 challenges it
// is given an answer for, by Host and token, before any pool's rules;
// other challenge paths and methods go to the app.
func TestFastRouterAnswersACME(t *testing.T) {
	clk := newFakeClock()
	one := newTestBackend(t, "one")
	cfg := testConfig(clk)
	cfg.NoAffinity = true
	cfg.Backends = []Backend{one.backend()}
	p := newTestPool(t, cfg)
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv := NewFastRouter(FastConfig(), func(host string) *Pool {
		if host == "www.shop.example" {
			return p
		}
		return nil
	}, "")
	srv.SetACMEAnswers(func(host, token string) (string, bool) {
		if (host == "www.shop.example" || host == "new.example") && token == "tok-1" {
			return "tok-1.thumbprint", true
		}
		return "", false
	})
	ln := serveFastRouter(t, srv)

	c := &http.Client{Timeout: 5 * time.Second}
	for _, tc := range []struct {
		method, host, path, want string
		code                     int
	}{
		{"GET", "www.shop.example", "/.well-known/acme-challenge/tok-1", "tok-1.thumbprint", 200},
		{"GET", "new.example", "/.well-known/acme-challenge/tok-1", "tok-1.thumbprint", 200}, // no app routed there yet
		{"GET", "www.shop.example", "/.well-known/acme-challenge/tok-2", "one", 200},
		{"POST", "www.shop.example", "/.well-known/acme-challenge/tok-1", "one", 200},
		{"GET", "other.example", "/.well-known/acme-challenge/tok-1", "No application", 404},
	} {
		req, _ := http.NewRequest(tc.method, "http://"+ln.Addr().String()+tc.path, nil)
		req.Host = tc.host
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s %s%s: %v", tc.method, tc.host, tc.path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.code || !strings.Contains(string(body), tc.want) {
			t.Errorf("%s %s%s: got %d %q, want %d with %q", tc.method, tc.host, tc.path, resp.StatusCode, body, tc.code, tc.want)
		}
		if tc.want == "tok-1.thumbprint" && (string(body) != tc.want || resp.Header.Get("Content-Type") != "text/plain; charset=utf-8") {
			t.Errorf("%s%s: body %q, type %q; want the answer alone, as text", tc.host, tc.path, body, resp.Header.Get("Content-Type"))
		}
	}
	if got := one.requests(); len(got) != 2 {
		t.Errorf("the app saw %d requests, want the 2 that were not answered challenges", len(got))
	}
}

// serveFastRouter serves srv on a loopback listener until the test ends.
func serveFastRouter(t *testing.T, srv *FastServer) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln
}
