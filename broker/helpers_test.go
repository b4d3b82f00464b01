package broker

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/crypto/bcrypt"

	"gearbox/broker/api"
	"gearbox/internal/testutil"
	"gearbox/store"
	"gearbox/store/internalapi"
	"gearbox/store/state"
	"gearbox/store/storetest"
)

// ips hands out the broker tests' addresses, 127.0.1.x (see
// testutil.IPs for the other packages' blocks).
var ips = testutil.NewIPs(1, 1)

// leakPatterns match the goroutines of the broker, its store and serf.
var leakPatterns = []string{"gearbox/broker.(*Broker)", "gearbox/store.", "hashicorp/serf", "hashicorp/memberlist"}

const (
	testSecret    = "broker-test-cluster-secret"
	adminLogin    = "admin"
	adminPassword = "adminpass1"
)

func testLogger() zerolog.Logger {
	if os.Getenv("GEARBOX_TEST_LOG") != "" {
		return zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr}).With().Timestamp().Logger()
	}
	return zerolog.Nop()
}

// testClock is the wall clock shifted by an offset that tests advance.
type testClock struct{ off atomic.Int64 }

func (c *testClock) Now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *testClock) Advance(d time.Duration) { c.off.Add(int64(d)) }

// member is one in-process store member (storetest.Member), with short
// names for what the tests use most.
type member struct {
	*storetest.Member
	name string
	ip   string
	st   *store.Store
	srv  *http.Server // the internal API
}

// startMember starts a store member on a fresh address, serving the
// internal API that anti-entropy needs. It is closed in t.Cleanup.
func startMember(t testing.TB, name string, roles []string, zone, region string) *member {
	t.Helper()
	ip := ips.Next()
	cfg := store.LocalConfig(name, filepath.Join(t.TempDir(), "data"), ip)
	cfg.Roles, cfg.Zone, cfg.Region = roles, zone, region
	cfg.ClusterSecret = testSecret
	cfg.Logger = testLogger().With().Str("member", name).Logger()
	if _, bench := t.(*testing.B); bench {
		// Benchmarks measure what production does: fsync every commit.
		cfg.NoSync = false
	}
	sm := storetest.Start(t, cfg)
	return &member{Member: sm, name: name, ip: ip, st: sm.Store, srv: sm.API}
}

// nodeSpec describes one node member of a test cluster.
type nodeSpec struct {
	name, zone, region string
	maxGears           int // default 100
}

// clusterOpts shapes a test cluster.
type clusterOpts struct {
	nodes []nodeSpec    // nil: threeZones(); empty: no nodes
	cfg   func(*Config) // adjusts the broker's config before New
	admin string        // BootstrapAdmin; "-" for none (generated)
}

// testCluster is a broker member running a Broker and its node members.
type testCluster struct {
	t      testing.TB
	bm     *member // the broker's member
	st     *store.Store
	b      *Broker
	url    string
	clock  *testClock
	nodes  []*member
	client *http.Client
}

// threeZones is the default cluster's nodes: n1, n2, n3 in zones z1, z2,
// z3, all in region r1.
func threeZones() []nodeSpec {
	return []nodeSpec{{name: "n1", zone: "z1", region: "r1"}, {name: "n2", zone: "z2", region: "r1"}, {name: "n3", zone: "z3", region: "r1"}}
}

// newCluster starts a broker member ("b1", roles broker) with a started
// Broker, and node members that join it and register; it returns once the
// broker sees every node alive and registered and the bootstrap admin
// exists.
func newCluster(t testing.TB, o clusterOpts) *testCluster {
	t.Helper()
	testutil.CheckNoLeaks(t, leakPatterns...)
	if o.nodes == nil {
		o.nodes = threeZones()
	}
	c := &testCluster{t: t, clock: &testClock{}}
	c.bm = startMember(t, "b1", []string{store.RoleBroker}, "", "")
	c.st = c.bm.st
	c.b, c.url = startBroker(t, c.bm, c.clock, o)
	c.client = testClient(t)
	testutil.WaitFor(t, 10*time.Second, "bootstrap admin", func() bool {
		_, err := c.st.GetRecord(state.BucketCluster, state.KeyBootstrap)
		return err == nil
	})
	for _, ns := range o.nodes {
		c.addNode(ns)
	}
	c.waitNodes()
	return c
}

