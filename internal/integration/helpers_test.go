package integration

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
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/crypto/bcrypt"

	"gearbox/broker"
	"gearbox/broker/api"
	"gearbox/internal/testutil"
	"gearbox/node"
	"gearbox/store"
	"gearbox/store/internalapi"
	"gearbox/store/state"
	"gearbox/store/storetest"
)

// ips hands out the integration tests' addresses, 127.0.6.x.
var ips = testutil.NewIPs(6, 1)

// leakPatterns match the goroutines of the roles under test and of their
// stores.
var leakPatterns = append([]string{"gearbox/broker.(*Broker)", "gearbox/node."}, storetest.LeakPatterns...)

const (
	testSecret    = "integration-test-cluster-secret"
	adminLogin    = "admin"
	adminPassword = "adminpass1"
	// logTimeFormat is how gears' log lines are stamped.
	logTimeFormat = "2006-01-02T15:04:05.000Z07:00"
)

func testLogger() zerolog.Logger {
	if os.Getenv("GEARBOX_TEST_LOG") != "" {
		return zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr}).With().Timestamp().Logger()
	}
	return zerolog.Nop()
}

// member is one in-process store member, with short names for what the
// tests use most.
type member struct {
	*storetest.Member
	name    string
	ip      string
	st      *store.Store
	dataDir string
}

// startMember starts a store member with roles on a fresh address,
// serving the internal API. It is closed in t.Cleanup.
func startMember(t testing.TB, name string, roles []string, zone, region string) *member {
	t.Helper()
	ip := ips.Next()
	cfg := store.LocalConfig(name, filepath.Join(t.TempDir(), "data"), ip)
	cfg.Roles, cfg.Zone, cfg.Region = roles, zone, region
	cfg.ClusterSecret = testSecret
	cfg.Logger = testLogger().With().Str("member", name).Logger()
	sm := storetest.Start(t, cfg)
	return &member{Member: sm, name: name, ip: ip, st: sm.Store, dataDir: cfg.DataDir}
}

// nodeSpec describes one node member of a test cluster.
type nodeSpec struct{ name, zone, region string }

// threeZones is the default cluster's nodes: n1, n2, n3 in zones z1, z2,
// z3, all in region r1.
func threeZones() []nodeSpec {
	return []nodeSpec{{"n1", "z1", "r1"}, {"n2", "z2", "r1"}, {"n3", "z3", "r1"}}
}

// cluster is a broker member running a Broker, and node members that
// registered (node.Register) but run no Supervisor until a test starts
// one.
type cluster struct {
	t      testing.TB
	bm     *member
	st     *store.Store // the broker's
	b      *broker.Broker
	url    string
	nodes  []*member
	client *http.Client
}

