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

func TestNodes(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	demo := c.user(t, "demo", nil)
	c.domain(t, demo, "demo")
	c.createApp(t, demo, "demo", "web", nil)

	var ns []api.Node
	c.ok(t, "GET", "/broker/rest/nodes", admin, nil, &ns)
	if len(ns) != 3 {
		t.Fatalf("nodes %+v", ns)
	}
	total := 0
	for i, n := range ns {
		m := c.nodes[i]
		if n.Name != m.name || n.Addr != m.ip || n.Zone != fmt.Sprintf("z%d", i+1) || n.Region != "r1" || !n.Alive || n.Draining || n.MaxGears != 100 ||
			n.Isolation != "uid+cgroup1" {
			t.Fatalf("node %+v", n)
		}
		total += n.Gears
	}
	if total != 1 {
		t.Fatalf("nodes hold %d gears, want 1", total)
	}

	t.Run("events refused", func(t *testing.T) {
		c.unchanged(t, func() {
			wantErr(t, c.do(t, "POST", "/broker/rest/nodes/ghost/events", admin, url.Values{"event": {"drain"}}), 404, "Node 'ghost' not found")
			wantErr(t, c.do(t, "POST", "/broker/rest/nodes/n1/events", admin, url.Values{"event": {"explode"}}), 422, "Invalid node event 'explode' specified. Valid events are: drain, undrain.")
			wantErr(t, c.do(t, "POST", "/broker/rest/nodes/n1/events", admin, nil), 422, "Invalid node event")
		})
	})

	t.Run("drain", func(t *testing.T) {
		// (Evacuation is TestDrainEvacuates'.)
		r := c.ok(t, "POST", "/broker/rest/nodes/n1/events", admin, url.Values{"event": {"drain"}, "evacuate": {"false"}}, nil)
		if r.text() != "Node n1: drain done." {
			t.Fatalf("message %q", r.text())
		}
		c.ok(t, "POST", "/broker/rest/nodes/n2/events", admin, url.Values{"event": {"drain"}, "evacuate": {"false"}}, nil)
		c.ok(t, "GET", "/broker/rest/nodes", admin, nil, &ns)
		if !ns[0].Draining || !ns[1].Draining || ns[2].Draining {
			t.Fatalf("nodes %+v", ns)
		}
		for i := range 4 {
			a := c.createApp(t, demo, "demo", fmt.Sprintf("drained%d", i), url.Values{"scale": {"true"}})
			if a.Gears[0].Node != "n3" {
				t.Fatalf("gear placed on draining node %s", a.Gears[0].Node)
			}
		}
		a := c.event(t, demo, "demo", "drained0", "scale-up")
		if a.Gears[1].Node != "n3" {
			t.Fatalf("gear placed on draining node %s", a.Gears[1].Node)
		}
		// Draining all nodes leaves nowhere to place.
		c.ok(t, "POST", "/broker/rest/nodes/n3/events", admin, url.Values{"event": {"drain"}, "evacuate": {"false"}}, nil)
		c.unchanged(t, func() {
			wantErr(t, c.do(t, "POST", "/broker/rest/domains/demo/applications", demo, url.Values{"name": {"nowhere"}}), 422, "No nodes available for the specified gear size/region/zone combination")
			wantErr(t, c.do(t, "POST", appPath("demo", "drained0", "/events"), demo, url.Values{"event": {"scale-up"}}), 422, "No nodes available")
		})
		for _, n := range []string{"n1", "n2", "n3"} {
			c.ok(t, "POST", "/broker/rest/nodes/"+n+"/events", admin, url.Values{"event": {"undrain"}}, nil)
		}
		// Undrained, the empty nodes are preferred again.
		if a := c.createApp(t, demo, "demo", "back", nil); a.Gears[0].Node == "n3" {
			t.Fatalf("gear placed on the loaded node n3")
		}
	})
}

