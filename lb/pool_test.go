package lb

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"gearbox/internal/testutil"
)

func TestSetBackendsKeepsState(t *testing.T) {
	a, b, c := newTestBackend(t, "a"), newTestBackend(t, "b"), newTestBackend(t, "c")
	cfg := testConfig(newFakeClock())
	cfg.Backends = []Backend{a.backend(), b.backend()}
	p := newTestPool(t, cfg)
	url, cl := front(t, p)
	get(t, cl, url+"/", gearCookie("", "a"))
	get(t, cl, url+"/", gearCookie("", "a"))
	p.markDown(backendByID(t, p, "b"), nil)
	p.Drain("a")

	moved := b.backend()
	moved.Addr = c.backend().Addr
	tests := []struct {
		name  string
		set   []Backend
		check func(t *testing.T)
	}{
		{"unchanged keep state", []Backend{a.backend(), b.backend(), c.backend()}, func(t *testing.T) {
			if s := statusOf(t, p, "a"); s.SessionsTotal != 2 || !s.Draining {
				t.Errorf("a: %d sessions, draining %v: want 2 and true", s.SessionsTotal, s.Draining)
			}
			if s := statusOf(t, p, "b"); s.State != "down" {
				t.Errorf("b is %s, want still down", s.State)
			}
			if s := statusOf(t, p, "c"); s.State != "up" || s.SessionsTotal != 0 {
				t.Errorf("new c: %s with %d sessions, want up with none", s.State, s.SessionsTotal)
			}
		}},
		{"changed address is a new backend", []Backend{a.backend(), moved}, func(t *testing.T) {
			if s := statusOf(t, p, "b"); s.State != "up" || s.Addr != moved.Addr || s.Why != "added" {
				t.Errorf("b: %s at %s (%s), want up at %s (added)", s.State, s.Addr, s.Why, moved.Addr)
			}
			if len(p.Backends()) != 2 {
				t.Errorf("backends %v, want a and b", p.Backends())
			}
		}},
		{"invalid set is refused whole", []Backend{a.backend(), {ID: "a", Addr: "127.0.0.1:1"}}, func(t *testing.T) {
			if len(p.Backends()) != 2 {
				t.Errorf("backends %v changed", p.Backends())
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := p.SetBackends(tt.set)
			if (err != nil) != strings.HasPrefix(tt.name, "invalid") {
				t.Fatalf("SetBackends: %v", err)
			}
			tt.check(t)
		})
	}
}

func TestDrain(t *testing.T) {
	a, b := newTestBackend(t, "a"), newTestBackend(t, "b")
	g := newGate(t)
	a.handle = g.hold
	cfg := testConfig(newFakeClock())
	cfg.Backends = []Backend{a.backend(), b.backend()}
	p := newTestPool(t, cfg)
	url, c := front(t, p)

	if _, err := p.Drain("nope"); !errors.Is(err, ErrUnknownBackend) {
		t.Errorf("Drain of an unknown backend: %v, want ErrUnknownBackend", err)
	}
	inflight := goGet(c, url+"/block", gearCookie("", "a"))
	testutil.WaitFor(t, 5*time.Second, "a request in flight on a", func() bool { return g.entered.Load() == 1 })
	drained, err := p.Drain("a")
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := p.Drain("a"); again != drained {
		t.Error("a second Drain returned another channel")
	}
	// New requests, affinity ones too, go to b and are told so.
	for range 5 {
		r := get(t, c, url+"/", gearCookie("", "a"))
		if r.backend != "b" || r.setCookie != CookieValue(nil, "b") {
			t.Fatalf("request went to %q with cookie %q during the drain, want b", r.backend, r.setCookie)
		}
	}
	select {
	case <-drained:
		t.Fatal("drained with a request in flight")
	default:
	}
	g.release()
	if code := recv(t, inflight); code != http.StatusOK {
		t.Errorf("in-flight request: status %d, want 200", code)
	}
	select {
	case <-drained:
	case <-time.After(5 * time.Second):
		t.Fatal("not drained after the last request")
	}
	if n := a.hits.Load(); n != 1 {
		t.Errorf("a got %d requests, want only the one in flight", n)
	}
	// Resume brings a back; a new drain of an idle backend ends at once.
	if err := p.Resume("a"); err != nil {
		t.Fatal(err)
	}
	if r := get(t, c, url+"/", gearCookie("", "a")); r.backend != "a" {
		t.Errorf("after Resume: request went to %q, want a", r.backend)
	}
	ch, _ := p.Drain("a")
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal("drain of an idle backend did not end at once")
	}
}

