package broker

import (
	"net/http"
	"net/url"
	"testing"

	"gearbox/broker/api"
	"gearbox/store/state"
)

func TestGearEvents(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	demo := c.user(t, "demo", nil)
	c.domain(t, demo, "demo")
	c.createApp(t, demo, "demo", "web", url.Values{"scale": {"true"}})
	c.event(t, demo, "demo", "web", "scale-up")
	gs := c.gears(t, "demo", "web")
	target, other := gs[1], gs[0]

	seq := c.lastSeq(t)
	var v api.Gear
	c.ok(t, "POST", "/broker/rest/gears/"+target.ID+"/events", demo, url.Values{"event": {"stop"}}, &v)
	if v.ID != target.ID {
		t.Fatalf("reply for gear %q, want %q", v.ID, target.ID)
	}
	for _, g := range c.gears(t, "demo", "web") {
		want := state.GearStarted
		if g.ID == target.ID {
			want = state.GearStopped
		}
		if g.State != want {
			t.Errorf("gear %s desired %s, want %s", g.ID, g.State, want)
		}
	}
	evs := c.eventsSince(t, seq)
	if len(evs) != 1 || evs[0].Action != state.ActionGearStop || evs[0].GearID != target.ID {
		t.Fatalf("events %+v, want one gear_stop of %s", evs, target.ID)
	}
	// Stopping it again changes nothing and appends nothing.
	c.ok(t, "POST", "/broker/rest/gears/"+target.ID+"/events", demo, url.Values{"event": {"stop"}}, nil)
	if n := len(c.eventsSince(t, seq)); n != 1 {
		t.Fatalf("%d events after a repeated stop, want 1", n)
	}
	// The app-scoped path starts it again.
	c.ok(t, "POST", appPath("demo", "web", "/gears/"+target.ID+"/events"), demo, url.Values{"event": {"start"}}, nil)
	if evs := c.eventsSince(t, seq); evs[len(evs)-1].Action != state.ActionGearStart {
		t.Fatalf("last event %s, want gear_start", evs[len(evs)-1].Action)
	}

	mallory := c.user(t, "mallory", nil)
	c.domain(t, mallory, "mal")
	c.createApp(t, mallory, "mal", "web", nil)
	tests := []struct {
		name string
		path string
		who  creds
		ev   string
		code int
		text string
	}{
		{"bad event", "/broker/rest/gears/" + target.ID + "/events", demo, "explode", http.StatusUnprocessableEntity, "Invalid gear event 'explode'"},
		{"unknown gear", "/broker/rest/gears/0123456789ab/events", demo, "stop", http.StatusNotFound, "not found"},
		{"someone else's gear", "/broker/rest/gears/" + other.ID + "/events", mallory, "stop", http.StatusForbidden, ""},
		{"gear of another app", appPath("mal", "web", "/gears/"+target.ID+"/events"), mallory, "stop", http.StatusNotFound, "not found in application"},
		{"no auth", "/broker/rest/gears/" + target.ID + "/events", nobody, "stop", http.StatusUnauthorized, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c.unchanged(t, func() {
				wantErr(t, c.do(t, "POST", tt.path, tt.who, url.Values{"event": {tt.ev}}), tt.code, tt.text)
			})
		})
	}
}