// TestPlacement checks placement through the API: anti-affinity and zone
// spread of LB gears, regions, capacity, minimum zones.
func TestPlacement(t *testing.T) {
	t.Run("HA spread", func(t *testing.T) {
		c := newCluster(t, clusterOpts{nodes: []nodeSpec{
			{name: "n1", zone: "z1"}, {name: "n2", zone: "z1"}, {name: "n3", zone: "z2"}, {name: "n4", zone: "z2"},
		}})
		demo := c.user(t, "demo", url.Values{"ha": {"true"}})
		c.domain(t, demo, "demo")
		for i := range 4 {
			a := c.createApp(t, demo, "demo", fmt.Sprintf("ha%d", i), url.Values{"ha": {"true"}})
			lbs := lbGears(a)
			if len(lbs) != 2 || lbs[0].Node == lbs[1].Node || lbs[0].Zone == lbs[1].Zone {
				t.Fatalf("LB gears %+v", lbs)
			}
			if a.LB.Nodes != 2 || a.LB.Zones != 2 || !a.LB.ReallyHA {
				t.Fatalf("load_balancers %+v", a.LB)
			}
			// The next two gears go to the nodes without any of the app's
			// gears: one per zone.
			c.event(t, demo, "demo", a.Name, "scale-up")
			a = c.event(t, demo, "demo", a.Name, "scale-up")
			if n := distinct(a.Gears, func(g api.Gear) string { return g.Node }); n != 4 {
				t.Fatalf("4 gears on %d nodes: %+v", n, a.Gears)
			}
		}
	})

	t.Run("regions", func(t *testing.T) {
		c := newCluster(t, clusterOpts{nodes: []nodeSpec{
			{name: "n1", zone: "z1", region: "east"}, {name: "n2", zone: "z2", region: "east"}, {name: "n3", zone: "z3", region: "west"},
		}})
		demo := c.user(t, "demo", url.Values{"ha": {"true"}})
		c.domain(t, demo, "demo")
		a := c.createApp(t, demo, "demo", "west", url.Values{"region": {"west"}, "scale": {"true"}})
		a = c.event(t, demo, "demo", "west", "scale-up")
		for _, g := range a.Gears {
			if g.Node != "n3" || g.Region != "west" {
				t.Fatalf("gear %+v outside region west", g)
			}
		}
		// One node in the region cannot hold two LB gears.
		c.unchanged(t, func() {
			wantErr(t, c.do(t, "POST", "/broker/rest/domains/demo/applications", demo, url.Values{"name": {"haw"}, "ha": {"true"}, "region": {"west"}}), 422, "No nodes available for the specified gear size/region/zone combination")
			// make-ha cannot promote gear 2 (same node) nor add an LB gear.
			wantErr(t, c.do(t, "POST", appPath("demo", "west", "/events"), demo, url.Values{"event": {"make-ha"}}), 422, "No nodes available")
			wantErr(t, c.do(t, "POST", "/broker/rest/domains/demo/applications", demo, url.Values{"name": {"x"}, "region": {"north"}}), 422, "Region 'north' has no nodes")
		})
		a = c.createApp(t, demo, "demo", "east", url.Values{"region": {"east"}, "ha": {"true"}})
		if a.Region != "east" || a.LB.Nodes != 2 {
			t.Fatalf("app %+v", a)
		}
		// Gears of a pinned app do not move out of their region.
		c.unchanged(t, func() {
			wantErr(t, c.do(t, "POST", "/broker/rest/gears/"+a.Gears[0].ID+"/move", admin, url.Values{"node": {"n3"}}), 422, "pinned to region 'east'")
		})
		// A region whose nodes are all draining has none available.
		c.ok(t, "POST", "/broker/rest/nodes/n3/events", admin, url.Values{"event": {"drain"}, "evacuate": {"false"}}, nil)
		c.unchanged(t, func() {
			wantErr(t, c.do(t, "POST", "/broker/rest/domains/demo/applications", demo, url.Values{"name": {"y"}, "region": {"west"}}), 422, "No nodes available for the specified gear size/region/zone combination")
			wantErr(t, c.do(t, "POST", appPath("demo", "west", "/events"), demo, url.Values{"event": {"scale-up"}}), 422, "No nodes available")
		})
	})

	t.Run("capacity", func(t *testing.T) {
		c := newCluster(t, clusterOpts{nodes: []nodeSpec{
			{name: "n1", zone: "z1", maxGears: 1}, {name: "n2", zone: "z2", maxGears: 2},
		}})
		demo := c.user(t, "demo", nil)
		c.domain(t, demo, "demo")
		for i := range 3 {
			c.createApp(t, demo, "demo", fmt.Sprintf("a%d", i), nil)
		}
		c.unchanged(t, func() {
			wantErr(t, c.do(t, "POST", "/broker/rest/domains/demo/applications", demo, url.Values{"name": {"full"}}), 422, "No nodes available")
		})
		var ns []api.Node
		c.ok(t, "GET", "/broker/rest/nodes", admin, nil, &ns)
		if ns[0].Gears != 1 || ns[1].Gears != 2 {
			t.Fatalf("nodes %+v", ns)
		}
		c.ok(t, "DELETE", appPath("demo", "a0"), demo, nil, nil)
		c.createApp(t, demo, "demo", "fits", nil)
	})

	t.Run("minimum zones", func(t *testing.T) {
		c := newCluster(t, clusterOpts{cfg: func(cfg *Config) { cfg.ZonesMinPerGearGroup = 4 }})
		demo := c.user(t, "demo", nil)
		c.domain(t, demo, "demo")
		c.unchanged(t, func() {
			wantErr(t, c.do(t, "POST", "/broker/rest/domains/demo/applications", demo, url.Values{"name": {"web"}}), 422,
				"Unable to find minimum zones required for application gear group. Available zones:3, Needed min zones:4")
		})
	})

	t.Run("dead node", func(t *testing.T) {
		c := newCluster(t, clusterOpts{})
		demo := c.user(t, "demo", nil)
		c.domain(t, demo, "demo")
		gone := c.node(t, "n1")
		if err := gone.st.Leave(t.Context()); err != nil {
			t.Fatal(err)
		}
		testutil.WaitFor(t, 10*time.Second, "n1 gone", func() bool {
			for _, m := range c.st.Members() {
				if m.Name == "n1" {
					return m.Status != "alive"
				}
			}
			return true
		})
		for i := range 4 {
			if a := c.createApp(t, demo, "demo", fmt.Sprintf("a%d", i), nil); a.Gears[0].Node == "n1" {
				t.Fatal("gear placed on a node that left")
			}
		}
		var ns []api.Node
		c.ok(t, "GET", "/broker/rest/nodes", admin, nil, &ns)
		if ns[0].Name != "n1" || ns[0].Alive {
			t.Fatalf("nodes %+v", ns)
		}
	})
}

