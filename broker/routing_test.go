package broker

import (
	"net/url"
	"slices"
	"sort"
	"testing"

	"gearbox/store/state"
)

// TestRoutingEvents walks an app through its life and checks the routing
// feed: every change appends ordered events with OpenShift's actions and
// fields, under keys that sort in sequence order.
func TestRoutingEvents(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	demo := c.user(t, "demo", url.Values{"ha": {"true"}})
	c.domain(t, demo, "demo")
	addr := map[string]string{}
	for _, n := range c.nodes {
		addr[n.name] = n.ip
	}
	gearByID := map[string]state.Gear{}
	remember := func() {
		for _, g := range c.gears(t, "demo", "web") {
			gearByID[g.ID] = g
		}
	}

	steps := []struct {
		name string
		do   func()
		want []string // the step's actions, in any order
	}{
		{"create", func() { c.createApp(t, demo, "demo", "web", url.Values{"scale": {"true"}}) },
			[]string{"create_application", "add_public_endpoint", "add_public_endpoint"}},
		{"make-ha", func() { c.event(t, demo, "demo", "web", "make-ha") },
			[]string{"enable_ha", "add_public_endpoint", "add_public_endpoint"}},
		{"scale-up to 3", func() { c.event(t, demo, "demo", "web", "scale-up") },
			[]string{"add_public_endpoint"}},
		{"scale-up to 4", func() { c.event(t, demo, "demo", "web", "scale-up") },
			[]string{"add_public_endpoint"}},
		{"scale-up to 5", func() { c.event(t, demo, "demo", "web", "scale-up") },
			[]string{"add_public_endpoint", "rotate_out", "rotate_out"}},
		{"stop", func() { c.event(t, demo, "demo", "web", "stop") },
			[]string{"gear_stop", "gear_stop", "gear_stop", "gear_stop", "gear_stop"}},
		{"start", func() { c.event(t, demo, "demo", "web", "start") },
			[]string{"gear_start", "gear_start", "gear_start", "gear_start", "gear_start"}},
		{"scale-down to 4", func() { c.event(t, demo, "demo", "web", "scale-down") },
			[]string{"remove_public_endpoint", "rotate_in", "rotate_in"}},
		{"disable-ha", func() { c.event(t, demo, "demo", "web", "disable-ha") },
			// The second LB gear stops being one: its LB endpoint goes;
			// 4 gears / 1 LB gear rotates the head out.
			[]string{"disable_ha", "remove_public_endpoint", "rotate_out"}},
		{"delete", func() { c.ok(t, "DELETE", appPath("demo", "web"), demo, nil, nil) },
			[]string{"delete_application"}},
	}
	for _, s := range steps {
		seq := c.lastSeq(t)
		s.do()
		if s.name != "delete" {
			remember()
		}
		evs := c.eventsSince(t, seq)
		got := actions(evs)
		want := slices.Clone(s.want)
		sort.Strings(got)
		sort.Strings(want)
		if !slices.Equal(got, want) {
			t.Fatalf("%s: events %v, want %v", s.name, actions(evs), s.want)
		}
		if s.want[0] == "create_application" || s.want[0] == "enable_ha" || s.want[0] == "disable_ha" {
			if evs[0].Action != s.want[0] {
				t.Fatalf("%s: %s is not the first event: %v", s.name, s.want[0], actions(evs))
			}
		}
	}

	evs := c.events(t)
	recs, err := c.st.List(state.BucketRoutingEvents)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range evs {
		if e.Seq != uint64(i+1) {
			t.Fatalf("event %d has seq %d: the feed has a gap or a repeat", i, e.Seq)
		}
		if recs[i].Key != state.EventKey(e.Seq) {
			t.Fatalf("event %d stored under %q", e.Seq, recs[i].Key)
		}
		if i > 0 && e.Time.Before(evs[i-1].Time) {
			t.Fatalf("event %d is older than event %d", e.Seq, e.Seq-1)
		}
		if e.AppName != "web" || e.Namespace != "demo" || e.Time.IsZero() {
			t.Fatalf("event %+v", e)
		}
		switch e.Action {
		case state.ActionAddPublicEndpoint, state.ActionRemovePublicEndpoint:
			g, ok := gearByID[e.GearID]
			if !ok {
				t.Fatalf("event %+v names no gear of the app", e)
			}
			if e.PublicAddress != addr[g.Node] || len(e.Protocols) == 0 || len(e.Types) != 1 || e.PublicPortName == "" || len(e.Mappings) == 0 {
				t.Fatalf("endpoint event %+v of gear %+v", e, g)
			}
			switch e.Types[0] {
			case "load_balancer":
				if e.PublicPort == 0 || e.PublicPort == g.Port {
					t.Fatalf("LB endpoint event %+v of gear %+v", e, g)
				}
			case "web_framework":
				if e.PublicPort != g.Port {
					t.Fatalf("web endpoint event %+v of gear %+v", e, g)
				}
			default:
				t.Fatalf("types %v", e.Types)
			}
		case state.ActionRotateIn, state.ActionRotateOut, state.ActionGearStart, state.ActionGearStop:
			if _, ok := gearByID[e.GearID]; !ok {
				t.Fatalf("event %+v names no gear of the app", e)
			}
		case state.ActionDeleteApplication:
			if !e.Scalable || e.HA {
				t.Fatalf("delete event %+v", e)
			}
		}
	}
	if last := evs[len(evs)-1]; last.Action != state.ActionDeleteApplication {
		t.Fatalf("last event %+v", last)
	}
	// Requests that change nothing append nothing.
	c.createApp(t, demo, "demo", "quiet", nil)
	seq := c.lastSeq(t)
	c.event(t, demo, "demo", "quiet", "start")
	c.do(t, "POST", appPath("demo", "quiet", "/events"), demo, url.Values{"event": {"scale-up"}})
	c.do(t, "POST", appPath("demo", "quiet", "/events"), demo, url.Values{"event": {"bogus"}})
	if evs := c.eventsSince(t, seq); len(evs) != 0 {
		t.Fatalf("events %v", actions(evs))
	}
}