// startBroker creates and starts a Broker on m with the test settings.
func startBroker(t testing.TB, m *member, clock *testClock, o clusterOpts) (*Broker, string) {
	t.Helper()
	cfg := DefaultConfig(m.st, t.TempDir())
	cfg.APIAddr = m.ip + ":0"
	cfg.BcryptCost = bcrypt.MinCost
	cfg.BootstrapAdmin = adminLogin + ":" + adminPassword
	if o.admin == "-" {
		cfg.BootstrapAdmin = ""
	} else if o.admin != "" {
		cfg.BootstrapAdmin = o.admin
	}
	cfg.ClusterSecret = testSecret
	cfg.Now = clock.Now
	cfg.LBCheckInterval = time.Millisecond // roll-outs hardly wait for load balancers
	cfg.Logger = testLogger().With().Str("member", m.name).Logger()
	if o.cfg != nil {
		o.cfg(&cfg)
	}
	b, err := New(cfg)
	if err != nil {
		t.Fatalf("new broker: %v", err)
	}
	if err := b.Start(context.Background()); err != nil {
		t.Fatalf("start broker: %v", err)
	}
	m.Handle(internalapi.PrefixBundles, b.BundleHandler())
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("close broker: %v", err)
		}
	})
	return b, b.URL()
}

// addNode starts a node member, joins it to the broker and registers it.
func (c *testCluster) addNode(ns nodeSpec) *member {
	t := c.t
	t.Helper()
	m := startMember(t, ns.name, []string{store.RoleNode}, ns.zone, ns.region)
	if _, err := m.st.Join([]string{c.bm.GossipAddr()}); err != nil {
		t.Fatalf("join %s: %v", ns.name, err)
	}
	// The record the node role writes for its member (node.Register);
	// the tests play nodes through their records, without node code.
	maxGears := ns.maxGears
	if maxGears == 0 {
		maxGears = 100
	}
	rec := state.Node{Name: ns.name, Addr: m.ip, Zone: ns.zone, Region: ns.region, MaxGears: maxGears,
		PortMin: state.DefaultPortMin, PortMax: state.DefaultPortMax, Isolation: "uid+cgroup1", Since: time.Now()}
	if _, err := m.st.Put(context.Background(), state.BucketNodes, ns.name, rec); err != nil {
		t.Fatalf("register node %s: %v", ns.name, err)
	}
	c.nodes = append(c.nodes, m)
	return m
}

// waitNodes waits until the broker sees every node alive and registered.
func (c *testCluster) waitNodes() {
	c.t.Helper()
	testutil.WaitFor(c.t, 15*time.Second, "nodes alive and registered at the broker", func() bool {
		alive := map[string]bool{}
		for _, m := range c.st.Members() {
			if m.Status == store.StatusAlive {
				alive[m.Name] = true
			}
		}
		for _, n := range c.nodes {
			if !alive[n.name] {
				return false
			}
			if _, err := c.st.GetRecord(state.BucketNodes, n.name); err != nil {
				return false
			}
		}
		return true
	})
}

// node returns the node member called name.
func (c *testCluster) node(t testing.TB, name string) *member {
	for _, n := range c.nodes {
		if n.name == name {
			return n
		}
	}
	t.Fatalf("no node %s", name)
	return nil
}

func testClient(t testing.TB) *http.Client {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{
		Transport:     tr,
		Timeout:       20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// creds is who a request speaks for: basic auth, a bearer token, or
// nobody (the zero value).
type creds struct {
	user, pass string
	token      string
	header     string // a raw Authorization header
}

var (
	admin  = creds{user: adminLogin, pass: adminPassword}
	nobody = creds{}
)

func basic(user, pass string) creds { return creds{user: user, pass: pass} }
func bearer(token string) creds     { return creds{token: token} }

// rawBody is a request body sent as is, with its content type.
type rawBody struct {
	contentType string
	body        string
}

// headed is a request body (as for do) sent with more request headers.
type headed struct {
	body   any
	header http.Header
}

// response is a decoded API response.
type response struct {
	code   int
	header http.Header
	// env is the envelope; its Data is left nil, the data being in data,
	// undecoded (JSON null as "null").
	env  api.Envelope
	data json.RawMessage
	raw  string
}

// text is the messages' texts, joined.
func (r response) text() string {
	var out []string
	for _, m := range r.env.Messages {
		out = append(out, m.Text)
	}
	return strings.Join(out, " | ")
}

// decode decodes the envelope's data into v.
func (r response) decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.data, v); err != nil {
		t.Fatalf("decode data %s: %v", r.data, err)
	}
}

