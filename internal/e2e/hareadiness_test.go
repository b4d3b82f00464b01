//go:build linux

package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
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
// fails through either router.
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
	ips := map[string]string{"h1": "127.0.0.61", "h2": "127.0.0.62", "h3": "127.0.0.63", "h4": "127.0.0.64", "h5": "127.0.0.65"}
	order := []string{"h1", "h2", "h3", "h4", "h5"}
	members := map[string]*member{}
	for i, name := range order {
		ip := ips[name]
		args := []string{"--log-format", "json", "serve", "--name", name, "--bind", ip, "--data-dir", gearDataDir(t),
			"--anti-entropy-interval", "1s", "--domain", "apps.example.com"}
		switch name {
		case "h1":
			args = append(args, "--role", "broker", "--api-addr", ip+":7480", "--dns-addr", ip+":5353")
		case "h2", "h3":
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
	waitAliveNodes(t, admin, 2, 60*time.Second, logs)
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
}
