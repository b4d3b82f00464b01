package broker

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"gearbox/broker/api"
	"gearbox/internal/testutil"
	"gearbox/store"
	"gearbox/store/state"
)

// alerts reads the alert feed as the admin.
func (c *testCluster) alerts(t testing.TB) []api.Alert {
	t.Helper()
	var out []api.Alert
	c.ok(t, "GET", "/broker/rest/alerts", basic(adminLogin, adminPassword), nil, &out)
	return out
}

func kinds(as []api.Alert) []string {
	var out []string
	for _, a := range as {
		out = append(out, a.Kind+":"+a.Node+a.AppName)
	}
	return out
}

// killNode stops node member name and waits until the broker no longer
// sees it alive. Healing passes see it gone from their next one on
// (waitHealPasses).
func (c *testCluster) killNode(t testing.TB, name string) {
	t.Helper()
	c.node(t, name).Close()
	// A member that stops without leaving is found dead by probes. On a
	// loaded machine memberlist's Lifeguard stretches its probe interval
	// and suspicion time (up to 8 times, as its own health sinks): it took
	// over 20 s once with the whole suite running on two cores.
	testutil.WaitFor(t, time.Minute, "the broker to see "+name+" gone", func() bool {
		for _, m := range c.st.Members() {
			if m.Name == name && m.Status == store.StatusAlive {
				return false
			}
		}
		return true
	})
}

// reportStarted writes the status a node writes for a gear it started.
func (c *testCluster) reportStarted(t testing.TB, g state.Gear) {
	t.Helper()
	st := state.GearStatus{ID: g.ID, Node: g.Node, State: state.GearStarted, UpdatedAt: time.Now()}
	if _, err := c.node(t, g.Node).st.Put(context.Background(), state.BucketGearStatus, g.ID, st); err != nil {
		t.Fatalf("report gear %s: %v", g.ID, err)
	}
}

// waitHealPasses waits for n more healing passes that saw the clock as it
// is now.
func (c *testCluster) waitHealPasses(t testing.TB, n int64) {
	t.Helper()
	want := c.b.healPasses.Load() + n
	testutil.WaitFor(t, 10*time.Second, "healing passes", func() bool { return c.b.healPasses.Load() >= want })
}

