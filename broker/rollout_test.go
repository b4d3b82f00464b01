package broker

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"gearbox/broker/api"
	"gearbox/internal/testutil"
	"gearbox/store/state"
)

// report writes gear g's status as its node would: from the node's own
// member, started on deployment dep.
func (c *testCluster) report(t testing.TB, g state.Gear, st, dep string) {
	t.Helper()
	n := c.node(t, g.Node)
	s := state.GearStatus{ID: g.ID, Node: g.Node, State: st, Deployment: dep, UpdatedAt: time.Now()}
	if _, err := n.st.Put(context.Background(), state.BucketGearStatus, g.ID, s); err != nil {
		t.Fatal(err)
	}
}

// waitRolloutPasses waits until the leader's roll-out loop has made n
// more passes.
func (c *testCluster) waitRolloutPasses(t testing.TB, n int64) {
	t.Helper()
	from := c.b.rolloutPasses.Load()
	testutil.WaitFor(t, 10*time.Second, fmt.Sprintf("%d passes of the roll-out loop", n), func() bool {
		return c.b.rolloutPasses.Load() >= from+n
	})
}

// rollout reads the app's roll-out through the API.
func (c *testCluster) rollout(t testing.TB, ns, name string) api.Rollout {
	t.Helper()
	var r api.Rollout
	c.ok(t, "GET", appPath(ns, name, "/rollout"), admin, nil, &r)
	return r
}

// onDeployment splits the app's gears by whether their record asks for
// dep.
func onDeployment(gs []state.Gear, dep string) (moved, not []state.Gear) {
	for _, g := range gs {
		if g.Deployment == dep {
			moved = append(moved, g)
		} else {
			not = append(not, g)
		}
	}
	return moved, not
}

// badRollout makes ns/web a scaled app of two gears that run a first
// deployment, old, then deploys bad (an archive of files) and waits until
// the roll-out has moved one gear, stuck, to it.
func (c *testCluster) badRollout(t *testing.T, files map[string]string) (old, bad []byte, stuck state.Gear) {
	t.Helper()
	c.domain(t, admin, "ns")
	c.createApp(t, admin, "ns", "web", url.Values{"scale": {"true"}})
	c.event(t, admin, "ns", "web", "scale-up")
	old = testArchive(t, map[string]string{"index.html": "old"})
	c.deploy(t, admin, "ns", "web", old)
	testutil.WaitFor(t, 10*time.Second, "gears on the old deployment", func() bool {
		moved, _ := onDeployment(c.gears(t, "ns", "web"), sha(old))
		for _, g := range moved {
			c.report(t, g, state.GearStarted, sha(old))
		}
		return len(moved) == 2
	})
	testutil.WaitFor(t, 10*time.Second, "first roll-out done", func() bool { return c.rollout(t, "ns", "web").State == state.RolloutDone })
	bad = testArchive(t, files)
	c.deploy(t, admin, "ns", "web", bad)
	testutil.WaitFor(t, 10*time.Second, "one gear moved to the bad deployment", func() bool {
		moved, _ := onDeployment(c.gears(t, "ns", "web"), sha(bad))
		if len(moved) == 1 {
			stuck = moved[0]
		}
		return len(moved) == 1
	})
	return old, bad, stuck
}

