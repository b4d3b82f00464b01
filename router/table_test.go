package router

import (
	"fmt"
	"slices"
	"testing"

	"gearbox/store"
	"gearbox/store/state"
)

func TestNormalizeHost(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"ha-shop-ns.example.test", "ha-shop-ns.example.test"},
		{"HA-Shop-NS.Example.Test", "ha-shop-ns.example.test"},
		{"ha-shop-ns.example.test:8080", "ha-shop-ns.example.test"},
		{"ha-shop-ns.example.test.", "ha-shop-ns.example.test"},
		{"HA-shop-ns.example.test.:80", "ha-shop-ns.example.test"},
		{"[::1]:80", "[::1]"},
		{"[::1]", "[::1]"},
		{"", ""},
	} {
		if got := normalizeHost(tt.in); got != tt.want {
			t.Errorf("normalizeHost(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { normalizeHost("ha-shop-ns.example.test") }); n != 0 {
		t.Errorf("normalizeHost of a normal host allocates %v times", n)
	}
}

// buildRoutes derives each app's names and backends from the records and
// the members' statuses.
func TestBuildRoutes(t *testing.T) {
	names := hostNames{zone: "example.test", prefix: "ha-"}
	nodes := map[string]state.Node{"n1": {Name: "n1", Addr: "10.0.0.1"}, "n2": {Name: "n2", Addr: "10.0.0.2"},
		"n3": {Name: "n3", Addr: "10.0.0.3"}, "bad": {Name: "bad", Addr: "nowhere"}}
	alive := map[string]string{"n1": store.StatusAlive, "n2": store.StatusAlive, "n3": store.StatusAlive}
	shop := state.App{Name: "shop", Domain: "ns", Scalable: true, HA: true, Aliases: []string{"WWW.Shop.example.", "shop.example"}}
	lbg := func(id, node string, ordinal, lbPort int) state.Gear {
		return state.Gear{ID: id, App: "ns/shop", Node: node, LB: true, State: state.GearStarted, Ordinal: ordinal, Port: 40000 + ordinal, LBPort: lbPort}
	}
	web := state.Gear{ID: "web3", App: "ns/shop", Node: "n3", State: state.GearStarted, Ordinal: 3, Port: 40003}
	tests := []struct {
		name    string
		apps    []state.App
		gears   []state.Gear
		status  map[string]state.GearStatus
		members map[string]string
		names   hostNames
		// want, per app key: hosts, health path, backends as ID@addr.
		want map[string]string
	}{
		{
			name:  "HA scalable app: LB gears only, by ordinal",
			apps:  []state.App{shop},
			gears: []state.Gear{lbg("lb2", "n2", 2, 50002), web, lbg("lb1", "n1", 1, 50001)},
			want: map[string]string{"ns/shop": "[shop-ns.example.test ha-shop-ns.example.test www.shop.example shop.example] / " +
				"[lb1@10.0.0.1:50001 lb2@10.0.0.2:50002]"},
		},
		{
			name:  "not HA: no ha- name",
			apps:  []state.App{{Name: "shop", Domain: "ns", Scalable: true}},
			gears: []state.Gear{lbg("lb1", "n1", 1, 50001), web},
			want:  map[string]string{"ns/shop": "[shop-ns.example.test] / [lb1@10.0.0.1:50001]"},
		},
		{
			name:  "not scalable: its gear's web port",
			apps:  []state.App{{Name: "blog", Domain: "ns"}},
			gears: []state.Gear{{ID: "g1", App: "ns/blog", Node: "n1", State: state.GearStarted, Ordinal: 1, Port: 40001}},
			want:  map[string]string{"ns/blog": "[blog-ns.example.test] / [g1@10.0.0.1:40001]"},
		},
		{
			name: "stopped, portless, nodeless and failed-node gears left out",
			apps: []state.App{shop},
			gears: []state.Gear{lbg("lb1", "n1", 1, 50001), {ID: "lb2", App: "ns/shop", Node: "n2", LB: true, State: state.GearStopped, LBPort: 50002},
				lbg("lb3", "n3", 3, 0), lbg("lb4", "gone", 4, 50004), lbg("lb5", "bad", 5, 50005), lbg("lb6", "n2", 6, 50006),
				lbg("lb7", "n3", 7, 50007)},
			members: map[string]string{"n1": store.StatusAlive, "n2": store.StatusFailed, "n3": store.StatusLeft},
			want: map[string]string{"ns/shop": "[shop-ns.example.test ha-shop-ns.example.test www.shop.example shop.example] / " +
				"[lb1@10.0.0.1:50001]"},
		},
		{
			name:    "leaving and unknown members keep their gears",
			apps:    []state.App{shop},
			gears:   []state.Gear{lbg("lb1", "n1", 1, 50001), lbg("lb2", "n2", 2, 50002)},
			members: map[string]string{"n1": store.StatusLeaving},
			want: map[string]string{"ns/shop": "[shop-ns.example.test ha-shop-ns.example.test www.shop.example shop.example] / " +
				"[lb1@10.0.0.1:50001 lb2@10.0.0.2:50002]"},
		},
		{
			name:  "health path from env",
			apps:  []state.App{{Name: "shop", Domain: "ns", Scalable: true, Env: map[string]string{EnvHealthPath: " /ping "}}},
			gears: []state.Gear{lbg("lb1", "n1", 1, 50001)},
			status: map[string]state.GearStatus{
				"lb1": {State: state.GearStarted, Health: "/health"},
			},
			want: map[string]string{"ns/shop": "[shop-ns.example.test] /ping [lb1@10.0.0.1:50001]"},
		},
		{
			name:  "health path most started gears report; a bad env value is ignored",
			apps:  []state.App{{Name: "shop", Domain: "ns", Scalable: true, Env: map[string]string{EnvHealthPath: "ping"}}},
			gears: []state.Gear{lbg("lb1", "n1", 1, 50001), lbg("lb2", "n2", 2, 50002), web},
			status: map[string]state.GearStatus{
				"lb1":  {State: state.GearStarted, Health: "/health"},
				"lb2":  {State: state.GearStopped, Health: "/old"},
				"web3": {State: state.GearStarted, Health: "/health"},
			},
			want: map[string]string{"ns/shop": "[shop-ns.example.test] /health [lb1@10.0.0.1:50001 lb2@10.0.0.2:50002]"},
		},
		{
			name:  "ties of health paths go to the lower one",
			apps:  []state.App{{Name: "shop", Domain: "ns", Scalable: true}},
			gears: []state.Gear{lbg("lb1", "n1", 1, 50001), lbg("lb2", "n2", 2, 50002)},
			status: map[string]state.GearStatus{
				"lb1": {State: state.GearStarted, Health: "/b"},
				"lb2": {State: state.GearStarted, Health: "/a"},
			},
			want: map[string]string{"ns/shop": "[shop-ns.example.test] /a [lb1@10.0.0.1:50001 lb2@10.0.0.2:50002]"},
		},
		{
			name:  "prefix and suffix",
			apps:  []state.App{{Name: "shop", Domain: "ns", Scalable: true, HA: true}},
			names: hostNames{zone: "apps.example.com", prefix: "", suffix: "-ha"},
			want:  map[string]string{"ns/shop": "[shop-ns.apps.example.com shop-ns-ha.apps.example.com] / []"},
		},
		{
			name: "apps without gears route to nothing",
			apps: []state.App{shop, {Name: "blog", Domain: "ns"}},
			want: map[string]string{
				"ns/shop": "[shop-ns.example.test ha-shop-ns.example.test www.shop.example shop.example] / []",
				"ns/blog": "[blog-ns.example.test] / []",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snap := snapshot{apps: map[string]state.App{}, gears: tt.gears, status: tt.status, nodes: nodes, members: tt.members}
			if snap.members == nil {
				snap.members = alive
			}
			for _, a := range tt.apps {
				snap.apps[state.AppKey(a.Domain, a.Name)] = a
			}
			n := names
			if tt.names.zone != "" {
				n = tt.names
			}
			routes := buildRoutes(snap, n)
			got := map[string]string{}
			var keys []string
			for _, r := range routes {
				keys = append(keys, r.app)
				var bs []string
				for _, b := range r.backends {
					if b.HealthPath != r.health {
						t.Errorf("%s: backend %s checks %q, not the app's %q", r.app, b.ID, b.HealthPath, r.health)
					}
					bs = append(bs, b.ID+"@"+b.Addr)
				}
				got[r.app] = fmt.Sprintf("%v %s %v", r.hosts, r.health, bs)
				if bs == nil {
					got[r.app] = fmt.Sprintf("%v %s []", r.hosts, r.health)
				}
			}
			if !slices.IsSorted(keys) {
				t.Errorf("routes not sorted by app: %v", keys)
			}
			if len(got) != len(tt.want) {
				t.Errorf("routes %v, want %v", got, tt.want)
			}
			for k, w := range tt.want {
				if got[k] != w {
					t.Errorf("%s:\n got %s\nwant %s", k, got[k], w)
				}
			}
		})
	}
}
