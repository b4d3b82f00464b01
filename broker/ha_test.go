package broker

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"gearbox/broker/api"
	"gearbox/internal/testutil"
	"gearbox/store/state"
)

// lbOrdinals lists the ordinals of the app's LB gears.
func lbOrdinals(gs []state.Gear) []int {
	var out []int
	for _, g := range gs {
		if g.LB {
			out = append(out, g.Ordinal)
		}
	}
	return out
}

// checkLBInvariants checks what must hold of any scalable app's gears:
// one head, an LB gear (the oldest, unless the head's node was lost);
// LB gears on distinct nodes (unless shared
// is allowed); ports set.
func checkLBInvariants(t *testing.T, gs []state.Gear, shared bool) {
	t.Helper()
	heads, firstLB := 0, -1
	nodes := map[string]int{}
	for i, g := range gs {
		if g.Head {
			heads++
			if !g.LB {
				t.Fatalf("head gear %d is not an LB gear", g.Ordinal)
			}
		}
		if g.LB {
			if firstLB < 0 {
				firstLB = i
			}
			nodes[g.Node]++
			if g.LBPort == 0 || g.LBPort == g.Port {
				t.Fatalf("LB gear %d has ports %d/%d", g.Ordinal, g.Port, g.LBPort)
			}
		} else if g.LBPort != 0 || g.RotatedOut {
			t.Fatalf("web gear %+v", g)
		}
	}
	if firstLB >= 0 && heads != 1 {
		t.Fatalf("%d heads; the first LB gear is %d", heads, gs[firstLB].Ordinal)
	}
	if !shared {
		for n, k := range nodes {
			if k > 1 {
				t.Fatalf("%d LB gears on node %s", k, n)
			}
		}
	}
}

// TestMakeHA: the seed's make-ha, from each starting gear count.
func TestMakeHA(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	demo := c.user(t, "demo", url.Values{"ha": {"true"}})
	c.domain(t, demo, "demo")
	tests := []struct {
		name      string
		gears     int    // before make-ha
		event     string // make-ha or enable-ha
		wantGears int
	}{
		// The app scales up to meet the LB minimum of 2.
		{"one gear", 1, "make-ha", 2},
		{"one gear, enable-ha", 1, "enable-ha", 2},
		// An existing gear becomes the second LB gear at once: no new
		// gear, and the app is really HA (the seed's bug, fixed).
		{"two gears", 2, "make-ha", 2},
		{"three gears", 3, "make-ha", 3},
		{"four gears", 4, "enable-ha", 4},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := fmt.Sprintf("ha%d", i)
			c.createApp(t, demo, "demo", name, url.Values{"scale": {"true"}})
			for range tt.gears - 1 {
				c.event(t, demo, "demo", name, "scale-up")
			}
			before := c.gears(t, "demo", name)
			seq := c.lastSeq(t)
			var a api.App
			r := c.ok(t, "POST", appPath("demo", name, "/events"), demo, url.Values{"event": {tt.event}}, &a)
			if want := "Application " + name + " is now ha"; r.text() != want {
				t.Fatalf("message %q, want %q", r.text(), want)
			}
			if !a.HA || a.GearCount != tt.wantGears || a.ScalesFrom != 2 || a.ScalesTo != -1 {
				t.Fatalf("app %+v", a)
			}
			gs := c.gears(t, "demo", name)
			if lbs := lbOrdinals(gs); len(lbs) != 2 {
				t.Fatalf("LB gears %v, want 2", lbs)
			}
			checkLBInvariants(t, gs, false)
			if !a.LB.ReallyHA || a.LB.Nodes != 2 || a.LB.Zones != 2 || a.LB.Gears != 2 {
				t.Fatalf("load_balancers %+v", a.LB)
			}
			// Existing gears are kept; only a missing one is added.
			for i := range before {
				if gs[i].ID != before[i].ID {
					t.Fatalf("gear %d replaced", i+1)
				}
			}
			var lb api.Cartridge
			c.ok(t, "GET", appPath("demo", name, "/cartridges/lb"), demo, nil, &lb)
			if lb.ScalesFrom != 2 || lb.ScalesTo != -1 || lb.Gears != 2 {
				t.Fatalf("lb cartridge %+v", lb)
			}
			evs := c.eventsSince(t, seq)
			if countAction(evs, state.ActionEnableHA) != 1 || evs[0].Action != state.ActionEnableHA {
				t.Fatalf("events %v", actions(evs))
			}
			lbAdds := 0
			for _, e := range evs {
				if e.Action == state.ActionAddPublicEndpoint && slices.Equal(e.Types, []string{"load_balancer"}) {
					lbAdds++
				}
			}
			if lbAdds != 1 {
				t.Fatalf("%d LB endpoints announced, want 1: %+v", lbAdds, evs)
			}
			// Scale-down never leaves fewer than 2 gears, nor takes an
			// LB gear below the minimum.
			for range tt.wantGears - 2 {
				c.event(t, demo, "demo", name, "scale-down")
				if lbs := lbOrdinals(c.gears(t, "demo", name)); len(lbs) != 2 {
					t.Fatalf("LB gears %v after scale-down", lbs)
				}
			}
			c.unchanged(t, func() {
				wantErr(t, c.do(t, "POST", appPath("demo", name, "/events"), demo, url.Values{"event": {"scale-down"}}), 422, "Cannot scale down below gear limit of '2'")
			})
		})
	}
}