// TestMakeHAAddsGearWhenNoneCanBePromoted: when every gear of an app
// shares the head's node, make-ha adds a new LB gear elsewhere rather than
// failing.
func TestMakeHAAddsGearWhenNoneCanBePromoted(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	demo := c.user(t, "demo", url.Values{"ha": {"true"}})
	c.domain(t, demo, "demo")
	c.createApp(t, demo, "demo", "web", url.Values{"scale": {"true"}})
	head := c.gears(t, "demo", "web")[0].Node
	for _, n := range c.nodes {
		if n.name != head {
			c.ok(t, "POST", "/broker/rest/nodes/"+n.name+"/events", admin, url.Values{"event": {"drain"}, "evacuate": {"false"}}, nil)
		}
	}
	c.event(t, demo, "demo", "web", "scale-up")
	for _, n := range c.nodes {
		c.ok(t, "POST", "/broker/rest/nodes/"+n.name+"/events", admin, url.Values{"event": {"undrain"}}, nil)
	}
	a := c.event(t, demo, "demo", "web", "make-ha")
	gs := c.gears(t, "demo", "web")
	if len(gs) != 3 || !slices.Equal(lbOrdinals(gs), []int{1, 3}) || !a.LB.ReallyHA {
		t.Fatalf("after make-ha: LB gears %v of %d, load_balancers %+v", lbOrdinals(gs), len(gs), a.LB)
	}
	checkLBInvariants(t, gs, false)
}

// A gear whose move is under way is not moved again, nor is its
// replacement, until the move is over.
func TestMoveGearUnderWay(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	admin := basic(adminLogin, adminPassword)
	demo := c.user(t, "demo", nil)
	c.domain(t, demo, "demo")
	c.createApp(t, demo, "demo", "web", url.Values{"scale": {"true"}})
	c.event(t, demo, "demo", "web", "scale-up")
	g := c.gears(t, "demo", "web")[1]
	var target string
	for _, n := range c.nodes {
		if n.name != g.Node {
			target = n.name
		}
	}
	var rg api.Gear
	c.ok(t, "POST", "/broker/rest/gears/"+g.ID+"/move", admin, url.Values{"node": {target}}, &rg)
	c.unchanged(t, func() {
		wantErr(t, c.do(t, "POST", "/broker/rest/gears/"+g.ID+"/move", admin, url.Values{"node": {target}}), http.StatusConflict,
			fmt.Sprintf("Gear '%s' is already being moved, to node '%s' as gear '%s'.", g.ID, target, rg.ID))
		wantErr(t, c.do(t, "POST", "/broker/rest/gears/"+rg.ID+"/move", admin, url.Values{"node": {g.Node}}), http.StatusConflict,
			fmt.Sprintf("Gear '%s' is still replacing gear '%s'", rg.ID, g.ID))
	})
}

