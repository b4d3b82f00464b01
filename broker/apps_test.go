package broker

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"gearbox/broker/api"
	"gearbox/internal/testutil"
	"gearbox/store/state"
)

func TestCreateApp(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	demo := c.user(t, "demo", url.Values{"ha": {"true"}})
	c.domain(t, demo, "demo")

	tests := []struct {
		name     string
		params   url.Values
		scalable bool
		ha       bool
		gears    int
		lbs      int
	}{
		{"plain", nil, false, false, 1, 0},
		{"scalable", url.Values{"scale": {"true"}}, true, false, 1, 1},
		{"ha", url.Values{"ha": {"true"}}, true, true, 2, 2},
		{"ha and scale", url.Values{"ha": {"true"}, "scale": {"true"}}, true, true, 2, 2},
		{"scale false", url.Values{"scale": {"false"}, "cartridge": {"static"}}, false, false, 1, 0},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := fmt.Sprintf("app%d", i)
			seq := c.lastSeq(t)
			r := c.do(t, "POST", "/broker/rest/domains/demo/applications", demo, withName(tt.params, name))
			if r.code != http.StatusCreated {
				t.Fatalf("create: %d %s", r.code, r.text())
			}
			if want := "Application " + name + " was created."; r.text() != want {
				t.Fatalf("message %q, want %q", r.text(), want)
			}
			var a api.App
			r.decode(t, &a)
			if a.Scalable != tt.scalable || a.HA != tt.ha || a.GearCount != tt.gears || len(a.Gears) != tt.gears || len(lbGears(a)) != tt.lbs {
				t.Fatalf("app %+v with %d LB gears; want scalable=%v ha=%v gears=%d lbs=%d", a, len(lbGears(a)), tt.scalable, tt.ha, tt.gears, tt.lbs)
			}
			if a.Name != name || a.Domain != "demo" || a.Owner != "demo" || a.GearProfile != "small" || a.State != state.GearStarted || a.ID == "" {
				t.Fatalf("app %+v", a)
			}
			if want := "http://" + name + "-demo.example.com/"; a.AppURL != want {
				t.Fatalf("app_url %q, want %q", a.AppURL, want)
			}
			if want := "http://ha-" + name + "-demo.example.com/"; tt.ha != (a.HAURL == want) {
				t.Fatalf("ha_url %q", a.HAURL)
			}
			if tt.scalable != (a.LB != nil) {
				t.Fatalf("load_balancers %+v on scalable=%v", a.LB, tt.scalable)
			}
			if tt.scalable {
				if !a.Gears[0].LB || !a.Gears[0].Head {
					t.Fatalf("first gear of a scalable app is not the LB head: %+v", a.Gears[0])
				}
				if a.LB.Gears != tt.lbs {
					t.Fatalf("load_balancers %+v", a.LB)
				}
				wantFrom, wantTo := 1, -1
				if tt.ha {
					wantFrom = 2
				}
				if a.ScalesFrom != wantFrom || a.ScalesTo != wantTo {
					t.Fatalf("scales %d..%d, want %d..%d", a.ScalesFrom, a.ScalesTo, wantFrom, wantTo)
				}
			} else if a.Gears[0].LB || a.Gears[0].Head || a.ScalesFrom != 1 || a.ScalesTo != 1 {
				t.Fatalf("non-scalable app %+v gear %+v", a, a.Gears[0])
			}
			if tt.ha {
				lbs := lbGears(a)
				if lbs[0].Node == lbs[1].Node || lbs[0].Zone == lbs[1].Zone {
					t.Fatalf("LB gears share a node or zone: %+v", lbs)
				}
				if !a.LB.ReallyHA || a.LB.Nodes != 2 || a.LB.Zones != 2 {
					t.Fatalf("load_balancers %+v", a.LB)
				}
				heads := 0
				for _, g := range a.Gears {
					if g.Head {
						heads++
					}
				}
				if heads != 1 {
					t.Fatalf("%d head gears", heads)
				}
			}
			// The store holds what the API said.
			gs := c.gears(t, "demo", name)
			if len(gs) != tt.gears {
				t.Fatalf("store holds %d gears", len(gs))
			}
			for i, g := range gs {
				if g.Ordinal != i+1 || g.Port == 0 || (g.LB && g.LBPort == 0) || g.State != state.GearStarted || g.Node == "" {
					t.Fatalf("gear record %+v", g)
				}
			}
			evs := c.eventsSince(t, seq)
			if len(evs) == 0 || evs[0].Action != state.ActionCreateApplication || evs[0].AppName != name || evs[0].Namespace != "demo" || evs[0].Scalable != tt.scalable {
				t.Fatalf("events %+v", evs)
			}
			if got := countAction(evs, state.ActionAddPublicEndpoint); got != tt.gears+tt.lbs {
				t.Fatalf("%d add_public_endpoint events, want %d: %v", got, tt.gears+tt.lbs, actions(evs))
			}
			if tt.ha != (countAction(evs, state.ActionEnableHA) == 1) {
				t.Fatalf("events %v", actions(evs))
			}
		})
	}

	t.Run("list", func(t *testing.T) {
		var as []api.App
		c.ok(t, "GET", "/broker/rest/domains/demo/applications", demo, nil, &as)
		if len(as) != len(tests) {
			t.Fatalf("listed %d apps", len(as))
		}
		var dv api.Domain
		c.ok(t, "GET", "/broker/rest/domains/demo", demo, nil, &dv)
		if dv.Applications != len(tests) {
			t.Fatalf("domain counts %d apps", dv.Applications)
		}
		var u api.User
		c.ok(t, "GET", "/broker/rest/user", demo, nil, &u)
		if u.ConsumedGears != 7 {
			t.Fatalf("consumed_gears %d, want 7", u.ConsumedGears)
		}
	})

	t.Run("show without gears", func(t *testing.T) {
		r := c.ok(t, "GET", appPath("demo", "app1"), demo, nil, nil)
		var m map[string]json.RawMessage
		r.decode(t, &m)
		if _, ok := m["gears"]; ok {
			t.Fatal("gears shown without include=gears")
		}
	})

	t.Run("same name in another domain", func(t *testing.T) {
		c.domain(t, demo, "demo2")
		c.createApp(t, demo, "demo2", "app0", nil)
	})

	t.Run("invalid", func(t *testing.T) {
		tests := []struct {
			name   string
			params url.Values
			code   int
			text   string
			field  string
		}{
			{"dash", url.Values{"name": {"my-app"}}, 422, "no dashes", "name"},
			{"upper case", url.Values{"name": {"MyApp"}}, 422, "Invalid application name", "name"},
			{"unicode", url.Values{"name": {"caf\u00e9"}}, 422, "Invalid application name", "name"},
			{"fullwidth", url.Values{"name": {"\uff41pp"}}, 422, "Invalid application name", "name"},
			{"too long", url.Values{"name": {strings.Repeat("a", 33)}}, 422, "1 to 32", "name"},
			{"empty", url.Values{"name": {""}}, 422, "Invalid application name", "name"},
			{"missing", url.Values{}, 422, "Invalid application name", "name"},
			{"dot", url.Values{"name": {"a.b"}}, 422, "Invalid application name", "name"},
			{"duplicate", url.Values{"name": {"app0"}}, 422, "An application with name 'app0' already exists in domain 'demo'", "name"},
			{"duplicate with other settings", url.Values{"name": {"app1"}, "ha": {"true"}}, 422, "already exists", "name"},
			{"cartridge", url.Values{"name": {"x"}, "cartridge": {"php-5.4"}}, 422, "Invalid cartridge 'php-5.4'", "cartridge"},
			{"gear size unknown", url.Values{"name": {"x"}, "gear_size": {"huge"}}, 422, "Invalid gear size 'huge'", "gear_size"},
			{"gear size not allowed", url.Values{"name": {"x"}, "gear_size": {"medium"}}, 422, "may not create 'medium' gears", "gear_size"},
			{"gear profile not allowed", url.Values{"name": {"x"}, "gear_profile": {"large"}}, 422, "may not create 'large' gears", "gear_size"},
			{"scale not a bool", url.Values{"name": {"x"}, "scale": {"2"}}, 422, "true or false", "scale"},
			{"ha not a bool", url.Values{"name": {"x"}, "ha": {"yes"}}, 422, "true or false", "ha"},
			{"unknown region", url.Values{"name": {"x"}, "region": {"mars"}}, 422, "Region 'mars'", "region"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				c.unchanged(t, func() {
					r := c.do(t, "POST", "/broker/rest/domains/demo/applications", demo, tt.params)
					wantErr(t, r, tt.code, tt.text)
					if f := r.env.Messages[0].Field; f == nil || *f != tt.field {
						t.Fatalf("field %v, want %s", f, tt.field)
					}
				})
			})
		}
		c.createApp(t, demo, "demo2", strings.Repeat("a", 32), nil)
	})

	t.Run("gear sizes", func(t *testing.T) {
		c.ok(t, "PUT", "/broker/rest/users/demo", admin, url.Values{"gear_sizes": {"small,medium"}}, nil)
		a := c.createApp(t, demo, "demo2", "medium", url.Values{"gear_size": {"medium"}, "scale": {"true"}})
		if a.GearProfile != "medium" {
			t.Fatalf("gear_profile %q", a.GearProfile)
		}
		c.event(t, demo, "demo2", "medium", "scale-up")
		for _, g := range c.gears(t, "demo2", "medium") {
			if g.Size != "medium" {
				t.Fatalf("gear %+v", g)
			}
		}
	})

	t.Run("region", func(t *testing.T) {
		a := c.createApp(t, demo, "demo2", "pinned", url.Values{"region": {"r1"}, "scale": {"true"}})
		if a.Region != "r1" || a.Gears[0].Region != "r1" {
			t.Fatalf("app %+v", a)
		}
	})
}