func TestMakeHARefused(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	demo := c.user(t, "demo", url.Values{"ha": {"true"}})
	plain := c.user(t, "plain", nil)
	c.domain(t, demo, "demo")
	c.domain(t, plain, "plain")
	c.createApp(t, demo, "demo", "single", nil)
	c.createApp(t, demo, "demo", "already", url.Values{"ha": {"true"}})
	c.createApp(t, plain, "plain", "web", url.Values{"scale": {"true"}})
	tests := []struct {
		name      string
		who       creds
		path      string
		event     string
		code      int
		text      string
		createApp url.Values // when set, POST this to create instead
	}{
		{"user lacks ha", plain, appPath("plain", "web", "/events"), "make-ha", http.StatusForbidden, "User 'plain' is not allowed to make applications highly available", nil},
		{"user lacks ha, enable-ha", plain, appPath("plain", "web", "/events"), "enable-ha", http.StatusForbidden, "not allowed", nil},
		{"user lacks ha at create", plain, "/broker/rest/domains/plain/applications", "", http.StatusForbidden, "not allowed", url.Values{"name": {"x"}, "ha": {"true"}}},
		{"not scalable", demo, appPath("demo", "single", "/events"), "make-ha", 422, "Application 'single' is not scalable", nil},
		{"already HA", demo, appPath("demo", "already", "/events"), "make-ha", 422, "Application 'already' is already highly available", nil},
		{"already HA, enable-ha", demo, appPath("demo", "already", "/events"), "enable-ha", 422, "already highly available", nil},
		{"disable-ha when not HA", demo, appPath("demo", "single", "/events"), "disable-ha", 422, "is not highly available", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := tt.createApp
			if body == nil {
				body = url.Values{"event": {tt.event}}
			}
			c.unchanged(t, func() {
				wantErr(t, c.do(t, "POST", tt.path, tt.who, body), tt.code, tt.text)
			})
		})
	}

	t.Run("platform disallows", func(t *testing.T) {
		c := newCluster(t, clusterOpts{cfg: func(cfg *Config) { cfg.AllowHAApplications = false }})
		demo := c.user(t, "demo", url.Values{"ha": {"true"}})
		c.domain(t, demo, "demo")
		c.createApp(t, demo, "demo", "web", url.Values{"scale": {"true"}})
		c.unchanged(t, func() {
			for _, who := range []creds{demo, admin} {
				wantErr(t, c.do(t, "POST", appPath("demo", "web", "/events"), who, url.Values{"event": {"make-ha"}}), 422, "High availability is disabled on this platform")
				wantErr(t, c.do(t, "POST", "/broker/rest/domains/demo/applications", who, url.Values{"name": {"ha"}, "ha": {"true"}}), 422, "High availability is disabled")
			}
		})
	})
}

