package lb

import (
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"gearbox/internal/testutil"
)

func TestRiseFall(t *testing.T) {
	// Each step sets the status the health path answers, runs one round of
	// checks and says whether the backend is then up.
	type step struct {
		status int
		up     bool
	}
	tests := []struct {
		name      string
		startDown bool
		steps     []step
	}{
		{"up until fall 2", false, []step{{200, true}, {500, true}, {500, false}}},
		{"a pass resets fall", false, []step{{500, true}, {200, true}, {500, true}, {200, true}, {500, true}, {500, false}}},
		{"down needs rise 3", false, []step{{503, true}, {503, false}, {200, false}, {200, false}, {200, true}}},
		{"a failure resets rise", false, []step{{503, true}, {503, false}, {200, false}, {200, false}, {503, false}, {200, false}, {200, false}, {200, true}}},
		{"start down", true, []step{{200, false}, {200, false}, {200, true}, {500, true}, {500, false}}},
		{"401 and 3xx pass", true, []step{{401, false}, {302, false}, {301, true}, {401, true}, {304, true}}},
		{"404 fails", false, []step{{404, true}, {404, false}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			be := newTestBackend(t, "a")
			cfg := testConfig(newFakeClock())
			cfg.StartDown = tt.startDown
			cfg.Backends = []Backend{be.backend()}
			p := newTestPool(t, cfg)
			b := backendByID(t, p, "a")
			if got := b.healthy.Load(); got == tt.startDown {
				t.Fatalf("before any check: up = %v, want %v", got, !tt.startDown)
			}
			for i, s := range tt.steps {
				be.health.Store(int32(s.status))
				p.checkOnce(ctx)
				if got := b.healthy.Load(); got != s.up {
					t.Fatalf("step %d (status %d): up = %v, want %v", i, s.status, got, s.up)
				}
			}
			if got, want := be.checks.Load(), int64(len(tt.steps)); got != want {
				t.Errorf("backend saw %d checks, want %d", got, want)
			}
		})
	}
}

func TestHealthExpect(t *testing.T) {
	tests := []struct {
		expect []string
		pass   []int
		fail   []int
	}{
		{nil, []int{200, 204, 301, 302, 307, 401}, []int{400, 403, 404, 500, 502, 503}},
		{[]string{"200"}, []int{200}, []int{204, 301, 401, 500}},
		{[]string{"2xx", "404"}, []int{200, 299, 404}, []int{301, 401, 403, 500}},
		{[]string{"5XX"}, []int{500, 503}, []int{200, 401}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.expect, ","), func(t *testing.T) {
			be := newTestBackend(t, "a")
			cfg := testConfig(newFakeClock())
			cfg.HealthExpect = tt.expect
			cfg.Backends = []Backend{be.backend()}
			p := newTestPool(t, cfg)
			b := backendByID(t, p, "a")
			for _, want := range []bool{true, false} {
				codes := tt.pass
				if !want {
					codes = tt.fail
				}
				for _, code := range codes {
					be.health.Store(int32(code))
					res := p.probe(ctx, b)
					if res.OK != want || res.Status != code {
						t.Errorf("status %d: ok = %v (status %d), want %v", code, res.OK, res.Status, want)
					}
				}
			}
		})
	}
}

func TestHealthRequest(t *testing.T) {
	be := newTestBackend(t, "a")
	var path, host, method string
	be.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path, host, method = r.URL.Path, r.Host, r.Method
		w.WriteHeader(http.StatusFound)
	})
	cfg := testConfig(newFakeClock())
	cfg.HealthPath = "/ping"
	cfg.HealthHost = "app-ns.example.com"
	cfg.Backends = []Backend{be.backend()}
	p := newTestPool(t, cfg)
	res := p.probe(ctx, backendByID(t, p, "a"))
	if !res.OK || res.Status != http.StatusFound {
		t.Errorf("check = %+v, want a passed 302 (redirects are not followed)", res)
	}
	if path != "/ping" || host != "app-ns.example.com" || method != http.MethodGet {
		t.Errorf("check was %s %s with Host %q, want GET /ping with Host app-ns.example.com", method, path, host)
	}
}

// A backend's own HealthPath wins over the pool's: gears running two
// versions of an app during a roll-out are each checked on their path.
func TestHealthPathPerBackend(t *testing.T) {
	var paths [2]atomic.Value
	var bes [2]*testBackend
	for i, id := range []string{"a", "b"} {
		be := newTestBackend(t, id)
		be.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { paths[i].Store(r.URL.Path) })
		bes[i] = be
	}
	cfg := testConfig(newFakeClock())
	cfg.HealthPath = "/ping"
	a, b := bes[0].backend(), bes[1].backend()
	b.HealthPath = "/healthz"
	cfg.Backends = []Backend{a, b}
	p := newTestPool(t, cfg)
	p.checkOnce(ctx)
	if pa, pb := paths[0].Load(), paths[1].Load(); pa != "/ping" || pb != "/healthz" {
		t.Errorf("checks went to %v and %v, want /ping (the pool's) and /healthz (the backend's)", pa, pb)
	}
	if got := p.Status().Backends[1].HealthPath; got != "/healthz" {
		t.Errorf("status shows health path %q", got)
	}
}