func TestMoveGear(t *testing.T) {
	c := newCluster(t, clusterOpts{nodes: []nodeSpec{
		{name: "n1", zone: "z1"}, {name: "n2", zone: "z2"}, {name: "n3", zone: "z1"}, {name: "n4", zone: "z2"},
	}})
	demo := c.user(t, "demo", url.Values{"ha": {"true"}})
	c.domain(t, demo, "demo")
	c.createApp(t, demo, "demo", "web", url.Values{"ha": {"true"}})
	c.event(t, demo, "demo", "web", "scale-up")
	gs := c.gears(t, "demo", "web")
	lb1, lb2, web := gs[0], gs[1], gs[2]
	if !lb1.LB || !lb2.LB || web.LB {
		t.Fatalf("gears %+v", gs)
	}
	zone := map[string]string{"n1": "z1", "n2": "z2", "n3": "z1", "n4": "z2"}
	// A node in lb1's zone other than lb1's, and one with no gear of the app.
	var sameZone, free string
	for _, n := range []string{"n1", "n2", "n3", "n4"} {
		if n != lb1.Node && zone[n] == zone[lb1.Node] {
			sameZone = n
		}
		if n != lb1.Node && n != lb2.Node && n != web.Node {
			free = n
		}
	}
	move := func(who creds, id string, v url.Values) response {
		return c.do(t, "POST", "/broker/rest/gears/"+id+"/move", who, v)
	}

	t.Run("refused", func(t *testing.T) {
		c.ok(t, "POST", "/broker/rest/nodes/"+free+"/events", admin, url.Values{"event": {"drain"}, "evacuate": {"false"}}, nil)
		defer c.ok(t, "POST", "/broker/rest/nodes/"+free+"/events", admin, url.Values{"event": {"undrain"}}, nil)
		c.unchanged(t, func() {
			wantErr(t, move(admin, lb2.ID, url.Values{"node": {lb1.Node}}), http.StatusConflict, "would put LB gears of HA application 'web' on one node; pass force=true")
			if zone[lb2.Node] != zone[sameZone] {
				wantErr(t, move(admin, lb2.ID, url.Values{"node": {sameZone}}), http.StatusConflict, "would put all LB gears of HA application 'web' in one zone")
			}
			wantErr(t, move(admin, "ghost", url.Values{"node": {"n1"}}), 404, "Gear 'ghost' not found")
			wantErr(t, move(admin, web.ID, url.Values{"node": {"ghost"}}), 404, "Node 'ghost' not found")
			wantErr(t, move(admin, web.ID, url.Values{}), 422, "Pass node=NAME")
			wantErr(t, move(admin, web.ID, url.Values{"node": {web.Node}}), 422, "already on node")
			wantErr(t, move(admin, web.ID, url.Values{"node": {free}}), 422, "is draining")
			wantErr(t, move(admin, web.ID, url.Values{"node": {lb1.Node}, "force": {"maybe"}}), 422, "true or false")
			wantErr(t, move(demo, web.ID, url.Values{"node": {lb1.Node}}), http.StatusForbidden, "administrator")
		})
	})

	// Nodes that report each gear as its record asks, with its data
	// copied: moves run to their end.
	c.fakeNodes(t)
	// moveDone moves gear id to node (forced or not) and waits until the
	// move is over; it returns the replacement's record and the reply's
	// message.
	moveDone := func(t *testing.T, id, node string, force bool) (state.Gear, string) {
		t.Helper()
		var gv api.Gear
		r := c.ok(t, "POST", "/broker/rest/gears/"+id+"/move", admin, url.Values{"node": {node}, "force": {fmt.Sprint(force)}}, &gv)
		if gv.Node != node || gv.ID == id {
			t.Fatalf("move of %s to %s: replacement %+v", id, node, gv)
		}
		var rg state.Gear
		testutil.WaitFor(t, 20*time.Second, "the move of "+id+" done", func() bool {
			rg = state.Gear{}
			for _, g := range c.gears(t, "demo", "web") {
				if g.ID == id {
					return false
				}
				if g.ID == gv.ID {
					rg = g
				}
			}
			return rg.ID != "" && rg.Replaces == nil
		})
		return rg, r.text()
	}

	t.Run("web gear", func(t *testing.T) {
		seq := c.lastSeq(t)
		moved, msg := moveDone(t, web.ID, free, false)
		if moved.Node != free || moved.LB || msg != fmt.Sprintf("Gear %s moves from %s to %s as gear %s: it starts there with a copy of the data directory, and %s stops once it serves ('gearbox alerts' says when the move is done).", web.ID, web.Node, free, moved.ID, web.ID) {
			t.Fatalf("moved %+v, %q", moved, msg)
		}
		if n := len(c.gears(t, "demo", "web")); n != 3 {
			t.Fatalf("%d gears after the move, want 3", n)
		}
		// Routers learn the new endpoint first, then that the old one
		// stops and is gone.
		evs := c.eventsSince(t, seq)
		if got := actions(evs); !slices.Equal(got, []string{"add_public_endpoint", "gear_stop", "remove_public_endpoint"}) {
			t.Fatalf("events %v", got)
		}
		if evs[0].GearID != moved.ID || evs[0].PublicAddress != c.node(t, free).ip || evs[0].PublicPort != moved.Port {
			t.Fatalf("add event %+v", evs[0])
		}
		if evs[2].GearID != web.ID || evs[2].PublicAddress != c.node(t, web.Node).ip || evs[2].PublicPort != web.Port {
			t.Fatalf("remove event %+v does not name the old endpoint %s:%d", evs[2], c.node(t, web.Node).ip, web.Port)
		}
		web = moved
	})

	t.Run("LB gear", func(t *testing.T) {
		// To a node without an LB gear, in another zone than lb1: fine.
		target := ""
		for _, n := range []string{"n1", "n2", "n3", "n4"} {
			if n != lb1.Node && n != lb2.Node && zone[n] != zone[lb1.Node] {
				target = n
			}
		}
		seq := c.lastSeq(t)
		moved, _ := moveDone(t, lb2.ID, target, false)
		evs := c.eventsSince(t, seq)
		if got := actions(evs); !slices.Equal(got, []string{"add_public_endpoint", "add_public_endpoint", "gear_stop", "remove_public_endpoint", "remove_public_endpoint"}) {
			t.Fatalf("events %v", got)
		}
		for _, e := range evs[3:] {
			if e.PublicAddress != c.node(t, lb2.Node).ip || e.GearID != lb2.ID {
				t.Fatalf("remove event %+v", e)
			}
		}
		if !slices.Equal(evs[4].Types, []string{"load_balancer"}) || evs[4].PublicPort != lb2.LBPort {
			t.Fatalf("LB remove event %+v, gear %+v", evs[4], lb2)
		}
		if !moved.LB || moved.Node != target {
			t.Fatalf("replacement %+v", moved)
		}
		lb2 = moved
		if a := c.show(t, demo, "demo", "web"); !a.LB.ReallyHA || a.LB.Nodes != 2 || a.LB.Zones != 2 {
			t.Fatalf("load_balancers %+v", a.LB)
		}
	})

	t.Run("forced", func(t *testing.T) {
		moveDone(t, lb2.ID, lb1.Node, true)
		a := c.show(t, demo, "demo", "web")
		if a.LB.ReallyHA || a.LB.Nodes != 1 || a.LB.Zones != 1 || a.LB.Gears != 2 {
			t.Fatalf("load_balancers %+v after forcing both LB gears onto one node", a.LB)
		}
		// Ports stay distinct on the shared node.
		gs := c.gears(t, "demo", "web")
		ports := map[int]bool{}
		for _, g := range gs {
			if g.Node != lb1.Node {
				continue
			}
			for _, p := range []int{g.Port, g.LBPort} {
				if p != 0 && ports[p] {
					t.Fatalf("port %d used twice on %s", p, lb1.Node)
				}
				ports[p] = true
			}
		}
	})
}
