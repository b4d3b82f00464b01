package broker

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gearbox/broker/api"
	"gearbox/broker/client"
	"gearbox/internal/testutil"
	"gearbox/lb"
	"gearbox/store/state"
)

// The round-trip tests run broker/client against the broker's real
// Handler: each client call must reach the handler it names, and what the
// client decodes must be what the broker's state says. sameAsWire also
// checks that the client's value, encoded again, is the data the broker
// sent: a field the broker sends that the wire type lacks fails it.

// roundTrip is a test cluster whose broker Handler is also served by
// httptest, with clients for the admin and for a user "rt".
type roundTrip struct {
	*testCluster
	srv   *httptest.Server
	admin *client.Client
	user  *client.Client
}

func newRoundTrip(t *testing.T) *roundTrip {
	t.Helper()
	c := newCluster(t, clusterOpts{})
	srv := httptest.NewServer(c.b.Handler())
	t.Cleanup(srv.Close)
	rt := &roundTrip{testCluster: c, srv: srv}
	rt.admin = &client.Client{BaseURL: srv.URL, User: adminLogin, Password: adminPassword, HTTP: srv.Client()}
	c.user(t, "rt", url.Values{"ha": {"true"}, "max_gears": {"20"}})
	rt.user = &client.Client{BaseURL: srv.URL, User: "rt", Password: "rt-password", HTTP: srv.Client()}
	return rt
}