func withName(v url.Values, name string) url.Values {
	out := url.Values{"name": {name}}
	for k, vs := range v {
		out[k] = vs
	}
	return out
}

func TestDeleteApp(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	demo := c.user(t, "demo", url.Values{"ha": {"true"}})
	c.domain(t, demo, "demo")
	c.createApp(t, demo, "demo", "keep", url.Values{"scale": {"true"}})
	c.createApp(t, demo, "demo", "web", url.Values{"ha": {"true"}})
	kept := c.gears(t, "demo", "keep")
	seq := c.lastSeq(t)
	r := c.ok(t, "DELETE", appPath("demo", "web"), demo, nil, nil)
	if r.text() != "Application web is deleted." {
		t.Fatalf("message %q", r.text())
	}
	wantErr(t, c.do(t, "GET", appPath("demo", "web"), demo, nil), http.StatusNotFound, "not found")
	if gs := c.gears(t, "demo", "web"); len(gs) != 0 {
		t.Fatalf("gears left: %+v", gs)
	}
	if gs := c.gears(t, "demo", "keep"); !slices.EqualFunc(gs, kept, func(a, b state.Gear) bool { return a.ID == b.ID }) {
		t.Fatal("another app's gears changed")
	}
	evs := c.eventsSince(t, seq)
	if len(evs) != 1 || evs[0].Action != state.ActionDeleteApplication || !evs[0].HA || !evs[0].Scalable || evs[0].AppName != "web" {
		t.Fatalf("events %+v", evs)
	}
	// The name and the gears are free again.
	a := c.createApp(t, demo, "demo", "web", nil)
	if a.GearCount != 1 {
		t.Fatalf("re-created %+v", a)
	}
	var u api.User
	c.ok(t, "GET", "/broker/rest/user", demo, nil, &u)
	if u.ConsumedGears != 2 {
		t.Fatalf("consumed_gears %d", u.ConsumedGears)
	}
}

