package router

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"gearbox/internal/testutil"
	"gearbox/lb"
	"gearbox/store/internalapi"
	"gearbox/store/state"
)

func TestNewValidatesConfig(t *testing.T) {
	testutil.CheckNoLeaks(t, leakPatterns...)
	m := startMember(t, "r1")
	tests := []struct {
		name   string
		change func(*Config)
		want   string
	}{
		{"no store", func(c *Config) { c.Store = nil }, "Store is required"},
		{"bad addr", func(c *Config) { c.Addr = "router.example" }, `Addr "router.example" is not an IP address`},
		{"no domain", func(c *Config) { c.Domain = "" }, "Domain is required"},
		{"bad http addr", func(c *Config) { c.HTTPAddr = "80" }, `HTTPAddr "80"`},
		{"bad prefix", func(c *Config) { c.HAPrefix = "ha." }, `HAPrefix "ha."`},
		{"negative resync", func(c *Config) { c.ResyncInterval = -time.Second }, "ResyncInterval -1s is negative"},
		{"bad lb", func(c *Config) { c.LB.Balance = "random" }, `LB: lb config: Balance "random"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := FastConfig(m.st, m.ip, zone)
			tt.change(&cfg)
			_, err := New(cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New: %v, want an error with %q", err, tt.want)
			}
		})
	}
	cfg := Config{Store: m.st, Addr: m.ip, Domain: "Example.Test."}
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.Name != "r1" || cfg.HTTPAddr != ":80" || cfg.Domain != "example.test" || cfg.HAPrefix != "ha-" ||
		cfg.CoalesceInterval != DefaultCoalesceInterval || cfg.StopGrace != DefaultStopGrace {
		t.Errorf("defaults not filled: %+v", cfg)
	}
}

// A router whose address is taken fails to start, saying where, and
// leaves nothing behind.
func TestRouterAddressTaken(t *testing.T) {
	testutil.CheckNoLeaks(t, leakPatterns...)
	m := startMember(t, "r1")
	ln, err := net.Listen("tcp", m.ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg := FastConfig(m.st, m.ip, zone)
	cfg.HTTPAddr = ln.Addr().String()
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "router: listen on "+cfg.HTTPAddr) {
		t.Errorf("Start: %v, want the listen error", err)
	}
	if err := r.Close(); err != nil {
		t.Errorf("Close after a failed Start: %v", err)
	}
	if _, err := m.st.Get(state.BucketRouters, "r1", nil); err == nil {
		t.Errorf("a router that did not start registered itself")
	}
}

// A router proxies the ha- name, the aliases and the hostname of an HA
// app to its LB gears with the app's hostname, the hostname of a one-gear
// app to its gear, and answers 404 for other hosts; it health-checks LB
// gears on the app's health path with the app's hostname. A routing
// event is followed; an app made not HA loses its ha- name, a deleted app
// all its names.
func TestRouterServesApps(t *testing.T) {
	testutil.CheckNoLeaks(t, leakPatterns...)
	m := startMember(t, "r1")
	f := fixture{m}
	nodeIP := ips.Next()
	f.node("n1", nodeIP)
	lb1, lb2 := newLBGear(t, "lb1", nodeIP, "/health"), newLBGear(t, "lb2", nodeIP, "/health")
	blog := newLBGear(t, "blog1", nodeIP, "/")
	shop := state.App{Name: "shop", Domain: "ns", Scalable: true, HA: true, State: state.GearStarted,
		Aliases: []string{"www.shop.example"}, Env: map[string]string{EnvHealthPath: "/health"}}
	f.app(shop)
	f.lbGearRecord(lb1, "ns", "shop", "n1", 1, "")
	f.lbGearRecord(lb2, "ns", "shop", "n1", 2, "")
	f.app(state.App{Name: "blog", Domain: "ns", State: state.GearStarted})
	f.m.put(state.BucketGears, "blog1", state.Gear{ID: "blog1", App: "ns/blog", AppName: "blog", Domain: "ns", Node: "n1",
		State: state.GearStarted, Ordinal: 1, Port: blog.port()})
	m.put(state.BucketRoutingEvents, state.EventKey(7), state.RoutingEvent{Seq: 7, Action: state.ActionEnableHA, AppName: "shop", Namespace: "ns"})

	r := startRouter(t, m)
	if got := r.LastEvent(); got != 7 {
		t.Errorf("LastEvent() = %d at start, want the newest event, 7", got)
	}
	tests := []struct {
		host string
		code int
		want string // in the body
	}{
		{"ha-shop-ns.example.test", 200, "gear lb"},
		{"HA-Shop-NS.Example.Test.:80", 200, "gear lb"},
		{"www.shop.example", 200, "gear lb"},
		{"shop-ns.example.test", 200, "gear lb"},
		{"blog-ns.example.test", 200, "gear blog1"},
		{"ha-blog-ns.example.test", 404, "No application is configured"},
		{"unknown.example.test", 404, "No application is configured"},
		{r.HTTPAddr(), 404, "No application is configured"},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			code, body := get(r, tt.host)
			if code != tt.code || !strings.Contains(body, tt.want) {
				t.Errorf("%d %q, want %d with %q", code, body, tt.code, tt.want)
			}
		})
	}
	// What the LB gear was sent, once both are up (on a loaded machine a
	// check can time out and take one down for a while).
	testutil.WaitFor(t, 20*time.Second, "both LB gears of shop up", func() bool {
		up := 0
		for _, b := range r.Status().Apps["ns/shop"].Pool.Backends {
			if b.State == "up" && b.Serving {
				up++
			}
		}
		return up == 2
	}, func() string { return fmt.Sprintf("%+v", r.Status().Apps["ns/shop"].Pool.Backends) })
	lb1.hits.Store(0)
	lb2.hits.Store(0)
	for range 10 {
		if code, body := get(r, "ha-shop-ns.example.test"); code != 200 {
			t.Fatalf("%d %q", code, body)
		}
	}
	if lb1.hits.Load() == 0 || lb2.hits.Load() == 0 {
		t.Errorf("10 requests: %d to lb1, %d to lb2; want both LB gears used", lb1.hits.Load(), lb2.hits.Load())
	}
	req := lb1.last()
	for k, want := range map[string]string{"Host": "shop-ns.example.test", "X-Forwarded-Host": "ha-shop-ns.example.test",
		"X-Forwarded-Proto": "http", "X-Forwarded-For": "127.0.0.1",
		// The router proves to the app's LB gears that it holds the
		// cluster secret, so that they trust its X-Forwarded-*.
		lb.ProofField: lb.Proof([]byte("sekrit"), "ns/shop")} {
		got := req.Header.Get(k)
		if k == "Host" {
			got = req.Host
		}
		if got != want {
			t.Errorf("LB gear got %s %q, want %q", k, got, want)
		}
	}
	testutil.WaitFor(t, 5*time.Second, "a health check", func() bool { return lb1.lastCheck() != nil })
	if c := lb1.lastCheck(); c.Host != "shop-ns.example.test" || c.URL.Path != "/health" {
		t.Errorf("health check GET %s with Host %s, want /health with the app's hostname", c.URL.Path, c.Host)
	}

	// The router shows no status page of its own to the public: the
	// status path goes to the app like any other (its status is on the
	// internal API, below).
	sreq, _ := http.NewRequest("GET", "http://"+r.HTTPAddr()+"/lb-status", nil)
	sreq.Host = "ha-shop-ns.example.test"
	if resp, err := client.Do(sreq); err != nil {
		t.Error(err)
	} else {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(string(b), "gear lb") || lb1.last().URL.Path != "/lb-status" && lb2.last().URL.Path != "/lb-status" {
			t.Errorf("GET /lb-status through the router: %d %q; want the app's answer", resp.StatusCode, b)
		}
	}

	// The status report lists each app's hosts and LB gears.
	rec := httptest.NewRecorder()
	r.StatusHandler().ServeHTTP(rec, httptest.NewRequest("GET", internalapi.PathRouterStatus, nil))
	var st Status
	if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil {
		t.Fatalf("status: %v: %s", err, rec.Body.String())
	}
	shopSt := st.Apps["ns/shop"]
	var ids []string
	for _, b := range shopSt.Pool.Backends {
		ids = append(ids, b.ID)
	}
	sort.Strings(ids)
	if st.LastEvent != 7 || !slices.Equal(shopSt.Hosts, []string{"ha-shop-ns.example.test", "shop-ns.example.test", "www.shop.example"}) ||
		!slices.Equal(ids, []string{"lb1", "lb2"}) || len(st.Apps["ns/blog"].Pool.Backends) != 1 {
		t.Errorf("status: %s", rec.Body.String())
	}

	// Routing events are followed.
	m.put(state.BucketRoutingEvents, state.EventKey(8), state.RoutingEvent{Seq: 8, Action: state.ActionDisableHA, AppName: "shop", Namespace: "ns"})
	testutil.WaitFor(t, 5*time.Second, "event 8 seen", func() bool { return r.LastEvent() == 8 })

	// Not HA: the ha- name goes, the others stay.
	shop.HA = false
	f.app(shop)
	waitServed(t, r, "ha-shop-ns.example.test", 404, "No application")
	waitServed(t, r, "www.shop.example", 200, "gear lb")
	// An alias removed goes; one added comes.
	shop.Aliases = []string{"shop.example"}
	f.app(shop)
	waitServed(t, r, "www.shop.example", 404, "No application")
	waitServed(t, r, "shop.example", 200, "gear lb")
	// Deleted: every name goes.
	m.del(state.BucketApps, "ns/shop")
	waitServed(t, r, "shop-ns.example.test", 404, "No application")
	waitServed(t, r, "shop.example", 404, "No application")
	waitServed(t, r, "blog-ns.example.test", 200, "gear blog1")
}

// LB gears come and go from an app's pool as their records, their nodes'
// records and the members' statuses say, and a request to an LB gear
// that refuses connections is retried on another.
func TestRouterFollowsLBGears(t *testing.T) {
	testutil.CheckNoLeaks(t, leakPatterns...)
	m := startMember(t, "r1")
	f := fixture{m}
	nodeIP := ips.Next()
	f.node("n1", nodeIP)
	f.app(state.App{Name: "shop", Domain: "ns", Scalable: true, HA: true, State: state.GearStarted})
	lb1 := newLBGear(t, "lb1", nodeIP, "/")
	f.lbGearRecord(lb1, "ns", "shop", "n1", 1, "")
	// An LB gear whose port refuses connections: each request that picks
	// it goes to lb1 instead.
	dead := newLBGear(t, "dead", nodeIP, "/")
	dead.Close()
	f.lbGearRecord(dead, "ns", "shop", "n1", 2, "")
	r := startRouter(t, m)
	for i := range 20 {
		if code, body := get(r, "ha-shop-ns.example.test"); code != 200 || !strings.Contains(body, "gear lb1") {
			t.Fatalf("request %d: %d %q, want lb1's answer", i, code, body)
		}
	}

	// A new LB gear gets requests.
	lb3 := newLBGear(t, "lb3", nodeIP, "/")
	f.lbGearRecord(lb3, "ns", "shop", "n1", 3, "")
	waitServed(t, r, "ha-shop-ns.example.test", 200, "gear lb3")
	// Stopped: it gets none.
	f.m.put(state.BucketGears, "lb3", state.Gear{ID: "lb3", App: "ns/shop", Node: "n1", LB: true, State: state.GearStopped, Ordinal: 3, LBPort: lb3.port()})
	waitForBackends(t, r, "ns/shop", "lb1", "dead")
	// Its node record gone: neither does any gear on it.
	f.lbGearRecord(lb3, "ns", "shop", "n1", 3, "")
	waitForBackends(t, r, "ns/shop", "lb1", "dead", "lb3")
	m.del(state.BucketNodes, "n1")
	waitForBackends(t, r, "ns/shop")
	waitServed(t, r, "ha-shop-ns.example.test", 503, "")
}

// waitForBackends waits until the pool of app has exactly the backends
// ids, in order.
func waitForBackends(t *testing.T, r *Router, app string, ids ...string) {
	t.Helper()
	got := func() string {
		p := r.route(r.routeHost(app))
		if p == nil {
			return "no pool"
		}
		var out []string
		for _, b := range p.Backends() {
			out = append(out, b.ID)
		}
		return fmt.Sprint(out)
	}
	want := fmt.Sprint(ids)
	if len(ids) == 0 {
		want = "[]"
	}
	testutil.WaitFor(t, 10*time.Second, fmt.Sprintf("backends of %s %s", app, want), func() bool { return got() == want }, got)
}

// routeHost is the hostname of app (an AppKey) in the router's zone.
func (r *Router) routeHost(app string) string {
	ns, name, _ := strings.Cut(app, "/")
	return state.AppHost(name, ns, r.names.zone)
}

// The backends on a member that fails drop out of the router at once,
// though they still answer.
func TestRouterDropsFailedMember(t *testing.T) {
	testutil.CheckNoLeaks(t, leakPatterns...)
	a, b := startMember(t, "ra"), startMember(t, "nb")
	if n, err := b.st.Join([]string{a.GossipAddr()}); n != 1 {
		t.Fatalf("join: %v", err)
	}
	f := fixture{a}
	f.node("ra", a.ip)
	f.node("nb", b.ip)
	f.app(state.App{Name: "shop", Domain: "ns", Scalable: true, HA: true, State: state.GearStarted})
	lbA, lbB := newLBGear(t, "lba", a.ip, "/"), newLBGear(t, "lbb", b.ip, "/")
	f.lbGearRecord(lbA, "ns", "shop", "ra", 1, "")
	f.lbGearRecord(lbB, "ns", "shop", "nb", 2, "")
	r := startRouter(t, a)
	waitForBackends(t, r, "ns/shop", "lba", "lbb")

	b.Close()
	testutil.WaitFor(t, 20*time.Second, "nb seen failed", func() bool {
		for _, mm := range a.st.Members() {
			if mm.Name == "nb" {
				return mm.Status == "failed"
			}
		}
		return false
	})
	waitForBackends(t, r, "ns/shop", "lba")
	lbB.hits.Store(0)
	for range 10 {
		if code, body := get(r, "ha-shop-ns.example.test"); code != 200 || !strings.Contains(body, "gear lba") {
			t.Fatalf("%d %q, want lba's answer", code, body)
		}
	}
	if n := lbB.hits.Load(); n != 0 {
		t.Errorf("the failed member's LB gear got %d requests", n)
	}
}

// A router claims the ha- name of every HA app, and removes the claims of
// apps that are no longer HA or gone, and its own at Close, with its
// registration; claims of other routers stay.
func TestRouterClaims(t *testing.T) {
	testutil.CheckNoLeaks(t, leakPatterns...)
	m := startMember(t, "r1")
	f := fixture{m}
	f.app(state.App{Name: "shop", Domain: "ns", Scalable: true, HA: true})
	f.app(state.App{Name: "blog", Domain: "ns", Scalable: true})
	// Left from an earlier life: a claim of an app that is gone, and one
	// of an app that is no longer HA. Another router's claim.
	m.put(state.BucketHADNS, state.HADNSKey("ns/old", "r1"), state.HADNS{App: "ns/old", Name: "ha-old-ns.example.test", Router: "r1", Addr: m.ip})
	m.put(state.BucketHADNS, state.HADNSKey("ns/blog", "r1"), state.HADNS{App: "ns/blog", Name: "ha-blog-ns.example.test", Router: "r1", Addr: m.ip})
	m.put(state.BucketHADNS, state.HADNSKey("ns/shop", "r2"), state.HADNS{App: "ns/shop", Name: "ha-shop-ns.example.test", Router: "r2", Addr: "10.9.9.9"})

	r := startRouter(t, m)
	claims := func() string {
		recs, err := m.st.List(state.BucketHADNS)
		if err != nil {
			return err.Error()
		}
		var out []string
		for _, rec := range recs {
			var c state.HADNS
			if err := rec.Decode(&c); err != nil {
				return err.Error()
			}
			out = append(out, fmt.Sprintf("%s=%s,%s,%s,%s", rec.Key, c.App, c.Name, c.Router, c.Addr))
		}
		return strings.Join(out, " ")
	}
	steps := []struct {
		name   string
		change func()
		want   string
	}{
		{"at start", func() {}, "ns/shop/r1=ns/shop,ha-shop-ns.example.test,r1," + m.ip +
			" ns/shop/r2=ns/shop,ha-shop-ns.example.test,r2,10.9.9.9"},
		{"enable_ha", func() {
			f.app(state.App{Name: "blog", Domain: "ns", Scalable: true, HA: true})
			m.put(state.BucketRoutingEvents, state.EventKey(1), state.RoutingEvent{Seq: 1, Action: state.ActionEnableHA, AppName: "blog", Namespace: "ns"})
		}, "ns/blog/r1=ns/blog,ha-blog-ns.example.test,r1," + m.ip +
			" ns/shop/r1=ns/shop,ha-shop-ns.example.test,r1," + m.ip +
			" ns/shop/r2=ns/shop,ha-shop-ns.example.test,r2,10.9.9.9"},
		{"disable_ha", func() {
			f.app(state.App{Name: "shop", Domain: "ns", Scalable: true})
		}, "ns/blog/r1=ns/blog,ha-blog-ns.example.test,r1," + m.ip +
			" ns/shop/r2=ns/shop,ha-shop-ns.example.test,r2,10.9.9.9"},
		{"delete_application", func() { m.del(state.BucketApps, "ns/blog") }, "ns/shop/r2=ns/shop,ha-shop-ns.example.test,r2,10.9.9.9"},
		{"HA again", func() { f.app(state.App{Name: "shop", Domain: "ns", Scalable: true, HA: true}) },
			"ns/shop/r1=ns/shop,ha-shop-ns.example.test,r1," + m.ip +
				" ns/shop/r2=ns/shop,ha-shop-ns.example.test,r2,10.9.9.9"},
	}
	for _, st := range steps {
		st.change()
		testutil.WaitFor(t, 5*time.Second, st.name+": claims", func() bool { return claims() == st.want }, claims)
	}
	var reg state.Router
	if _, err := m.st.Get(state.BucketRouters, "r1", &reg); err != nil || reg.Addr != m.ip || reg.HTTP != r.HTTPAddr() || reg.Name != "r1" {
		t.Errorf("router record %+v, %v; want addr %s, http %s", reg, err, m.ip, r.HTTPAddr())
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if got := claims(); got != "ns/shop/r2=ns/shop,ha-shop-ns.example.test,r2,10.9.9.9" {
		t.Errorf("claims after Close: %s", got)
	}
	if _, err := m.st.Get(state.BucketRouters, "r1", nil); err == nil {
		t.Errorf("router record kept after Close")
	}
	if err := r.Start(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Start after Close: %v, want ErrClosed", err)
	}
}

// A restarted router serves from the store alone, and writes its record
// again if it goes.
func TestRouterRestart(t *testing.T) {
	testutil.CheckNoLeaks(t, leakPatterns...)
	m := startMember(t, "r1")
	f := fixture{m}
	nodeIP := ips.Next()
	f.node("n1", nodeIP)
	f.app(state.App{Name: "shop", Domain: "ns", Scalable: true, HA: true, State: state.GearStarted})
	lb1 := newLBGear(t, "lb1", nodeIP, "/")
	f.lbGearRecord(lb1, "ns", "shop", "n1", 1, "")
	r := startRouter(t, m)
	waitServed(t, r, "ha-shop-ns.example.test", 200, "gear lb1")
	if err := r.Start(context.Background()); !errors.Is(err, ErrStarted) {
		t.Errorf("second Start: %v, want ErrStarted", err)
	}
	r.Close()
	if code, _ := get(r, "ha-shop-ns.example.test"); code != 0 {
		t.Errorf("closed router answered %d", code)
	}

	r2 := startRouter(t, m)
	if code, body := get(r2, "ha-shop-ns.example.test"); code != 200 || !strings.Contains(body, "gear lb1") {
		t.Errorf("restarted router: %d %q", code, body)
	}
	m.del(state.BucketRouters, "r1")
	testutil.WaitFor(t, 10*time.Second, "router record written again", func() bool {
		var reg state.Router
		_, err := m.st.Get(state.BucketRouters, "r1", &reg)
		return err == nil && reg.HTTP == r2.HTTPAddr()
	})
}

// Two routers of one cluster serve the same apps, each registered.
func TestTwoRouters(t *testing.T) {
	testutil.CheckNoLeaks(t, leakPatterns...)
	a, b := startMember(t, "ra"), startMember(t, "rb")
	if n, err := b.st.Join([]string{a.GossipAddr()}); n != 1 {
		t.Fatalf("join: %v", err)
	}
	ra, rb := startRouter(t, a), startRouter(t, b)
	nodeIP := ips.Next()
	f := fixture{a}
	f.node("n1", nodeIP)
	f.app(state.App{Name: "shop", Domain: "ns", Scalable: true, HA: true, State: state.GearStarted})
	lb1, lb2 := newLBGear(t, "lb1", nodeIP, "/"), newLBGear(t, "lb2", nodeIP, "/")
	f.lbGearRecord(lb1, "ns", "shop", "n1", 1, "")
	f.lbGearRecord(lb2, "ns", "shop", "n1", 2, "")
	for _, r := range []*Router{ra, rb} {
		waitForBackends(t, r, "ns/shop", "lb1", "lb2")
		waitServed(t, r, "ha-shop-ns.example.test", 200, "gear lb")
	}
	for _, st := range []*member{a, b} {
		testutil.WaitFor(t, 10*time.Second, "both routers registered and claiming", func() bool {
			rs, err1 := st.st.List(state.BucketRouters)
			cs, err2 := st.st.List(state.BucketHADNS)
			return err1 == nil && err2 == nil && len(rs) == 2 && len(cs) == 2
		})
	}
}

// A name two apps claim goes to the app whose own name it is, else to
// the app with the lower key.
func TestRouterNameClaimedTwice(t *testing.T) {
	testutil.CheckNoLeaks(t, leakPatterns...)
	m := startMember(t, "r1")
	f := fixture{m}
	nodeIP := ips.Next()
	f.node("n1", nodeIP)
	for _, name := range []string{"a", "b"} {
		g := newLBGear(t, name+"1", nodeIP, "/")
		f.app(state.App{Name: name, Domain: "ns", State: state.GearStarted,
			Aliases: []string{"x.example", "a-ns.example.test", "b-ns.example.test", name + ".example"}})
		m.put(state.BucketGears, g.id, state.Gear{ID: g.id, App: "ns/" + name, AppName: name, Domain: "ns", Node: "n1",
			State: state.GearStarted, Ordinal: 1, Port: g.port()})
	}
	r := startRouter(t, m)
	for host, want := range map[string]string{"x.example": "gear a1", "a-ns.example.test": "gear a1",
		"b-ns.example.test": "gear b1", "a.example": "gear a1", "b.example": "gear b1"} {
		if code, body := get(r, host); code != 200 || !strings.Contains(body, want) {
			t.Errorf("%s: %d %q, want %q", host, code, body, want)
		}
	}
}