// TestDemotedLBGearRotatesIn: an LB gear that was rotated out and stops
// being an LB gear serves again, and the feed says so.
func TestDemotedLBGearRotatesIn(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	demo := c.user(t, "demo", url.Values{"ha": {"true"}})
	c.domain(t, demo, "demo")
	c.createApp(t, demo, "demo", "web", url.Values{"ha": {"true"}})
	for range 3 {
		c.event(t, demo, "demo", "web", "scale-up")
	}
	gs := c.gears(t, "demo", "web")
	if !gs[0].RotatedOut || !gs[1].RotatedOut {
		t.Fatalf("LB gears of a 5-gear HA app not rotated out: %+v", gs[:2])
	}
	seq := c.lastSeq(t)
	c.event(t, demo, "demo", "web", "disable-ha")
	gs = c.gears(t, "demo", "web")
	if gs[1].LB || gs[1].RotatedOut || !gs[0].RotatedOut {
		t.Fatalf("after disable-ha: %+v", gs[:2])
	}
	evs := c.eventsSince(t, seq)
	in := 0
	for _, e := range evs {
		if e.Action == state.ActionRotateIn {
			in++
			if e.GearID != gs[1].ID {
				t.Fatalf("rotate_in of gear %s, want %s", e.GearID, gs[1].ID)
			}
		}
	}
	if in != 1 {
		t.Fatalf("events %v, want one rotate_in for the demoted gear", actions(evs))
	}
}

// TestRoutingSeqAfterRestart: a new broker on the same store continues
// the feed where the last one stopped.
func TestRoutingSeqAfterRestart(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	demo := c.user(t, "demo", nil)
	c.domain(t, demo, "demo")
	c.createApp(t, demo, "demo", "one", url.Values{"scale": {"true"}})
	last := c.lastSeq(t)
	if err := c.b.Close(); err != nil {
		t.Fatal(err)
	}
	c.b, c.url = startBroker(t, c.bm, c.clock, clusterOpts{})
	c.createApp(t, demo, "demo", "two", nil)
	evs := c.eventsSince(t, last)
	if len(evs) == 0 || evs[0].Seq != last+1 || evs[0].Action != state.ActionCreateApplication || evs[0].AppName != "two" {
		t.Fatalf("events after restart %+v, want seq %d first", evs, last+1)
	}
}