// sameAsWire checks that v, as the client decoded it, encodes to the data
// the broker answers to GET path (query included) as who.
func (rt *roundTrip) sameAsWire(t *testing.T, who creds, path string, v any) {
	t.Helper()
	r := rt.ok(t, "GET", path, who, nil, nil)
	var wire, ours any
	if err := json.Unmarshal(r.data, &wire); err != nil {
		t.Fatalf("GET %s: data: %v", path, err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &ours); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(wire, ours) {
		t.Errorf("GET %s: the client decoded\n%s\nthe broker sent\n%s", path, b, r.data)
	}
}

// record reads bucket/key from the broker's store into v.
func (rt *roundTrip) record(t *testing.T, bucket, key string, v any) {
	t.Helper()
	if _, err := rt.st.Get(bucket, key, v); err != nil {
		t.Fatalf("get %s/%s: %v", bucket, key, err)
	}
}

func TestClientRoundTripUsers(t *testing.T) {
	rt := newRoundTrip(t)
	ctx := context.Background()

	u, err := rt.user.CurrentUser(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var rec state.User
	rt.record(t, state.BucketUsers, "rt", &rec)
	if u.Login != "rt" || u.Admin || !u.Capabilities.HA || u.Capabilities.MaxGears != 20 ||
		!slices.Equal(u.Capabilities.GearSizes, rec.Capabilities.GearSizes) || len(u.Capabilities.GearSizes) == 0 || !u.CreatedAt.Equal(rec.CreatedAt) {
		t.Errorf("current user %+v, record %+v", u, rec)
	}
	rt.sameAsWire(t, basic("rt", "rt-password"), "/broker/rest/user", u)

	tok, err := rt.user.CreateToken(ctx, "round trip")
	if err != nil {
		t.Fatal(err)
	}
	if tok.ID == "" || tok.Token == "" || tok.Login != "rt" || tok.Note != "round trip" || tok.CreatedAt.IsZero() ||
		!tok.ExpiresAt.After(tok.CreatedAt) || tok.ExpiresIn <= 0 {
		t.Errorf("token %+v", tok)
	}
	byToken := &client.Client{BaseURL: rt.srv.URL, Token: tok.Token, HTTP: rt.srv.Client()}
	if u, err := byToken.CurrentUser(ctx); err != nil || u.Login != "rt" {
		t.Errorf("current user by token: %+v, %v", u, err)
	}
	ts, err := byToken.Tokens(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != 1 || ts[0].ID != tok.ID || ts[0].Token != "" || ts[0].Note != "round trip" || ts[0].Login != "rt" ||
		!ts[0].CreatedAt.Equal(tok.CreatedAt) || !ts[0].ExpiresAt.Equal(tok.ExpiresAt) || ts[0].ExpiresIn != tok.ExpiresIn {
		t.Errorf("tokens %+v, created %+v", ts, tok)
	}
	rt.sameAsWire(t, basic("rt", "rt-password"), "/broker/rest/user/authorizations", ts)
	msgs, err := rt.user.RevokeToken(ctx, tok.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(client.Texts(msgs), tok.ID) {
		t.Errorf("revoke messages %+v", msgs)
	}
	if _, err := byToken.CurrentUser(ctx); !client.IsStatus(err, http.StatusUnauthorized) {
		t.Errorf("current user by a revoked token: %v", err)
	}
	if _, err := rt.user.RevokeToken(ctx, tok.ID); !client.IsStatus(err, http.StatusNotFound) {
		t.Errorf("revoke again: %v", err)
	}
	if ts, err := rt.user.Tokens(ctx); err != nil || len(ts) != 0 {
		t.Errorf("tokens after revocation: %+v, %v", ts, err)
	}

	created, msgs, err := rt.admin.CreateUser(ctx, "second", "second-password", url.Values{"max_gears": {"7"}, "ha": {"true"}})
	if err != nil {
		t.Fatal(err)
	}
	if created.Login != "second" || created.Capabilities.MaxGears != 7 || !created.Capabilities.HA || created.CreatedAt.IsZero() {
		t.Errorf("created user %+v", created)
	}
	if !strings.Contains(client.Texts(msgs), "second") {
		t.Errorf("create user messages %+v", msgs)
	}
	updated, _, err := rt.admin.UpdateUser(ctx, "second", url.Values{"max_gears": {"9"}})
	if err != nil {
		t.Fatal(err)
	}
	rt.record(t, state.BucketUsers, "second", &rec)
	if updated.Capabilities.MaxGears != 9 || rec.Capabilities.MaxGears != 9 {
		t.Errorf("updated user %+v, record %+v", updated, rec)
	}
	us, err := rt.admin.Users(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var logins []string
	for _, u := range us {
		logins = append(logins, u.Login)
	}
	slices.Sort(logins)
	if !slices.Equal(logins, []string{adminLogin, "rt", "second"}) {
		t.Errorf("users %v", logins)
	}
	rt.sameAsWire(t, admin, "/broker/rest/users", us)

	// A refusal is an *client.Error with the broker's status and exit code.
	_, err = rt.user.Users(ctx)
	var ce *client.Error
	if !client.IsStatus(err, http.StatusForbidden) || !errors.As(err, &ce) || ce.ExitCode() != 1 || !strings.Contains(err.Error(), "administrator") {
		t.Errorf("users as a user: %v", err)
	}
}

func TestClientRoundTripApps(t *testing.T) {
	rt := newRoundTrip(t)
	ctx := context.Background()
	who := basic("rt", "rt-password")

	d, msgs, err := rt.user.CreateDomain(ctx, "rtns")
	if err != nil {
		t.Fatal(err)
	}
	var drec state.Domain
	rt.record(t, state.BucketDomains, "rtns", &drec)
	if d.Name != "rtns" || d.ID != "rtns" || d.Owner != "rt" || d.Applications != 0 || !d.CreatedAt.Equal(drec.CreatedAt) || len(msgs) == 0 {
		t.Errorf("created domain %+v (%+v), record %+v", d, msgs, drec)
	}

	a, _, err := rt.user.CreateApp(ctx, "rtns", "web", client.AppOptions{Scale: true})
	if err != nil {
		t.Fatal(err)
	}
	var arec state.App
	rt.record(t, state.BucketApps, state.AppKey("rtns", "web"), &arec)
	if a.ID == "" || a.ID != arec.ID || a.Name != "web" || a.Domain != "rtns" || a.Owner != "rt" || !a.Scalable || a.HA ||
		a.Framework != arec.Cartridge || a.GearProfile != arec.GearSize || a.State != arec.State || a.GearCount != 1 ||
		a.AppURL != "http://web-rtns.example.com/" || a.HAURL != "" || a.LB == nil || a.LB.Gears != 1 || a.Aliases == nil ||
		!a.CreatedAt.Equal(arec.CreatedAt) {
		t.Errorf("created app %+v, record %+v", a, arec)
	}

	a, _, err = rt.user.AppEvent(ctx, "rtns", "web", "make-ha")
	if err != nil {
		t.Fatal(err)
	}
	rt.record(t, state.BucketApps, state.AppKey("rtns", "web"), &arec)
	gears := rt.gears(t, "rtns", "web")
	if !a.HA || !arec.HA || a.HAURL == "" || a.GearCount != len(gears) || a.LB == nil || a.LB.Gears < 2 || a.LB.Nodes < 2 ||
		!a.LB.ReallyHA || a.HAMultiplier != arec.HAMultiplier {
		t.Errorf("app after make-ha %+v (LB %+v), %d gears, record %+v", a, a.LB, len(gears), arec)
	}

	shown, err := rt.user.App(ctx, "rtns", "web", true)
	if err != nil {
		t.Fatal(err)
	}
	if len(shown.Gears) != len(gears) {
		t.Fatalf("app show: %d gears, store %d", len(shown.Gears), len(gears))
	}
	for _, g := range gears {
		i := slices.IndexFunc(shown.Gears, func(v api.Gear) bool { return v.ID == g.ID })
		if i < 0 {
			t.Errorf("gear %s missing from app show", g.ID)
			continue
		}
		v := shown.Gears[i]
		if v.Node != g.Node || v.LB != g.LB || v.Head != g.Head || v.Zone == "" || v.Region != "r1" || v.State == "" || len(v.Cartridges) == 0 {
			t.Errorf("gear %+v, record %+v", v, g)
		}
	}
	rt.sameAsWire(t, who, appPath("rtns", "web")+"?include=gears", shown)

	as, err := rt.user.Apps(ctx, "rtns")
	if err != nil {
		t.Fatal(err)
	}
	if len(as) != 1 || as[0].ID != arec.ID || as[0].Gears != nil {
		t.Errorf("apps %+v", as)
	}
	rt.sameAsWire(t, who, "/broker/rest/domains/rtns/applications", as)

	ds, err := rt.user.Domains(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 1 || ds[0].Name != "rtns" || ds[0].Applications != 1 {
		t.Errorf("domains %+v", ds)
	}
	rt.sameAsWire(t, who, "/broker/rest/domains", ds)

	cart, _, err := rt.user.SetScale(ctx, "rtns", "web", arec.Cartridge, 3, 5)
	if err != nil {
		t.Fatal(err)
	}
	rt.record(t, state.BucketApps, state.AppKey("rtns", "web"), &arec)
	gears = rt.gears(t, "rtns", "web")
	if cart.Name != arec.Cartridge || cart.Type != "web_framework" || cart.ScalesFrom != 3 || cart.ScalesTo != 5 || !cart.Scalable ||
		cart.Gears != len(gears) || arec.ScalesFrom != 3 || arec.ScalesTo != 5 {
		t.Errorf("scaled cartridge %+v with %d gears, record %d-%d", cart, len(gears), arec.ScalesFrom, arec.ScalesTo)
	}

	groups, err := rt.user.GearGroups(ctx, "rtns", "web")
	if err != nil {
		t.Fatal(err)
	}
	if len(groups) != 1 || groups[0].ID != arec.ID || len(groups[0].Gears) != len(gears) || len(groups[0].Cartridges) != 2 ||
		groups[0].ScalesFrom != 3 || groups[0].ScalesTo != 5 {
		t.Fatalf("gear groups %+v", groups)
	}
	nodeAddr := map[string]string{}
	for _, n := range rt.nodes {
		nodeAddr[n.name] = n.ip
	}
	for _, g := range gears {
		i := slices.IndexFunc(groups[0].Gears, func(v api.Gear) bool { return v.ID == g.ID })
		if i < 0 {
			t.Errorf("gear %s missing from gear groups", g.ID)
			continue
		}
		eps := groups[0].Gears[i].Endpoints
		want := 1
		if g.LB {
			want = 2
		}
		if len(eps) != want {
			t.Errorf("gear %s: endpoints %+v, want %d", g.ID, eps, want)
			continue
		}
		web := eps[len(eps)-1]
		if web.ExternalAddress != nodeAddr[g.Node] || web.ExternalPort != g.Port || web.InternalPort != g.Port ||
			web.CartridgeName != g.Cartridge || !slices.Equal(web.Types, []string{"web_framework"}) || len(web.Protocols) == 0 {
			t.Errorf("gear %s: web endpoint %+v, record %+v", g.ID, web, g)
		}
		if g.LB && (eps[0].ExternalPort != g.LBPort || !slices.Equal(eps[0].Types, []string{"load_balancer"})) {
			t.Errorf("gear %s: LB endpoint %+v, record port %d", g.ID, eps[0], g.LBPort)
		}
	}
	rt.sameAsWire(t, who, appPath("rtns", "web", "/gear_groups")+"?include=endpoints", groups)

	// One gear stopped, moved (admin) and the app's environment.
	var web state.Gear
	for _, g := range gears {
		if !g.LB {
			web = g
		}
	}
	gv, _, err := rt.user.GearEvent(ctx, web.ID, "stop")
	if err != nil {
		t.Fatal(err)
	}
	if gv.ID != web.ID || gv.Node != web.Node {
		t.Errorf("gear event answered %+v, gear %+v", gv, web)
	}
	target := ""
	for _, n := range rt.nodes {
		if n.name != web.Node {
			target = n.name
		}
	}
	moved, _, err := rt.admin.MoveGear(ctx, web.ID, target, true)
	if err != nil {
		t.Fatal(err)
	}
	// The reply is the replacement that the move starts on the target.
	var grec state.Gear
	rt.record(t, state.BucketGears, moved.ID, &grec)
	if moved.ID == web.ID || moved.Node != target || grec.Node != target || grec.Replaces == nil || grec.Replaces.Gear != web.ID ||
		len(moved.Endpoints) == 0 || moved.Endpoints[0].ExternalAddress != nodeAddr[target] {
		t.Errorf("moved gear %+v, record %+v, want a replacement of %s on %s", moved, grec, web.ID, target)
	}

	vs, _, err := rt.user.SetEnv(ctx, "rtns", "web", "GREETING", "hello")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(vs, api.EnvVar{Name: "GREETING", Value: "hello"}) {
		t.Errorf("environment after set %+v", vs)
	}
	vs, err = rt.user.Env(ctx, "rtns", "web")
	rt.record(t, state.BucketApps, state.AppKey("rtns", "web"), &arec)
	if err != nil || len(vs) != len(arec.Env) || arec.Env["GREETING"] != "hello" {
		t.Errorf("environment %+v, %v; record %v", vs, err, arec.Env)
	}
	if _, err := rt.user.UnsetEnv(ctx, "rtns", "web", "GREETING"); err != nil {
		t.Fatal(err)
	}
	if vs, err := rt.user.Env(ctx, "rtns", "web"); err != nil || slices.ContainsFunc(vs, func(v api.EnvVar) bool { return v.Name == "GREETING" }) {
		t.Errorf("environment after unset %+v, %v", vs, err)
	}

	// Deleting: the app, then the domain.
	if _, err := rt.user.DeleteApp(ctx, "rtns", "web"); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.user.App(ctx, "rtns", "web", false); !client.IsStatus(err, http.StatusNotFound) {
		t.Errorf("deleted app: %v", err)
	}
	if _, err := rt.user.DeleteDomain(ctx, "rtns", false); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.st.Get(state.BucketDomains, "rtns", &drec); err == nil {
		t.Errorf("domain rtns still in the store")
	}
}

func TestClientRoundTripDeployments(t *testing.T) {
	rt := newRoundTrip(t)
	ctx := context.Background()
	who := basic("rt", "rt-password")
	rt.domain(t, who, "rtns")
	rt.createApp(t, who, "rtns", "web", nil)

	var ids []string
	for _, body := range []string{"one", "two"} {
		archive := testArchive(t, map[string]string{"index.html": body})
		dep, msgs, err := rt.user.Deploy(ctx, "rtns", "web", bytes.NewReader(archive), int64(len(archive)))
		if err != nil {
			t.Fatal(err)
		}
		var rec state.Deployment
		rt.record(t, state.BucketDeployments, state.DeploymentKey(state.AppKey("rtns", "web"), dep.ID), &rec)
		if dep.ID != sha(archive) || dep.Size != int64(len(archive)) || !dep.Current || dep.CreatedBy != "rt" ||
			!dep.CreatedAt.Equal(rec.CreatedAt) || !slices.Equal(dep.Holders, rec.Holders) || len(dep.Holders) == 0 || len(msgs) == 0 {
			t.Errorf("deployment %+v, record %+v", dep, rec)
		}
		ids = append(ids, dep.ID)
	}
	ds, err := rt.user.Deployments(ctx, "rtns", "web")
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 2 || ds[0].ID != ids[0] || ds[0].Current || ds[1].ID != ids[1] || !ds[1].Current {
		t.Errorf("deployments %+v, want %v with the last current", ds, ids)
	}
	rt.sameAsWire(t, who, appPath("rtns", "web", "/deployments"), ds)

	if _, err := rt.user.Activate(ctx, "rtns", "web", ids[0]); err != nil {
		t.Fatal(err)
	}
	var arec state.App
	rt.record(t, state.BucketApps, state.AppKey("rtns", "web"), &arec)
	if arec.Deployment != ids[0] {
		t.Errorf("current deployment %s after activate, want %s", arec.Deployment, ids[0])
	}

	ro, err := rt.user.Rollout(ctx, "rtns", "web")
	if err != nil {
		t.Fatal(err)
	}
	if ro.App != state.AppKey("rtns", "web") || ro.Deployment != ids[0] || ro.State == "" || ro.Total != 1 {
		t.Errorf("rollout %+v", ro)
	}
	if ro.State == state.RolloutRolling {
		// sameAsWire reads it again: it must not have moved meanwhile.
		return
	}
	rt.sameAsWire(t, who, appPath("rtns", "web", "/rollout"), ro)
}

func TestClientRoundTripNodes(t *testing.T) {
	rt := newRoundTrip(t)
	ctx := context.Background()

	ns, err := rt.admin.Nodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ns) != len(rt.nodes) {
		t.Fatalf("nodes %+v, want %d", ns, len(rt.nodes))
	}
	for _, m := range rt.nodes {
		i := slices.IndexFunc(ns, func(n api.Node) bool { return n.Name == m.name })
		if i < 0 {
			t.Errorf("node %s missing", m.name)
			continue
		}
		var rec state.Node
		rt.record(t, state.BucketNodes, m.name, &rec)
		n := ns[i]
		if n.Addr != m.ip || n.Zone != rec.Zone || n.Region != rec.Region || !n.Alive || n.Draining || n.MaxGears != 100 || n.Isolation != rec.Isolation || n.Isolation == "" {
			t.Errorf("node %+v, record %+v", n, rec)
		}
	}
	rt.sameAsWire(t, admin, "/broker/rest/nodes", ns)

	if _, err := rt.admin.NodeEvent(ctx, "n1", "drain"); err != nil {
		t.Fatal(err)
	}
	var na state.NodeAdmin
	rt.record(t, state.BucketNodeAdmin, "n1", &na)
	if !na.Draining {
		t.Errorf("n1 not draining in the store after drain")
	}
	testutil.WaitFor(t, 5*time.Second, "n1 reported draining", func() bool {
		ns, err := rt.admin.Nodes(ctx)
		return err == nil && slices.ContainsFunc(ns, func(n api.Node) bool { return n.Name == "n1" && n.Draining })
	})
	if _, err := rt.admin.NodeEvent(ctx, "n1", "undrain"); err != nil {
		t.Fatal(err)
	}
}

func TestClientRoundTripRouting(t *testing.T) {
	rt := newRoundTrip(t)
	ctx := context.Background()
	who := basic("rt", "rt-password")
	rt.domain(t, who, "rtns")
	rt.createApp(t, who, "rtns", "web", url.Values{"scale": {"true"}})

	al, _, err := rt.user.AddAlias(ctx, "rtns", "web", "www.example.org")
	if err != nil {
		t.Fatal(err)
	}
	if al.ID != "www.example.org" {
		t.Errorf("added alias %+v", al)
	}
	as, err := rt.user.Aliases(ctx, "rtns", "web")
	if err != nil || len(as) != 1 || as[0].ID != "www.example.org" {
		t.Errorf("aliases %+v, %v", as, err)
	}
	rt.sameAsWire(t, who, appPath("rtns", "web", "/aliases"), as)

	// The feed holds what the store holds.
	evs, err := rt.admin.RoutingEvents(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	recs := rt.events(t)
	if len(evs) != len(recs) || len(evs) == 0 {
		t.Fatalf("%d routing events, store %d", len(evs), len(recs))
	}
	for i, e := range evs {
		r := recs[i]
		if e.Seq != r.Seq || e.Action != r.Action || e.AppName != r.AppName || e.Namespace != r.Namespace || e.GearID != r.GearID ||
			e.PublicAddress != r.PublicAddress || e.PublicPort != r.PublicPort || e.Alias != r.Alias || !e.Time.Equal(r.Time) ||
			!slices.Equal(e.Types, r.Types) || len(e.Mappings) != len(r.Mappings) {
			t.Errorf("routing event %+v, record %+v", e, r)
		}
	}
	if !slices.ContainsFunc(evs, func(e api.RoutingEvent) bool {
		return e.Action == state.ActionAddPublicEndpoint && e.PublicPort > 0 && e.PublicAddress != ""
	}) || !slices.ContainsFunc(evs, func(e api.RoutingEvent) bool { return e.Action == state.ActionAddAlias && e.Alias == "www.example.org" }) {
		t.Errorf("routing events %+v: want an endpoint and the alias", evs)
	}
	rt.sameAsWire(t, admin, "/broker/rest/routing/events?after=0", evs)

	// Followed, the feed sends the same events, one per line.
	fctx, cancel := context.WithCancel(ctx)
	body, err := rt.admin.FollowRoutingEvents(fctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(body)
	for i := 0; i < len(evs); {
		if !sc.Scan() {
			t.Fatalf("followed feed ended after %d events: %v", i, sc.Err())
		}
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var e api.RoutingEvent
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(e, evs[i]) {
			t.Errorf("followed event %+v, listed %+v", e, evs[i])
		}
		i++
	}
	cancel()
	body.Close()

	after := evs[len(evs)-1].Seq
	h, msgs, err := rt.admin.AddWebhook(ctx, "http://127.0.0.1:9/hook", &after)
	if err != nil {
		t.Fatal(err)
	}
	var hrec state.Webhook
	rt.record(t, state.BucketWebhooks, h.ID, &hrec)
	if h.ID == "" || h.URL != "http://127.0.0.1:9/hook" || h.Secret == "" || h.Secret != hrec.Secret || h.After != after ||
		h.CreatedBy != adminLogin || !h.CreatedAt.Equal(hrec.CreatedAt) || len(msgs) == 0 {
		t.Errorf("webhook %+v, record %+v", h, hrec)
	}
	hs, err := rt.admin.Webhooks(ctx)
	if err != nil || len(hs) != 1 || hs[0].ID != h.ID || hs[0].Secret != "" {
		t.Errorf("webhooks %+v, %v", hs, err)
	}
	if _, err := rt.admin.RemoveWebhook(ctx, h.ID); err != nil {
		t.Fatal(err)
	}
	if hs, err := rt.admin.Webhooks(ctx); err != nil || len(hs) != 0 {
		t.Errorf("webhooks after remove %+v, %v", hs, err)
	}

	routes, err := rt.admin.Routes(ctx)
	if err != nil || len(routes) != 1 {
		t.Fatalf("routes %+v, %v", routes, err)
	}
	r := routes[0]
	lbs := 0
	for _, g := range rt.gears(t, "rtns", "web") {
		if g.LB {
			lbs++
			if !slices.ContainsFunc(r.Endpoints, func(e api.RouteEndpoint) bool {
				return e.GearID == g.ID && strings.HasSuffix(e.Address, ":"+strconv.Itoa(g.LBPort)) && slices.Equal(e.Types, []string{"load_balancer"})
			}) {
				t.Errorf("route %+v: no endpoint for LB gear %+v", r, g)
			}
		}
	}
	if r.App != "web" || r.Namespace != "rtns" || r.Host != "web-rtns.example.com" || !r.Scalable || r.HA || r.HAHost != "" ||
		!slices.Equal(r.Aliases, []string{"www.example.org"}) || len(r.Endpoints) != lbs {
		t.Errorf("route %+v", r)
	}
	rt.sameAsWire(t, admin, "/broker/rest/routing/routes", routes)

	if _, err := rt.user.RemoveAlias(ctx, "rtns", "web", "www.example.org"); err != nil {
		t.Fatal(err)
	}
	if as, err := rt.user.Aliases(ctx, "rtns", "web"); err != nil || len(as) != 0 {
		t.Errorf("aliases after remove %+v, %v", as, err)
	}
}

// TestClientRoundTripLogs reads logs through the client's stream. The
// lines come from nodes, which the broker's tests do not run (the
// end-to-end tests do): the broker says in the stream, in a gear's line,
// that it could not read that gear's log.
func TestClientRoundTripLogs(t *testing.T) {
	rt := newRoundTrip(t)
	ctx := context.Background()
	who := basic("rt", "rt-password")
	rt.domain(t, who, "rtns")
	rt.createApp(t, who, "rtns", "web", nil)

	gs := rt.gears(t, "rtns", "web")
	body, err := rt.user.Logs(ctx, "rtns", "web", 10, false)
	if err != nil {
		t.Fatal(err)
	}
	defer body.Close()
	got, err := io.ReadAll(body)
	if f := strings.Fields(string(got)); err != nil || len(gs) != 1 || len(f) < 3 || f[1] != gs[0].ID || !strings.Contains(string(got), "cannot read this gear's log") {
		t.Errorf("logs: %q, %v; want a line of gear %+v", got, err, gs)
	}
	if _, err := rt.user.Logs(ctx, "rtns", "nope", -1, false); !client.IsStatus(err, http.StatusNotFound) {
		t.Errorf("logs of an unknown app: %v", err)
	}
	wrong := &client.Client{BaseURL: rt.srv.URL, User: "rt", Password: "wrong", HTTP: rt.srv.Client()}
	if _, err := wrong.Logs(ctx, "rtns", "web", -1, false); !client.IsStatus(err, http.StatusUnauthorized) {
		t.Errorf("logs with a wrong password: %v", err)
	}
}

// TestClientRoundTripLBStatus reads an HA app's load balancers' status
// through the client: each LB gear's, as its node served it, decodes into
// lb.Status; a gear whose node does not run its load balancer has the
// error; another user is refused.
func TestClientRoundTripLBStatus(t *testing.T) {
	rt := newRoundTrip(t)
	ctx := context.Background()
	who := basic("rt", "rt-password")
	rt.domain(t, who, "rtns")
	rt.createApp(t, who, "rtns", "web", url.Values{"scale": {"true"}})
	rt.event(t, who, "rtns", "web", "make-ha")
	running := map[string]string{}
	var lbs []state.Gear
	for _, g := range rt.gears(t, "rtns", "web") {
		if g.LB {
			lbs = append(lbs, g)
		}
	}
	if len(lbs) != 2 {
		t.Fatalf("LB gears %+v", lbs)
	}
	running[lbs[0].ID] = lbs[0].Node // the second's load balancer is not up
	serveLBStatus(rt.testCluster, running)

	sts, err := rt.user.LBStatus(ctx, "rtns", "web")
	if err != nil {
		t.Fatal(err)
	}
	if len(sts) != 2 || sts[0].Gear.ID != lbs[0].ID || sts[1].Gear.ID != lbs[1].ID || !sts[0].Gear.Head || sts[0].Gear.Node != lbs[0].Node {
		t.Fatalf("statuses %+v, LB gears %+v", sts, lbs)
	}
	var p lb.Status
	if err := json.Unmarshal(sts[0].Status, &p); err != nil || !reflect.DeepEqual(p, fakeLBStatus(lbs[0].ID)) {
		t.Errorf("status of %s: %+v (%v), want %+v", lbs[0].ID, p, err, fakeLBStatus(lbs[0].ID))
	}
	if sts[1].Status != nil || !strings.Contains(sts[1].Error, "answered 404") {
		t.Errorf("status of %s, whose load balancer is not up: %+v", lbs[1].ID, sts[1])
	}
	rt.sameAsWire(t, who, appPath("rtns", "web", "/lb-status"), sts)

	if _, err := rt.admin.LBStatus(ctx, "rtns", "web"); err != nil {
		t.Errorf("as an administrator: %v", err)
	}
	rt.testCluster.user(t, "rt2", nil)
	other := &client.Client{BaseURL: rt.srv.URL, User: "rt2", Password: "rt2-password", HTTP: rt.srv.Client()}
	if _, err := other.LBStatus(ctx, "rtns", "web"); !client.IsStatus(err, http.StatusForbidden) {
		t.Errorf("as another user: %v", err)
	}
	if _, err := rt.user.LBStatus(ctx, "rtns", "nope"); !client.IsStatus(err, http.StatusNotFound) {
		t.Errorf("of an unknown app: %v", err)
	}
}
