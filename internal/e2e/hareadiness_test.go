//go:build linux

package e2e

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	brokerapi "gearbox/broker/api"
)

// TestHAReadyWhenEnableHAReturns: a new user's HA. A scalable app serves
// through two routers under a request loop; `gearbox app enable-ha`
// returns once HA is effective, and within a second of that the node of
// the app's first LB gear (member and gears) is SIGKILLed: no request
// fails through either router. Then, the node back, the drain of the
// node of the app's (new) head LB gear moves it, with its data
// directory, losing no request either.
func TestHAReadyWhenEnableHAReturns(t *testing.T) {
	c := startAppCluster(t, "e2e-haready-secret", []memberSpec{
		{"h1", "127.0.0.61", "broker", ""}, {"h2", "127.0.0.62", "node", "zh2"}, {"h3", "127.0.0.63", "node", "zh3"},
		{"h6", "127.0.0.66", "node", "zh6"}, {"h4", "127.0.0.64", "router", ""}, {"h5", "127.0.0.65", "router", ""}})
	ctx := context.Background()
	c.deployApp("hot", map[string]string{})
	const host = "hot-e2e.apps.example.com"
	routers := []string{"http://" + c.ip("h4") + ":8080", "http://" + c.ip("h5") + ":8080"}
	plain := &http.Client{Timeout: 30 * time.Second}
	for _, r := range routers {
		waitUntil(t, time.Minute, "the app answers through "+r, c.logs, func() bool { return askApp(plain, r, host, "GET").err == nil })
	}

	// A request loop through both routers, then enable-ha.
	load := startLoadOn(routers, host, 4, false)
	waitUntil(t, 10*time.Second, "load running", c.logs, func() bool { return load.count() > 50 })
	out, stderr, code := runGearboxEnv(t, 2*time.Minute, c.cliEnv, append([]string{"app", "enable-ha", "hot", "-n", "e2e"}, c.cliAuth...)...)
	returned := time.Now()
	if code != 0 || !strings.Contains(stderr, "HA: effective") {
		t.Fatalf("enable-ha (exit %d):\n%s\n%s", code, out, stderr)
	}
	var head brokerapi.Gear
	for _, g := range c.gears("hot") {
		if g.Head {
			head = g
		}
	}
	victim := head.Node
	c.killNode(victim, "hot")
	if took := time.Since(returned); took > time.Second {
		t.Errorf("the kill came %s after enable-ha returned, want within a second", took)
	}
	before := load.count()
	waitUntil(t, 30*time.Second, "requests after the kill", c.logs, func() bool { return load.count() > before+400 })
	n, fails := load.end()
	if len(fails) > 0 {
		t.Errorf("node kill right after enable-ha: %d of %d requests failed; first: %s", len(fails), n, fails[0])
	}
	t.Logf("enable-ha waited: %s; kill of %s %s after it returned: %d requests, %d failed",
		strings.Join(strings.Fields(stderr), " "), victim, time.Since(returned).Round(time.Second), n, len(fails))

	// The killed node back (empty: its gear was replaced), HA effective
	// again; then the head's node is drained under load.
	c.members[victim].start()
	waitAliveNodes(t, c.admin, 3, 60*time.Second, c.logs)
	waitUntil(t, 2*time.Minute, "HA effective again", c.logs, func() bool {
		a, err := c.admin.App(ctx, "e2e", "hot", false)
		return err == nil && a.LB != nil && a.LB.Effective != nil && *a.LB.Effective
	})
	var drained string
	var moving []brokerapi.Gear
	for _, g := range c.gears("hot") {
		if g.Head {
			drained = g.Node
		}
	}
	for _, g := range c.gears("hot") {
		if g.Node == drained {
			moving = append(moving, g)
			// Written as the gear would: its uid's.
			p := filepath.Join(c.gearsDir(drained), g.ID, "data", "cart.json")
			if err := os.WriteFile(p, []byte(`{"gear":"`+g.ID+`"}`), 0o644); err != nil {
				t.Fatal(err)
			}
			if fi, err := os.Stat(filepath.Dir(p)); err == nil {
				st := fi.Sys().(*syscall.Stat_t)
				os.Chown(p, int(st.Uid), int(st.Gid))
			}
		}
	}
	load = startLoadOn(routers, host, 4, false)
	waitUntil(t, 10*time.Second, "load running", c.logs, func() bool { return load.count() > 50 })
	if out, stderr, code := runGearboxEnv(t, 30*time.Second, c.cliEnv, append([]string{"node", "drain", drained}, c.cliAuth...)...); code != 0 {
		t.Fatalf("node drain (exit %d):\n%s\n%s", code, out, stderr)
	}
	drainStart := time.Now()
	c.waitEvacuated(drained, 2*time.Minute)
	drainTook := time.Since(drainStart)
	before = load.count()
	waitUntil(t, 30*time.Second, "requests after the drain", c.logs, func() bool { return load.count() > before+200 })
	n, fails = load.end()
	if len(fails) > 0 {
		t.Errorf("drain of the head's node of an HA app: %d of %d requests failed; first: %s", len(fails), n, fails[0])
	}
	alerts, err := c.admin.Alerts(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range moving {
		i := slices.IndexFunc(alerts, func(a brokerapi.Alert) bool { return a.Kind == "gear_replaced" && a.Gear == g.ID && a.Node == drained })
		if i < 0 {
			t.Errorf("no gear_replaced alert for %s", g.ID)
			continue
		}
		m := regexp.MustCompile(`gear (\S+) replaced it on node (\S+),`).FindStringSubmatch(alerts[i].Action)
		if m == nil {
			t.Fatalf("alert action %q", alerts[i].Action)
		}
		if b, err := os.ReadFile(filepath.Join(c.gearsDir(m[2]), m[1], "data", "cart.json")); err != nil || string(b) != `{"gear":"`+g.ID+`"}` {
			t.Errorf("replacement %s of %s: cart.json = %q (%v)", m[1], g.ID, b, err)
		}
	}
	t.Logf("drain of %s (%d gears, the head among them): %s, %d requests, %d failed", drained, len(moving), drainTook.Round(100*time.Millisecond), n, len(fails))
}
