//go:build linux

package e2e

import (
	"context"
	"net/http"
	"os/exec"
	"slices"
	"testing"
	"time"
)

// startHealCluster starts a broker, three nodes (zones za, zb, zc) and
// a router, and deploys the test app as e2e/shop with env.
func startHealCluster(tb testing.TB, env map[string]string) *appCluster {
	c := startAppCluster(tb, "e2e-heal-bench", []memberSpec{
		{"k1", "127.0.0.81", "broker", ""}, {"k2", "127.0.0.82", "node", "za"}, {"k3", "127.0.0.83", "node", "zb"},
		{"k4", "127.0.0.84", "node", "zc"}, {"k5", "127.0.0.85", "router", ""}})
	env["GEARBOX_LB_GEAR_RATIO"] = "-1"
	c.deployApp("shop", env)
	return c
}

// pct returns the p-th percentile (nearest rank) of sorted ds.
func pct(ds []time.Duration, p float64) time.Duration {
	i := int(float64(len(ds))*p/100+0.999999) - 1
	return ds[max(0, min(i, len(ds)-1))]
}

// BenchmarkNodeReplacement measures, five times, how long after the
// SIGKILL of a node (member and gears) its gear is started again on
// another node and serves through the router: the median and the
// slowest (p99 of five). Default settings (--node-failure-grace 10 s).
// It runs once whatever b.N:
//
//	go test ./internal/e2e -run '^$' -bench NodeReplacement -timeout 30m -v
func BenchmarkNodeReplacement(b *testing.B) {
	c := startHealCluster(b, map[string]string{})
	ctx := context.Background()
	for range 2 {
		if _, _, err := c.admin.AppEvent(ctx, "e2e", "shop", "scale-up"); err != nil {
			b.Fatal(err)
		}
	}
	waitUntil(b, 2*time.Minute, "three gears started", c.logs, func() bool { n, all := c.started("shop"); return n == 3 && all == 3 })
	router := "http://" + c.ip("k5") + ":8080"
	plain := &http.Client{Timeout: 10 * time.Second}
	const host = "shop-e2e.apps.example.com"
	b.ResetTimer()
	var took []time.Duration
	for i := range 5 {
		var victim, gear string
		for _, g := range c.gears("shop") {
			if !g.Head {
				victim, gear = g.Node, g.ID
			}
		}
		c.killNode(victim, "shop")
		killed := time.Now()
		// Serving again: started elsewhere, and the router's requests
		// reach it.
		waitUntil(b, 90*time.Second, "gear "+gear+" replaced and serving", c.logs, func() bool {
			for _, g := range c.gears("shop") {
				if g.ID == gear && (g.Node == victim || g.State != "started") {
					return false
				}
			}
			for range 6 {
				if a := askApp(plain, router, host, "GET"); a.err == nil && a.gear == gear {
					return true
				}
			}
			return false
		})
		d := time.Since(killed)
		took = append(took, d)
		b.Logf("kill %d: node %s, gear %s serving again after %s", i+1, victim, gear, d.Round(100*time.Millisecond))
		c.members[victim].start()
		waitAliveNodes(b, c.admin, 3, 60*time.Second, c.logs)
	}
	b.StopTimer()
	slices.Sort(took)
	b.ReportMetric(pct(took, 50).Seconds(), "median-s")
	b.ReportMetric(pct(took, 99).Seconds(), "p99-s")
	b.Logf("node SIGKILL to replacement serving, 5 kills: median %s, slowest %s", pct(took, 50).Round(100*time.Millisecond), pct(took, 99).Round(100*time.Millisecond))
}