// TestHAMultiplier: with multiplier m every m-th gear is an LB gear: the
// 9th and 12th with m = 3; m = 0 keeps exactly two.
func TestHAMultiplier(t *testing.T) {
	c := newCluster(t, clusterOpts{nodes: []nodeSpec{
		{name: "n1", zone: "z1"}, {name: "n2", zone: "z2"}, {name: "n3", zone: "z3"}, {name: "n4", zone: "z1"},
	}})
	demo := c.user(t, "demo", url.Values{"ha": {"true"}})
	c.domain(t, demo, "demo")
	c.createApp(t, demo, "demo", "web", url.Values{"ha": {"true"}})

	c.unchanged(t, func() {
		path := appPath("demo", "web")
		wantErr(t, c.do(t, "PUT", path, demo, url.Values{"ha_multiplier": {"3"}}), http.StatusForbidden, "administrator")
		wantErr(t, c.do(t, "PUT", path, admin, url.Values{"ha_multiplier": {"-1"}}), 422, "Invalid ha_multiplier '-1'")
		wantErr(t, c.do(t, "PUT", path, admin, url.Values{"ha_multiplier": {"three"}}), 422, "whole number")
		wantErr(t, c.do(t, "PUT", path, admin, url.Values{}), 422, "Pass ha_multiplier")
		wantErr(t, c.do(t, "PUT", appPath("demo", "ghost"), admin, url.Values{"ha_multiplier": {"3"}}), 404, "not found")
	})
	var a api.App
	r := c.ok(t, "PUT", appPath("demo", "web"), admin, url.Values{"ha_multiplier": {"3"}}, &a)
	if a.HAMultiplier != 3 || r.text() != "HA multiplier of web set to 3." {
		t.Fatalf("app %+v, %q", a, r.text())
	}

	want := func(gears int) int { return max(2, gears/3) }
	for n := 3; n <= 12; n++ {
		a := c.event(t, demo, "demo", "web", "scale-up")
		gs := c.gears(t, "demo", "web")
		lbs := lbOrdinals(gs)
		if a.GearCount != n || len(gs) != n || len(lbs) != want(n) || a.LB.Gears != want(n) {
			t.Fatalf("at %d gears: LB gears %v (API says %d), want %d", n, lbs, a.LB.Gears, want(n))
		}
		// The new LB gear is the gear just added, not an older one.
		if n == 9 || n == 12 {
			if !gs[n-1].LB {
				t.Fatalf("gear %d is not an LB gear; LB gears %v", n, lbs)
			}
		} else if gs[n-1].LB {
			t.Fatalf("gear %d is an LB gear; LB gears %v", n, lbs)
		}
		checkLBInvariants(t, gs, false)
	}
	if got := lbOrdinals(c.gears(t, "demo", "web")); !slices.Equal(got, []int{1, 2, 9, 12}) {
		t.Fatalf("LB gears %v, want [1 2 9 12]", got)
	}
	if a := c.show(t, demo, "demo", "web"); a.LB.Nodes != 4 || a.LB.Zones != 3 || !a.LB.ReallyHA {
		t.Fatalf("load_balancers %+v", a.LB)
	}

	// Scaling down takes LB gears away as the count falls, never below 2.
	for n := 11; n >= 2; n-- {
		c.event(t, demo, "demo", "web", "scale-down")
		gs := c.gears(t, "demo", "web")
		if len(gs) != n || len(lbOrdinals(gs)) != want(n) {
			t.Fatalf("at %d gears: LB gears %v, want %d", len(gs), lbOrdinals(gs), want(n))
		}
		checkLBInvariants(t, gs, false)
		if gs[0].Ordinal != 1 || !gs[0].Head {
			t.Fatal("the head gear was removed")
		}
	}

	// Setting a multiplier on an app that already has the gears promotes
	// existing gears at once; setting 0 demotes them back to two.
	c.ok(t, "PUT", appPath("demo", "web"), admin, url.Values{"ha_multiplier": {"0"}}, nil)
	c.ok(t, "PUT", appPath("demo", "web", "/cartridges/static"), demo, url.Values{"scales_from": {"8"}}, nil)
	if lbs := lbOrdinals(c.gears(t, "demo", "web")); len(lbs) != 2 {
		t.Fatalf("m=0 at 8 gears: LB gears %v", lbs)
	}
	var shown api.App
	c.ok(t, "PUT", appPath("demo", "web"), admin, url.Values{"ha_multiplier": {"2"}}, &shown)
	gs := c.gears(t, "demo", "web")
	if lbs := lbOrdinals(gs); len(lbs) != 4 || shown.LB.Gears != 4 {
		t.Fatalf("m=2 at 8 gears: LB gears %v, API says %+v", lbs, shown.LB)
	}
	if len(gs) != 8 {
		t.Fatalf("%d gears: setting the multiplier changed the gear count", len(gs))
	}
	checkLBInvariants(t, gs, false)
	c.ok(t, "PUT", appPath("demo", "web"), admin, url.Values{"ha_multiplier": {"0"}}, &shown)
	if lbs := lbOrdinals(c.gears(t, "demo", "web")); len(lbs) != 2 || shown.LB.Gears != 2 {
		t.Fatalf("back to m=0: LB gears %v, API says %+v", lbs, shown.LB)
	}
}