func TestAppEvents(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	demo := c.user(t, "demo", url.Values{"ha": {"true"}})
	c.domain(t, demo, "demo")
	c.createApp(t, demo, "demo", "web", url.Values{"scale": {"true"}})
	c.event(t, demo, "demo", "web", "scale-up")
	c.createApp(t, demo, "demo", "plain", nil)

	t.Run("stop start restart", func(t *testing.T) {
		seq := c.lastSeq(t)
		r := c.ok(t, "POST", appPath("demo", "web", "/events"), demo, url.Values{"event": {"stop"}}, nil)
		if r.text() != "Application web has stopped" {
			t.Fatalf("message %q", r.text())
		}
		for _, g := range c.gears(t, "demo", "web") {
			if g.State != state.GearStopped {
				t.Fatalf("gear %s desired state %q after stop", g.ID, g.State)
			}
		}
		if a := c.show(t, demo, "demo", "web"); a.State != state.GearStopped {
			t.Fatalf("app state %q", a.State)
		}
		if evs := c.eventsSince(t, seq); countAction(evs, state.ActionGearStop) != 2 || len(evs) != 2 {
			t.Fatalf("events %v", actions(evs))
		}
		// Stopping again changes no gear and announces nothing.
		seq = c.lastSeq(t)
		c.event(t, demo, "demo", "web", "stop")
		if evs := c.eventsSince(t, seq); len(evs) != 0 {
			t.Fatalf("events %v", actions(evs))
		}
		// A gear added while stopped is stopped too.
		c.event(t, demo, "demo", "web", "scale-up")
		for _, g := range c.gears(t, "demo", "web") {
			if g.State != state.GearStopped {
				t.Fatalf("gear %d desired state %q", g.Ordinal, g.State)
			}
		}
		seq = c.lastSeq(t)
		c.event(t, demo, "demo", "web", "start")
		for _, g := range c.gears(t, "demo", "web") {
			if g.State != state.GearStarted {
				t.Fatalf("gear %s desired state %q after start", g.ID, g.State)
			}
		}
		if evs := c.eventsSince(t, seq); countAction(evs, state.ActionGearStart) != 3 {
			t.Fatalf("events %v", actions(evs))
		}
		before := c.appRecord(t, "demo", "web").Restarts
		c.event(t, demo, "demo", "web", "restart")
		// The roll-out restarts the gears one at a time (see
		// TestRolloutRestart); no node reports here, so one moves.
		if got := c.appRecord(t, "demo", "web").Restarts; got != before+1 {
			t.Fatalf("app restarts %d after restart, want %d", got, before+1)
		}
		testutil.WaitFor(t, 10*time.Second, "one gear restarted", func() bool {
			n := 0
			for _, g := range c.gears(t, "demo", "web") {
				if g.Restarts == before+1 && g.State == state.GearStarted {
					n++
				}
			}
			return n == 1
		})
		c.event(t, demo, "demo", "web", "scale-down")
	})

	t.Run("invalid events", func(t *testing.T) {
		for _, ev := range []string{"explode", "", "START", "scale_up", "make_ha", "make-ha-now"} {
			c.unchanged(t, func() {
				r := c.do(t, "POST", appPath("demo", "web", "/events"), demo, url.Values{"event": {ev}})
				want := fmt.Sprintf("Invalid application event '%s' specified", strings.TrimSpace(ev))
				wantErr(t, r, http.StatusUnprocessableEntity, want)
				for _, valid := range validEvents {
					if !strings.Contains(r.text(), valid) {
						t.Fatalf("message %q does not list %s", r.text(), valid)
					}
				}
				if f := r.env.Messages[0].Field; f == nil || *f != "event" {
					t.Fatalf("field %v", f)
				}
			})
		}
	})

	t.Run("scaling", func(t *testing.T) {
		c.unchanged(t, func() {
			wantErr(t, c.do(t, "POST", appPath("demo", "plain", "/events"), demo, url.Values{"event": {"scale-up"}}), 422, "non-scalable")
			wantErr(t, c.do(t, "POST", appPath("demo", "plain", "/events"), demo, url.Values{"event": {"scale-down"}}), 422, "non-scalable")
		})
		a := c.show(t, demo, "demo", "web")
		if a.GearCount != 2 {
			t.Fatalf("web has %d gears", a.GearCount)
		}
		r := c.ok(t, "POST", appPath("demo", "web", "/events"), demo, url.Values{"event": {"scale-down"}}, &a)
		if a.GearCount != 1 || r.text() != "Application web has scaled down to 1 gears." {
			t.Fatalf("after scale-down: %d gears, %q", a.GearCount, r.text())
		}
		c.unchanged(t, func() {
			wantErr(t, c.do(t, "POST", appPath("demo", "web", "/events"), demo, url.Values{"event": {"scale-down"}}), 422, "Cannot scale down below gear limit of '1'")
		})
		r = c.ok(t, "POST", appPath("demo", "web", "/events"), demo, url.Values{"event": {"scale-up"}}, &a)
		if a.GearCount != 2 || r.text() != "Application web has scaled up to 2 gears." {
			t.Fatalf("after scale-up: %d gears, %q", a.GearCount, r.text())
		}
		c.ok(t, "PUT", appPath("demo", "web", "/cartridges/static"), demo, url.Values{"scales_to": {"2"}}, nil)
		c.unchanged(t, func() {
			wantErr(t, c.do(t, "POST", appPath("demo", "web", "/events"), demo, url.Values{"event": {"scale-up"}}), 422, "Cannot scale up beyond maximum gear limit of '2'")
		})
	})
}

