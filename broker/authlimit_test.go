package broker

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"
)

// clientFrom is a test client whose connections come from local address
// ip (any of 127.0.0.0/8 on Linux's loopback).
func clientFrom(t testing.TB, ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	tr := &http.Transport{DialContext: d.DialContext}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 20 * time.Second}
}

// TestFailedLoginsAreLimited: the attack of issue #12, item 14. Failed
// basic-auth logins beyond the budget (10 a minute by default) from one
// address, or for one login, are answered 429 with Retry-After and cost no
// bcrypt; another address is still served; a password already checked
// still works; after the window, the login works again.
func TestFailedLoginsAreLimited(t *testing.T) {
	c := newCluster(t, clusterOpts{nodes: []nodeSpec{}})
	limit := c.b.cfg.AuthFailureLimit
	if limit != DefaultAuthFailureLimit || c.b.cfg.AuthFailureWindow != time.Minute {
		t.Fatalf("test cluster limit %d per %s, want the defaults", limit, c.b.cfg.AuthFailureWindow)
	}
	demo := c.user(t, "demo", nil)
	other := c.user(t, "other", nil)
	c.ok(t, "GET", "/broker/rest/user", admin, nil, nil) // admin's password is now known
	attacker, bystander := clientFrom(t, "127.0.0.3"), clientFrom(t, "127.0.0.4")
	get := func(client *http.Client, who creds) response {
		t.Helper()
		return do(t, client, c.url, "GET", "/broker/rest/user", who, nil)
	}

	before := c.b.bcrypts.Load()
	for i := 0; i < limit; i++ {
		if r := get(attacker, basic("demo", fmt.Sprintf("guess-%d", i))); r.code != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d %s, want 401", i+1, r.code, r.text())
		}
	}
	if n := c.b.bcrypts.Load() - before; n != int64(limit) {
		t.Fatalf("%d failed logins cost %d bcrypts, want %d", limit, n, limit)
	}
	// One more, for this login, an unknown one, or with the right
	// password that the broker has not checked yet: 429, no bcrypt.
	before = c.b.bcrypts.Load()
	for _, who := range []creds{basic("demo", "guess-x"), basic("nobody", "guess-y"), demo} {
		r := get(attacker, who)
		wantErr(t, r, http.StatusTooManyRequests, "Too many failed logins")
		if secs, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || secs < 1 || secs > 60 {
			t.Fatalf("Retry-After %q, want 1 to 60 seconds", r.header.Get("Retry-After"))
		}
	}
	if n := c.b.bcrypts.Load() - before; n != 0 {
		t.Fatalf("limited attempts cost %d bcrypts", n)
	}
	// A password the broker already checked costs no bcrypt and is not
	// limited: the attacker cannot lock the admin out.
	if r := get(attacker, admin); r.code != http.StatusOK {
		t.Fatalf("admin from the limited address: %d %s", r.code, r.text())
	}
	// Another address is served, for another login; "demo" is limited
	// from everywhere, its budget being spent.
	if r := get(bystander, basic("other", "wrong-password")); r.code != http.StatusUnauthorized {
		t.Fatalf("another address: %d %s, want 401", r.code, r.text())
	}
	if r := get(bystander, other); r.code != http.StatusOK {
		t.Fatalf("another address, right password: %d %s", r.code, r.text())
	}
	wantErr(t, get(bystander, demo), http.StatusTooManyRequests, "")

	// After the window, the right password works, from the attacker's
	// address too.
	c.clock.Advance(time.Minute)
	if r := get(attacker, demo); r.code != http.StatusOK {
		t.Fatalf("after the window: %d %s", r.code, r.text())
	}
}