// TestHAMultiplierTen: m = 10 makes the 30th, 40th and 50th gears LB
// gears, here with LB gears allowed to share nodes.
func TestHAMultiplierTen(t *testing.T) {
	c := newCluster(t, clusterOpts{cfg: func(cfg *Config) {
		cfg.AllowMultipleLBPerNode = true
		cfg.DefaultHAMultiplier = 10
	}})
	demo := c.user(t, "demo", url.Values{"ha": {"true"}})
	c.domain(t, demo, "demo")
	if a := c.createApp(t, demo, "demo", "web", url.Values{"ha": {"true"}}); a.HAMultiplier != 10 {
		t.Fatalf("ha_multiplier %d, want the platform default 10", a.HAMultiplier)
	}
	for _, tt := range []struct {
		gears int
		lbs   []int
	}{
		{29, []int{1, 2}},
		{30, []int{1, 2, 30}},
		{39, []int{1, 2, 30}},
		{50, []int{1, 2, 30, 40, 50}},
	} {
		c.ok(t, "PUT", appPath("demo", "web", "/cartridges/static"), demo, url.Values{"scales_from": {fmt.Sprint(tt.gears)}}, nil)
		gs := c.gears(t, "demo", "web")
		if got := lbOrdinals(gs); len(gs) != tt.gears || !slices.Equal(got, tt.lbs) {
			t.Fatalf("at %d gears: LB gears %v, want %v", len(gs), got, tt.lbs)
		}
		checkLBInvariants(t, gs, true)
	}
}

