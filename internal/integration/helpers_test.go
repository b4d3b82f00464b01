package integration

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/crypto/bcrypt"

	"gearbox/broker"
	"gearbox/broker/api"
	"gearbox/broker/client"
	"gearbox/internal/testutil"
	"gearbox/node"
	"gearbox/store"
	"gearbox/store/internalapi"
	"gearbox/store/state"
	"gearbox/store/storetest"
)

// ips hands out the integration tests' addresses, 127.0.6.x.
var ips = testutil.NewIPs(6, 1)

// roleLeakPatterns match the goroutines of the roles under test;
// storetest.Cluster checks those of the stores.
var roleLeakPatterns = []string{"gearbox/broker.(*Broker)", "gearbox/node."}

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
	st    *store.Store // the broker member's
	url   string       // the broker's API
	nodes []*storetest.Member
	// http is the HTTP client of the broker's clients, and of requests
	// to nodes' front listeners; it follows no redirect.
	http  *http.Client
	admin *client.Client
}

// newCluster starts a store cluster of a broker member ("b1") and node
// members (nil nodes: threeZones), starts a Broker on b1 and registers
// the nodes; it returns once the bootstrap admin exists and the broker
// lists every node alive. The cleanup checks that no goroutine of the
// roles or the stores outlives the test. adjust, if given, edits the
// broker's config before New.
func newCluster(t testing.TB, nodes []nodeSpec, adjust ...func(*broker.Config)) *cluster {
	t.Helper()
	testutil.CheckNoLeaks(t, roleLeakPatterns...)
	if nodes == nil {
		nodes = threeZones()
	}
	// storetest.Cluster names its members m00, m01, ...: m00 becomes the
	// broker member b1, the others the nodes in order.
	specs := append([]nodeSpec{{name: "b1"}}, nodes...)
	ms := storetest.Cluster(t, ips, len(specs), func(cfg *store.Config) {
		i, err := strconv.Atoi(strings.TrimPrefix(cfg.Name, "m"))
		if err != nil || i >= len(specs) {
			panic("storetest.Cluster named a member " + cfg.Name)
		}
		s := specs[i]
		cfg.Name, cfg.Zone, cfg.Region = s.name, s.zone, s.region
		cfg.Roles = []string{store.RoleNode}
		if i == 0 {
			cfg.Roles = []string{store.RoleBroker}
		}
		cfg.ClusterSecret = testSecret
		cfg.Logger = testLogger().With().Str("member", s.name).Logger()
	})
	bm := ms[0]
	c := &cluster{st: bm.Store, nodes: ms[1:]}
	cfg := broker.DefaultConfig(c.st, t.TempDir())
	cfg.APIAddr = bm.Config.BindAddr + ":0"
	cfg.BcryptCost = bcrypt.MinCost
	cfg.BootstrapAdmin = adminLogin + ":" + adminPassword
	cfg.ClusterSecret = testSecret
	cfg.LBCheckInterval = time.Millisecond // roll-outs hardly wait for load balancers
	cfg.Logger = testLogger().With().Str("member", bm.Config.Name).Logger()
	for _, a := range adjust {
		a(&cfg)
	}
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
	c.url = b.URL()
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	c.http = &http.Client{Transport: tr, Timeout: 20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	c.admin = c.as(adminLogin, adminPassword)
	testutil.WaitFor(t, 10*time.Second, "bootstrap admin", func() bool {
		_, err := c.st.GetRecord(state.BucketCluster, state.KeyBootstrap)
		return err == nil
	})
	for _, m := range c.nodes {
		if err := node.Register(context.Background(), m.Store, node.Registration{Addr: m.Config.BindAddr,
			Zone: m.Config.Zone, Region: m.Config.Region, Isolation: node.ModeCgroup1}); err != nil {
			t.Fatalf("register node %s: %v", m.Config.Name, err)
		}
	}
	var listed []api.Node
	testutil.WaitFor(t, 15*time.Second, "nodes alive and registered at the broker", func() bool {
		listed, err = c.admin.Nodes(context.Background())
		if err != nil {
			return false
		}
		for _, m := range c.nodes {
			if !slices.ContainsFunc(listed, func(n api.Node) bool { return n.Name == m.Config.Name && n.Alive }) {
				return false
			}
		}
		return true
	}, func() string { return fmt.Sprintf("%+v, %v", listed, err) })
	return c
}

// as is a client of the broker that speaks for login (nobody when login
// is empty).
func (c *cluster) as(login, password string) *client.Client {
	return &client.Client{BaseURL: c.url, User: login, Password: password, HTTP: c.http}
}

// user creates user login, with password login+"-password" and extra
// parameters, and returns its client.
func (c *cluster) user(t testing.TB, login string, extra url.Values) *client.Client {
	t.Helper()
	if _, _, err := c.admin.CreateUser(context.Background(), login, login+"-password", extra); err != nil {
		t.Fatalf("create user %s: %v", login, err)
	}
	return c.as(login, login+"-password")
}

// newApp creates namespace ns and app name in it as who.
func newApp(t testing.TB, who *client.Client, ns, name string, o client.AppOptions) {
	t.Helper()
	ctx := context.Background()
	if _, _, err := who.CreateDomain(ctx, ns); err != nil {
		t.Fatalf("create domain %s: %v", ns, err)
	}
	if _, _, err := who.CreateApp(ctx, ns, name, o); err != nil {
		t.Fatalf("create app %s/%s: %v", ns, name, err)
	}
}

// gears returns the app's gears as who sees them.
func gears(t testing.TB, who *client.Client, ns, name string) []api.Gear {
	t.Helper()
	a, err := who.App(context.Background(), ns, name, true)
	if err != nil {
		t.Fatalf("app %s/%s: %v", ns, name, err)
	}
	return a.Gears
}

// wantErr checks that err is the broker's refusal with code: an error
// message first, the code's status name (404 "not_found"), and a message
// that contains text.
func wantErr(t testing.TB, err error, code int, text string) {
	t.Helper()
	var e *client.Error
	if !errors.As(err, &e) {
		t.Fatalf("got %v, want a refusal %d with %q", err, code, text)
	}
	if e.StatusCode != code {
		t.Fatalf("got %d %q, want %d with %q", e.StatusCode, e.Error(), code, text)
	}
	if len(e.Messages) == 0 || e.Messages[0].Severity != "error" {
		t.Fatalf("got messages %+v, want an error message", e.Messages)
	}
	if want := strings.ToLower(strings.ReplaceAll(http.StatusText(code), " ", "_")); e.Status != want {
		t.Fatalf("got status %q, want %q", e.Status, want)
	}
	if !strings.Contains(e.Error(), text) {
		t.Fatalf("got message %q, want it to contain %q", e.Error(), text)
	}
}

// node returns the node member called name.
func (c *cluster) node(t testing.TB, name string) *storetest.Member {
	for _, n := range c.nodes {
		if n.Config.Name == name {
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
		cfg := node.FastConfig(m.Store, m.Config.DataDir, m.Config.BindAddr, "example.com")
		cfg.HTTPAddr = ""
		s, err := node.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		m.Handle(internalapi.PrefixGears, s.LogHandler())
		sups[m.Config.Name] = s
	}
	return sups
}

// waitGears waits until the node of each of gs has its gear record.
func (c *cluster) waitGears(t *testing.T, gs []api.Gear) {
	t.Helper()
	testutil.WaitFor(t, 10*time.Second, "gear records on their nodes", func() bool {
		for _, g := range gs {
			if _, err := c.node(t, g.Node).Store.GetRecord(state.BucketGears, g.ID); err != nil {
				return false
			}
		}
		return true
	})
}

// appendLog appends lines to gear g's log on its node, each stamped as a
// gear's log is: "TIME TEXT".
func (c *cluster) appendLog(t *testing.T, g api.Gear, lines ...string) {
	t.Helper()
	dir := filepath.Join(c.node(t, g.Node).Config.DataDir, "gears", g.ID, "logs")
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

// readAll reads and closes body, as a string.
func readAll(t testing.TB, body io.ReadCloser) string {
	t.Helper()
	defer body.Close()
	b, err := io.ReadAll(body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