// TestLostNodeGearsReplaced: the gears of a node gone for the grace move
// to other nodes under the placement rules; the head passes to a live LB
// gear; alerts say so in order; the app recovers once the replacement
// is started.
func TestLostNodeGearsReplaced(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	demo := c.user(t, "demo", url.Values{"ha": {"true"}})
	c.domain(t, demo, "demo")
	c.createApp(t, demo, "demo", "web", url.Values{"scale": {"true"}})
	c.event(t, demo, "demo", "web", "make-ha")
	c.event(t, demo, "demo", "web", "scale-up")
	before := c.gears(t, "demo", "web")
	var head state.Gear
	for _, g := range before {
		if g.Head {
			head = g
		}
		c.reportStarted(t, g)
	}
	lost := head.Node
	seq := c.lastSeq(t)
	c.killNode(t, lost)

	// Within the grace nothing moves.
	c.waitHealPasses(t, 2)
	if gs := c.gears(t, "demo", "web"); !slices.Equal(gs, before) {
		t.Fatalf("gears changed within the grace:\n%+v\n%+v", before, gs)
	}
	c.clock.Advance(c.b.cfg.NodeFailureGrace)
	var gs []state.Gear
	testutil.WaitFor(t, 10*time.Second, "gears off "+lost, func() bool {
		gs = c.gears(t, "demo", "web")
		for _, g := range gs {
			if g.Node == lost {
				return false
			}
		}
		return true
	}, func() string { return fmt.Sprintf("%+v", gs) })
	if len(gs) != len(before) {
		t.Fatalf("%d gears, want %d", len(gs), len(before))
	}
	checkLBInvariants(t, gs, false)
	for i, g := range gs {
		if g.ID != before[i].ID {
			t.Fatalf("gear %d is %s, was %s: replacements keep the gear's id", i, g.ID, before[i].ID)
		}
		if g.ID == head.ID && g.Head {
			t.Fatalf("the lost head %s is still the head", g.ID)
		}
	}
	moved := gs[slices.IndexFunc(gs, func(g state.Gear) bool { return g.ID == head.ID })]
	if !moved.LB || moved.LBPort == 0 || moved.Port == 0 {
		t.Fatalf("moved gear %+v", moved)
	}
	// Routing layers drop the old endpoints and add the new ones.
	var removed, added int
	for _, e := range c.eventsSince(t, seq) {
		if e.GearID != head.ID {
			continue
		}
		switch {
		case e.Action == state.ActionRemovePublicEndpoint && e.PublicAddress == c.node(t, lost).ip:
			removed++
		case e.Action == state.ActionAddPublicEndpoint && e.PublicAddress == c.node(t, moved.Node).ip:
			added++
		}
	}
	if removed != 2 || added != 2 {
		t.Fatalf("endpoint events: %d removed, %d added, want 2 and 2: %v", removed, added, actions(c.eventsSince(t, seq)))
	}
	// node_failed, then gear_replaced; the app is degraded until its
	// replacement is reported started.
	var as []api.Alert
	testutil.WaitFor(t, 10*time.Second, "alerts", func() bool {
		as = c.alerts(t)
		return slices.ContainsFunc(as, func(a api.Alert) bool { return a.Kind == state.AlertAppDegraded })
	}, func() string { return strings.Join(kinds(as), " ") })
	want := []string{state.AlertNodeFailed + ":" + lost, state.AlertGearReplaced + ":" + lost + "web"}
	if got := kinds(as); len(got) < 2 || !slices.Equal(got[:2], want) {
		t.Fatalf("alerts %v, want %v first", got, want)
	}
	if as[1].Gear != head.ID || !strings.Contains(as[1].Action, moved.Node) {
		t.Fatalf("gear_replaced alert %+v", as[1])
	}
	c.reportStarted(t, moved)
	testutil.WaitFor(t, 10*time.Second, "app_recovered", func() bool {
		as = c.alerts(t)
		return as[len(as)-1].Kind == state.AlertAppRecovered
	}, func() string { return strings.Join(kinds(as), " ") })
	// A user sees the alerts of their apps only.
	var mine []api.Alert
	c.ok(t, "GET", "/broker/rest/alerts", demo, nil, &mine)
	for _, a := range mine {
		if a.AppName != "web" {
			t.Fatalf("user sees alert %+v", a)
		}
	}
	if len(mine) == 0 {
		t.Fatal("user sees no alert of their app")
	}
}

// TestHealingWaitsForANodeThatFits: an LB gear of an HA app on a lost
// node has nowhere to go when every other node holds one of the app's LB
// gears: the app is reported degraded, and the gear moves once a node
// joins.
func TestHealingWaitsForANodeThatFits(t *testing.T) {
	c := newCluster(t, clusterOpts{nodes: []nodeSpec{{name: "n1", zone: "z1"}, {name: "n2", zone: "z2"}}})
	demo := c.user(t, "demo", url.Values{"ha": {"true"}})
	c.domain(t, demo, "demo")
	c.createApp(t, demo, "demo", "web", url.Values{"scale": {"true"}})
	c.event(t, demo, "demo", "web", "make-ha")
	c.killNode(t, "n1")
	c.waitHealPasses(t, 2)
	c.clock.Advance(c.b.cfg.NodeFailureGrace)
	var as []api.Alert
	testutil.WaitFor(t, 10*time.Second, "app_degraded", func() bool {
		as = c.alerts(t)
		return slices.ContainsFunc(as, func(a api.Alert) bool {
			return a.Kind == state.AlertAppDegraded && strings.Contains(a.Reason, "cannot be replaced")
		})
	}, func() string { return fmt.Sprintf("%+v", as) })
	for _, g := range c.gears(t, "demo", "web") {
		if g.Node == "n2" && !g.Head {
			t.Fatalf("the LB gear on n2 is not the head: %+v", g)
		}
	}
	c.addNode(nodeSpec{name: "n3", zone: "z3"})
	testutil.WaitFor(t, 10*time.Second, "the lost LB gear on n3", func() bool {
		for _, g := range c.gears(t, "demo", "web") {
			if g.Node == "n1" {
				return false
			}
		}
		return true
	})
	checkLBInvariants(t, c.gears(t, "demo", "web"), false)
}