// TestConcurrentFailedLoginsStayWithinBudget: attempts reserve their
// failure before bcrypt runs, so that many at once cannot overrun the
// budget.
func TestConcurrentFailedLoginsStayWithinBudget(t *testing.T) {
	c := newCluster(t, clusterOpts{nodes: []nodeSpec{}, cfg: func(cfg *Config) { cfg.AuthFailureLimit = 5 }})
	client := clientFrom(t, "127.0.0.5")
	before := c.b.bcrypts.Load()
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[int]int{}
	for i := 0; i < 20; i++ {
		wg.Go(func() {
			r := do(t, client, c.url, "GET", "/broker/rest/user", basic(fmt.Sprintf("user%d", i), "wrong-password"), nil)
			mu.Lock()
			codes[r.code]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if codes[http.StatusUnauthorized] != 5 || codes[http.StatusTooManyRequests] != 15 {
		t.Fatalf("answers %v, want 5 × 401 and 15 × 429", codes)
	}
	if n := c.b.bcrypts.Load() - before; n != 5 {
		t.Fatalf("%d bcrypts, want 5", n)
	}
}

func TestAuthLimiter(t *testing.T) {
	now := time.Unix(1000, 0)
	l := newAuthLimiter(3, time.Minute, 100)
	for i := 0; i < 3; i++ {
		if _, ok := l.reserve("a", now); !ok {
			t.Fatalf("failure %d refused", i+1)
		}
	}
	wait, ok := l.reserve("a", now)
	if ok || wait != 20*time.Second {
		t.Fatalf("4th failure: ok %v wait %s, want refused for 20s", ok, wait)
	}
	// One failure comes back every window/limit.
	if _, ok := l.reserve("a", now.Add(20*time.Second)); !ok {
		t.Fatal("refused after 20s")
	}
	if _, ok := l.reserve("a", now.Add(20*time.Second)); ok {
		t.Fatal("two failures came back after 20s")
	}
	// A refund (a successful login) gives one back.
	l.refund("a", now.Add(20*time.Second))
	if _, ok := l.reserve("a", now.Add(20*time.Second)); !ok {
		t.Fatal("refused after a refund")
	}
	// Keys whose budget is whole again are forgotten.
	l.reserve("b", now)
	l.refund("b", now)
	if l.len() != 1 {
		t.Fatalf("%d keys, want 1 (b's budget is whole)", l.len())
	}
}

// TestAuthLimiterIsBounded: an attacker making up addresses or logins
// fills the table to its cap, not beyond.
func TestAuthLimiterIsBounded(t *testing.T) {
	now := time.Unix(1000, 0)
	l := newAuthLimiter(10, time.Minute, 50)
	for i := 0; i < 10000; i++ {
		l.reserve(fmt.Sprintf("login%d", i), now)
	}
	if l.len() != 50 {
		t.Fatalf("%d keys, want the cap, 50", l.len())
	}
	// The most recent are kept.
	if _, ok := l.m["login9999"]; !ok {
		t.Fatal("the newest key was evicted")
	}
	// Once their budgets are whole, new keys replace them all.
	l.reserve("late", now.Add(time.Hour))
	if l.len() != 1 {
		t.Fatalf("%d keys after the window, want 1", l.len())
	}
}

// TestClientAddr: the address failures are charged to is the TCP peer's;
// a forwarded client address counts only with the forwarding broker's
// MAC, made with the cluster secret.
func TestClientAddr(t *testing.T) {
	c := newCluster(t, clusterOpts{nodes: []nodeSpec{}})
	b := c.b
	req := func(hdr map[string]string) *http.Request {
		r := httptest.NewRequest("POST", "/broker/rest/domains", nil)
		r.RemoteAddr = "192.0.2.7:4567"
		for k, v := range hdr {
			r.Header.Set(k, v)
		}
		return r
	}
	in := req(nil)
	in.RemoteAddr = "198.51.100.9:1234"
	out := req(nil)
	b.setForwardedFor(out, in) // as b (b1) forwards in
	valid := out.Header.Get(forwardedForHeader)
	tests := []struct {
		name string
		hdr  map[string]string
		want string
	}{
		{"peer", nil, "192.0.2.7"},
		{"X-Forwarded-For is ignored", map[string]string{"X-Forwarded-For": "203.0.113.1"}, "192.0.2.7"},
		{"forwarded, with the MAC", map[string]string{forwardedHeader: "b1", forwardedForHeader: valid}, "198.51.100.9"},
		{"forwarded, no MAC", map[string]string{forwardedHeader: "b1", forwardedForHeader: "203.0.113.1"}, "192.0.2.7"},
		{"forwarded, another address", map[string]string{forwardedHeader: "b1", forwardedForHeader: "203.0.113.1 " + valid[len("198.51.100.9 "):]}, "192.0.2.7"},
		{"forwarded, by another broker", map[string]string{forwardedHeader: "b2", forwardedForHeader: valid}, "192.0.2.7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := b.clientAddr(req(tt.hdr)); got != tt.want {
				t.Fatalf("clientAddr %q, want %q", got, tt.want)
			}
		})
	}
}
