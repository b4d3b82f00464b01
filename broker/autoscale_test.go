package broker

import (
	"fmt"
	"math"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"gearbox/internal/testutil"

	"gearbox/store/state"
)

// haproxy_ctld's remove thresholds: 90 × max(1 − 1/n, 0.85) − 90/n.
func TestAutoscaleRemoveThreshold(t *testing.T) {
	s, _ := autoscaleSettings(&state.App{})
	for n, want := range map[int]float64{2: 31.5, 3: 46.5, 4: 54, 6: 61.5, 7: 64.2857, 10: 72, 20: 81} {
		if got := s.removePct(n); math.Abs(got-want) > 0.001 {
			t.Errorf("removePct(%d) = %.4f, want %.4f", n, got, want)
		}
	}
}

// step is one sample given to the autoscaler and what it must decide.
type step struct {
	at       time.Duration // since t0
	sessions float64
	gears    int
	pending  bool
	want     string
}

// runSteps feeds steps to autoscaleStep from st and fails on the first
// decision that differs; it returns the last state.
func runSteps(t *testing.T, name string, st state.Autoscale, s AutoscaleSettings, min, max int, steps []step) state.Autoscale {
	t.Helper()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, x := range steps {
		var got, why string
		st, got, why = autoscaleStep(st, s, AutoscaleInput{Now: t0.Add(x.at), Sessions: x.sessions, Gears: x.gears, Pending: x.pending,
			Min: min, Max: max, MaxWhy: "scales_to 4"})
		if got != x.want {
			t.Fatalf("%s: step %d (%+v): decided %q (%s), want %q; state %+v", name, i, x, got, why, x.want, st)
		}
		if got == AutoscaleBlocked && !strings.Contains(why, "scales_to 4") {
			t.Errorf("%s: blocked without saying why: %s", name, why)
		}
	}
	return st
}

