//go:build linux

package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	brokerapi "gearbox/broker/api"
	"gearbox/broker/client"
)

// TestAutoscaleEndToEnd drives 64 concurrent clients (hey, from Debian)
// through a router at a scalable app for a minute: the broker leader's
// autoscaler, with its default settings, grows the app from one gear to
// four or more; once the load stops (the cool-down shortened to 10 s by
// the app's env) it shrinks back to one gear.
func TestAutoscaleEndToEnd(t *testing.T) {
	hey, err := exec.LookPath("hey")
	if err != nil {
		t.Skip("hey is not installed (Debian package hey; .ci/run installs it)")
	}
	gearboxBinary(t)
	const secret = "e2e-autoscale-secret"
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
	ips := map[string]string{"a1": "127.0.0.71", "a2": "127.0.0.72", "a3": "127.0.0.73", "a4": "127.0.0.74"}
	order := []string{"a1", "a2", "a3", "a4"}
	members := map[string]*member{}
	for i, name := range order {
		ip := ips[name]
		args := []string{"--log-format", "json", "serve", "--name", name, "--bind", ip, "--data-dir", gearDataDir(t),
			"--anti-entropy-interval", "1s", "--domain", "apps.example.com"}
		switch name {
		case "a1":
			args = append(args, "--role", "broker", "--api-addr", ip+":7480", "--dns-addr", ip+":5353")
		case "a4":
			args = append(args, "--role", "router", "--router-addr", ip+":8080")
		default:
			args = append(args, "--role", "node", "--http-addr", ip+":8080", "--zone", "z"+name,
				"--gear-uid-range", fmt.Sprintf("%d-%d", 70000+i*1000, 70999+i*1000))
		}
		if name != "a1" {
			args = append(args, "--join", ips["a1"])
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
	api := "http://" + ips["a1"] + ":7480"
	admin := &client.Client{BaseURL: api, User: "admin", Password: "adminpass1"}
	waitAliveNodes(t, admin, 2, 60*time.Second, logs)
	if _, _, err := admin.CreateDomain(ctx, "e2e"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := admin.CreateApp(ctx, "e2e", "busy", client.AppOptions{Scale: true}); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{"E2E_PIDDIR": pidDir, "GEARBOX_LB_GEAR_RATIO": "-1",
		"GEARBOX_AUTOSCALE_COOLDOWN": "10", "GEARBOX_AUTOSCALE_DOWN_HOLD": "3"} {
		if _, _, err := admin.SetEnv(ctx, "e2e", "busy", k, v); err != nil {
			t.Fatalf("set %s: %v", k, err)
		}
	}
	appDir := t.TempDir()
	buildTestApp(t, appDir, "v1")
	cliAuth := []string{"--api", api, "--user", "admin"}
	cliEnv := []string{"GEARBOX_PASSWORD=adminpass1"}
	if out, stderr, code := runGearboxEnv(t, time.Minute, cliEnv, append([]string{"app", "deploy", "busy", appDir, "-n", "e2e"}, cliAuth...)...); code != 0 {
		t.Fatalf("deploy (exit %d):\n%s\n%s", code, out, stderr)
	}
	gears := func() []brokerapi.Gear {
		gg, err := admin.GearGroups(ctx, "e2e", "busy")
		if err != nil || len(gg) != 1 {
			return nil
		}
		return gg[0].Gears
	}
	started := func() int {
		n := 0
		for _, g := range gears() {
			if g.State == "started" {
				n++
			}
		}
		return n
	}
	const host = "busy-e2e.apps.example.com"
	router := "http://" + ips["a4"] + ":8080"
	plain := &http.Client{Timeout: 30 * time.Second}
	waitUntil(t, time.Minute, "the app answers through the router", logs, func() bool {
		return askApp(plain, router, host, "GET").err == nil
	})
	if n := len(gears()); n != 1 {
		t.Fatalf("%d gears before the load, want 1", n)
	}

	// A minute of 64 concurrent clients.
	loadStart := time.Now()
	cmd := exec.Command(hey, "-z", "60s", "-c", "64", "-host", host, router+"/")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill() })
	peak, firstUp := 1, time.Duration(0)
	for running := true; running; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("hey: %v\n%s", err, out.String())
			}
			running = false
		case <-time.After(time.Second):
		}
		if n := started(); n > peak {
			peak = n
			if firstUp == 0 {
				firstUp = time.Since(loadStart)
			}
		}
	}
	t.Logf("under load: first new gear started %s after the load began; %d gears at the peak", firstUp.Round(100*time.Millisecond), peak)
	summary := out.String()
	if i := strings.Index(summary, "Status code distribution:"); i >= 0 {
		t.Logf("hey: %s", strings.Join(strings.Fields(summary[i:]), " "))
	}
	if peak < 4 {
		t.Errorf("the app grew to %d gears under 64 concurrent clients for a minute, want 4 or more", peak)
	}

	// The load stopped: back to one gear.
	waitUntil(t, 3*time.Minute, "back to one gear", logs, func() bool { return len(gears()) == 1 })
	alerts, err := admin.Alerts(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, a := range alerts {
		if a.AppName == "busy" {
			kinds = append(kinds, a.Kind)
		}
	}
	ups, downs := strings.Count(strings.Join(kinds, " "), "autoscale_up"), strings.Count(strings.Join(kinds, " "), "autoscale_down")
	if ups < 3 || downs != ups {
		t.Errorf("alerts %v: want 3 or more autoscale_up, then as many autoscale_down", kinds)
	}
}
