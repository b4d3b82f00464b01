//go:build linux

package e2e

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	brokerapi "gearbox/broker/api"
	"gearbox/broker/client"
)

// gearProcs returns the pids of the processes that run for gear id (by
// the GEARBOX_GEAR_ID in their environment), sorted.
func gearProcs(id string) []int {
	pids := pidsWithEnv(func(kv string) bool { return kv == "GEARBOX_GEAR_ID="+id })
	slices.Sort(pids)
	return pids
}

// procAlive reports whether process pid exists and is not a zombie (a
// container's pid 1 may never reap the orphans it inherits).
func procAlive(pid int) bool {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	// pid (comm) STATE ...: comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	return i < 0 || i+2 >= len(b) || b[i+2] != 'Z'
}

// TestMemberCrashLeavesNoOrphans: SIGKILL of a member only (its gears'
// processes keep running, orphaned), then a restart: the member replaces
// them cleanly (no second copy of a gear, each gear's port answered by
// its new process), and a gear stop, then the app's deletion, leave no
// process of its gears behind.
func TestMemberCrashLeavesNoOrphans(t *testing.T) {
	gearboxBinary(t)
	const secret = "e2e-orphans-secret"
	const ip = "127.0.0.31"
	m := startMember(t, "solo", ip, append(secretEnv(secret), adminEnv), "--log-format", "json", "serve", "--name", "solo",
		"--bind", ip, "--data-dir", gearDataDir(t), "--role", "broker,node", "--api-addr", ip+":7480", "--http-addr", ip+":8080",
		"--dns-addr", ip+":5353", "--gear-uid-range", "67000-67999")
	logs := func() string { return m.output.String() }
	ctx := context.Background()
	api := "http://" + ip + ":7480"
	admin := &client.Client{BaseURL: api, User: "admin", Password: "adminpass1"}
	waitAliveNodes(t, admin, 1, 60*time.Second, logs)
	if _, _, err := admin.CreateUser(ctx, "dev", "password1", nil); err != nil {
		t.Fatal(err)
	}
	dev := &client.Client{BaseURL: api, User: "dev", Password: "password1"}
	cliAuth := []string{"--api", api, "--user", "dev"}
	cliEnv := []string{"GEARBOX_PASSWORD=password1"}
	if _, _, err := dev.CreateDomain(ctx, "e2e"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := dev.CreateApp(ctx, "e2e", "orph", client.AppOptions{Scale: true}); err != nil {
		t.Fatal(err)
	}
	v1 := t.TempDir()
	buildTestApp(t, v1, "v1")
	if out, stderr, code := runGearboxEnv(t, time.Minute, cliEnv, append([]string{"app", "deploy", "orph", v1, "-n", "e2e"}, cliAuth...)...); code != 0 {
		t.Fatalf("deploy (exit %d):\n%s\n%s%s", code, out, stderr, logs())
	}
	if _, _, err := dev.AppEvent(ctx, "e2e", "orph", "scale-up"); err != nil {
		t.Fatal(err)
	}
	gears := func() []brokerapi.Gear {
		gg, err := dev.GearGroups(ctx, "e2e", "orph")
		if err != nil || len(gg) != 1 {
			return nil
		}
		return gg[0].Gears
	}
	started := func(n int) func() bool {
		return func() bool {
			gs := gears()
			for _, g := range gs {
				if g.State != "started" {
					return false
				}
			}
			return len(gs) == n
		}
	}
	waitUntil(t, time.Minute, "two gears started", logs, started(2))
	gs := gears()
	before := map[string][]int{}
	for _, g := range gs {
		waitUntil(t, 10*time.Second, "a process of gear "+g.ID, logs, func() bool { return len(gearProcs(g.ID)) > 0 })
		before[g.ID] = gearProcs(g.ID)
	}
	host := "orph-e2e.example.com"
	front := "http://" + ip + ":8080"
	plain := &http.Client{Timeout: 30 * time.Second}
	if a := askApp(plain, front, host, "GET"); a.err != nil {
		t.Fatalf("before the crash: %v", a.err)
	}

	// The member dies; its gears' processes live on, orphaned.
	m.kill()
	for id, pids := range before {
		// (A launcher that only waits for the gear's process dies with
		// the member.)
		got := gearProcs(id)
		if len(got) == 0 || slices.ContainsFunc(got, func(p int) bool { return !slices.Contains(pids, p) }) {
			t.Fatalf("gear %s processes %v after the member's SIGKILL, want orphans among %v", id, got, pids)
		}
	}
	m.start()
	waitAliveNodes(t, admin, 1, 60*time.Second, logs)
	waitUntil(t, time.Minute, "two gears started again", logs, func() bool {
		if !started(2)() {
			return false
		}
		// Each gear runs as many processes as before, none of them an
		// orphan.
		for id, pids := range before {
			now := gearProcs(id)
			if len(now) != len(pids) {
				return false
			}
			for _, p := range now {
				if slices.Contains(pids, p) {
					return false
				}
			}
		}
		return true
	})
	for id, pids := range before {
		for _, p := range pids {
			if procAlive(p) {
				t.Errorf("orphan %d of gear %s outlived the restart", p, id)
			}
		}
	}
	if a := askApp(plain, front, host, "GET"); a.err != nil {
		t.Fatalf("after the restart: %v", a.err)
	}

	// gear stop of the web gear: no process of it is left.
	var web, head string
	for _, g := range gs {
		if g.Head {
			head = g.ID
		} else {
			web = g.ID
		}
	}
	if out, stderr, code := runGearboxEnv(t, 30*time.Second, cliEnv, append([]string{"gear", "stop", web}, cliAuth...)...); code != 0 {
		t.Fatalf("gear stop (exit %d):\n%s\n%s", code, out, stderr)
	}
	waitUntil(t, 30*time.Second, "no process of the stopped gear", logs, func() bool { return len(gearProcs(web)) == 0 })
	if len(gearProcs(head)) == 0 {
		t.Errorf("the head gear %s runs no process", head)
	}
	// The app's deletion destroys every gear: no process is left.
	if out, stderr, code := runGearboxEnv(t, 30*time.Second, cliEnv, append([]string{"app", "delete", "orph", "-n", "e2e"}, cliAuth...)...); code != 0 {
		t.Fatalf("app delete (exit %d):\n%s\n%s", code, out, stderr)
	}
	waitUntil(t, 30*time.Second, "no process of the deleted app's gears", logs, func() bool {
		return len(gearProcs(web))+len(gearProcs(head)) == 0
	})
	if strings.Contains(logs(), `"level":"panic"`) {
		t.Errorf("the member panicked:\n%s", logs())
	}
}
