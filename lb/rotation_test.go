package lb

import (
	"context"
	"net/http"
	"testing"
	"time"
)

// rotationPool is a pool of a local backend and a remote one, on a fake
// clock; the remote starts down unless remoteUp.
func rotationPool(t *testing.T, remoteUp bool) (*Pool, *fakeClock, *testBackend, string, *http.Client) {
	t.Helper()
	local, remote := newTestBackend(t, "local"), newTestBackend(t, "remote")
	clk := newFakeClock()
	cfg := testConfig(clk)
	cfg.RotationTimeout = 30 * time.Second
	lb := local.backend()
	lb.Local = true
	cfg.Backends = []Backend{lb, remote.backend()}
	p := newTestPool(t, cfg)
	if !remoteUp {
		p.markDown(backendByID(t, p, "remote"), nil)
	}
	url, c := front(t, p)
	return p, clk, remote, url, c
}

// served returns the backends that answer n cookie-less requests, and
// the number of 503s.
func served(t *testing.T, c *http.Client, url string, n int) (map[string]int, int) {
	t.Helper()
	got := map[string]int{}
	unavailable := 0
	for range n {
		r := get(t, c, url+"/", "")
		if r.code == http.StatusServiceUnavailable {
			unavailable++
			continue
		}
		got[r.backend]++
	}
	return got, unavailable
}

func TestRotationWithRemoteUp(t *testing.T) {
	p, _, _, url, c := rotationPool(t, true)
	if got, _ := served(t, c, url, 10); got["local"] == 0 || got["remote"] == 0 {
		t.Fatalf("in rotation: %v, want both", got)
	}
	p.SetRotation(true)
	if r := p.Rotation(); r != RotationOut {
		t.Fatalf("rotation %s with a remote up, want out at once", r)
	}
	if got, _ := served(t, c, url, 10); got["local"] != 0 || got["remote"] != 10 {
		t.Errorf("rotated out: %v, want all on remote", got)
	}
	// An affinity cookie for the local backend moves to the remote one.
	r := get(t, c, url+"/", gearCookie("", "local"))
	if r.backend != "remote" || r.setCookie != CookieValue(nil, "remote") {
		t.Errorf("local's cookie went to %s (Set-Cookie %q), want remote with its cookie", r.backend, r.setCookie)
	}
	if s := statusOf(t, p, "local"); !s.RotatedOut || s.Serving || s.State != "up" {
		t.Errorf("local status %+v, want up, rotated out, not serving", s)
	}
	// Rotating back in is immediate.
	p.SetRotation(false)
	if got, _ := served(t, c, url, 10); got["local"] == 0 {
		t.Errorf("rotated in: %v, want local back", got)
	}
}

func TestRotationWaitsForRemote(t *testing.T) {
	p, _, remote, url, c := rotationPool(t, false)
	p.SetRotation(true)
	if r := p.Rotation(); r != RotationPending {
		t.Fatalf("rotation %s with no remote up, want pending", r)
	}
	if got, _ := served(t, c, url, 5); got["local"] != 5 {
		t.Fatalf("pending: %v, want local to serve", got)
	}
	// The remote comes up after Rise checks; the local one goes out then.
	for i := range p.cfg.Rise {
		if r := p.Rotation(); r != RotationPending {
			t.Fatalf("after %d checks: rotation %s, want pending", i, r)
		}
		p.checkOnce(ctx)
	}
	if r := p.Rotation(); r != RotationOut {
		t.Fatalf("remote up: rotation %s, want out", r)
	}
	if got, _ := served(t, c, url, 5); got["remote"] != 5 {
		t.Errorf("rotated out: %v, want remote to serve", got)
	}
	if remote.checks.Load() != int64(p.cfg.Rise) {
		t.Errorf("remote checked %d times, want %d", remote.checks.Load(), p.cfg.Rise)
	}
}

func TestRotationTimeout(t *testing.T) {
	p, clk, _, url, c := rotationPool(t, false)
	p.SetRotation(true)
	clk.Advance(29 * time.Second)
	if got, _ := served(t, c, url, 3); got["local"] != 3 || p.Rotation() != RotationPending {
		t.Fatalf("29 s in: %v, rotation %s; want local serving, pending", got, p.Rotation())
	}
	clk.Advance(time.Second)
	// The next request sees the deadline: no remote is up, so none serves.
	if got, unavailable := served(t, c, url, 3); len(got) != 0 || unavailable != 3 {
		t.Errorf("30 s in: %v and %d 503s, want only 503s", got, unavailable)
	}
	if r := p.Rotation(); r != RotationOut {
		t.Errorf("rotation %s, want out", r)
	}
	p.SetRotation(false)
	if got, _ := served(t, c, url, 3); got["local"] != 3 {
		t.Errorf("rotated in: %v, want local", got)
	}
	// Asking again starts a new wait.
	p.SetRotation(true)
	if r := p.Rotation(); r != RotationPending {
		t.Errorf("asked again: rotation %s, want pending", r)
	}
}

// A rotated-out local backend gets no health check until it rotates back
// in, and one at once then.
func TestRotatedOutLocalIsNotChecked(t *testing.T) {
	local, remote := newTestBackend(t, "local"), newTestBackend(t, "remote")
	cfg := testConfig(newFakeClock())
	lb := local.backend()
	lb.Local = true
	cfg.Backends = []Backend{lb, remote.backend()}
	p := newTestPool(t, cfg)
	ctx := context.Background()
	p.checkOnce(ctx)
	if local.checks.Load() == 0 {
		t.Fatal("the local backend was not checked while in rotation")
	}
	p.SetRotation(true)
	if r := p.Rotation(); r != RotationOut {
		t.Fatalf("rotation %s, want out", r)
	}
	p.checkOnce(ctx)
	n, r := local.checks.Load(), remote.checks.Load()
	p.checkOnce(ctx)
	p.checkOnce(ctx)
	if got := local.checks.Load(); got != n {
		t.Errorf("rotated-out local backend checked %d times more", got-n)
	}
	if remote.checks.Load() < r+2 {
		t.Errorf("remote backend checked %d times in two rounds", remote.checks.Load()-r)
	}
	// Rotating in asks the check loop (not started here) for a round.
	p.SetRotation(false)
	select {
	case <-p.kick:
	default:
		t.Error("rotating in asked for no check round")
	}
	p.checkOnce(ctx)
	if local.checks.Load() == n {
		t.Error("local backend not checked after rotating back in")
	}
}
