//go:build linux

package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	brokerapi "gearbox/broker/api"
	"gearbox/broker/client"
)

// TestHAReadyWhenEnableHAReturns: a new user's HA. A scalable app serves
// through two routers under a request loop; `gearbox app enable-ha`
// returns once HA is effective, and within a second of that the node of
// the app's first LB gear (member and gears) is SIGKILLed: no request
// fails through either router. Then, the node back, the drain of the
// node of the app's (new) head LB gear moves it, with its data
// directory, losing no request either.
func TestHAReadyWhenEnableHAReturns(t *testing.T) {
	gearboxBinary(t)
	const secret = "e2e-haready-secret"
	pidDir := t.TempDir()
	if err := os.Chmod(pidDir, 0o777); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ents, _ := os.ReadDir(pidDir)
		for _, e := range ents {
			if b, err := os.ReadFile(filepath.Join(pidDir, e.Name())); err == nil {
				if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 1 {
					syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
	})
	ips := map[string]string{"h1": "127.0.0.61", "h2": "127.0.0.62", "h3": "127.0.0.63", "h4": "127.0.0.64", "h5": "127.0.0.65", "h6": "127.0.0.66"}
	order := []string{"h1", "h2", "h3", "h4", "h5", "h6"}
	members := map[string]*member{}
	for i, name := range order {
		ip := ips[name]
		args := []string{"--log-format", "json", "serve", "--name", name, "--bind", ip, "--data-dir", gearDataDir(t),
			"--anti-entropy-interval", "1s", "--domain", "apps.example.com"}
		switch name {
		case "h1":
			args = append(args, "--role", "broker", "--api-addr", ip+":7480", "--dns-addr", ip+":5353")
		case "h2", "h3", "h6":
			args = append(args, "--role", "node", "--http-addr", ip+":8080", "--zone", "z"+name,
				"--gear-uid-range", fmt.Sprintf("%d-%d", 75000+i*1000, 75999+i*1000))
		default:
			args = append(args, "--role", "router", "--router-addr", ip+":8080")
		}
		if name != "h1" {
			args = append(args, "--join", ips["h1"])
		}
		members[name] = startMember(t, name, ip, append(secretEnv(secret), adminEnv), args...)
	}
	logs := func() string {
		var b strings.Builder
		for _, name := range order {
			fmt.Fprintf(&b, "\n--- %s ---\n%s", name, members[name].output.String())
		}
		return b.String()
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(logs())
		}
	})
	ctx := context.Background()
	api := "http://" + ips["h1"] + ":7480"
	admin := &client.Client{BaseURL: api, User: "admin", Password: "adminpass1"}
	waitAliveNodes(t, admin, 3, 60*time.Second, logs)
	if _, _, err := admin.CreateDomain(ctx, "e2e"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := admin.CreateApp(ctx, "e2e", "hot", client.AppOptions{Scale: true}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := admin.SetEnv(ctx, "e2e", "hot", "E2E_PIDDIR", pidDir); err != nil {
		t.Fatal(err)
	}
	appDir := t.TempDir()
	buildTestApp(t, appDir, "v1")
	cliAuth := []string{"--api", api, "--user", "admin"}
	cliEnv := []string{"GEARBOX_PASSWORD=adminpass1"}
	if out, stderr, code := runGearboxEnv(t, time.Minute, cliEnv, append([]string{"app", "deploy", "hot", appDir, "-n", "e2e"}, cliAuth...)...); code != 0 {
		t.Fatalf("deploy (exit %d):\n%s\n%s", code, out, stderr)
	}
	const host = "hot-e2e.apps.example.com"
	routers := []string{"http://" + ips["h4"] + ":8080", "http://" + ips["h5"] + ":8080"}
	plain := &http.Client{Timeout: 30 * time.Second}
	for _, r := range routers {
		waitUntil(t, time.Minute, "the app answers through "+r, logs, func() bool { return askApp(plain, r, host, "GET").err == nil })
	}

	// A request loop through both routers, then enable-ha.
	var (
		stop  atomic.Bool
		wg    sync.WaitGroup
		mu    sync.Mutex
		n     int
		fails []string
	)
	for i := range 4 {
		wg.Go(func() {
			c := &http.Client{Timeout: 30 * time.Second}
			for !stop.Load() {
				a := askApp(c, routers[i%2], host, "GET")
				mu.Lock()
				n++
				if a.err != nil {
					fails = append(fails, time.Now().Format("15:04:05.000")+" "+routers[i%2]+" "+a.err.Error())
				}
				mu.Unlock()
			}
		})
	}
	count := func() int { mu.Lock(); defer mu.Unlock(); return n }
	waitUntil(t, 10*time.Second, "load running", logs, func() bool { return count() > 50 })
	out, stderr, code := runGearboxEnv(t, 2*time.Minute, cliEnv, append([]string{"app", "enable-ha", "hot", "-n", "e2e"}, cliAuth...)...)
	returned := time.Now()
	if code != 0 || !strings.Contains(stderr, "HA: effective") {
		t.Fatalf("enable-ha (exit %d):\n%s\n%s", code, out, stderr)
	}
	var head brokerapi.Gear
	gg, err := admin.GearGroups(ctx, "e2e", "hot")
	if err != nil || len(gg) != 1 {
		t.Fatalf("gear groups: %v %+v", err, gg)
	}
	for _, g := range gg[0].Gears {
		if g.Head {
			head = g
		}
	}
	victim := head.Node
	var pids []int
	for _, g := range gg[0].Gears {
		if g.Node == victim {
			if b, err := os.ReadFile(filepath.Join(pidDir, g.ID+".pid")); err == nil {
				pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
				pids = append(pids, pid)
			}
		}
	}
	members[victim].kill()
	for _, pid := range pids {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	if took := time.Since(returned); took > time.Second {
		t.Errorf("the kill came %s after enable-ha returned, want within a second", took)
	}
	before := count()
	waitUntil(t, 30*time.Second, "requests after the kill", logs, func() bool { return count() > before+400 })
	stop.Store(true)
	wg.Wait()
	if len(fails) > 0 {
		t.Errorf("node kill right after enable-ha: %d of %d requests failed; first: %s", len(fails), n, fails[0])
	}
	t.Logf("enable-ha waited: %s; kill of %s %s after it returned: %d requests, %d failed",
		strings.Join(strings.Fields(stderr), " "), victim, time.Since(returned).Round(time.Second), n, len(fails))

	// The killed node back (empty: its gear was replaced), HA effective
	// again; then the head's node is drained under load.
	members[victim].start()
	waitAliveNodes(t, admin, 3, 60*time.Second, logs)
	waitUntil(t, 2*time.Minute, "HA effective again", logs, func() bool {
		a, err := admin.App(ctx, "e2e", "hot", false)
		return err == nil && a.LB != nil && a.LB.Effective != nil && *a.LB.Effective
	})
	gg, err = admin.GearGroups(ctx, "e2e", "hot")
	if err != nil || len(gg) != 1 {
		t.Fatalf("gear groups: %v %+v", err, gg)
	}
	var drained string
	var moving []brokerapi.Gear
	for _, g := range gg[0].Gears {
		if g.Head {
			drained = g.Node
		}
	}
	dataDirOf := func(node string) string {
		m := members[node]
		return filepath.Join(m.args[slices.Index(m.args, "--data-dir")+1], "gears")
	}
	for _, g := range gg[0].Gears {
		if g.Node == drained {
			moving = append(moving, g)
			// Written as the gear would: its uid's.
			p := filepath.Join(dataDirOf(drained), g.ID, "data", "cart.json")
			if err := os.WriteFile(p, []byte(`{"gear":"`+g.ID+`"}`), 0o644); err != nil {
				t.Fatal(err)
			}
			if fi, err := os.Stat(filepath.Dir(p)); err == nil {
				st := fi.Sys().(*syscall.Stat_t)
				os.Chown(p, int(st.Uid), int(st.Gid))
			}
		}
	}
	stop.Store(false)
	n, fails = 0, nil
	for i := range 4 {
		wg.Go(func() {
			c := &http.Client{Timeout: 30 * time.Second}
			for !stop.Load() {
				a := askApp(c, routers[i%2], host, "GET")
				mu.Lock()
				n++
				if a.err != nil {
					fails = append(fails, time.Now().Format("15:04:05.000")+" "+routers[i%2]+" "+a.err.Error())
				}
				mu.Unlock()
			}
		})
	}
	waitUntil(t, 10*time.Second, "load running", logs, func() bool { return count() > 50 })
	if out, stderr, code := runGearboxEnv(t, 30*time.Second, cliEnv, append([]string{"node", "drain", drained}, cliAuth...)...); code != 0 {
		t.Fatalf("node drain (exit %d):\n%s\n%s", code, out, stderr)
	}
	drainStart := time.Now()
	waitUntil(t, 2*time.Minute, "node "+drained+" evacuated", logs, func() bool {
		nodes, err := admin.Nodes(ctx)
		if err != nil {
			return false
		}
		for _, nd := range nodes {
			if nd.Name == drained {
				return nd.Gears == 0 && nd.Evacuation == "evacuated"
			}
		}
		return false
	})
	drainTook := time.Since(drainStart)
	before = count()
	waitUntil(t, 30*time.Second, "requests after the drain", logs, func() bool { return count() > before+200 })
	stop.Store(true)
	wg.Wait()
	if len(fails) > 0 {
		t.Errorf("drain of the head's node of an HA app: %d of %d requests failed; first: %s", len(fails), n, fails[0])
	}
	alerts, err := admin.Alerts(ctx, 0, 0)
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
		if b, err := os.ReadFile(filepath.Join(dataDirOf(m[2]), m[1], "data", "cart.json")); err != nil || string(b) != `{"gear":"`+g.ID+`"}` {
			t.Errorf("replacement %s of %s: cart.json = %q (%v)", m[1], g.ID, b, err)
		}
	}
	t.Logf("drain of %s (%d gears, the head among them): %s, %d requests, %d failed", drained, len(moving), drainTook.Round(100*time.Millisecond), n, len(fails))
}