// TestGearRatio: LB gears rotate out of serving when round(gears / LB
// gears) reaches the ratio (3): a plain scaled app at its 3rd gear, an HA
// app at its 5th, not its 4th.
func TestGearRatio(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	demo := c.user(t, "demo", url.Values{"ha": {"true"}})
	c.domain(t, demo, "demo")
	tests := []struct {
		name    string
		params  url.Values
		rotated []bool // by gear count, from 1
	}{
		{"scaled", url.Values{"scale": {"true"}}, []bool{false, false, true, true, true, true}},
		{"ha", url.Values{"ha": {"true"}}, []bool{false, false, false, false, true, true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c.createApp(t, demo, "demo", tt.name, tt.params)
			first := len(c.gears(t, "demo", tt.name))
			check := func(n int, seq uint64, growing bool) {
				t.Helper()
				gs := c.gears(t, "demo", tt.name)
				a := c.show(t, demo, "demo", tt.name)
				want := tt.rotated[n-1]
				for i, g := range gs {
					if g.RotatedOut != (want && g.LB) || a.Gears[i].RotatedOut != g.RotatedOut {
						t.Fatalf("at %d gears: gear %d (lb=%v) rotated_out=%v (API %v), want %v", n, g.Ordinal, g.LB, g.RotatedOut, a.Gears[i].RotatedOut, want && g.LB)
					}
				}
				if a.LB.RotatedOut != want {
					t.Fatalf("at %d gears: load_balancers %+v", n, a.LB)
				}
				var groups []api.GearGroup
				c.ok(t, "GET", appPath("demo", tt.name, "/gear_groups"), demo, nil, &groups)
				for i, g := range groups[0].Gears {
					if g.ID != gs[i].ID || g.RotatedOut != gs[i].RotatedOut {
						t.Fatalf("at %d gears: gear_groups shows %+v for %+v", n, g, gs[i])
					}
				}
				// A crossing announces each LB gear's rotation once.
				evs := c.eventsSince(t, seq)
				wantOut, wantIn := 0, 0
				if n > first {
					was := tt.rotated[n-2]
					if !growing {
						was = tt.rotated[n]
					}
					if want && !was {
						wantOut = len(lbOrdinals(gs))
					}
					if !want && was {
						wantIn = len(lbOrdinals(gs))
					}
				}
				if countAction(evs, state.ActionRotateOut) != wantOut || countAction(evs, state.ActionRotateIn) != wantIn {
					t.Fatalf("at %d gears: events %v, want %d rotate_out and %d rotate_in", n, actions(evs), wantOut, wantIn)
				}
			}
			check(first, c.lastSeq(t), true)
			for n := first + 1; n <= len(tt.rotated); n++ {
				seq := c.lastSeq(t)
				c.event(t, demo, "demo", tt.name, "scale-up")
				check(n, seq, true)
			}
			for n := len(tt.rotated) - 1; n >= first; n-- {
				seq := c.lastSeq(t)
				c.event(t, demo, "demo", tt.name, "scale-down")
				check(n, seq, false)
			}
		})
	}

	t.Run("make-ha rotates back in", func(t *testing.T) {
		c.createApp(t, demo, "demo", "grown", url.Values{"scale": {"true"}})
		c.event(t, demo, "demo", "grown", "scale-up")
		c.event(t, demo, "demo", "grown", "scale-up")
		if a := c.show(t, demo, "demo", "grown"); !a.LB.RotatedOut {
			t.Fatalf("3-gear scaled app not rotated out: %+v", a.LB)
		}
		seq := c.lastSeq(t)
		// 3 gears / 2 LB gears rounds to 2: both LB gears serve.
		a := c.event(t, demo, "demo", "grown", "make-ha")
		if a.LB.RotatedOut || a.LB.Gears != 2 {
			t.Fatalf("load_balancers %+v", a.LB)
		}
		if evs := c.eventsSince(t, seq); countAction(evs, state.ActionRotateIn) != 1 {
			t.Fatalf("events %v", actions(evs))
		}
	})

	t.Run("disabled", func(t *testing.T) {
		c := newCluster(t, clusterOpts{cfg: func(cfg *Config) { cfg.GearRatio = -1 }})
		demo := c.user(t, "demo", nil)
		c.domain(t, demo, "demo")
		c.createApp(t, demo, "demo", "web", url.Values{"scale": {"true"}})
		for range 4 {
			if a := c.event(t, demo, "demo", "web", "scale-up"); a.LB.RotatedOut {
				t.Fatalf("rotated out at %d gears with the ratio disabled", a.GearCount)
			}
		}
		if evs := c.events(t); countAction(evs, state.ActionRotateOut) != 0 {
			t.Fatalf("events %v", actions(evs))
		}
	})
}

