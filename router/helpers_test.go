package router

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"gearbox/store"
	"gearbox/store/state"
)

const zone = "example.test"

var ipMu sync.Mutex
var nextIP = 10

// freshIP hands out 127.0.4.x addresses, one per member or stand-in, so
// that tests never meet a port an earlier test may still hold.
func freshIP() string {
	ipMu.Lock()
	defer ipMu.Unlock()
	nextIP++
	if nextIP > 250 {
		nextIP = 11
	}
	return fmt.Sprintf("127.0.4.%d", nextIP)
}

func testLogger() zerolog.Logger {
	if os.Getenv("GEARBOX_TEST_LOG") != "" {
		return zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr}).With().Timestamp().Logger().Level(zerolog.DebugLevel)
	}
	return zerolog.Nop()
}

// member is a store member on its own address, serving its internal API
// (for anti-entropy with peers).
type member struct {
	t   testing.TB
	ip  string
	st  *store.Store
	srv *http.Server
}

// startMember starts a store named name on a fresh address; it is closed
// in t.Cleanup unless the test crashed it first.
func startMember(t testing.TB, name string) *member {
	t.Helper()
	m := &member{t: t, ip: freshIP()}
	ln, err := net.Listen("tcp", m.ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := store.LocalConfig(name, filepath.Join(t.TempDir(), "data"), m.ip)
	cfg.InternalPort = ln.Addr().(*net.TCPAddr).Port
	cfg.Roles = []string{store.RoleRouter, store.RoleNode}
	cfg.Logger = testLogger().With().Str("member", name).Logger()
	st, err := store.New(cfg)
	if err != nil {
		ln.Close()
		t.Fatalf("new store: %v", err)
	}
	if err := st.Start(context.Background()); err != nil {
		ln.Close()
		st.Close()
		t.Fatalf("start store: %v", err)
	}
	m.st = st
	m.srv = &http.Server{Handler: st.Handler()}
	go m.srv.Serve(ln)
	t.Cleanup(m.crash)
	return m
}

// crash stops the member without leaving the cluster, as a crash would.
func (m *member) crash() {
	m.srv.Close()
	m.st.Close()
}

// gossip is the member's serf address.
func (m *member) gossip() string {
	for _, mm := range m.st.Members() {
		if mm.Name == m.st.Name() {
			return net.JoinHostPort(mm.Addr, strconv.Itoa(mm.Port))
		}
	}
	m.t.Fatalf("%s does not know itself", m.st.Name())
	return ""
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

// waitFor polls cond until it holds or timeout passes, then fails the
// test with what and the detail.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool, detail ...func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			msg := ""
			for _, d := range detail {
				msg += ": " + d()
			}
			t.Fatalf("timed out after %s waiting for %s%s", timeout, what, msg)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitServed waits until a GET with Host host answers code with a body
// that contains want.
func waitServed(t testing.TB, r *Router, host string, code int, want string) {
	t.Helper()
	var gotCode int
	var gotBody string
	waitFor(t, 10*time.Second, fmt.Sprintf("%s to answer %d %q", host, code, want), func() bool {
		gotCode, gotBody = get(r, host)
		return gotCode == code && strings.Contains(gotBody, want)
	}, func() string { return fmt.Sprintf("last %d %.200q", gotCode, gotBody) })
}

// checkNoLeaks fails the test if goroutines of the router, of its pools
// or of HTTP connections outlive it.
func checkNoLeaks(t testing.TB) {
	t.Helper()
	before := goroutines()
	t.Cleanup(func() {
		deadline := time.Now().Add(10 * time.Second)
		for {
			var leaked []string
			for id, stack := range goroutines() {
				if _, ok := before[id]; !ok {
					leaked = append(leaked, stack)
				}
			}
			if len(leaked) == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("%d goroutines outlived Close, for example:\n%s", len(leaked), leaked[0])
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

// goroutines returns the stacks, by goroutine id, of the goroutines that
// run router or lb code (tests aside), or an HTTP connection.
func goroutines() map[string]string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	out := make(map[string]string)
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		stack := string(g)
		if strings.Contains(stack, "_test.go") || strings.Contains(stack, "testing.tRunner") {
			continue
		}
		if !strings.Contains(stack, "gearbox/router.") && !strings.Contains(stack, "gearbox/lb.") &&
			!strings.Contains(stack, "net/http.(*conn).serve") && !strings.Contains(stack, "net/http.(*persistConn)") {
			continue
		}
		id, _, _ := strings.Cut(strings.TrimPrefix(stack, "goroutine "), " ")
		out[id] = stack
	}
	return out
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