func TestHealthDefaultHostIsAddress(t *testing.T) {
	be := newTestBackend(t, "a")
	var host string
	be.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { host = r.Host })
	cfg := testConfig(newFakeClock())
	cfg.Backends = []Backend{be.backend()}
	p := newTestPool(t, cfg)
	p.probe(ctx, backendByID(t, p, "a"))
	if host != be.backend().Addr {
		t.Errorf("Host = %q, want the backend address %q", host, be.backend().Addr)
	}
}

func TestHealthFailures(t *testing.T) {
	hang := make(chan struct{})
	slow := newTestBackend(t, "slow")
	slow.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	})
	t.Cleanup(func() { close(hang) })

	cfg := testConfig(newFakeClock())
	cfg.HealthTimeout = 100 * time.Millisecond
	cfg.Backends = []Backend{slow.backend(), {ID: "gone", Addr: refusedAddr(t)}}
	p := newTestPool(t, cfg)
	tests := []struct {
		id, err string
	}{
		{"slow", "timeout after 100ms"},
		{"gone", "connection refused"},
	}
	for _, tt := range tests {
		res := p.probe(ctx, backendByID(t, p, tt.id))
		if res.OK || res.Status != 0 || !strings.Contains(res.Error, tt.err) {
			t.Errorf("%s: check = %+v, want a failure saying %q", tt.id, res, tt.err)
		}
	}
}

func TestStartDownServesAfterRise(t *testing.T) {
	be := newTestBackend(t, "a")
	cfg := testConfig(newFakeClock())
	cfg.StartDown = true
	cfg.Backends = []Backend{be.backend()}
	p := newTestPool(t, cfg)
	url, c := front(t, p)
	if r := get(t, c, url+"/", ""); r.code != http.StatusServiceUnavailable {
		t.Fatalf("before checks: status %d, want 503", r.code)
	}
	for range cfg.Rise {
		p.checkOnce(ctx)
	}
	if r := get(t, c, url+"/", ""); r.code != http.StatusOK || r.backend != "a" {
		t.Fatalf("after %d checks: status %d from %q, want 200 from a", cfg.Rise, r.code, r.backend)
	}
}

// TestCheckNow: a backend that failed its checks comes up at once when
// one check made on request passes; one that fails it stays down, and
// the regular checks still take a backend down.
func TestCheckNow(t *testing.T) {
	be := newTestBackend(t, "a")
	cfg := testConfig(newFakeClock())
	cfg.Backends = []Backend{be.backend()}
	p := newTestPool(t, cfg)
	url, c := front(t, p)
	be.health.Store(503)
	for range cfg.Fall {
		p.checkOnce(ctx)
	}
	if r := get(t, c, url+"/", ""); r.code != http.StatusServiceUnavailable {
		t.Fatalf("after %d failed checks: status %d, want 503", cfg.Fall, r.code)
	}
	// Still failing: CheckNow leaves it down.
	if up, err := p.CheckNow(ctx, "a", "process ready"); up || err != nil {
		t.Fatalf("CheckNow of a failing backend: up %v, %v; want down", up, err)
	}
	if r := get(t, c, url+"/", ""); r.code != http.StatusServiceUnavailable {
		t.Fatalf("after a failed CheckNow: status %d, want 503", r.code)
	}
	be.health.Store(200)
	checks := be.checks.Load()
	if up, err := p.CheckNow(ctx, "a", "process ready"); !up || err != nil {
		t.Fatalf("CheckNow of a passing backend: up %v, %v; want up", up, err)
	}
	if be.checks.Load() != checks+1 {
		t.Errorf("CheckNow made %d checks, want 1", be.checks.Load()-checks)
	}
	if r := get(t, c, url+"/", ""); r.code != http.StatusOK || r.backend != "a" {
		t.Fatalf("after CheckNow: status %d from %q, want 200 from a", r.code, r.backend)
	}
	if st := p.Status(); st.Backends[0].Why != "process ready" {
		t.Errorf("status says %q, want the reason given", st.Backends[0].Why)
	}
	// Up already: no check, no change.
	checks = be.checks.Load()
	if up, err := p.CheckNow(ctx, "a", "again"); !up || err != nil || be.checks.Load() != checks || p.Status().Backends[0].Why != "process ready" {
		t.Errorf("CheckNow of a backend up: up %v, %v, %d checks, why %q; want no check and no change",
			up, err, be.checks.Load()-checks, p.Status().Backends[0].Why)
	}
	be.health.Store(500)
	for range cfg.Fall {
		p.checkOnce(ctx)
	}
	if r := get(t, c, url+"/", ""); r.code != http.StatusServiceUnavailable {
		t.Errorf("failing checks after CheckNow: status %d, want 503", r.code)
	}
	if _, err := p.CheckNow(ctx, "nope", "x"); !errors.Is(err, ErrUnknownBackend) {
		t.Errorf("CheckNow of an unknown id: %v, want ErrUnknownBackend", err)
	}
}

