package broker

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"gearbox/broker/api"
	"gearbox/internal/testutil"
	"gearbox/store/state"
)

// fakeNodes plays the nodes until the test ends: each gear is reported
// as its record asks on its node, on its deployment, with its data
// copied, and merged once asked, as node/datacopy.go does; a deployment
// whose archive holds a file called "broken" fails to build, the gear
// running what it ran. (A real node's part is tested in the node package
// and end to end.)
func (c *testCluster) fakeNodes(t testing.TB) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			gs, _ := list[state.Gear](c.st, state.BucketGears)
			statuses, _ := list[state.GearStatus](c.st, state.BucketGearStatus)
			have := map[string]state.GearStatus{}
			for _, s := range statuses {
				have[s.ID] = s
			}
			for _, g := range gs {
				want := state.GearStatus{ID: g.ID, Node: g.Node, State: g.State, Deployment: g.Deployment}
				if g.Deployment != "" && archiveHas(c.b.blobPath(g.Deployment), "broken") {
					want.Deployment, want.FailedDeployment = have[g.ID].Deployment, g.Deployment
					want.Reason = "build of deployment failed: exit status 1"
				}
				if g.Replaces != nil {
					want.DataCopy = state.DataCopied
					if g.Replaces.Final {
						want.DataCopy = state.DataMerged
					}
				}
				if s, ok := have[g.ID]; ok && s.Node == want.Node && s.State == want.State && s.DataCopy == want.DataCopy &&
					s.Deployment == want.Deployment && s.FailedDeployment == want.FailedDeployment {
					continue
				}
				want.UpdatedAt = time.Now()
				for _, n := range c.nodes {
					if n.name == g.Node {
						n.st.Put(ctx, state.BucketGearStatus, g.ID, want)
					}
				}
			}
			select {
			case <-ctx.Done():
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
}

// TestDrainEvacuates: a drained node's gears move off one at a time, each
// replacement placed and started before its original stops, the head
// passing on; the node ends empty and says so; alerts say where each
// gear went. --no-evacuate leaves the gears where they are.
func TestDrainEvacuates(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	admin := basic(adminLogin, adminPassword)
	demo := c.user(t, "demo", url.Values{"ha": {"true"}})
	c.domain(t, demo, "demo")
	c.createApp(t, demo, "demo", "web", url.Values{"scale": {"true"}})
	c.event(t, demo, "demo", "web", "make-ha")
	c.event(t, demo, "demo", "web", "scale-up")
	c.fakeNodes(t)
	before := c.gears(t, "demo", "web")
	var head state.Gear
	for _, g := range before {
		if g.Head {
			head = g
		}
	}
	drained := head.Node
	// A second gear on the drained node: moves go one at a time.
	c.ok(t, "POST", "/broker/rest/nodes/"+drained+"/events", admin, url.Values{"event": {"drain"}, "evacuate": {"false"}}, nil)
	for _, n := range c.nodes {
		if n.name != drained {
			c.ok(t, "POST", "/broker/rest/nodes/"+n.name+"/events", admin, url.Values{"event": {"drain"}, "evacuate": {"false"}}, nil)
		}
	}
	c.ok(t, "POST", "/broker/rest/nodes/"+drained+"/events", admin, url.Values{"event": {"undrain"}}, nil)
	c.event(t, demo, "demo", "web", "scale-up")
	for _, n := range c.nodes {
		c.ok(t, "POST", "/broker/rest/nodes/"+n.name+"/events", admin, url.Values{"event": {"undrain"}}, nil)
	}
	before = c.gears(t, "demo", "web")
	var moving []string
	for _, g := range before {
		if g.Node == drained {
			moving = append(moving, g.ID)
		}
	}
	seq := c.lastSeq(t)
	c.ok(t, "POST", "/broker/rest/nodes/"+drained+"/events", admin, url.Values{"event": {"drain"}}, nil)

	var gs []state.Gear
	testutil.WaitFor(t, 30*time.Second, "gears off "+drained, func() bool {
		gs = c.gears(t, "demo", "web")
		for _, g := range gs {
			if g.Node == drained || g.Replaces != nil {
				return false
			}
		}
		return len(gs) == len(before)
	}, func() string { return fmt.Sprintf("%+v", gs) })
	checkLBInvariants(t, gs, false)
	for _, g := range gs {
		if slices.Contains(moving, g.ID) {
			t.Errorf("gear %s of the drained node is still there", g.ID)
		}
	}
	// Each replacement's endpoint was added before its original stopped;
	// at most one move at a time.
	evs := c.eventsSince(t, seq)
	added, removed := map[string]int{}, map[string]bool{}
	inFlight := 0
	for i, e := range evs {
		switch e.Action {
		case state.ActionAddPublicEndpoint:
			if _, ok := added[e.GearID]; !ok {
				added[e.GearID] = i
				inFlight++
			}
		case state.ActionGearStop:
			if !slices.Contains(moving, e.GearID) {
				t.Errorf("gear %s stopped, not a drained one", e.GearID)
			}
			if inFlight != 1 {
				t.Errorf("gear %s stopped with %d replacements added", e.GearID, inFlight)
			}
		case state.ActionRemovePublicEndpoint:
			if !removed[e.GearID] {
				removed[e.GearID] = true
				inFlight--
			}
		}
	}
	if len(moving) < 2 {
		t.Fatalf("the drained node had %d gears, want 2 or more", len(moving))
	}
	if len(added) != len(moving) {
		t.Errorf("%d replacements added for %d gears: %v", len(added), len(moving), actions(evs))
	}
	var nodes []api.Node
	testutil.WaitFor(t, 10*time.Second, "evacuated", func() bool {
		c.ok(t, "GET", "/broker/rest/nodes", admin, nil, &nodes)
		for _, n := range nodes {
			if n.Name == drained {
				return n.Evacuation == "evacuated" && n.Gears == 0
			}
		}
		return false
	}, func() string { return fmt.Sprintf("%+v", nodes) })
	n := 0
	for _, a := range c.alerts(t) {
		if a.Kind == state.AlertGearReplaced && strings.Contains(a.Reason, "being drained") && strings.Contains(a.Action, "data directory carried") {
			n++
		}
	}
	if n != len(moving) {
		t.Errorf("%d gear_replaced alerts for %d moved gears: %v", n, len(moving), kinds(c.alerts(t)))
	}

	// --no-evacuate: nothing moves.
	other := gs[0].Node
	kept := c.gears(t, "demo", "web")
	c.ok(t, "POST", "/broker/rest/nodes/"+other+"/events", admin, url.Values{"event": {"drain"}, "evacuate": {"false"}}, nil)
	c.waitHealPasses(t, 3)
	if got := c.gears(t, "demo", "web"); !slices.EqualFunc(got, kept, func(a, b state.Gear) bool { return a.ID == b.ID && a.Node == b.Node }) {
		t.Errorf("gears moved off a node drained without evacuation:\n%+v\n%+v", kept, got)
	}
}
