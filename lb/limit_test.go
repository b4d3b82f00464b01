package lb

import (
	"net/http"
	"testing"
	"time"

	"gearbox/internal/testutil"
)

func TestMaxConnsQueue(t *testing.T) {
	be := newTestBackend(t, "a")
	g := newGate(t)
	be.handle = g.hold
	clk := newFakeClock()
	cfg := testConfig(clk)
	cfg.MaxConns = 1
	cfg.QueueTimeout = 10 * time.Second
	cfg.Backends = []Backend{be.backend()}
	p := newTestPool(t, cfg)
	url, c := front(t, p)

	first := goGet(c, url+"/block", "")
	testutil.WaitFor(t, 5*time.Second, "the first request to hold the place", func() bool { return g.entered.Load() == 1 })
	// The second waits in the queue and times out.
	second := goGet(c, url+"/", "")
	testutil.WaitFor(t, 5*time.Second, "a queued request", func() bool { return p.Status().Queued == 1 })
	clk.Advance(9 * time.Second)
	select {
	case code := <-second:
		t.Fatalf("queued request ended with %d before its timeout", code)
	case <-time.After(20 * time.Millisecond):
	}
	clk.Advance(time.Second)
	if code := recv(t, second); code != http.StatusServiceUnavailable {
		t.Errorf("timed-out request: status %d, want 503", code)
	}
	// The third waits and goes through when the place is free.
	third := goGet(c, url+"/", "")
	testutil.WaitFor(t, 5*time.Second, "a queued request", func() bool { return p.Status().Queued == 1 })
	g.release()
	if code := recv(t, first); code != http.StatusOK {
		t.Errorf("first request: status %d", code)
	}
	if code := recv(t, third); code != http.StatusOK {
		t.Errorf("queued request: status %d, want 200 once the place is free", code)
	}
	if st := p.Status(); st.QueueTimeouts != 1 || st.Queued != 0 {
		t.Errorf("queue timeouts %d, queued %d: want 1 and 0", st.QueueTimeouts, st.Queued)
	}
}