// TestGearBudget: a user's max_gears bounds every way of adding gears.
func TestGearBudget(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	demo := c.user(t, "demo", url.Values{"ha": {"true"}, "max_gears": {"3"}})
	c.domain(t, demo, "demo")
	c.createApp(t, demo, "demo", "web", url.Values{"scale": {"true"}})
	c.event(t, demo, "demo", "web", "scale-up")
	c.createApp(t, demo, "demo", "other", nil)
	c.unchanged(t, func() {
		wantErr(t, c.do(t, "POST", appPath("demo", "web", "/events"), demo, url.Values{"event": {"scale-up"}}), 422, "User 'demo' has already reached the gear limit of 3")
		wantErr(t, c.do(t, "POST", "/broker/rest/domains/demo/applications", demo, url.Values{"name": {"more"}}), 422, "gear limit of 3")
		wantErr(t, c.do(t, "PUT", appPath("demo", "web", "/cartridges/static"), demo, url.Values{"scales_from": {"3"}}), 422, "gear limit of 3")
		wantErr(t, c.do(t, "PUT", appPath("demo", "web", "/cartridges/static"), demo, url.Values{"scales_from": {"4"}}), 422, "user 'demo' may have at most 3 gears")
	})
	// make-ha on a 1-gear app needs a second gear.
	c.event(t, demo, "demo", "web", "scale-down")
	c.event(t, demo, "demo", "other", "stop")
	c.createApp(t, demo, "demo", "third", nil)
	c.unchanged(t, func() {
		wantErr(t, c.do(t, "POST", appPath("demo", "web", "/events"), demo, url.Values{"event": {"make-ha"}}), 422, "gear limit of 3")
		wantErr(t, c.do(t, "POST", "/broker/rest/domains/demo/applications", demo, url.Values{"name": {"ha"}, "ha": {"true"}}), 422, "gear limit of 3")
	})
	// An admin acting on the app is bound by the owner's budget too.
	c.unchanged(t, func() {
		wantErr(t, c.do(t, "POST", appPath("demo", "web", "/events"), admin, url.Values{"event": {"scale-up"}}), 422, "gear limit of 3")
	})
	// Raising the limit lets the app grow.
	c.ok(t, "PUT", "/broker/rest/users/demo", admin, url.Values{"max_gears": {"4"}}, nil)
	c.event(t, demo, "demo", "web", "scale-up")
}

