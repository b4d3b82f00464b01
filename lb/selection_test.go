package lb

import (
	"net/http"
	"testing"

	"gearbox/internal/testutil"
)

// TestBalance holds requests in flight on backend a, then sends 30 short
// requests: leastconn keeps them off a, roundrobin gives each backend a
// third.
func TestBalance(t *testing.T) {
	tests := []struct {
		balance string
		want    map[string]int
	}{
		{LeastConn, map[string]int{"a": 0, "b": 15, "c": 15}},
		{RoundRobin, map[string]int{"a": 10, "b": 10, "c": 10}},
		{"", map[string]int{"a": 0, "b": 15, "c": 15}}, // leastconn by default
	}
	for _, tt := range tests {
		t.Run(tt.balance, func(t *testing.T) {
			cfg := testConfig(newFakeClock())
			cfg.Balance = tt.balance
			var bes []*testBackend
			for _, id := range []string{"a", "b", "c"} {
				be := newTestBackend(t, id)
				bes = append(bes, be)
				cfg.Backends = append(cfg.Backends, be.backend())
			}
			g := newGate(t)
			for _, be := range bes {
				be.handle = g.hold
			}
			p := newTestPool(t, cfg)
			url, c := front(t, p)
			var held []<-chan int
			for range 3 {
				held = append(held, goGet(c, url+"/block", gearCookie("", "a")))
			}
			testutil.WaitFor(t, 5e9, "3 requests held on a", func() bool { return g.entered.Load() == 3 })
			got := map[string]int{"a": 0, "b": 0, "c": 0}
			for range 30 {
				r := get(t, c, url+"/", "")
				got[r.backend]++
			}
			for id, n := range tt.want {
				if got[id] != n {
					t.Errorf("spread %v, want %v", got, tt.want)
					break
				}
			}
			g.release()
			for _, ch := range held {
				if code := recv(t, ch); code != http.StatusOK {
					t.Errorf("held request: status %d", code)
				}
			}
		})
	}
}

func TestPickSkipsIneligible(t *testing.T) {
	for _, balance := range []string{LeastConn, RoundRobin} {
		t.Run(balance, func(t *testing.T) {
			cfg := testConfig(newFakeClock())
			cfg.Balance = balance
			cfg.Backends = []Backend{
				{ID: "down", Addr: "127.0.0.1:1"},
				{ID: "draining", Addr: "127.0.0.1:2"},
				{ID: "local", Addr: "127.0.0.1:3", Local: true},
				{ID: "ok", Addr: "127.0.0.1:4"},
				{ID: "skipped", Addr: "127.0.0.1:5"},
			}
			p := newTestPool(t, cfg)
			p.markDown(backendByID(t, p, "down"), nil)
			p.Drain("draining")
			p.SetRotation(true) // "ok" is up: local goes out at once
			skip := []*backend{backendByID(t, p, "skipped")}
			for range 10 {
				b := p.pick(p.set.Load(), skip)
				if b == nil || b.ID != "ok" {
					t.Fatalf("picked %v, want ok", b)
				}
				b.release()
			}
			p.Drain("ok")
			if b := p.pick(p.set.Load(), skip); b != nil {
				t.Fatalf("picked %s with nothing eligible", b.ID)
			}
		})
	}
}