// TestHealingHoldsWhenMostNodesAreGone: with more than half of the nodes
// gone, the leader reports them and moves nothing.
func TestHealingHoldsWhenMostNodesAreGone(t *testing.T) {
	// A grace far longer than the test: only the clock's advance below
	// ends it, once both nodes are seen gone (on a loaded machine, seeing
	// the second one gone can take longer than the default grace).
	c := newCluster(t, clusterOpts{cfg: func(cfg *Config) { cfg.NodeFailureGrace = time.Hour }})
	demo := c.user(t, "demo", nil)
	c.domain(t, demo, "demo")
	c.createApp(t, demo, "demo", "web", url.Values{"scale": {"true"}})
	c.event(t, demo, "demo", "web", "scale-up")
	c.event(t, demo, "demo", "web", "scale-up")
	before := c.gears(t, "demo", "web")
	c.killNode(t, "n1")
	c.killNode(t, "n2")
	c.waitHealPasses(t, 2)
	c.clock.Advance(c.b.cfg.NodeFailureGrace)
	var as []api.Alert
	testutil.WaitFor(t, 10*time.Second, "node_failed alerts", func() bool {
		as = c.alerts(t)
		return len(as) >= 2
	}, func() string { return fmt.Sprintf("%+v", as) })
	for _, a := range as {
		if a.Kind != state.AlertNodeFailed || !strings.Contains(a.Action, "holding") {
			t.Fatalf("alert %+v", a)
		}
	}
	c.waitHealPasses(t, 2)
	if gs := c.gears(t, "demo", "web"); !slices.Equal(gs, before) {
		t.Fatalf("gears moved while most nodes are gone:\n%+v\n%+v", before, gs)
	}
}

// TestCrashingGearAlerted: a gear its node reports crashing raises one
// gear_crashing alert, with the end of its log; the app's gear view says
// so; once it runs again, a later crash loop is alerted again.
func TestCrashingGearAlerted(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	demo := c.user(t, "demo", nil)
	c.domain(t, demo, "demo")
	c.createApp(t, demo, "demo", "web", nil)
	g := c.gears(t, "demo", "web")[0]
	crash := func() {
		st := state.GearStatus{ID: g.ID, Node: g.Node, State: state.GearCrashing, UpdatedAt: time.Now(),
			Reason: "ended 6 times in 10m0s, last crashed: exit status 1; starting again in 5m0s", LogTail: []string{"boom"}}
		if _, err := c.node(t, g.Node).st.Put(context.Background(), state.BucketGearStatus, g.ID, st); err != nil {
			t.Fatal(err)
		}
	}
	crashing := func() int {
		n := 0
		for _, a := range c.alerts(t) {
			if a.Kind == state.AlertGearCrashing {
				if a.Gear != g.ID || a.AppName != "web" || a.Namespace != "demo" || !slices.Equal(a.Log, []string{"boom"}) || !strings.Contains(a.Reason, "exit status 1") {
					t.Errorf("alert %+v", a)
				}
				n++
			}
		}
		return n
	}
	crash()
	testutil.WaitFor(t, 10*time.Second, "gear_crashing alert", func() bool { return crashing() == 1 })
	var app api.App
	c.ok(t, "GET", appPath("demo", "web", "?include=gears"), demo, nil, &app)
	if len(app.Gears) != 1 || app.Gears[0].State != state.GearCrashing || !slices.Equal(app.Gears[0].LogTail, []string{"boom"}) {
		t.Errorf("gear view %+v, want crashing with its log tail", app.Gears)
	}
	// Later passes do not repeat it.
	c.waitHealPasses(t, 3)
	if n := crashing(); n != 1 {
		t.Errorf("%d gear_crashing alerts for one crash loop", n)
	}
	c.reportStarted(t, g)
	testutil.WaitFor(t, 10*time.Second, "the broker to see the gear started", func() bool {
		var st state.GearStatus
		_, err := c.st.Get(state.BucketGearStatus, g.ID, &st)
		return err == nil && st.State == state.GearStarted
	})
	c.waitHealPasses(t, 2)
	crash()
	testutil.WaitFor(t, 10*time.Second, "second gear_crashing alert", func() bool { return crashing() == 2 })
}

