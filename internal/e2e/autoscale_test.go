//go:build linux

package e2e

import (
	"context"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"
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
	c := startAppCluster(t, "e2e-autoscale-secret", []memberSpec{
		{"a1", "127.0.0.71", "broker", ""}, {"a2", "127.0.0.72", "node", "za"}, {"a3", "127.0.0.73", "node", "zb"},
		{"a4", "127.0.0.74", "router", ""}})
	ctx := context.Background()
	c.deployApp("busy", map[string]string{"GEARBOX_LB_GEAR_RATIO": "-1", "GEARBOX_AUTOSCALE_COOLDOWN": "10", "GEARBOX_AUTOSCALE_DOWN_HOLD": "3"})
	const host = "busy-e2e.apps.example.com"
	router := "http://" + c.ip("a4") + ":8080"
	plain := &http.Client{Timeout: 30 * time.Second}
	waitUntil(t, time.Minute, "the app answers through the router", c.logs, func() bool {
		return askApp(plain, router, host, "GET").err == nil
	})
	if n := len(c.gears("busy")); n != 1 {
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
		if n, _ := c.started("busy"); n > peak {
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
	waitUntil(t, 3*time.Minute, "back to one gear", c.logs, func() bool { return len(c.gears("busy")) == 1 })
	alerts, err := c.admin.Alerts(ctx, 0, 0)
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