func TestScaleCartridge(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	demo := c.user(t, "demo", url.Values{"ha": {"true"}, "max_gears": {"20"}})
	c.domain(t, demo, "demo")
	c.createApp(t, demo, "demo", "web", url.Values{"scale": {"true"}})
	c.createApp(t, demo, "demo", "ha", url.Values{"ha": {"true"}})
	c.createApp(t, demo, "demo", "plain", nil)

	t.Run("show", func(t *testing.T) {
		var cs []api.Cartridge
		c.ok(t, "GET", appPath("demo", "web", "/cartridges"), demo, nil, &cs)
		if len(cs) != 2 || cs[0].Name != "static" || cs[0].Type != "web_framework" || cs[1].Name != "lb" || cs[1].Type != "load_balancer" {
			t.Fatalf("cartridges %+v", cs)
		}
		var lb api.Cartridge
		c.ok(t, "GET", appPath("demo", "ha", "/cartridges/lb"), demo, nil, &lb)
		if lb.ScalesFrom != 2 || lb.ScalesTo != -1 || lb.Gears != 2 {
			t.Fatalf("lb of an HA app %+v", lb)
		}
		c.ok(t, "GET", appPath("demo", "web", "/cartridges/lb"), demo, nil, &lb)
		if lb.ScalesFrom != 1 || lb.ScalesTo != 1 || lb.Gears != 1 {
			t.Fatalf("lb of a scaled app %+v", lb)
		}
		c.ok(t, "GET", appPath("demo", "plain", "/cartridges"), demo, nil, &cs)
		if len(cs) != 1 {
			t.Fatalf("non-scalable app's cartridges %+v", cs)
		}
		wantErr(t, c.do(t, "GET", appPath("demo", "plain", "/cartridges/lb"), demo, nil), 404, "Cartridge 'lb' not found")
		wantErr(t, c.do(t, "GET", appPath("demo", "web", "/cartridges/php"), demo, nil), 404, "Cartridge 'php' not found")
	})

	t.Run("refusals", func(t *testing.T) {
		tests := []struct {
			name   string
			app    string
			cart   string
			params url.Values
			code   int
			text   string
		}{
			{"lb", "web", "lb", url.Values{"scales_from": {"2"}}, 422, "The cartridge lb cannot be scaled."},
			{"lb on HA app", "ha", "lb", url.Values{"scales_to": {"5"}}, 422, "The cartridge lb cannot be scaled."},
			{"unknown cartridge", "web", "php", url.Values{"scales_from": {"2"}}, 404, "Cartridge 'php' not found"},
			{"not scalable", "plain", "static", url.Values{"scales_from": {"2"}}, 422, "not scalable"},
			{"HA max 1", "ha", "static", url.Values{"scales_from": {"1"}, "scales_to": {"1"}}, 422, "Cannot set the max gear limit to '1' if the application is HA (highly available)"},
			{"HA max 1 alone", "ha", "static", url.Values{"scales_to": {"1"}}, 422, "Cannot set the max gear limit to '1' if the application is HA (highly available)"},
			{"HA min 1", "ha", "static", url.Values{"scales_from": {"1"}}, 422, "Cannot set the min gear limit to '1' if the application is HA"},
			{"max below min", "web", "static", url.Values{"scales_from": {"3"}, "scales_to": {"2"}}, 422, "The max gear limit '2' cannot be less than the min gear limit '3'."},
			{"max below current min", "ha", "static", url.Values{"scales_to": {"1"}}, 422, "HA"},
			{"max beyond max_gears", "web", "static", url.Values{"scales_to": {"21"}}, 422, "may have at most 20 gears"},
			{"min beyond max_gears", "web", "static", url.Values{"scales_from": {"21"}}, 422, "may have at most 20 gears"},
			{"min 0", "web", "static", url.Values{"scales_from": {"0"}}, 422, "the minimum is 1"},
			{"max 0", "web", "static", url.Values{"scales_to": {"0"}}, 422, "Invalid scales_to '0'"},
			{"max -2", "web", "static", url.Values{"scales_to": {"-2"}}, 422, "Invalid scales_to '-2'"},
			{"not a number", "web", "static", url.Values{"scales_from": {"two"}}, 422, "whole number"},
			{"nothing", "web", "static", url.Values{}, 422, "Pass scales_from and/or scales_to"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				c.unchanged(t, func() {
					wantErr(t, c.do(t, "PUT", appPath("demo", tt.app, "/cartridges/"+tt.cart), demo, tt.params), tt.code, tt.text)
				})
			})
		}
	})

	t.Run("scales to fit", func(t *testing.T) {
		var cv api.Cartridge
		r := c.ok(t, "PUT", appPath("demo", "web", "/cartridges/static"), demo, url.Values{"scales_from": {"3"}, "scales_to": {"5"}}, &cv)
		if cv.ScalesFrom != 3 || cv.ScalesTo != 5 || cv.Gears != 3 || !strings.HasPrefix(r.text(), "Scale range of static set to 3-5") {
			t.Fatalf("cartridge %+v, %q", cv, r.text())
		}
		if a := c.show(t, demo, "demo", "web"); a.GearCount != 3 || a.ScalesFrom != 3 || a.ScalesTo != 5 || len(lbGears(a)) != 1 {
			t.Fatalf("app %+v", a)
		}
		wantErr(t, c.do(t, "POST", appPath("demo", "web", "/events"), demo, url.Values{"event": {"scale-down"}}), 422, "Cannot scale down below gear limit of '3'")
		c.ok(t, "PUT", appPath("demo", "web", "/cartridges/static"), demo, url.Values{"scales_from": {"1"}, "scales_to": {"2"}}, &cv)
		if cv.Gears != 2 {
			t.Fatalf("after lowering the maximum: %+v", cv)
		}
		if a := c.show(t, demo, "demo", "web"); a.GearCount != 2 || !a.Gears[0].Head || !a.Gears[0].LB {
			t.Fatalf("app %+v", a)
		}
		c.ok(t, "PUT", appPath("demo", "web", "/cartridges/static"), demo, url.Values{"scales_to": {"-1"}}, &cv)
		if cv.ScalesFrom != 1 || cv.ScalesTo != -1 || cv.Gears != 2 {
			t.Fatalf("after removing the maximum: %+v", cv)
		}
		// An HA app may be given any range of 2 and more.
		c.ok(t, "PUT", appPath("demo", "ha", "/cartridges/static"), demo, url.Values{"scales_from": {"2"}, "scales_to": {"2"}}, &cv)
		if cv.Gears != 2 {
			t.Fatalf("HA app %+v", cv)
		}
	})
}