// TestDisableHA: disable-ha returns the LB minimum to 1 and the scale
// limits to what they were before make-ha, so that the app can go back to
// one LB gear and one gear (OpenShift bug 1255426, fixed).
func TestDisableHA(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	demo := c.user(t, "demo", url.Values{"ha": {"true"}})
	c.domain(t, demo, "demo")
	tests := []struct {
		name     string
		create   url.Values
		limits   url.Values // scale limits set before make-ha
		from, to int        // limits after disable-ha
	}{
		{"created HA", url.Values{"ha": {"true"}}, nil, 1, -1},
		{"made HA", url.Values{"scale": {"true"}}, nil, 1, -1},
		{"made HA with limits", url.Values{"scale": {"true"}}, url.Values{"scales_to": {"5"}}, 1, 5},
		{"made HA with max 1", url.Values{"scale": {"true"}}, url.Values{"scales_to": {"1"}}, 1, 1},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := fmt.Sprintf("app%d", i)
			c.createApp(t, demo, "demo", name, tt.create)
			if tt.limits != nil {
				c.ok(t, "PUT", appPath("demo", name, "/cartridges/static"), demo, tt.limits, nil)
			}
			if !c.show(t, demo, "demo", name).HA {
				c.event(t, demo, "demo", name, "make-ha")
			}
			seq := c.lastSeq(t)
			var a api.App
			r := c.ok(t, "POST", appPath("demo", name, "/events"), demo, url.Values{"event": {"disable-ha"}}, &a)
			if want := "Application " + name + " is no longer ha"; r.text() != want {
				t.Fatalf("message %q", r.text())
			}
			if a.HA || a.HAURL != "" || a.ScalesFrom != tt.from || a.ScalesTo != tt.to {
				t.Fatalf("after disable-ha: %+v, want limits %d..%d", a, tt.from, tt.to)
			}
			var lb api.Cartridge
			c.ok(t, "GET", appPath("demo", name, "/cartridges/lb"), demo, nil, &lb)
			if lb.ScalesFrom != 1 || lb.ScalesTo != 1 {
				t.Fatalf("lb cartridge %+v", lb)
			}
			evs := c.eventsSince(t, seq)
			if len(evs) == 0 || evs[0].Action != state.ActionDisableHA {
				t.Fatalf("events %v", actions(evs))
			}
			// Back to one LB gear, and down to one gear.
			for len(c.gears(t, "demo", name)) > 1 {
				c.event(t, demo, "demo", name, "scale-down")
			}
			gs := c.gears(t, "demo", name)
			if len(gs) != 1 || !gs[0].LB || !gs[0].Head || gs[0].Ordinal != 1 {
				t.Fatalf("after scaling down: %+v", gs)
			}
			// And HA again.
			a = c.event(t, demo, "demo", name, "make-ha")
			if !a.HA || a.LB.Gears != 2 || !a.LB.ReallyHA {
				t.Fatalf("make-ha again: %+v", a.LB)
			}
		})
	}
}

// TestScaleDownKeepsLBMinimum: when the newest gear is an LB gear the app
// needs, scale-down removes an older web gear instead.
func TestScaleDownKeepsLBMinimum(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	demo := c.user(t, "demo", url.Values{"ha": {"true"}})
	c.domain(t, demo, "demo")
	c.createApp(t, demo, "demo", "web", url.Values{"scale": {"true"}})
	head := c.gears(t, "demo", "web")[0]
	// Gears 2 and 3 on the head's node; gear 3 then moves away (its
	// replacement is gear 4), so that make-ha promotes gear 4, the newest.
	for _, n := range c.nodes {
		if n.name != head.Node {
			c.ok(t, "POST", "/broker/rest/nodes/"+n.name+"/events", admin, url.Values{"event": {"drain"}, "evacuate": {"false"}}, nil)
		}
	}
	c.event(t, demo, "demo", "web", "scale-up")
	c.event(t, demo, "demo", "web", "scale-up")
	var other string
	for _, n := range c.nodes {
		c.ok(t, "POST", "/broker/rest/nodes/"+n.name+"/events", admin, url.Values{"event": {"undrain"}}, nil)
		if n.name != head.Node {
			other = n.name
		}
	}
	gs := c.gears(t, "demo", "web")
	c.fakeNodes(t)
	c.ok(t, "POST", "/broker/rest/gears/"+gs[2].ID+"/move", admin, url.Values{"node": {other}}, nil)
	testutil.WaitFor(t, 20*time.Second, "the move done", func() bool {
		gs := c.gears(t, "demo", "web")
		return len(gs) == 3 && gs[2].Ordinal == 4 && gs[2].Replaces == nil
	})
	c.event(t, demo, "demo", "web", "make-ha")
	if lbs := lbOrdinals(c.gears(t, "demo", "web")); !slices.Equal(lbs, []int{1, 4}) {
		t.Fatalf("LB gears %v, want [1 4]", lbs)
	}
	c.event(t, demo, "demo", "web", "scale-down")
	gs = c.gears(t, "demo", "web")
	if len(gs) != 2 || !gs[0].LB || !gs[1].LB || gs[1].Ordinal != 4 {
		t.Fatalf("after scale-down: %+v", gs)
	}
	if a := c.show(t, demo, "demo", "web"); !a.LB.ReallyHA {
		t.Fatalf("load_balancers %+v", a.LB)
	}
}