func TestSessions(t *testing.T) {
	a, b := newTestBackend(t, "a"), newTestBackend(t, "b")
	g := newGate(t)
	a.handle, b.handle = g.hold, g.hold
	cfg := testConfig(newFakeClock())
	cfg.Backends = []Backend{a.backend(), b.backend()}
	p := newTestPool(t, cfg)
	url, c := front(t, p)
	var held []<-chan int
	for range 5 {
		held = append(held, goGet(c, url+"/block", ""))
	}
	testutil.WaitFor(t, 5*time.Second, "5 requests in flight", func() bool { return g.entered.Load() == 5 })
	if n := p.Sessions(); n != 5 {
		t.Errorf("Sessions = %d, want 5", n)
	}
	st := p.Status()
	if cur := st.Backends[0].SessionsCurrent + st.Backends[1].SessionsCurrent; cur != 5 || st.Sessions != 5 {
		t.Errorf("status: %d sessions, %d over backends, want 5", st.Sessions, cur)
	}
	g.release()
	for _, ch := range held {
		recv(t, ch)
	}
	testutil.WaitFor(t, 5*time.Second, "no session", func() bool { return p.Sessions() == 0 })
	if st := p.Status(); st.Backends[0].SessionsTotal+st.Backends[1].SessionsTotal != 5 {
		t.Errorf("total sessions %d + %d, want 5", st.Backends[0].SessionsTotal, st.Backends[1].SessionsTotal)
	}
}

func TestStartClose(t *testing.T) {
	p, err := New(testConfig(newFakeClock()))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.Start(ctx); !errors.Is(err, ErrStarted) {
		t.Errorf("second Start: %v, want ErrStarted", err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := p.Start(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("Start after Close: %v, want ErrClosed", err)
	}
}

// TestNoGoroutineOutlivesClose runs checks, proxied requests over kept-alive
// connections and a WebSocket-like tunnel, closes everything, and checks
// that no goroutine of the pool or of its backend connections is left.
func TestNoGoroutineOutlivesClose(t *testing.T) {
	before := testutil.Goroutines(lbGoroutinePatterns...)
	p := func() *Pool {
		clk := newFakeClock()
		cfg := testConfig(clk)
		a, b := newTestBackend(t, "a"), newTestBackend(t, "b")
		cfg.Backends = []Backend{a.backend(), b.backend(), {ID: "dead", Addr: refusedAddr(t)}}
		p, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Start(ctx); err != nil {
			t.Fatal(err)
		}
		url, c := front(t, p)
		for range 20 {
			get(t, c, url+"/", "")
		}
		testutil.WaitFor(t, 5*time.Second, "a round of checks", func() bool { return clk.waiting() == 1 })
		clk.Advance(cfg.HealthInterval)
		running := 0
		for id := range testutil.Goroutines(lbGoroutinePatterns...) {
			if _, ok := before[id]; !ok {
				running++
			}
		}
		// The check loop and the two ends of each kept-alive connection
		// at least: the check below would pass vacuously otherwise.
		if running < 3 {
			t.Fatalf("only %d goroutines found while the pool runs", running)
		}
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
		closeFront(p) // the server around the pool is the caller's to close
		c.Transport.(*http.Transport).CloseIdleConnections()
		return p
	}()
	testutil.WaitGoroutinesEnd(t, before, 5*time.Second, lbGoroutinePatterns...)
	testutil.WaitFor(t, 5*time.Second, "the front's Serve to return", func() bool { return !frontServing(p) })
}