// A deployment moves one gear at a time: the next only once the moved
// gear reports itself started on the new deployment.
func TestRolloutOneGearAtATime(t *testing.T) {
	// Load balancers take (3+1) x 15 s to take a gear back.
	c := newCluster(t, clusterOpts{cfg: func(cfg *Config) { cfg.LBCheckInterval = 15 * time.Second }})
	c.domain(t, admin, "ns")
	c.createApp(t, admin, "ns", "web", url.Values{"scale": {"true"}})
	c.event(t, admin, "ns", "web", "scale-up")
	c.event(t, admin, "ns", "web", "scale-up")
	gs := c.gears(t, "ns", "web")
	if len(gs) != 3 {
		t.Fatalf("%d gears, want 3", len(gs))
	}
	for _, g := range gs {
		c.report(t, g, state.GearStarted, "")
	}

	archive := testArchive(t, map[string]string{"gearbox.yml": "web: ./server\n"})
	id := sha(archive)
	if r := c.deploy(t, admin, "ns", "web", archive); r.code != http.StatusCreated {
		t.Fatalf("deploy: %d %s", r.code, r.text())
	}
	seen := map[string]bool{}
	for step := 1; step <= 3; step++ {
		var moved []state.Gear
		testutil.WaitFor(t, 10*time.Second, fmt.Sprintf("step %d: %d gears moved", step, step), func() bool {
			moved, _ = onDeployment(c.gears(t, "ns", "web"), id)
			return len(moved) == step
		})
		var next state.Gear
		for _, g := range moved {
			if !seen[g.ID] {
				next = g
			}
		}
		seen[next.ID] = true
		r := c.rollout(t, "ns", "web")
		if r.State != state.RolloutRolling || r.Gear != next.ID || r.Done != step-1 || r.Total != 3 || r.Deployment != id {
			t.Fatalf("step %d: rollout %+v, want rolling gear %s, done %d of 3", step, r, next.ID, step-1)
		}
		// However long the moved gear takes, no other gear moves.
		c.waitRolloutPasses(t, 2)
		if moved, _ := onDeployment(c.gears(t, "ns", "web"), id); len(moved) != step {
			t.Fatalf("step %d: %d gears moved while gear %s had not passed its check", step, len(moved), next.ID)
		}
		c.report(t, next, state.GearStarted, id)
		// Healthy: the next gear waits until load balancers have had the
		// time to take this one back.
		testutil.WaitFor(t, 10*time.Second, "roll-out waiting for load balancers", func() bool {
			return strings.Contains(c.rollout(t, "ns", "web").Message, "waiting 1m0s for load balancers")
		})
		c.waitRolloutPasses(t, 2)
		if moved, _ := onDeployment(c.gears(t, "ns", "web"), id); len(moved) != step {
			t.Fatalf("step %d: %d gears moved before load balancers could take gear %s back", step, len(moved), next.ID)
		}
		c.clock.Advance(time.Minute)
	}
	testutil.WaitFor(t, 10*time.Second, "roll-out done", func() bool {
		r := c.rollout(t, "ns", "web")
		return r.State == state.RolloutDone && r.Done == 3 && r.Total == 3
	})
}