// newCluster starts a broker member ("b1") with a started Broker and
// node members that join it and register (nil nodes: threeZones); it
// returns once the broker sees every node alive and registered and the
// bootstrap admin exists. The cleanup checks that no goroutine of the
// roles or the stores outlives the test.
func newCluster(t testing.TB, nodes []nodeSpec) *cluster {
	t.Helper()
	testutil.CheckNoLeaks(t, leakPatterns...)
	if nodes == nil {
		nodes = threeZones()
	}
	c := &cluster{t: t}
	c.bm = startMember(t, "b1", []string{store.RoleBroker}, "", "")
	c.st = c.bm.st
	cfg := broker.DefaultConfig(c.st, t.TempDir())
	cfg.APIAddr = c.bm.ip + ":0"
	cfg.BcryptCost = bcrypt.MinCost
	cfg.BootstrapAdmin = adminLogin + ":" + adminPassword
	cfg.ClusterSecret = testSecret
	cfg.LBCheckInterval = time.Millisecond // roll-outs hardly wait for load balancers
	cfg.Logger = testLogger().With().Str("member", "b1").Logger()
	b, err := broker.New(cfg)
	if err != nil {
		t.Fatalf("new broker: %v", err)
	}
	if err := b.Start(context.Background()); err != nil {
		t.Fatalf("start broker: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("close broker: %v", err)
		}
	})
	c.b, c.url = b, b.URL()
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	c.client = &http.Client{Transport: tr, Timeout: 20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	testutil.WaitFor(t, 10*time.Second, "bootstrap admin", func() bool {
		_, err := c.st.GetRecord(state.BucketCluster, state.KeyBootstrap)
		return err == nil
	})
	for _, ns := range nodes {
		m := startMember(t, ns.name, []string{store.RoleNode}, ns.zone, ns.region)
		if _, err := m.st.Join([]string{c.bm.GossipAddr()}); err != nil {
			t.Fatalf("join %s: %v", ns.name, err)
		}
		if err := node.Register(context.Background(), m.st, node.Registration{Addr: m.ip, Zone: ns.zone, Region: ns.region,
			Isolation: node.ModeCgroup1}); err != nil {
			t.Fatalf("register node %s: %v", ns.name, err)
		}
		c.nodes = append(c.nodes, m)
	}
	testutil.WaitFor(t, 15*time.Second, "nodes alive and registered at the broker", func() bool {
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
	return c
}

// node returns the node member called name.
func (c *cluster) node(t testing.TB, name string) *member {
	for _, n := range c.nodes {
		if n.name == name {
			return n
		}
	}
	t.Fatalf("no node %s", name)
	return nil
}

// serveGearLogs gives every node member of c a node Supervisor that runs
// no gears but serves the logs of the gears placed on it, as a member with
// the node role does on its internal API. They are closed in t.Cleanup and
// returned by node name.
func (c *cluster) serveGearLogs(t *testing.T) map[string]*node.Supervisor {
	t.Helper()
	sups := make(map[string]*node.Supervisor)
	for _, m := range c.nodes {
		cfg := node.FastConfig(m.st, m.dataDir, m.ip, "example.com")
		cfg.HTTPAddr = ""
		s, err := node.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		m.Handle(internalapi.PrefixGears, s.LogHandler())
		sups[m.name] = s
	}
	return sups
}

// gears reads the app's gear records from the broker's store, by ordinal.
func (c *cluster) gears(t testing.TB, ns, name string) []state.Gear {
	t.Helper()
	recs, err := c.st.List(state.BucketGears)
	if err != nil {
		t.Fatal(err)
	}
	var out []state.Gear
	for _, r := range recs {
		var g state.Gear
		if err := r.Decode(&g); err != nil {
			t.Fatal(err)
		}
		if g.App == state.AppKey(ns, name) {
			out = append(out, g)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Ordinal < out[j].Ordinal })
	return out
}

// waitGears waits until the node of each of gs has its gear record.
func (c *cluster) waitGears(t *testing.T, gs []state.Gear) {
	t.Helper()
	testutil.WaitFor(t, 10*time.Second, "gear records on their nodes", func() bool {
		for _, g := range gs {
			if _, err := c.node(t, g.Node).st.GetRecord(state.BucketGears, g.ID); err != nil {
				return false
			}
		}
		return true
	})
}

// appendLog appends lines to gear g's log on its node, each stamped as a
// gear's log is: "TIME TEXT".
func (c *cluster) appendLog(t *testing.T, g state.Gear, lines ...string) {
	t.Helper()
	dir := filepath.Join(c.node(t, g.Node).dataDir, "gears", g.ID, "logs")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "gear.log"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, l := range lines {
		fmt.Fprintln(f, l)
	}
}

// stamp is a log time stamp s seconds after a fixed time.
func stamp(s int) string {
	return time.Date(2026, 3, 4, 5, 6, 0, 0, time.UTC).Add(time.Duration(s) * time.Second).Format(logTimeFormat)
}

// creds is who a request speaks for: basic auth or nobody (the zero
// value).
type creds struct{ user, pass string }

var (
	admin  = creds{adminLogin, adminPassword}
	nobody = creds{}
)

// response is a decoded API response.
type response struct {
	code   int
	header http.Header
	env    envelope
	raw    string
}

// envelope is the API's response envelope with data left undecoded.
type envelope struct {
	Status   string          `json:"status"`
	Messages []api.Message   `json:"messages"`
	Data     json.RawMessage `json:"data"`
}

// text is the messages' texts, joined.
func (r response) text() string {
	var out []string
	for _, m := range r.env.Messages {
		out = append(out, m.Text)
	}
	return strings.Join(out, " | ")
}

// do sends one request to the broker. body is nil, url.Values (form), or
// anything else, sent as JSON.
func (c *cluster) do(t testing.TB, method, path string, who creds, body any) response {
	t.Helper()
	var rd io.Reader
	ct := ""
	switch v := body.(type) {
	case nil:
	case url.Values:
		rd, ct = strings.NewReader(v.Encode()), "application/x-www-form-urlencoded"
	default:
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		rd, ct = bytes.NewReader(b), "application/json"
	}
	req, err := http.NewRequest(method, c.url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	if who.user != "" {
		req.SetBasicAuth(who.user, who.pass)
	}
	resp, err := c.client.Do(req)
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
		if err := json.Unmarshal(raw, &r.env); err != nil {
			t.Fatalf("%s %s: response is not an envelope: %v\n%s", method, path, err, raw)
		}
	}
	return r
}

// ok sends a request that must succeed (2xx) and decodes its data into
// out when out is not nil.
func (c *cluster) ok(t testing.TB, method, path string, who creds, body any, out any) response {
	t.Helper()
	r := c.do(t, method, path, who, body)
	if r.code/100 != 2 {
		t.Fatalf("%s %s: %d %s, want success", method, path, r.code, r.text())
	}
	if r.env.Status != "ok" && r.env.Status != "created" {
		t.Fatalf("%s %s: status %q", method, path, r.env.Status)
	}
	if out != nil {
		if err := json.Unmarshal(r.env.Data, out); err != nil {
			t.Fatalf("decode data %s: %v", r.env.Data, err)
		}
	}
	return r
}

// wantErr checks an error response: its code, that the envelope is an
// error envelope with the code's status name, and that its message
// contains text.
func wantErr(t testing.TB, r response, code int, text string) {
	t.Helper()
	if r.code != code {
		t.Fatalf("got %d %q, want %d with %q", r.code, r.text(), code, text)
	}
	if len(r.env.Messages) == 0 || r.env.Messages[0].Severity != "error" {
		t.Fatalf("got messages %+v, want an error message", r.env.Messages)
	}
	// The broker names a status by its text: 404 "not_found".
	if want := strings.ToLower(strings.ReplaceAll(http.StatusText(code), " ", "_")); r.env.Status != want {
		t.Fatalf("got status %q, want %q", r.env.Status, want)
	}
	if !strings.Contains(r.text(), text) {
		t.Fatalf("got message %q, want it to contain %q", r.text(), text)
	}
}

// user creates a user and returns its credentials.
func (c *cluster) user(t testing.TB, login string) creds {
	t.Helper()
	c.ok(t, "POST", "/broker/rest/users", admin, url.Values{"login": {login}, "password": {login + "-password"}}, nil)
	return creds{login, login + "-password"}
}

// domain creates namespace ns as who.
func (c *cluster) domain(t testing.TB, who creds, ns string) {
	t.Helper()
	c.ok(t, "POST", "/broker/rest/domains", who, url.Values{"name": {ns}}, nil)
}

// appPath is the path of app in ns, plus rest.
func appPath(ns, app string, rest ...string) string {
	return "/broker/rest/domains/" + ns + "/applications/" + app + strings.Join(rest, "")
}

// createApp creates an app in ns as who with extra parameters.
func (c *cluster) createApp(t testing.TB, who creds, ns, name string, extra url.Values) {
	t.Helper()
	v := url.Values{"name": {name}}
	for k, vs := range extra {
		v[k] = vs
	}
	c.ok(t, "POST", "/broker/rest/domains/"+ns+"/applications", who, v, nil)
}

// event posts an application event that must succeed.
func (c *cluster) event(t testing.TB, who creds, ns, name, ev string) {
	t.Helper()
	c.ok(t, "POST", appPath(ns, name, "/events"), who, url.Values{"event": {ev}}, nil)
}