// TestNodeRemove: an admin removes a dead node: its gears are replaced
// at once (no grace), its member is forced out, and what it left in the
// store is erased on every member. An alive node is refused.
func TestNodeRemove(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	admin := basic(adminLogin, adminPassword)
	demo := c.user(t, "demo", url.Values{"ha": {"true"}})
	c.domain(t, demo, "demo")
	c.createApp(t, demo, "demo", "web", url.Values{"scale": {"true"}})
	c.event(t, demo, "demo", "web", "make-ha")
	before := c.gears(t, "demo", "web")
	for _, g := range before {
		c.reportStarted(t, g)
	}
	lost := before[0].Node
	// What the lost node wrote about itself as a router, a name server
	// and a router's ha- claim; an admin drained it.
	ln := c.node(t, lost)
	ctx := context.Background()
	for _, op := range []struct {
		bucket, key string
		v           any
	}{
		{state.BucketRouters, lost, state.Router{Name: lost, Addr: ln.ip}},
		{state.BucketNameServers, lost, state.NameServer{Name: lost, Addr: ln.ip}},
		{state.BucketHADNS, state.HADNSKey("demo/web", lost), state.HADNS{App: "demo/web", Router: lost, Addr: ln.ip}},
	} {
		if _, err := ln.st.Put(ctx, op.bucket, op.key, op.v); err != nil {
			t.Fatal(err)
		}
	}
	c.ok(t, "POST", "/broker/rest/nodes/"+lost+"/events", admin, url.Values{"event": {"drain"}}, nil)
	wantErr(t, c.do(t, "DELETE", "/broker/rest/nodes/"+lost, demo, nil), 403, "")
	wantErr(t, c.do(t, "DELETE", "/broker/rest/nodes/"+lost, admin, nil), 409, "is alive")
	wantErr(t, c.do(t, "DELETE", "/broker/rest/nodes/nosuch", admin, nil), 404, "Node 'nosuch' not found.")

	c.killNode(t, lost)
	c.ok(t, "DELETE", "/broker/rest/nodes/"+lost, admin, nil, nil)
	// At once: the clock does not move.
	gs := c.gears(t, "demo", "web")
	for _, g := range gs {
		if g.Node == lost {
			t.Fatalf("gear %s still on removed node %s", g.ID, lost)
		}
	}
	if len(gs) != len(before) {
		t.Fatalf("%d gears, want %d", len(gs), len(before))
	}
	checkLBInvariants(t, gs, false)
	for _, m := range c.st.Members() {
		if m.Name == lost {
			t.Errorf("removed member still listed: %+v", m)
		}
	}
	var nodes []api.Node
	c.ok(t, "GET", "/broker/rest/nodes", admin, nil, &nodes)
	if slices.ContainsFunc(nodes, func(n api.Node) bool { return n.Name == lost }) {
		t.Errorf("removed node still listed: %+v", nodes)
	}
	left := func(st *store.Store) []string {
		var out []string
		for _, b := range []string{state.BucketNodes, state.BucketRouters, state.BucketNameServers} {
			if _, err := st.GetRecord(b, lost); err == nil {
				out = append(out, b)
			}
		}
		if _, err := st.GetRecord(state.BucketHADNS, state.HADNSKey("demo/web", lost)); err == nil {
			out = append(out, state.BucketHADNS)
		}
		if ss, _ := list[state.GearStatus](st, state.BucketGearStatus); slices.ContainsFunc(ss, func(s state.GearStatus) bool { return s.Node == lost }) {
			out = append(out, state.BucketGearStatus)
		}
		return out
	}
	other := c.node(t, gs[0].Node)
	for _, st := range []*store.Store{c.st, other.st} {
		testutil.WaitFor(t, 20*time.Second, "the removed node's records gone from "+st.Name(), func() bool { return len(left(st)) == 0 },
			func() string { return fmt.Sprint(left(st)) })
	}
	as := c.alerts(t)
	i := slices.IndexFunc(as, func(a api.Alert) bool { return a.Kind == state.AlertNodeRemoved && a.Node == lost })
	j := slices.IndexFunc(as, func(a api.Alert) bool { return a.Kind == state.AlertGearReplaced && a.Node == lost })
	if i < 0 || j < i || !strings.Contains(as[j].Reason, "was removed") {
		t.Errorf("alerts %v: want node_removed, then gear_replaced", kinds(as))
	}
	// Healing, later, neither fails the node nor moves anything more.
	c.clock.Advance(c.b.cfg.NodeFailureGrace)
	c.waitHealPasses(t, 3)
	if got := c.gears(t, "demo", "web"); !slices.Equal(got, gs) {
		t.Errorf("gears moved after the removal:\n%+v\n%+v", gs, got)
	}
	if slices.ContainsFunc(c.alerts(t), func(a api.Alert) bool { return a.Kind == state.AlertNodeFailed }) {
		t.Errorf("a removed node reported failed: %v", kinds(c.alerts(t)))
	}
}

