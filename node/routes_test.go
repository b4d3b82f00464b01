package node

import (
	"testing"

	"gearbox/store/state"
)

func TestRoutes(t *testing.T) {
	g := func(id, app string, ordinal, port int, mod ...func(*state.Gear)) state.Gear {
		x := state.Gear{ID: id, App: state.AppKey("ns", app), AppName: app, Domain: "ns", State: state.GearStarted,
			Ordinal: ordinal, Port: port}
		for _, m := range mod {
			m(&x)
		}
		return x
	}
	stopped := func(x *state.Gear) { x.State = state.GearStopped }
	rotated := func(x *state.Gear) { x.RotatedOut = true }
	lb := func(port int, head bool) func(*state.Gear) {
		return func(x *state.Gear) { x.LB, x.LBPort, x.Head = true, port, head }
	}
	gears := []state.Gear{
		g("aaa1", "solo", 1, 1001),
		g("bbb1", "scaled", 1, 2001, rotated, lb(2901, true)),
		g("bbb2", "scaled", 2, 2002, stopped),
		g("bbb3", "scaled", 3, 2003),
		g("bbb4", "scaled", 4, 2004),
		g("ccc1", "down", 1, 3001, stopped),
		g("ddd1", "lbapp", 2, 4001, lb(4901, false)),
		g("ddd2", "lbapp", 1, 4002, lb(4902, true)),
	}
	apps := map[string]appInfo{state.AppKey("ns", "solo"): {aliases: []string{"www.Solo.example"}}}
	rt := buildRoutes(gears, apps, "apps.test", "10.0.0.5", map[string]bool{"ddd1": true, "ddd2": true})
	tests := []struct {
		host, want string
	}{
		{"solo-ns.apps.test", "10.0.0.5:1001"},
		{"SOLO-NS.Apps.Test:8080", "10.0.0.5:1001"},
		{"solo-ns.apps.test.", "10.0.0.5:1001"},
		{"www.solo.example", "10.0.0.5:1001"},
		{"aaa1-ns.apps.test", "10.0.0.5:1001"},
		{"bbb2-ns.apps.test", "10.0.0.5:2002"},
		// Started and not rotated out, lowest ordinal.
		{"scaled-ns.apps.test", "10.0.0.5:2003"},
		// All stopped: still routed, so that it answers 503, not 404.
		{"down-ns.apps.test", "10.0.0.5:3001"},
		// Running load balancers go first, the head's first.
		{"lbapp-ns.apps.test", "10.0.0.5:4902"},
		{"ddd1-ns.apps.test", "10.0.0.5:4001"},
		{"other-ns.apps.test", ""},
		{"solo-other.apps.test", ""},
		{"solo-ns.elsewhere.test", ""},
		{"", ""},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			got, ok := rt.route(tt.host)
			if ok != (tt.want != "") || got != tt.want {
				t.Errorf("route(%q) = %q, %v; want %q", tt.host, got, ok, tt.want)
			}
		})
	}
	// Without running load balancers an LB gear's app goes to a web port.
	rt = buildRoutes(gears, apps, "apps.test", "10.0.0.5", nil)
	if got, _ := rt.route("lbapp-ns.apps.test"); got != "10.0.0.5:4002" {
		t.Errorf("lbapp without running LBs routed to %q, want the first gear's web port 10.0.0.5:4002", got)
	}
}