// TestCheckLoop drives the loop started by Start with the fake clock: a
// round at once, one per HealthInterval, and one when a backend is added.
func TestCheckLoop(t *testing.T) {
	a, b := newTestBackend(t, "a"), newTestBackend(t, "b")
	clk := newFakeClock()
	cfg := testConfig(clk)
	cfg.HealthInterval = 2 * time.Second
	cfg.Backends = []Backend{a.backend()}
	p := newTestPool(t, cfg)
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	pa := backendByID(t, p, "a")
	testutil.WaitFor(t, 5*time.Second, "the first round", func() bool { return pa.checks.Load() == 1 })
	for round := 2; round <= 4; round++ {
		testutil.WaitFor(t, 5*time.Second, "the loop to wait", func() bool { return clk.waiting() == 1 })
		if got := pa.checks.Load(); got != uint64(round-1) {
			t.Fatalf("checks ran without the clock moving: %d, want %d", got, round-1)
		}
		clk.Advance(cfg.HealthInterval)
		testutil.WaitFor(t, 5*time.Second, "a round per interval", func() bool { return pa.checks.Load() == uint64(round) })
	}
	// The new backend is checked without waiting for the interval.
	testutil.WaitFor(t, 5*time.Second, "the loop to wait", func() bool { return clk.waiting() == 1 })
	if err := p.SetBackends([]Backend{a.backend(), b.backend()}); err != nil {
		t.Fatal(err)
	}
	pb := backendByID(t, p, "b")
	testutil.WaitFor(t, 5*time.Second, "a round for the new backend", func() bool { return pb.checks.Load() == 1 })
}

// TestReadyBackend: a backend its node reports started (Ready) comes up on
// one passing check, not Rise, keeping its state when only Ready changes;
// and while no backend is up, a ready one is tried before a 503.
func TestReadyBackend(t *testing.T) {
	a, b := newTestBackend(t, "a"), newTestBackend(t, "b")
	cfg := testConfig(newFakeClock())
	cfg.StartDown = true
	cfg.Backends = []Backend{a.backend(), b.backend()}
	p := newTestPool(t, cfg)
	url, c := front(t, p)
	if cfg.Rise < 2 {
		t.Fatalf("Rise %d: the test needs 2 or more", cfg.Rise)
	}
	if r := get(t, c, url+"/", ""); r.code != http.StatusServiceUnavailable {
		t.Fatalf("no backend up, none ready: status %d, want 503", r.code)
	}
	// b's node reports it started: tried while nothing is up.
	rb := b.backend()
	rb.Ready = true
	if err := p.SetBackends([]Backend{a.backend(), rb}); err != nil {
		t.Fatal(err)
	}
	if r := get(t, c, url+"/", ""); r.code != http.StatusOK || r.backend != "b" {
		t.Fatalf("a ready backend while none is up: status %d from %q, want 200 from b", r.code, r.backend)
	}
	if got := p.Backends(); !got[1].Ready || got[0].Ready {
		t.Errorf("Backends() = %+v, want b ready", got)
	}
	// One check brings b up; a, not ready, needs Rise.
	p.checkOnce(ctx)
	if !statusOf(t, p, "b").Serving || statusOf(t, p, "a").Serving {
		t.Fatalf("after one check: a %+v, b %+v; want b serving only", statusOf(t, p, "a"), statusOf(t, p, "b"))
	}
	// Ready off and on again keeps b's state (up, its counters).
	before := backendByID(t, p, "b")
	p.SetBackends([]Backend{a.backend(), b.backend()})
	p.SetBackends([]Backend{a.backend(), rb})
	if backendByID(t, p, "b") != before || !statusOf(t, p, "b").Serving {
		t.Error("a change of Ready replaced the backend or its health")
	}
	// A ready backend that is draining is not tried.
	p.SetBackends([]Backend{rb})
	p.set.Load().list[0].healthy.Store(false)
	if _, err := p.Drain("b"); err != nil {
		t.Fatal(err)
	}
	if r := get(t, c, url+"/", ""); r.code != http.StatusServiceUnavailable {
		t.Errorf("the only backend ready but draining: status %d, want 503", r.code)
	}
}