// TestHAEffective: GET of an HA app says whether its HA holds: not
// before two LB gears on two nodes are reported started, and not once
// the node of one of them is gone.
func TestHAEffective(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	demo := c.user(t, "demo", url.Values{"ha": {"true"}})
	c.domain(t, demo, "demo")
	c.createApp(t, demo, "demo", "web", url.Values{"scale": {"true"}})
	c.event(t, demo, "demo", "web", "make-ha")
	show := func() api.LBSummary {
		var a api.App
		c.ok(t, "GET", appPath("demo", "web"), demo, nil, &a)
		if a.LB == nil || a.LB.Effective == nil {
			t.Fatalf("app view %+v says nothing of HA", a)
		}
		return *a.LB
	}
	if s := show(); *s.Effective || s.Pending != "0 of its LB gears started" {
		t.Errorf("before any gear started: %+v", s)
	}
	var lbs []state.Gear
	for _, g := range c.gears(t, "demo", "web") {
		if g.LB {
			lbs = append(lbs, g)
		}
	}
	c.reportStarted(t, lbs[0])
	testutil.WaitFor(t, 10*time.Second, "one LB gear started", func() bool { return show().Pending == "1 of its LB gears started" })
	c.reportStarted(t, lbs[1])
	testutil.WaitFor(t, 10*time.Second, "HA effective", func() bool { return *show().Effective })
	c.killNode(t, lbs[1].Node)
	if s := show(); *s.Effective {
		t.Errorf("HA effective with the node of an LB gear gone: %+v", s)
	}
	var plain api.App
	c.createApp(t, demo, "demo", "solo", url.Values{"scale": {"true"}})
	c.ok(t, "GET", appPath("demo", "solo"), demo, nil, &plain)
	if plain.LB == nil || plain.LB.Effective != nil {
		t.Errorf("a scalable app that is not HA: %+v", plain.LB)
	}
}
