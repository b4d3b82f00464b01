package router

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"gearbox/internal/testutil"
	"gearbox/store"
	"gearbox/store/state"
	"gearbox/store/storetest"
)

const zone = "example.test"

// ips hands out the router tests' addresses, 127.0.4.11 and up, one per
// member or stand-in.
var ips = testutil.NewIPs(4, 11)

// leakPatterns match the goroutines that run router or lb code (tests
// aside), or an HTTP connection.
var leakPatterns = []string{"gearbox/router.", "gearbox/lb.", "net/http.(*conn).serve", "net/http.(*persistConn)"}

func testLogger() zerolog.Logger {
	if os.Getenv("GEARBOX_TEST_LOG") != "" {
		return zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr}).With().Timestamp().Logger().Level(zerolog.DebugLevel)
	}
	return zerolog.Nop()
}

// member is a store member on its own address, serving its internal API
// (for anti-entropy with peers): a storetest.Member, with short names for
// what the tests use most. Its Close stops it without leaving the
// cluster, as a crash would.
type member struct {
	*storetest.Member
	t  testing.TB
	ip string
	st *store.Store
}

// startMember starts a store named name with the router and node roles on
// a fresh address; it is closed in t.Cleanup unless the test closed it
// first.
func startMember(t testing.TB, name string) *member {
	t.Helper()
	ip := ips.Next()
	cfg := store.LocalConfig(name, filepath.Join(t.TempDir(), "data"), ip)
	cfg.Roles = []string{store.RoleRouter, store.RoleNode}
	cfg.Logger = testLogger().With().Str("member", name).Logger()
	sm := storetest.Start(t, cfg)
	return &member{Member: sm, t: t, ip: ip, st: sm.Store}
}

func (m *member) put(bucket, key string, v any) {
	m.t.Helper()
	if _, err := m.st.Put(context.Background(), bucket, key, v); err != nil {
		m.t.Fatalf("put %s/%s: %v", bucket, key, err)
	}
}

func (m *member) del(bucket, key string) {
	m.t.Helper()
	if _, err := m.st.Delete(context.Background(), bucket, key); err != nil {
		m.t.Fatalf("delete %s/%s: %v", bucket, key, err)
	}
}

// startRouter starts a router on m with FastConfig, adjusted by opts;
// it is closed in t.Cleanup.
func startRouter(t testing.TB, m *member, opts ...func(*Config)) *Router {
	t.Helper()
	cfg := FastConfig(m.st, m.ip, zone)
	cfg.ClusterSecret = "sekrit"
	cfg.Logger = testLogger().With().Str("member", m.st.Name()).Logger()
	for _, o := range opts {
		o(&cfg)
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatalf("new router: %v", err)
	}
	if err := r.Start(context.Background()); err != nil {
		t.Fatalf("start router: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// lbGear plays an LB gear: an HTTP server on a node's address that
// answers "gear ID" and notes what it was sent.
type lbGear struct {
	*httptest.Server
	id   string
	hits atomic.Int64 // requests other than health checks

	mu     sync.Mutex
	seen   []*http.Request
	checks []*http.Request // GETs of the health path
	health string          // the health path
}

// newLBGear starts a stand-in LB gear for gear id on ip, whose health
// checks GET health.
func newLBGear(t testing.TB, id, ip, health string) *lbGear {
	t.Helper()
	g := &lbGear{id: id, health: health}
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	g.Server = httptest.NewUnstartedServer(http.HandlerFunc(g.serve))
	g.Server.Listener.Close()
	g.Server.Listener = ln
	g.Start()
	t.Cleanup(g.Close)
	return g
}

func (g *lbGear) serve(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	g.mu.Lock()
	if r.URL.Path == g.health && r.Header.Get("X-Forwarded-For") == "" {
		g.checks = append(g.checks, r)
	} else {
		g.seen = append(g.seen, r)
		g.hits.Add(1)
	}
	g.mu.Unlock()
	fmt.Fprintf(w, "gear %s\n", g.id)
}

// port is the stand-in's port.
func (g *lbGear) port() int { return g.Listener.Addr().(*net.TCPAddr).Port }

// last returns the last request the stand-in served (not a check).
func (g *lbGear) last() *http.Request {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.seen) == 0 {
		return nil
	}
	return g.seen[len(g.seen)-1]
}

// lastCheck returns the last health check the stand-in got.
func (g *lbGear) lastCheck() *http.Request {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.checks) == 0 {
		return nil
	}
	return g.checks[len(g.checks)-1]
}

// client makes one request per connection, so that no connection of the
// test outlives the request.
var client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// get sends GET / with Host host to the router and returns the status
// and body; a failed request returns status 0 and the error.
func get(r *Router, host string) (int, string) {
	req, err := http.NewRequest("GET", "http://"+r.HTTPAddr()+"/", nil)
	if err != nil {
		return 0, err.Error()
	}
	req.Host = host
	resp, err := client.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitServed waits until a GET with Host host answers code with a body
// that contains want.
func waitServed(t testing.TB, r *Router, host string, code int, want string) {
	t.Helper()
	var gotCode int
	var gotBody string
	testutil.WaitFor(t, 10*time.Second, fmt.Sprintf("%s to answer %d %q", host, code, want), func() bool {
		gotCode, gotBody = get(r, host)
		return gotCode == code && strings.Contains(gotBody, want)
	}, func() string { return fmt.Sprintf("last %d %.200q", gotCode, gotBody) })
}

// fixture writes the records a router reads: nodes, apps, gears and
// their statuses.
type fixture struct {
	m *member
}

// node registers member name as a node at addr.
func (f fixture) node(name, addr string) {
	f.m.put(state.BucketNodes, name, state.Node{Name: name, Addr: addr})
}

// app writes app a.
func (f fixture) app(a state.App) {
	f.m.put(state.BucketApps, state.AppKey(a.Domain, a.Name), a)
}

// lbGearRecord writes the record of an LB gear of app ns/name on node,
// whose load balancer is g, and its status (started, health path).
func (f fixture) lbGearRecord(g *lbGear, ns, name, node string, ordinal int, health string) {
	f.m.put(state.BucketGears, g.id, state.Gear{ID: g.id, App: state.AppKey(ns, name), AppName: name, Domain: ns, Node: node,
		LB: true, Head: ordinal == 1, State: state.GearStarted, Ordinal: ordinal, Port: 40000 + ordinal, LBPort: g.port()})
	f.m.put(state.BucketGearStatus, g.id, state.GearStatus{ID: g.id, Node: node, State: state.GearStarted, Health: health})
}