// do sends one request to url. body is nil, url.Values (form), rawBody,
// headed (one of these with more headers), or anything else, sent as JSON. path is sent verbatim in the request
// line, so that tests can send paths a client would clean or escape.
func do(t testing.TB, client *http.Client, base, method, path string, who creds, body any) response {
	t.Helper()
	var rd io.Reader
	ct := ""
	var extra http.Header
	if h, ok := body.(headed); ok {
		body, extra = h.body, h.header
	}
	switch v := body.(type) {
	case nil:
	case url.Values:
		rd, ct = strings.NewReader(v.Encode()), "application/x-www-form-urlencoded"
	case rawBody:
		rd, ct = strings.NewReader(v.body), v.contentType
	default:
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		rd, ct = bytes.NewReader(b), "application/json"
	}
	req, err := http.NewRequest(method, base+"/", rd)
	if err != nil {
		t.Fatal(err)
	}
	req.URL.Opaque = path
	if q := strings.IndexByte(path, '?'); q >= 0 {
		req.URL.Opaque, req.URL.RawQuery = path[:q], path[q+1:]
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	for k, vs := range extra {
		req.Header[k] = vs
	}
	switch {
	case who.header != "":
		req.Header.Set("Authorization", who.header)
	case who.token != "":
		req.Header.Set("Authorization", "Bearer "+who.token)
	case who.user != "":
		req.SetBasicAuth(who.user, who.pass)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	r := response{code: resp.StatusCode, header: resp.Header, raw: string(raw)}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		var data json.RawMessage
		r.env.Data = &data
		if err := json.Unmarshal(raw, &r.env); err != nil {
			t.Fatalf("%s %s: response is not an envelope: %v\n%s", method, path, err, raw)
		}
		// JSON null sets Data to nil and leaves data empty; the tests
		// that look at the data see it as "null".
		if r.env.Data == nil {
			data = json.RawMessage("null")
		}
		r.env.Data, r.data = nil, data
	}
	return r
}

// do sends a request to the cluster's broker.
func (c *testCluster) do(t testing.TB, method, path string, who creds, body any) response {
	t.Helper()
	return do(t, c.client, c.url, method, path, who, body)
}

// ok sends a request that must succeed (2xx) and decodes its data into
// out when out is not nil.
func (c *testCluster) ok(t testing.TB, method, path string, who creds, body any, out any) response {
	t.Helper()
	r := c.do(t, method, path, who, body)
	if r.code/100 != 2 {
		t.Fatalf("%s %s: %d %s, want success", method, path, r.code, r.text())
	}
	if r.env.Status != "ok" && r.env.Status != "created" {
		t.Fatalf("%s %s: status %q", method, path, r.env.Status)
	}
	if out != nil {
		r.decode(t, out)
	}
	return r
}

// wantErr checks an error response: its code, that the envelope is an
// error envelope, and that its message contains text.
func wantErr(t testing.TB, r response, code int, text string) {
	t.Helper()
	if r.code != code {
		t.Fatalf("got %d %q, want %d with %q", r.code, r.text(), code, text)
	}
	if len(r.env.Messages) == 0 || r.env.Messages[0].Severity != "error" {
		t.Fatalf("got messages %+v, want an error message", r.env.Messages)
	}
	if r.env.Status != statusName(code) {
		t.Fatalf("got status %q, want %q", r.env.Status, statusName(code))
	}
	if !strings.Contains(r.text(), text) {
		t.Fatalf("got message %q, want it to contain %q", r.text(), text)
	}
}

// unchanged runs fn and fails the test if the broker's store changed.
// The roll-out loop answers earlier requests on its own time; it is
// stepped first until a step writes nothing (a roll-out may still wait on
// a gear's report, which only the test writes), so that only fn's
// requests are judged.
func (c *testCluster) unchanged(t testing.TB, fn func()) {
	t.Helper()
	before := c.settle(t)
	fn()
	if after := c.dump(t); after != before {
		t.Fatalf("state changed:\nbefore: %s\nafter:  %s", before, after)
	}
}

// settle steps the broker's roll-outs until a step writes nothing, and
// returns the store's dump at rest. stepRollouts holds the broker's lock
// for its whole pass, so a pass of the background loop cannot interleave.
func (c *testCluster) settle(t testing.TB) string {
	t.Helper()
	d := c.dump(t)
	if !c.b.isLeader() {
		return d // only the leader steps roll-outs
	}
	for i := 0; i < 10; i++ {
		if err := c.b.stepRollouts(context.Background()); err != nil {
			t.Fatalf("step roll-outs: %v", err)
		}
		next := c.dump(t)
		if next == d {
			return d
		}
		d = next
	}
	t.Fatalf("roll-outs still writing after 10 steps:\n%s", d)
	return ""
}

// dump renders every record of the broker's store, tombstones included.
func (c *testCluster) dump(t testing.TB) string {
	t.Helper()
	recs, err := c.st.Dump()
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	for _, r := range recs {
		fmt.Fprintf(&sb, "%s/%s@%s del=%v %s\n", r.Bucket, r.Key, r.Version, r.Deleted, r.Value)
	}
	return c.st.Digest() + "\n" + sb.String()
}

// Fixtures.

// user creates a user with the given extra parameters and returns its
// credentials.
func (c *testCluster) user(t testing.TB, login string, extra url.Values) creds {
	t.Helper()
	v := url.Values{"login": {login}, "password": {login + "-password"}}
	for k, vs := range extra {
		v[k] = vs
	}
	c.ok(t, "POST", "/broker/rest/users", admin, v, nil)
	return basic(login, login+"-password")
}

// domain creates namespace ns as who.
func (c *testCluster) domain(t testing.TB, who creds, ns string) {
	t.Helper()
	c.ok(t, "POST", "/broker/rest/domains", who, url.Values{"name": {ns}}, nil)
}

// appPath is the path of app in ns, plus rest.
func appPath(ns, app string, rest ...string) string {
	return "/broker/rest/domains/" + ns + "/applications/" + app + strings.Join(rest, "")
}

// lbGears returns app a's LB gears.
func lbGears(a api.App) []api.Gear {
	var out []api.Gear
	for _, g := range a.Gears {
		if g.LB {
			out = append(out, g)
		}
	}
	return out
}

// createApp creates an app in ns as who with extra parameters.
func (c *testCluster) createApp(t testing.TB, who creds, ns, name string, extra url.Values) api.App {
	t.Helper()
	v := url.Values{"name": {name}}
	for k, vs := range extra {
		v[k] = vs
	}
	var a api.App
	c.ok(t, "POST", "/broker/rest/domains/"+ns+"/applications", who, v, &a)
	return a
}

// show returns the app with its gears.
func (c *testCluster) show(t testing.TB, who creds, ns, name string) api.App {
	t.Helper()
	var a api.App
	c.ok(t, "GET", appPath(ns, name, "?include=gears"), who, nil, &a)
	return a
}

// event posts an application event that must succeed.
func (c *testCluster) event(t testing.TB, who creds, ns, name, ev string) api.App {
	t.Helper()
	var a api.App
	c.ok(t, "POST", appPath(ns, name, "/events"), who, url.Values{"event": {ev}}, &a)
	return a
}

// gears reads the app's gear records from the store, by ordinal.
func (c *testCluster) gears(t testing.TB, ns, name string) []state.Gear {
	t.Helper()
	all, err := list[state.Gear](c.st, state.BucketGears)
	if err != nil {
		t.Fatal(err)
	}
	return gearsOf(all, state.AppKey(ns, name))
}

// events reads the routing events from the store, by sequence.
func (c *testCluster) events(t testing.TB) []state.RoutingEvent {
	t.Helper()
	evs, err := list[state.RoutingEvent](c.st, state.BucketRoutingEvents)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// eventsSince returns the routing events after seq.
func (c *testCluster) eventsSince(t testing.TB, seq uint64) []state.RoutingEvent {
	t.Helper()
	var out []state.RoutingEvent
	for _, e := range c.events(t) {
		if e.Seq > seq {
			out = append(out, e)
		}
	}
	return out
}

// lastSeq is the newest routing event's sequence number (0: none).
func (c *testCluster) lastSeq(t testing.TB) uint64 {
	t.Helper()
	evs := c.events(t)
	if len(evs) == 0 {
		return 0
	}
	return evs[len(evs)-1].Seq
}

// actions lists the actions of evs.
func actions(evs []state.RoutingEvent) []string {
	out := make([]string, 0, len(evs))
	for _, e := range evs {
		out = append(out, e.Action)
	}
	return out
}

// countAction counts the events of evs with action.
func countAction(evs []state.RoutingEvent, action string) int {
	n := 0
	for _, e := range evs {
		if e.Action == action {
			n++
		}
	}
	return n
}

// distinct counts the distinct values of f over gs.
func distinct(gs []api.Gear, f func(api.Gear) string) int {
	var seen []string
	for _, g := range gs {
		if v := f(g); !slices.Contains(seen, v) {
			seen = append(seen, v)
		}
	}
	return len(seen)
}
