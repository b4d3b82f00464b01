package lb_test

import (
	"context"
	"net/http"
	"net/netip"
	"time"

	"gearbox/lb"
)

// An LB gear balances over its app's web gears: its own (Local) and the
// others, and follows the broker's records.
func Example_lbGear() {
	cfg := lb.DefaultConfig()
	cfg.Secret = []byte("cluster secret") // the same on every LB gear and router
	cfg.HealthPath = "/health"            // the app's gearbox.yml health:
	// Routers and node front listeners forward X-Forwarded-Proto/-Host.
	cfg.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/24")}
	cfg.Backends = []lb.Backend{
		{ID: "g1", Addr: "10.0.0.11:35531", Local: true},
		{ID: "g2", Addr: "10.0.0.12:35532"},
	}
	pool, err := lb.New(cfg)
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	pool.Start(ctx)
	defer pool.Close()
	srv := lb.Server(cfg, "10.0.0.11:35540", pool) // the LB gear's external port
	go srv.ListenAndServe()

	// The app scaled up: a third gear.
	pool.SetBackends([]lb.Backend{
		{ID: "g1", Addr: "10.0.0.11:35531", Local: true},
		{ID: "g2", Addr: "10.0.0.12:35532"},
		{ID: "g3", Addr: "10.0.0.13:35533"},
	})
	// The broker's rotation record says this LB gear's web gear goes out.
	pool.SetRotation(true)
	// Stopping gear g2: drain it, then stop its process.
	if drained, err := pool.Drain("g2"); err == nil {
		select {
		case <-drained:
		case <-time.After(30 * time.Second):
		}
	}
	// The autoscaler reads the load.
	_ = pool.Sessions()

	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	srv.Shutdown(sctx)
}

// A router balances an HA app's hostname over the app's LB gears, with the
// Host header rewritten to the app's own hostname. It leaves the GEAR
// cookie alone: LB gears share the secret, so whichever one gets the
// request sends it to the web gear the cookie names.
func Example_router() {
	cfg := lb.DefaultConfig()
	cfg.NoAffinity = true
	cfg.Host = "app-ns.apps.example.com"
	cfg.Backends = []lb.Backend{
		{ID: "lb1", Addr: "10.0.0.11:35540"},
		{ID: "lb2", Addr: "10.0.0.12:35541"},
	}
	pool, err := lb.New(cfg)
	if err != nil {
		panic(err)
	}
	pool.Start(context.Background())
	defer pool.Close()
	mux := http.NewServeMux()
	mux.Handle("ha-app-ns.apps.example.com/", pool)
	srv := lb.Server(cfg, ":80", mux)
	go srv.ListenAndServe()
}