// A restart is rolled out like a deployment: one gear at a time, each
// once the one before runs again; a gear added meanwhile starts with the
// app's restart count.
func TestRolloutRestart(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	c.domain(t, admin, "ns")
	c.createApp(t, admin, "ns", "web", url.Values{"scale": {"true"}})
	c.event(t, admin, "ns", "web", "scale-up")
	c.event(t, admin, "ns", "web", "scale-up")
	for _, g := range c.gears(t, "ns", "web") {
		c.report(t, g, state.GearStarted, "")
	}
	c.event(t, admin, "ns", "web", "restart")
	restarted := func() []state.Gear {
		var out []state.Gear
		for _, g := range c.gears(t, "ns", "web") {
			if g.Restarts == 1 {
				out = append(out, g)
			}
		}
		return out
	}
	seen := map[string]bool{}
	for step := 1; step <= 3; step++ {
		testutil.WaitFor(t, 10*time.Second, fmt.Sprintf("%d gears restarted", step), func() bool { return len(restarted()) == step })
		c.waitRolloutPasses(t, 2)
		if n := len(restarted()); n != step {
			t.Fatalf("step %d: %d gears restarted before the restarted one ran again", step, n)
		}
		for _, g := range restarted() {
			if !seen[g.ID] {
				seen[g.ID] = true
				s := state.GearStatus{ID: g.ID, Node: g.Node, State: state.GearStarted, Restarts: 1, UpdatedAt: time.Now()}
				if _, err := c.node(t, g.Node).st.Put(context.Background(), state.BucketGearStatus, g.ID, s); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	testutil.WaitFor(t, 10*time.Second, "restart done", func() bool {
		r := c.rollout(t, "ns", "web")
		return r.State == state.RolloutDone && r.Restarts == 1 && r.Done == 3
	})
	c.event(t, admin, "ns", "web", "scale-up")
	gs := c.gears(t, "ns", "web")
	if last := gs[len(gs)-1]; last.Restarts != 1 {
		t.Errorf("gear added after the restart has restarts %d, want 1", last.Restarts)
	}
}

// A gear that does not pass its check in time stops the roll-out; the
// other gears keep what they ran. Passing later resumes it; activating
// the old deployment rolls back.
func TestRolloutFailsAndRollsBack(t *testing.T) {
	c := newCluster(t, clusterOpts{cfg: func(cfg *Config) { cfg.RolloutTimeout = time.Minute }})
	old, bad, stuck := c.badRollout(t, map[string]string{"gearbox.yml": "web: exit 1\n"})
	c.report(t, stuck, state.GearStopped, "")
	c.clock.Advance(2 * time.Minute)
	testutil.WaitFor(t, 10*time.Second, "roll-out failed", func() bool { return c.rollout(t, "ns", "web").State == state.RolloutFailed })
	r := c.rollout(t, "ns", "web")
	if !strings.Contains(r.Message, stuck.ID) || !strings.Contains(r.Message, "health check") || r.Done != 0 || r.Total != 2 {
		t.Errorf("failed roll-out %+v: want the stuck gear named and 0 of 2 done", r)
	}
	if moved, _ := onDeployment(c.gears(t, "ns", "web"), sha(bad)); len(moved) != 1 {
		t.Fatalf("%d gears on the bad deployment after the failure, want 1", len(moved))
	}

	// Rollback: the stuck gear goes back to the old deployment.
	c.ok(t, "POST", appPath("ns", "web", "/events"), admin, url.Values{"event": {"activate"}, "deployment_id": {sha(old)}}, nil)
	testutil.WaitFor(t, 10*time.Second, "stuck gear back on the old deployment", func() bool {
		moved, _ := onDeployment(c.gears(t, "ns", "web"), sha(old))
		return len(moved) == 2
	})
	c.report(t, stuck, state.GearStarted, sha(old))
	testutil.WaitFor(t, 10*time.Second, "rollback done", func() bool {
		r := c.rollout(t, "ns", "web")
		return r.State == state.RolloutDone && r.Deployment == sha(old) && r.Done == 2
	})
}

// A roll-out stops at once, without waiting for its timeout, when the
// moved gear's node says the gear cannot run the deployment (its build
// failed, its new process failed beside the running one) or the gear
// crashes on it; and goes on if the gear runs it after all.
func TestRolloutFailsAtOnceOnFailedDeployment(t *testing.T) {
	for _, tt := range []struct {
		name string
		st   func(g state.Gear, bad string) state.GearStatus
	}{
		{"build failed", func(g state.Gear, bad string) state.GearStatus {
			return state.GearStatus{ID: g.ID, Node: g.Node, State: state.GearStarted, Reason: "deployment failed: build exited 2", FailedDeployment: bad}
		}},
		{"crashing", func(g state.Gear, bad string) state.GearStatus {
			return state.GearStatus{ID: g.ID, Node: g.Node, State: state.GearCrashing, Reason: "ended 6 times", Deployment: bad}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := newCluster(t, clusterOpts{}) // the default timeout: 10 minutes
			_, bad, stuck := c.badRollout(t, map[string]string{"gearbox.yml": "web: ./serve\nbuild: exit 2\n"})
			c.waitRolloutPasses(t, 2)
			if r := c.rollout(t, "ns", "web"); r.State != state.RolloutRolling {
				t.Fatalf("roll-out %+v before the node reported, want rolling", r)
			}
			st := tt.st(stuck, sha(bad))
			st.UpdatedAt = time.Now()
			if _, err := c.node(t, stuck.Node).st.Put(context.Background(), state.BucketGearStatus, stuck.ID, st); err != nil {
				t.Fatal(err)
			}
			testutil.WaitFor(t, 10*time.Second, "roll-out failed with no time passed", func() bool { return c.rollout(t, "ns", "web").State == state.RolloutFailed })
			if r := c.rollout(t, "ns", "web"); !strings.Contains(r.Message, stuck.ID) || !strings.Contains(r.Message, st.Reason) {
				t.Errorf("failed roll-out says %q: want the gear and the node's reason", r.Message)
			}
			if moved, _ := onDeployment(c.gears(t, "ns", "web"), sha(bad)); len(moved) != 1 {
				t.Fatalf("%d gears on the bad deployment after the failure, want 1", len(moved))
			}
			// A retry that works: the roll-out goes on.
			c.report(t, stuck, state.GearStarted, sha(bad))
			testutil.WaitFor(t, 10*time.Second, "roll-out going on", func() bool {
				moved, _ := onDeployment(c.gears(t, "ns", "web"), sha(bad))
				for _, g := range moved {
					c.report(t, g, state.GearStarted, sha(bad))
				}
				return c.rollout(t, "ns", "web").State == state.RolloutDone
			})
		})
	}
}

// Gears that take no traffic (stopped, or on a node that is not alive)
// are moved at once: they run the deployment when they come back, and do
// not hold up the others.
func TestRolloutSkipsStoppedAndDeadGears(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	c.domain(t, admin, "ns")
	c.createApp(t, admin, "ns", "web", url.Values{"scale": {"true"}})
	c.event(t, admin, "ns", "web", "scale-up")
	c.event(t, admin, "ns", "web", "scale-up")
	gs := c.gears(t, "ns", "web")
	for _, g := range gs {
		c.report(t, g, state.GearStarted, "")
	}
	stopped, dead := gs[1], gs[2]
	c.ok(t, "POST", "/broker/rest/gears/"+stopped.ID+"/events", admin, url.Values{"event": {"stop"}}, nil)
	c.report(t, stopped, state.GearStopped, "")
	dn := c.node(t, dead.Node)
	dn.srv.Close()
	dn.st.Close()
	testutil.WaitFor(t, 60*time.Second, "node "+dead.Node+" seen failed", func() bool {
		for _, m := range c.st.Members() {
			if m.Name == dead.Node {
				return m.Status != "alive"
			}
		}
		return false
	})

	archive := testArchive(t, map[string]string{"index.html": "v2"})
	c.deploy(t, admin, "ns", "web", archive)
	testutil.WaitFor(t, 10*time.Second, "all three gears moved", func() bool {
		moved, _ := onDeployment(c.gears(t, "ns", "web"), sha(archive))
		return len(moved) == 3
	})
	r := c.rollout(t, "ns", "web")
	if r.State != state.RolloutRolling || r.Gear != gs[0].ID {
		t.Fatalf("rollout %+v: want it waiting for the one serving gear %s", r, gs[0].ID)
	}
	c.report(t, gs[0], state.GearStarted, sha(archive))
	testutil.WaitFor(t, 10*time.Second, "roll-out done", func() bool { return c.rollout(t, "ns", "web").State == state.RolloutDone })
}

// New gears start on the current deployment; deleting the app removes
// its deployments and roll-out.
func TestRolloutNewGearsAndDelete(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	c.domain(t, admin, "ns")
	c.createApp(t, admin, "ns", "web", url.Values{"scale": {"true"}})
	archive := testArchive(t, map[string]string{"index.html": "v1"})
	c.deploy(t, admin, "ns", "web", archive)
	c.event(t, admin, "ns", "web", "scale-up")
	gs := c.gears(t, "ns", "web")
	if gs[1].Deployment != sha(archive) {
		t.Fatalf("new gear runs %q, want the current deployment %s", gs[1].Deployment, sha(archive))
	}
	c.ok(t, "DELETE", appPath("ns", "web"), admin, nil, nil)
	if _, err := c.st.GetRecord(state.BucketDeployments, state.DeploymentKey("ns/web", sha(archive))); err == nil {
		t.Error("deployment record kept after the app was deleted")
	}
	if got := c.blobs(t); len(got) != 0 {
		t.Errorf("archives %v kept after the app was deleted", got)
	}
	testutil.WaitFor(t, 5*time.Second, "roll-out record gone", func() bool {
		_, err := c.st.GetRecord(state.BucketRollouts, "ns/web")
		return err != nil
	})
}

// TestUnsteppedRollout: before the leader writes a roll-out record, a
// serving gear counts as done only once its node reports it started on
// the deployment, not when its record was moved (the move may reach a
// member before the leader's record of the roll-out does); a moved gear
// that takes no traffic counts at once, as the leader counts it.
func TestUnsteppedRollout(t *testing.T) {
	a := &state.App{Name: "web", Domain: "ns", Deployment: "d2", Restarts: 1}
	gear := func(id, node, dep, st string) state.Gear {
		return state.Gear{ID: id, Node: node, Deployment: dep, Restarts: 1, State: st}
	}
	serving := []state.Gear{gear("g1", "n1", "d2", state.GearStarted), gear("g2", "n2", "d2", state.GearStarted)}
	st := func(id, node, dep string, restarts int, s string) state.GearStatus {
		return state.GearStatus{ID: id, Node: node, State: s, Deployment: dep, Restarts: restarts}
	}
	alive := map[string]bool{"n1": true, "n2": true}
	for _, tc := range []struct {
		name  string
		gs    []state.Gear
		sts   []state.GearStatus
		alive map[string]bool
		done  int
		state string
	}{
		{"moved, nothing reported", serving, nil, alive, 0, state.RolloutRolling},
		{"moved, still on the old deployment", serving, []state.GearStatus{st("g1", "n1", "d1", 1, state.GearStarted), st("g2", "n2", "d1", 1, state.GearStarted)}, alive, 0, state.RolloutRolling},
		{"one runs it", serving, []state.GearStatus{st("g1", "n1", "d2", 1, state.GearStarted), st("g2", "n2", "d1", 1, state.GearStarted)}, alive, 1, state.RolloutRolling},
		{"one runs it but reports stopped", serving, []state.GearStatus{st("g1", "n1", "d2", 1, state.GearStopped), st("g2", "n2", "d2", 1, state.GearStarted)}, alive, 1, state.RolloutRolling},
		{"status from another node", serving, []state.GearStatus{st("g1", "n9", "d2", 1, state.GearStarted), st("g2", "n2", "d2", 1, state.GearStarted)}, alive, 1, state.RolloutRolling},
		{"restart not yet done", serving, []state.GearStatus{st("g1", "n1", "d2", 0, state.GearStarted), st("g2", "n2", "d2", 1, state.GearStarted)}, alive, 1, state.RolloutRolling},
		{"both run it", serving, []state.GearStatus{st("g1", "n1", "d2", 1, state.GearStarted), st("g2", "n2", "d2", 2, state.GearStarted)}, alive, 2, state.RolloutDone},
		{"moved and stopped: done without a report", []state.Gear{gear("g1", "n1", "d2", state.GearStopped), gear("g2", "n2", "d2", state.GearStarted)},
			[]state.GearStatus{st("g2", "n2", "d2", 1, state.GearStarted)}, alive, 2, state.RolloutDone},
		{"moved, its node failed: done without a report", serving, []state.GearStatus{st("g2", "n2", "d2", 1, state.GearStarted)}, map[string]bool{"n2": true}, 2, state.RolloutDone},
		{"stopped but not moved", []state.Gear{gear("g1", "n1", "d1", state.GearStopped), gear("g2", "n2", "d2", state.GearStarted)},
			[]state.GearStatus{st("g2", "n2", "d2", 1, state.GearStarted)}, alive, 1, state.RolloutRolling},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := unsteppedRollout(a, tc.gs, tc.sts, tc.alive)
			if r.Done != tc.done || r.Total != 2 || r.State != tc.state || r.Deployment != "d2" || r.App != "ns/web" {
				t.Errorf("got %+v, want %d of 2 done, state %s", r, tc.done, tc.state)
			}
		})
	}
}
