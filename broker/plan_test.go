package broker

import (
	"net/url"
	"slices"
	"testing"
	"time"

	"gearbox/broker/api"
	"gearbox/store/state"
)

// With more LB gears asked for by the multiplier than there are nodes, the
// app still scales: the extra gears are web gears, and the minimum of two
// LB gears on two nodes holds.
func TestMultiplierBeyondNodesStillScales(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	demo := c.user(t, "demo", url.Values{"ha": {"true"}})
	c.domain(t, demo, "demo")
	c.createApp(t, demo, "demo", "web", url.Values{"ha": {"true"}})
	c.ok(t, "PUT", appPath("demo", "web"), admin, url.Values{"ha_multiplier": {"1"}}, nil)
	var a api.App
	for range 3 {
		a = c.event(t, demo, "demo", "web", "scale-up")
	}
	if a.GearCount != 5 {
		t.Fatalf("gears after three scale-ups: %d, want 5", a.GearCount)
	}
	a = c.show(t, demo, "demo", "web")
	lbs := lbGears(a)
	if len(lbs) != 3 {
		t.Fatalf("LB gears: %d, want one per node (3)", len(lbs))
	}
	if n := distinct(lbs, func(g api.Gear) string { return g.Node }); n != 3 {
		t.Errorf("LB gears on %d nodes, want 3", n)
	}
}

// A routing layer applying events in order never loses a serving gear in
// between: the new gear's endpoint comes before the LB gears rotate out.
func TestRotationEventsBracketEndpointChanges(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	demo := c.user(t, "demo", url.Values{"ha": {"true"}})
	c.domain(t, demo, "demo")
	c.createApp(t, demo, "demo", "web", url.Values{"ha": {"true"}})
	c.event(t, demo, "demo", "web", "scale-up")
	c.event(t, demo, "demo", "web", "scale-up") // 4 gears: still serving
	seq := c.lastSeq(t)
	c.event(t, demo, "demo", "web", "scale-up") // 5th gear: LB gears rotate out
	evs := actions(c.eventsSince(t, seq))
	add, out := slices.Index(evs, state.ActionAddPublicEndpoint), slices.Index(evs, state.ActionRotateOut)
	if add < 0 || out < 0 || add > out {
		t.Fatalf("scale-up to 5 gears: events %v; want add_public_endpoint before rotate_out", evs)
	}
	seq = c.lastSeq(t)
	c.event(t, demo, "demo", "web", "scale-down") // back to 4: rotate in
	evs = actions(c.eventsSince(t, seq))
	in, rm := slices.Index(evs, state.ActionRotateIn), slices.Index(evs, state.ActionRemovePublicEndpoint)
	if in < 0 || rm < 0 || in > rm {
		t.Fatalf("scale-down to 4 gears: events %v; want rotate_in before remove_public_endpoint", evs)
	}
}

func TestExpiredTokensAreCollected(t *testing.T) {
	c := newCluster(t, clusterOpts{nodes: []nodeSpec{}})
	var short, long api.Token
	c.ok(t, "POST", "/broker/rest/user/authorizations", admin, url.Values{"expires_in": {"60"}}, &short)
	c.ok(t, "POST", "/broker/rest/user/authorizations", admin, url.Values{"expires_in": {"7200"}}, &long)
	c.clock.Advance(2 * time.Minute)
	n, err := c.b.collectTokens(t.Context())
	if err != nil || n != 1 {
		t.Fatalf("collectTokens: %d, %v; want 1 expired token deleted", n, err)
	}
	if _, err := c.st.GetRecord(state.BucketTokens, tokenKey(short.Token)); err == nil {
		t.Error("expired token still stored")
	}
	c.ok(t, "GET", "/broker/rest/user", bearer(long.Token), nil, nil)
}