func TestGearGroups(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	demo := c.user(t, "demo", url.Values{"ha": {"true"}})
	c.domain(t, demo, "demo")
	c.createApp(t, demo, "demo", "web", url.Values{"ha": {"true"}})
	c.event(t, demo, "demo", "web", "scale-up")
	c.createApp(t, demo, "demo", "plain", nil)
	nodeAddr := map[string]string{}
	for _, n := range c.nodes {
		nodeAddr[n.name] = n.ip
	}

	r := c.ok(t, "GET", appPath("demo", "web", "/gear_groups?include=endpoints"), demo, nil, nil)
	var groups []map[string]json.RawMessage
	r.decode(t, &groups)
	if len(groups) != 1 {
		t.Fatalf("%d gear groups", len(groups))
	}
	for _, k := range []string{"id", "name", "gear_profile", "cartridges", "scales_from", "scales_to", "gears"} {
		if _, ok := groups[0][k]; !ok {
			t.Fatalf("gear group has no %q: %s", k, r.data)
		}
	}
	var gg []api.GearGroup
	r.decode(t, &gg)
	g := gg[0]
	// The endpoints' keys, read from the raw data: api.Endpoint would
	// decode a missing one as its zero value.
	var rawGears []map[string]json.RawMessage
	if err := json.Unmarshal(groups[0]["gears"], &rawGears); err != nil {
		t.Fatalf("gears of the group: %v", err)
	}
	a := c.show(t, demo, "demo", "web")
	if g.ID != a.ID || g.Name != "web" || g.GearProfile != "small" || g.ScalesFrom != 2 || g.ScalesTo != -1 || len(g.Cartridges) != 2 || len(g.Gears) != 3 {
		t.Fatalf("gear group %+v", g)
	}
	records := c.gears(t, "demo", "web")
	for i, gear := range g.Gears {
		rec := records[i]
		if gear.ID != rec.ID || gear.Node != rec.Node || gear.Zone == "" || gear.Region != "r1" || gear.State != state.GearNew {
			t.Fatalf("gear %+v, record %+v", gear, rec)
		}
		wantEndpoints := 1
		if rec.LB {
			wantEndpoints = 2
		}
		if len(gear.Endpoints) != wantEndpoints {
			t.Fatalf("gear %d has %d endpoints, want %d", i+1, len(gear.Endpoints), wantEndpoints)
		}
		var rawEndpoints []map[string]json.RawMessage
		if err := json.Unmarshal(rawGears[i]["endpoints"], &rawEndpoints); err != nil || len(rawEndpoints) != wantEndpoints {
			t.Fatalf("gear %d's raw endpoints: %d, %v", i+1, len(rawEndpoints), err)
		}
		for j, e := range gear.Endpoints {
			for _, k := range []string{"cartridge_name", "external_address", "external_port", "internal_address", "internal_port", "protocols", "types"} {
				if _, ok := rawEndpoints[j][k]; !ok {
					t.Fatalf("endpoint has no %q: %v", k, rawEndpoints[j])
				}
			}
			if e.ExternalAddress != nodeAddr[rec.Node] || e.InternalAddress != nodeAddr[rec.Node] {
				t.Fatalf("endpoint address %q, node %s is at %s", e.ExternalAddress, rec.Node, nodeAddr[rec.Node])
			}
			switch e.CartridgeName {
			case "lb":
				if !rec.LB || e.ExternalPort != rec.LBPort || e.InternalPort != rec.LBPort || !slices.Equal(e.Types, []string{"load_balancer"}) {
					t.Fatalf("LB endpoint %+v of gear %+v", e, rec)
				}
			case "static":
				if e.ExternalPort != rec.Port || e.InternalPort != rec.Port || !slices.Equal(e.Types, []string{"web_framework"}) {
					t.Fatalf("web endpoint %+v of gear %+v", e, rec)
				}
			default:
				t.Fatalf("endpoint of cartridge %q", e.CartridgeName)
			}
			if !slices.Contains(e.Protocols, "http") {
				t.Fatalf("protocols %v", e.Protocols)
			}
		}
	}

	// Without include=endpoints, gears carry no endpoints.
	r = c.ok(t, "GET", appPath("demo", "web", "/gear_groups"), demo, nil, nil)
	if strings.Contains(string(r.data), "endpoints") {
		t.Fatalf("endpoints without include: %s", r.data)
	}
	// A plain app: one group, one gear, web endpoint only.
	c.ok(t, "GET", appPath("demo", "plain", "/gear_groups?include=endpoints"), demo, nil, &gg)
	if len(gg) != 1 || len(gg[0].Gears) != 1 || len(gg[0].Gears[0].Endpoints) != 1 || len(gg[0].Cartridges) != 1 {
		t.Fatalf("plain app's gear groups %+v", gg)
	}

	// A gear whose node reported a state shows it; one whose node is gone
	// is unknown.
	rec := records[2]
	if _, err := c.node(t, rec.Node).st.Put(t.Context(), state.BucketGearStatus, rec.ID, state.GearStatus{ID: rec.ID, Node: rec.Node, State: state.GearStarted}); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "gear status at the broker", func() bool {
		_, err := c.st.GetRecord(state.BucketGearStatus, rec.ID)
		return err == nil
	})
	a = c.show(t, demo, "demo", "web")
	if a.Gears[2].State != state.GearStarted || a.Gears[0].State != state.GearNew {
		t.Fatalf("gear states %q %q", a.Gears[0].State, a.Gears[2].State)
	}
	dead := c.node(t, records[0].Node)
	if err := dead.st.Leave(t.Context()); err != nil {
		t.Fatal(err)
	}
	dead.srv.Close()
	dead.st.Close()
	testutil.WaitFor(t, 20*time.Second, "node gone", func() bool {
		for _, m := range c.st.Members() {
			if m.Name == dead.name {
				return m.Status != "alive"
			}
		}
		return false
	})
	a = c.show(t, demo, "demo", "web")
	if a.Gears[0].State != state.GearUnknown {
		t.Fatalf("gear on a dead node is %q", a.Gears[0].State)
	}
	if a.LB.ReallyHA || a.LB.Nodes != 2 {
		t.Fatalf("load_balancers %+v with a dead LB node", a.LB)
	}
}
