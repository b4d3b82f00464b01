package broker

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"gearbox/internal/testutil"
	"gearbox/store"
	"gearbox/store/state"
)

// TestLeaderForwarding: a broker that is not the leader forwards mutating
// calls to the leader, serves reads from its replica, and takes over when
// the leader leaves.
func TestLeaderForwarding(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	m2 := startMember(t, "b2", []string{store.RoleBroker}, "", "")
	if _, err := m2.st.Join([]string{c.bm.GossipAddr()}); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "b2 sees the leader's registration and the admin", func() bool {
		l, ok := m2.st.Leader()
		if !ok || l.Name != "b1" {
			return false
		}
		if _, err := m2.st.GetRecord(state.BucketBrokers, "b1"); err != nil {
			return false
		}
		_, err := m2.st.GetRecord(state.BucketUsers, adminLogin)
		return err == nil
	})
	b2, url2 := startBroker(t, m2, c.clock, clusterOpts{})
	if b2.isLeader() || !c.b.isLeader() {
		t.Fatal("b1 should lead")
	}
	client := testClient(t)
	via2 := func(method, path string, who creds, body any) response {
		t.Helper()
		return do(t, client, url2, method, path, who, body)
	}

	// A mutation through b2 is made by b1.
	r := via2("POST", "/broker/rest/domains", admin, url.Values{"name": {"fwd"}})
	if r.code != http.StatusCreated {
		t.Fatalf("POST through b2: %d %s", r.code, r.text())
	}
	rec, err := c.st.GetRecord(state.BucketDomains, "fwd")
	if err != nil {
		t.Fatal(err)
	}
	if rec.Version.Member != "b1" {
		t.Fatalf("domain written by %s, want the leader b1", rec.Version.Member)
	}
	// Errors come back as the leader answered them.
	wantErr(t, via2("POST", "/broker/rest/domains", basic("admin", "wrong-password"), url.Values{"name": {"nope"}}), http.StatusUnauthorized, "Invalid login")
	if r := via2("POST", "/broker/rest/domains", nobody, nil); r.header.Get("WWW-Authenticate") == "" {
		t.Fatal("forwarded 401 lost its WWW-Authenticate")
	}
	wantErr(t, via2("POST", "/broker/rest/domains", admin, url.Values{"name": {"fwd"}}), 422, "already in use")
	wantErr(t, via2("POST", "/broker/rest/domains", admin, rawBody{"application/json", "{"}), http.StatusBadRequest, "Malformed JSON")
	// Apps too, with their bodies.
	r = via2("POST", "/broker/rest/domains/fwd/applications", admin, map[string]any{"name": "web", "scale": true})
	if r.code != http.StatusCreated {
		t.Fatalf("create app through b2: %d %s", r.code, r.text())
	}

	// Reads are served by b2 from its replica, once gossip brings it.
	testutil.WaitFor(t, 10*time.Second, "b2 serves the domain", func() bool {
		return via2("GET", "/broker/rest/domains/fwd", admin, nil).code == http.StatusOK
	})
	// A forwarded call is never forwarded again.
	req := func() response {
		t.Helper()
		hreq, _ := http.NewRequest("POST", url2+"/broker/rest/domains", nil)
		hreq.Header.Set(forwardedHeader, "b9")
		hreq.SetBasicAuth(adminLogin, adminPassword)
		resp, err := client.Do(hreq)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return response{code: resp.StatusCode}
	}
	if r := req(); r.code != http.StatusServiceUnavailable {
		t.Fatalf("forwarded call to a non-leader: %d, want 503", r.code)
	}

	// b1 leaves: b2 leads, and continues the routing feed.
	last := c.lastSeq(t)
	testutil.WaitFor(t, 10*time.Second, "b2 has the routing feed", func() bool {
		_, err := m2.st.GetRecord(state.BucketRoutingEvents, state.EventKey(last))
		return err == nil
	})
	if err := c.b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.st.Leave(t.Context()); err != nil {
		t.Fatal(err)
	}
	c.bm.srv.Close()
	c.st.Close()
	testutil.WaitFor(t, 15*time.Second, "b2 leads", b2.isLeader)
	r = via2("POST", "/broker/rest/domains/fwd/applications", admin, url.Values{"name": {"after"}})
	if r.code != http.StatusCreated {
		t.Fatalf("create app on the new leader: %d %s", r.code, r.text())
	}
	rec, err = m2.st.GetRecord(state.BucketApps, state.AppKey("fwd", "after"))
	if err != nil || rec.Version.Member != "b2" {
		t.Fatalf("app record %+v, %v", rec, err)
	}
	evs, err := list[state.RoutingEvent](m2.st, state.BucketRoutingEvents)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range evs {
		if e.Seq != uint64(i+1) {
			t.Fatalf("feed after the leader change: event %d has seq %d", i, e.Seq)
		}
	}
	if evs[len(evs)-1].Seq <= last {
		t.Fatalf("no new events after %d", last)
	}
}
