package broker

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"gearbox/broker/api"
	"gearbox/store/state"
)

func TestAliasValidation(t *testing.T) {
	c := newCluster(t, clusterOpts{nodes: []nodeSpec{}})
	demo := c.user(t, "demo", nil)
	c.domain(t, demo, "demo")
	c.createAppRecord(t, "demo", "web", "demo")
	path := appPath("demo", "web", "/aliases")
	long := strings.Repeat("a", 63)
	tests := []struct {
		name, host, want string
	}{
		{"empty", "", "Alias is required"},
		{"underscore", "my_site.example.org", "Invalid alias"},
		{"leading dash", "-www.example.org", "Invalid alias"},
		{"trailing dash", "www-.example.org", "Invalid alias"},
		{"empty label", "www..example.org", "Invalid alias"},
		{"wildcard", "*.example.org", "Invalid alias"},
		{"label too long", long + "a.example.org", "Invalid alias"},
		{"too long", strings.Repeat(long+".", 4) + "org", "at most 253"},
		{"IP address", "10.0.0.1", "IP address"},
		{"zone apex", "example.com", "cloud domain"},
		{"in zone", "www.example.com", "cloud domain"},
		{"app name", "web-demo.EXAMPLE.com.", "cloud domain"},
		{"ha name", "ha-web-demo.example.com", "cloud domain"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c.unchanged(t, func() {
				wantErr(t, c.do(t, "POST", path, demo, url.Values{"id": {tt.host}}), http.StatusUnprocessableEntity, tt.want)
			})
		})
	}
	// Normalised: lower case, no trailing dot; name= works as id= does.
	var got api.Alias
	c.ok(t, "POST", path, demo, url.Values{"name": {"WWW.Example.ORG."}}, &got)
	if got.ID != "www.example.org" {
		t.Errorf("added alias %q, want www.example.org", got.ID)
	}
	// A name ending in the zone's name without being in it is fine.
	c.ok(t, "POST", path, demo, url.Values{"id": {"notexample.com"}}, nil)
}