// BenchmarkDrain20 drains a node that holds 20 gears of a scaled app
// under a request loop through the router: how long until the node is
// empty, and how many requests failed (target 0). It runs once whatever
// b.N:
//
//	go test ./internal/e2e -run '^$' -bench Drain20 -timeout 30m -v
func BenchmarkDrain20(b *testing.B) {
	c := startHealCluster(b, map[string]string{})
	ctx := context.Background()
	// Every new gear on k2: the others take none for now.
	for _, n := range []string{"k3", "k4"} {
		if _, err := c.admin.DrainNode(ctx, n, false); err != nil {
			b.Fatal(err)
		}
	}
	if _, _, err := c.admin.AppEvent(ctx, "e2e", "shop", "disable-autoscale"); err != nil {
		b.Fatal(err)
	}
	if _, _, err := c.admin.SetScale(ctx, "e2e", "shop", "static", 20, -1); err != nil {
		b.Fatal(err)
	}
	waitUntil(b, 5*time.Minute, "20 gears started", c.logs, func() bool { n, all := c.started("shop"); return n == 20 && all == 20 })
	for _, n := range []string{"k3", "k4"} {
		if _, err := c.admin.NodeEvent(ctx, n, "undrain"); err != nil {
			b.Fatal(err)
		}
	}
	load := startLoad("http://"+c.ip("k5")+":8080", "shop-e2e.apps.example.com", 4)
	waitUntil(b, 10*time.Second, "load running", c.logs, func() bool { return load.count() > 50 })
	b.ResetTimer()
	start := time.Now()
	if _, err := c.admin.DrainNode(ctx, "k2", true); err != nil {
		b.Fatal(err)
	}
	c.waitEvacuated("k2", 20*time.Minute)
	took := time.Since(start)
	b.StopTimer()
	before := load.count()
	waitUntil(b, 10*time.Second, "load after the drain", c.logs, func() bool { return load.count() > before+50 })
	n, fails := load.end()
	b.ReportMetric(took.Seconds(), "s-to-empty")
	b.ReportMetric(float64(len(fails)), "failed-requests")
	b.Logf("drain of 20 gears: empty after %s; %d requests, %d failed", took.Round(100*time.Millisecond), n, len(fails))
	if len(fails) > 0 {
		b.Errorf("%d requests failed; first: %s", len(fails), fails[0])
	}
}

// BenchmarkAutoscaleReaction measures, three times, how long after 64
// clients start a sustained load (hey) the app's first new gear serves,
// with the default autoscaling settings (samples every 5 s). Between
// runs the app shrinks back to one gear (the cool-down shortened to 10 s
// by the app's env). It runs once whatever b.N:
//
//	go test ./internal/e2e -run '^$' -bench AutoscaleReaction -timeout 30m -v
func BenchmarkAutoscaleReaction(b *testing.B) {
	hey, err := exec.LookPath("hey")
	if err != nil {
		b.Skip("hey is not installed (Debian package hey)")
	}
	c := startHealCluster(b, map[string]string{"GEARBOX_AUTOSCALE_COOLDOWN": "10", "GEARBOX_AUTOSCALE_DOWN_HOLD": "3"})
	router := "http://" + c.ip("k5") + ":8080"
	const host = "shop-e2e.apps.example.com"
	waitUntil(b, time.Minute, "the app answers through the router", c.logs, func() bool {
		return askApp(&http.Client{Timeout: 10 * time.Second}, router, host, "GET").err == nil
	})
	b.ResetTimer()
	var took []time.Duration
	for i := range 3 {
		waitUntil(b, 5*time.Minute, "one gear", c.logs, func() bool { n, all := c.started("shop"); return n == 1 && all == 1 })
		cmd := exec.Command(hey, "-z", "40s", "-c", "64", "-host", host, router+"/")
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		waitUntil(b, 40*time.Second, "a second gear serving", c.logs, func() bool { n, _ := c.started("shop"); return n >= 2 })
		d := time.Since(start)
		took = append(took, d)
		b.Logf("run %d: first new gear started %s after the load began", i+1, d.Round(100*time.Millisecond))
		cmd.Wait()
	}
	b.StopTimer()
	slices.Sort(took)
	b.ReportMetric(pct(took, 50).Seconds(), "median-s")
	b.Logf("load to first new gear, 3 runs: median %s, slowest %s", pct(took, 50).Round(100*time.Millisecond), took[len(took)-1].Round(100*time.Millisecond))
}