func TestAutoscaleStep(t *testing.T) {
	s := AutoscaleSettings{MaxSessionsPerGear: 16, UpPct: 90, Window: 10, DownHold: 3, Cooldown: 60 * time.Second}
	sec := time.Second
	idle := state.Autoscale{Gears: 1, Samples: make([]float64, 8)}
	tests := []struct {
		name     string
		st       state.Autoscale
		min, max int
		steps    []step
	}{
		{"sustained load after idle: up at the third sample (average 19.2 of 16)", idle, 1, -1, []step{
			{5 * sec, 64, 1, false, AutoscaleHold},  // average 6.4
			{10 * sec, 64, 1, false, AutoscaleHold}, // 12.8 = 80 %
			{15 * sec, 64, 1, false, AutoscaleUp},   // 19.2 = 120 %
		}},
		{"after a scale-up: fresh samples only, and not while the new gear starts", idle, 1, -1, []step{
			{5 * sec, 200, 1, false, AutoscaleUp},   // 200/9 = 22 per gear
			{10 * sec, 200, 2, true, AutoscaleHold}, // the new gear has not started
			{15 * sec, 200, 2, false, AutoscaleUp},  // 100 per gear
			{20 * sec, 60, 3, false, AutoscaleUp},   // 20 per gear: the 100 before is forgotten
			{25 * sec, 24, 4, false, AutoscaleHold}, // 6 per gear
		}},
		{"exactly 90 % scales up", state.Autoscale{Gears: 2}, 1, -1, []step{
			{5 * sec, 28.8, 2, false, AutoscaleUp},
		}},
		{"just under 90 % holds", state.Autoscale{Gears: 2}, 1, -1, []step{
			{5 * sec, 28.7, 2, false, AutoscaleHold},
			{10 * sec, 28.7, 2, false, AutoscaleHold},
		}},
		{"at the maximum: blocked once, then quiet until the load drops", state.Autoscale{Gears: 4}, 1, 4, []step{
			{5 * sec, 100, 4, false, AutoscaleBlocked},
			{10 * sec, 100, 4, false, AutoscaleHold},
			{15 * sec, 100, 4, false, AutoscaleHold},
			{20 * sec, 0, 4, false, AutoscaleHold}, // average still high
			{25 * sec, 0, 4, false, AutoscaleHold},
			{30 * sec, 0, 4, false, AutoscaleHold},
			{35 * sec, 0, 4, false, AutoscaleHold},
			{40 * sec, 0, 4, false, AutoscaleHold},
			{45 * sec, 0, 4, false, AutoscaleHold}, // 8.3 per gear, 52 %: below 1
			{50 * sec, 0, 4, false, AutoscaleHold}, // 2
			{55 * sec, 0, 4, false, AutoscaleDown}, // 3 = DownHold
		}},
		{"low load: down after DownHold samples below the threshold", state.Autoscale{Gears: 4}, 1, -1, []step{
			{5 * sec, 4, 4, false, AutoscaleHold},  // 1 per gear, 6 %: below 1
			{10 * sec, 4, 4, false, AutoscaleHold}, // 2
			{15 * sec, 4, 4, false, AutoscaleDown}, // 3
		}},
		{"a sample above the threshold starts the count over", state.Autoscale{Gears: 4}, 1, -1, []step{
			{5 * sec, 4, 4, false, AutoscaleHold},    // below: 1
			{10 * sec, 4, 4, false, AutoscaleHold},   // 2
			{15 * sec, 120, 4, false, AutoscaleHold}, // (1+1+30)/3 = 10.7 per gear, 67 %: 0
			{20 * sec, 4, 4, false, AutoscaleHold},   // 52 %: 1
			{25 * sec, 4, 4, false, AutoscaleHold},   // 2
			{30 * sec, 4, 4, false, AutoscaleDown},   // 3
		}},
		{"never below scales_from", state.Autoscale{Gears: 2}, 2, -1, []step{
			{5 * sec, 0, 2, false, AutoscaleHold},
			{10 * sec, 0, 2, false, AutoscaleHold},
			{15 * sec, 0, 2, false, AutoscaleHold},
			{20 * sec, 0, 2, false, AutoscaleHold},
			{25 * sec, 0, 2, false, AutoscaleHold},
		}},
		{"no scale-down within the cool-down of a scale-up", state.Autoscale{Gears: 2}, 1, -1, []step{
			{10 * sec, 100, 2, false, AutoscaleUp},
			{15 * sec, 0, 3, false, AutoscaleHold},
			{20 * sec, 0, 3, false, AutoscaleHold},
			{25 * sec, 0, 3, false, AutoscaleHold},
			{30 * sec, 0, 3, false, AutoscaleHold},
			{65 * sec, 0, 3, false, AutoscaleHold}, // 55 s after the up
			{71 * sec, 0, 3, false, AutoscaleDown}, // 61 s after
		}},
		{"a user's scale-up is not undone within the cool-down", state.Autoscale{Gears: 2}, 1, -1, []step{
			{5 * sec, 0, 3, false, AutoscaleHold}, // the user scaled to 3
			{10 * sec, 0, 3, false, AutoscaleHold},
			{15 * sec, 0, 3, false, AutoscaleHold},
			{20 * sec, 0, 3, false, AutoscaleHold},
			{60 * sec, 0, 3, false, AutoscaleHold},
			{66 * sec, 0, 3, false, AutoscaleDown},
		}},
		{"a user's scale-down is not undone within the cool-down", state.Autoscale{Gears: 3}, 1, -1, []step{
			{5 * sec, 100, 2, false, AutoscaleHold}, // the user scaled to 2
			{10 * sec, 100, 2, false, AutoscaleHold},
			{60 * sec, 100, 2, false, AutoscaleHold},
			{66 * sec, 100, 2, false, AutoscaleUp},
		}},
	}
	for _, tt := range tests {
		runSteps(t, tt.name, tt.st, s, tt.min, tt.max, tt.steps)
	}
}

// The settings come from the app's env; bad values keep the default and
// are reported.
func TestAutoscaleSettingsFromEnv(t *testing.T) {
	s, bad := autoscaleSettings(&state.App{Env: map[string]string{EnvMaxSessionsPerGear: "32", EnvAutoscaleDownHold: "3", EnvAutoscaleCooldown: "30"}})
	if s.MaxSessionsPerGear != 32 || s.DownHold != 3 || s.Cooldown != 30*time.Second || len(bad) != 0 {
		t.Errorf("settings %+v, bad %v", s, bad)
	}
	s, bad = autoscaleSettings(&state.App{Env: map[string]string{EnvMaxSessionsPerGear: "0", EnvAutoscaleDownHold: "x", EnvAutoscaleCooldown: "-1"}})
	if s.MaxSessionsPerGear != DefaultMaxSessionsPerGear || s.DownHold != DefaultAutoscaleDownHold || s.Cooldown != DefaultAutoscaleCooldown || len(bad) != 3 {
		t.Errorf("settings %+v, bad %v", s, bad)
	}
}

