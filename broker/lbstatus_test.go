package broker

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"gearbox/broker/api"
	"gearbox/lb"
	"gearbox/store/internalapi"
)

// fakeLBStatus is the status page a node serves for LB gear id: that of
// an lb.Pool, whose type defines the JSON, with the gear's id in it so
// that a test sees which node answered for which gear.
func fakeLBStatus(id string) lb.Status {
	return lb.Status{Balance: "leastconn", Rotation: "in", Sessions: 2, Requests: 40, Retries: 1,
		Backends: []lb.BackendStatus{{Backend: lb.Backend{ID: id, Addr: "127.0.0.1:35001", Local: true}, State: "up",
			Since: time.Unix(1700000000, 0).UTC(), Why: "check passed", Serving: true, Checks: 7, SessionsTotal: 40,
			LastCheck: lb.CheckResult{Time: time.Unix(1700000001, 0).UTC(), OK: true, Status: 200, Duration: time.Millisecond}}}}
}

// serveLBStatus makes each node of c serve, on its internal API as
// node.Supervisor does, the status of the LB gears in running (gear id to
// node name); other gears get the node's 404.
func serveLBStatus(c *testCluster, running map[string]string) {
	for _, n := range c.nodes {
		n.Handle(internalapi.PrefixGears, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			id, ok := internalapi.GearLBStatusID(r.URL.Path)
			if !ok || r.URL.Query().Get("format") != "json" {
				http.Error(w, "want the JSON status", http.StatusBadRequest)
				return
			}
			if running[id] != n.name {
				http.Error(w, fmt.Sprintf("no load balancer of gear %q runs on this node", id), http.StatusNotFound)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(fakeLBStatus(id))
		}))
	}
}

// TestAppLBStatus: the app's owner and administrators read the status of
// each of its LB gears' load balancers, which the broker fetches from
// their nodes over the internal API; another user gets the refusal of
// every other app endpoint (403: the domain belongs to another user), and
// no status.
func TestAppLBStatus(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	demo := c.user(t, "demo", url.Values{"ha": {"true"}})
	other := c.user(t, "other", nil)
	c.domain(t, demo, "demo")
	c.createApp(t, demo, "demo", "web", url.Values{"scale": {"true"}})
	c.event(t, demo, "demo", "web", "make-ha")
	c.event(t, demo, "demo", "web", "scale-up") // a web gear, which has no status
	c.createApp(t, demo, "demo", "plain", nil)
	var lbs []string
	running := map[string]string{}
	for _, g := range c.gears(t, "demo", "web") {
		if g.LB {
			lbs = append(lbs, g.ID)
			running[g.ID] = g.Node
		}
	}
	if len(lbs) != 2 {
		t.Fatalf("LB gears %v, want 2", lbs)
	}
	serveLBStatus(c, running)
	path := appPath("demo", "web", "/lb-status")

	check := func(t *testing.T, who creds) []api.LBStatus {
		t.Helper()
		var got []api.LBStatus
		c.ok(t, "GET", path, who, nil, &got)
		if len(got) != len(lbs) {
			t.Fatalf("%d statuses, want %d: %+v", len(got), len(lbs), got)
		}
		for i, s := range got {
			if s.Gear.ID != lbs[i] || !s.Gear.LB || s.Gear.Node != running[lbs[i]] || s.Gear.Zone == "" || s.Gear.Head != (i == 0) {
				t.Errorf("status %d is of gear %+v, want LB gear %s on %s", i, s.Gear, lbs[i], running[lbs[i]])
			}
			var p lb.Status
			if err := json.Unmarshal(s.Status, &p); err != nil || s.Error != "" {
				t.Fatalf("gear %s: status %s (%v), error %q", s.Gear.ID, s.Status, err, s.Error)
			}
			want := fakeLBStatus(lbs[i])
			if p.Balance != want.Balance || len(p.Backends) != 1 || p.Backends[0].ID != lbs[i] ||
				!p.Backends[0].LastCheck.Time.Equal(want.Backends[0].LastCheck.Time) || p.Backends[0].LastCheck.Duration != time.Millisecond {
				t.Errorf("gear %s: status %+v, want %+v", s.Gear.ID, p, want)
			}
		}
		return got
	}
	t.Run("owner", func(t *testing.T) { check(t, demo) })
	t.Run("admin", func(t *testing.T) { check(t, admin) })
	t.Run("not the owner", func(t *testing.T) {
		r := c.do(t, "GET", path, other, nil)
		wantErr(t, r, http.StatusForbidden, "Domain 'demo' belongs to another user.")
		if strings.Contains(r.raw, "leastconn") || strings.Contains(r.raw, lbs[0]) {
			t.Errorf("a non-owner's 404 shows the status: %s", r.raw)
		}
	})
	t.Run("nobody", func(t *testing.T) {
		wantErr(t, c.do(t, "GET", path, nobody, nil), http.StatusUnauthorized, "")
	})
	t.Run("not scalable", func(t *testing.T) {
		wantErr(t, c.do(t, "GET", appPath("demo", "plain", "/lb-status"), demo, nil), http.StatusUnprocessableEntity,
			"Application 'plain' is not scalable: it has no load balancer.")
	})
	t.Run("unknown app", func(t *testing.T) {
		wantErr(t, c.do(t, "GET", appPath("demo", "nope", "/lb-status"), demo, nil), http.StatusNotFound, "Application 'nope' not found")
	})
	t.Run("post", func(t *testing.T) {
		if r := c.do(t, "POST", path, demo, nil); r.code != http.StatusMethodNotAllowed {
			t.Errorf("POST: %d %s", r.code, r.text())
		}
	})

	// A load balancer that does not run (yet), and a node that does not
	// answer, give an error for their gear only.
	delete(running, lbs[1])
	var got []api.LBStatus
	c.ok(t, "GET", path, demo, nil, &got)
	if len(got) != 2 {
		t.Fatalf("statuses %+v", got)
	}
	if got[0].Status == nil || got[1].Status != nil ||
		!strings.Contains(got[1].Error, fmt.Sprintf(`answered 404 Not Found: no load balancer of gear %q runs on this node`, lbs[1])) {
		t.Errorf("with gear %s's load balancer not running: %+v", lbs[1], got)
	}
	c.node(t, got[0].Gear.Node).API.Close()
	got = nil
	c.ok(t, "GET", path, demo, nil, &got)
	if got[0].Status != nil || !strings.Contains(got[0].Error, "cannot read this load balancer's status from node "+got[0].Gear.Node) {
		t.Errorf("with node %s's internal API closed: %+v", got[0].Gear.Node, got)
	}
}