func TestAliases(t *testing.T) {
	c := newCluster(t, clusterOpts{nodes: []nodeSpec{}})
	demo := c.user(t, "demo", nil)
	other := c.user(t, "other", nil)
	c.domain(t, demo, "demo")
	c.domain(t, other, "other")
	c.createAppRecord(t, "demo", "web", "demo")
	c.createAppRecord(t, "demo", "api", "demo")
	c.createAppRecord(t, "other", "site", "other")
	path := appPath("demo", "web", "/aliases")

	seq := c.lastSeq(t)
	var a api.Alias
	r := c.ok(t, "POST", path, demo, url.Values{"id": {"www.example.org"}}, &a)
	if r.code != http.StatusCreated || a.ID != "www.example.org" || !strings.Contains(r.text(), "added") {
		t.Errorf("add: %d %+v %q", r.code, a, r.text())
	}
	evs := c.eventsSince(t, seq)
	if len(evs) != 1 || evs[0].Action != state.ActionAddAlias || evs[0].Alias != "www.example.org" || evs[0].AppName != "web" || evs[0].Namespace != "demo" {
		t.Errorf("events after add: %+v", evs)
	}
	c.ok(t, "POST", path, admin, url.Values{"id": {"shop.example.org"}}, nil) // an admin may too

	var list []api.Alias
	c.ok(t, "GET", path, demo, nil, &list)
	if len(list) != 2 || list[0].ID != "www.example.org" || list[1].ID != "shop.example.org" {
		t.Errorf("list: %+v", list)
	}
	if got := c.show(t, demo, "demo", "web"); got.Name != "web" {
		t.Fatalf("show: %+v", got)
	}

	refusals := []struct {
		name   string
		method string
		path   string
		who    creds
		body   url.Values
		code   int
		want   string
	}{
		{"same app again", "POST", path, demo, url.Values{"id": {"WWW.example.org"}}, http.StatusConflict, "already has the alias"},
		{"another app of the user", "POST", appPath("demo", "api", "/aliases"), demo, url.Values{"id": {"www.example.org"}}, http.StatusConflict, "already in use by another application"},
		{"another user's app", "POST", appPath("other", "site", "/aliases"), other, url.Values{"id": {"shop.example.org"}}, http.StatusConflict, "already in use by another application"},
		{"not the owner: add", "POST", path, other, url.Values{"id": {"x.example.org"}}, http.StatusForbidden, "belongs to another user"},
		{"not the owner: list", "GET", path, other, nil, http.StatusForbidden, "belongs to another user"},
		{"not the owner: remove", "DELETE", path + "/www.example.org", other, nil, http.StatusForbidden, "belongs to another user"},
		{"nobody", "POST", path, nobody, url.Values{"id": {"x.example.org"}}, http.StatusUnauthorized, "Authentication required"},
		{"remove unknown", "DELETE", path + "/nope.example.org", demo, nil, http.StatusNotFound, "has no alias 'nope.example.org'"},
		{"unknown app", "POST", appPath("demo", "nope", "/aliases"), demo, url.Values{"id": {"x.example.org"}}, http.StatusNotFound, "not found"},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			c.unchanged(t, func() {
				var body any
				if tt.body != nil {
					body = tt.body
				}
				wantErr(t, c.do(t, tt.method, tt.path, tt.who, body), tt.code, tt.want)
			})
		})
	}

	seq = c.lastSeq(t)
	r = c.ok(t, "DELETE", path+"/WWW.example.org", demo, nil, nil)
	if !strings.Contains(r.text(), "removed") {
		t.Errorf("remove: %q", r.text())
	}
	evs = c.eventsSince(t, seq)
	if len(evs) != 1 || evs[0].Action != state.ActionRemoveAlias || evs[0].Alias != "www.example.org" {
		t.Errorf("events after remove: %+v", evs)
	}
	// Free again: another app may take it.
	c.ok(t, "POST", appPath("other", "site", "/aliases"), other, url.Values{"id": {"www.example.org"}}, nil)

	// Deleting the app removes its aliases first, then the app.
	seq = c.lastSeq(t)
	c.ok(t, "DELETE", appPath("demo", "web"), demo, nil, nil)
	evs = c.eventsSince(t, seq)
	if got, want := actions(evs), []string{"remove_alias", "delete_application"}; !slices.Equal(got, want) || evs[0].Alias != "shop.example.org" {
		t.Errorf("events after delete: %v (%+v), want %v", got, evs, want)
	}
	c.ok(t, "POST", appPath("demo", "api", "/aliases"), demo, url.Values{"id": {"shop.example.org"}}, nil)
}

func TestAliasLimit(t *testing.T) {
	c := newCluster(t, clusterOpts{nodes: []nodeSpec{}})
	c.domain(t, admin, "ns")
	c.createAppRecord(t, "ns", "web", adminLogin)
	path := appPath("ns", "web", "/aliases")
	for i := range MaxAliases {
		c.ok(t, "POST", path, admin, url.Values{"id": {fmt.Sprintf("a%d.example.org", i)}}, nil)
	}
	c.unchanged(t, func() {
		wantErr(t, c.do(t, "POST", path, admin, url.Values{"id": {"one-more.example.org"}}), http.StatusUnprocessableEntity, "the most an application may have")
	})
}

// createAppRecord writes an app record owned by owner directly, without
// gears: alias and feed tests need no nodes.
func (c *testCluster) createAppRecord(t testing.TB, ns, name, owner string) {
	t.Helper()
	a := state.App{ID: randomID(12), Name: name, Domain: ns, Owner: owner, Cartridge: state.CartStatic, State: state.GearStarted,
		GearSize: state.SizeSmall, ScalesFrom: 1, ScalesTo: 1, CreatedAt: c.clock.Now()}
	if _, err := c.st.Put(context.Background(), state.BucketApps, state.AppKey(ns, name), a); err != nil {
		t.Fatal(err)
	}
}