// TestAutoscalerScalesByLBSessions: the leader's loop scales a scalable
// app up under sessions, alerts each step, keeps its state in the store,
// scales down only after the cool-down, says when the app's maximum
// blocks it, and leaves an app alone once autoscaling is off.
func TestAutoscalerScalesByLBSessions(t *testing.T) {
	var sessions atomic.Int64
	c := newCluster(t, clusterOpts{cfg: func(cfg *Config) {
		cfg.AutoscaleInterval = 20 * time.Millisecond
		cfg.lbSessions = func(g state.Gear) (int64, bool) { return sessions.Load(), true }
	}})
	demo := c.user(t, "demo", nil)
	c.domain(t, demo, "demo")
	c.createApp(t, demo, "demo", "web", url.Values{"scale": {"true"}})
	for k, v := range map[string]string{EnvAutoscaleDownHold: "2", EnvMaxSessionsPerGear: "10"} {
		c.ok(t, "POST", appPath("demo", "web", "/environment-variables"), demo, url.Values{"name": {k}, "value": {v}}, nil)
	}
	c.fakeNodes(t)
	count := func(kind string) int {
		n := 0
		for _, a := range c.alerts(t) {
			if a.Kind == kind && a.AppName == "web" {
				n++
			}
		}
		return n
	}
	// 25 sessions, 10 per gear at most: three gears (8.3 each, 83 %).
	sessions.Store(25)
	testutil.WaitFor(t, 20*time.Second, "three gears", func() bool { return len(c.gears(t, "demo", "web")) == 3 && count(state.AlertAutoscaleUp) == 2 },
		func() string { return fmt.Sprint(len(c.gears(t, "demo", "web")), kinds(c.alerts(t))) })
	c.b.autoscalePasses.Store(0)
	testutil.WaitFor(t, 10*time.Second, "more passes", func() bool { return c.b.autoscalePasses.Load() > 20 })
	if n := len(c.gears(t, "demo", "web")); n != 3 {
		t.Fatalf("%d gears at 83 %% of the sessions per gear, want 3", n)
	}
	var st state.Autoscale
	if _, err := c.st.Get(state.BucketAutoscale, "demo/web", &st); err != nil || st.Gears != 3 || st.LastUp.IsZero() {
		t.Errorf("autoscaler state %+v (%v)", st, err)
	}
	// No load: nothing goes within the cool-down of the last scale-up,
	// one gear at a time after it.
	sessions.Store(0)
	c.b.autoscalePasses.Store(0)
	testutil.WaitFor(t, 10*time.Second, "more passes", func() bool { return c.b.autoscalePasses.Load() > 20 })
	if n := len(c.gears(t, "demo", "web")); n != 3 {
		t.Fatalf("%d gears within the cool-down, want 3", n)
	}
	c.clock.Advance(DefaultAutoscaleCooldown)
	testutil.WaitFor(t, 20*time.Second, "down to one gear", func() bool { return len(c.gears(t, "demo", "web")) == 1 && count(state.AlertAutoscaleDown) == 2 },
		func() string { return fmt.Sprint(len(c.gears(t, "demo", "web")), kinds(c.alerts(t))) })
	for _, a := range c.alerts(t) {
		if a.Kind == state.AlertAutoscaleDown && !strings.Contains(a.Action, "scaled down from") {
			t.Errorf("alert %+v", a)
		}
	}

	// At scales_to: blocked, said once.
	c.ok(t, "PUT", appPath("demo", "web", "/cartridges/static"), demo, url.Values{"scales_to": {"1"}}, nil)
	sessions.Store(100)
	testutil.WaitFor(t, 20*time.Second, "autoscale_blocked", func() bool { return count(state.AlertAutoscaleHeld) == 1 })
	c.b.autoscalePasses.Store(0)
	testutil.WaitFor(t, 10*time.Second, "more passes", func() bool { return c.b.autoscalePasses.Load() > 20 })
	if n, k := len(c.gears(t, "demo", "web")), count(state.AlertAutoscaleHeld); n != 1 || k != 1 {
		t.Errorf("at scales_to: %d gears, %d autoscale_blocked alerts; want 1 and 1", n, k)
	}

	// Off: the app keeps its gears under any load.
	a := c.event(t, demo, "demo", "web", "disable-autoscale")
	if a.Autoscale {
		t.Error("app view says autoscale after disable-autoscale")
	}
	c.ok(t, "PUT", appPath("demo", "web", "/cartridges/static"), demo, url.Values{"scales_to": {"-1"}}, nil)
	c.b.autoscalePasses.Store(0)
	testutil.WaitFor(t, 10*time.Second, "more passes", func() bool { return c.b.autoscalePasses.Load() > 20 })
	if n := len(c.gears(t, "demo", "web")); n != 1 {
		t.Errorf("%d gears with autoscaling off, want 1", n)
	}
	if a := c.event(t, demo, "demo", "web", "enable-autoscale"); !a.Autoscale {
		t.Error("app view does not say autoscale after enable-autoscale")
	}
	testutil.WaitFor(t, 20*time.Second, "scaling up again", func() bool { return len(c.gears(t, "demo", "web")) > 1 })
}
