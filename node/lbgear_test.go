package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gearbox/internal/testutil"
	"gearbox/lb"
	"gearbox/store"
	"gearbox/store/internalapi"
	"gearbox/store/state"
	"gearbox/store/storetest"
)

// newTestCluster starts n node members on fresh addresses: stores joined
// into one cluster (each serving its internal API, for anti-entropy), each
// member registered as a node and running a Supervisor. It returns once
// every member sees every node record.
func newTestCluster(t *testing.T, n int, setup ...func(*Supervisor)) []*testNode {
	t.Helper()
	testutil.CheckNoLeaks(t, leakPatterns...)
	nodes := make([]*testNode, n)
	members := make([]*storetest.Member, n)
	for i := range nodes {
		nd := &testNode{t: t, ip: ips.Next(), dir: searchableTempDir(t)}
		cfg := store.LocalConfig("node-"+nd.ip, filepath.Join(nd.dir, "data"), nd.ip)
		cfg.Logger = testLogger().With().Str("member", cfg.Name).Logger()
		members[i] = storetest.Start(t, cfg)
		if i > 0 {
			members[i].Join(t, members[:i]...)
		}
		nd.m, nd.st = members[i], members[i].Store
		nodes[i] = nd
	}
	for _, nd := range nodes {
		if err := Register(context.Background(), nd.st, Registration{Addr: nd.ip}); err != nil {
			t.Fatal(err)
		}
	}
	testutil.WaitFor(t, 20*time.Second, "every node record everywhere", func() bool {
		for _, nd := range nodes {
			if recs, err := nd.st.List(state.BucketNodes); err != nil || len(recs) != n {
				return false
			}
		}
		return true
	})
	for _, nd := range nodes {
		for _, f := range setup {
			nd.setup = f
		}
		nd.s = nd.startSupervisor()
	}
	return nodes
}

// servedByRE finds the gear id in the welcome page or the helper's answer.
var servedByRE = regexp.MustCompile(`served by gear <code>([a-z0-9]+)</code>|^helper ([a-z0-9]+) `)

// servedBy GETs url with c and returns the gear that served it.
func servedBy(c *http.Client, url, host string) (string, error) {
	return servedByMethod(c, "GET", url, host)
}

// servedByMethod is servedBy with another method. A POST (with a body)
// is never replayed by a transport once sent: it fails if the gear that
// got it goes away.
func servedByMethod(c *http.Client, method, url, host string) (string, error) {
	var body io.Reader
	if method == "POST" {
		body = strings.NewReader("order=1")
	}
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		return "", err
	}
	if host != "" {
		req.Host = host
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	m := servedByRE.FindSubmatch(b)
	if resp.StatusCode != 200 || m == nil {
		return "", fmt.Errorf("status %d, body %.200q", resp.StatusCode, b)
	}
	return string(m[1]) + string(m[2]), nil
}

// count makes n requests with c and counts them by serving gear.
func count(t *testing.T, c *http.Client, url string, n int) map[string]int {
	t.Helper()
	out := make(map[string]int)
	for range n {
		id, err := servedBy(c, url, "")
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		out[id]++
	}
	return out
}

// lbStatus returns the status of the load balancer of LB gear id, as s
// serves it on the internal API.
func lbStatus(t *testing.T, s *Supervisor, id string) lb.Status {
	t.Helper()
	rec := httptest.NewRecorder()
	s.LogHandler().ServeHTTP(rec, httptest.NewRequest("GET", internalapi.GearLBStatusPath(id)+"?format=json", nil))
	var st lb.Status
	if err := json.Unmarshal(rec.Body.Bytes(), &st); rec.Code != 200 || err != nil {
		t.Fatalf("lb status: %d %v: %s", rec.Code, err, rec.Body)
	}
	return st
}

// waitAllServing waits until every backend of the load balancer of LB
// gear id gets requests: one that did not answer at first comes up after
// Rise checks.
func waitAllServing(t *testing.T, s *Supervisor, id string) {
	t.Helper()
	testutil.WaitFor(t, 10*time.Second, "every backend serving", func() bool {
		for _, b := range lbStatus(t, s, id).Backends {
			if !b.Serving {
				return false
			}
		}
		return true
	}, func() string { return fmt.Sprintf("%+v", lbStatus(t, s, id).Backends) })
}

// backendIDs lists the ids of st's backends, sorted.
func backendIDs(st lb.Status) []string {
	var ids []string
	for _, b := range st.Backends {
		ids = append(ids, b.ID)
	}
	slices.Sort(ids)
	return ids
}

// An LB gear balances over its app's gears on two nodes, follows scaling,
// deletion and its rotation record, pins cookie clients, and takes the
// app's hostname on the node's front listener.
func TestLBGearBalancesOverNodes(t *testing.T) {
	c := newTestCluster(t, 2)
	n1, n2 := c[0], c[1]
	n1.put(state.BucketApps, "ns/shop", state.App{ID: "a1", Name: "shop", Domain: "ns", Cartridge: state.CartStatic, Scalable: true, State: state.GearStarted})
	ga := n1.gear("lbgear01", "shop", "ns", 1)
	ga.LB, ga.Head, ga.LBPort = true, true, freePort(t, n1.ip)
	gb := n2.gear("webgear02", "shop", "ns", 2)
	n1.put(state.BucketGears, ga.ID, ga)
	n1.put(state.BucketGears, gb.ID, gb)
	st := n1.waitState(ga.ID, state.GearStarted)
	n2.waitState(gb.ID, state.GearStarted)
	lbAddr := net.JoinHostPort(n1.ip, strconv.Itoa(ga.LBPort))
	if len(st.Endpoints) != 2 || st.Endpoints[0].CartridgeName != state.CartLB || st.Endpoints[0].ExternalPort != ga.LBPort {
		t.Errorf("LB gear endpoints %+v, want the LB's port first", st.Endpoints)
	}

	s := lbStatus(t, n1.s, ga.ID)
	if got := backendIDs(s); !slices.Equal(got, []string{ga.ID, gb.ID}) {
		t.Fatalf("backends %v, want %s and %s", got, ga.ID, gb.ID)
	}
	for _, b := range s.Backends {
		wantAddr := n1.addr(ga)
		if b.ID == gb.ID {
			wantAddr = n2.addr(gb)
		}
		if b.Addr != wantAddr || b.Local != (b.ID == ga.ID) {
			t.Errorf("backend %+v, want addr %s, local only for the LB gear", b.Backend, wantAddr)
		}
	}

	// Backends that did not answer at first come up after Rise checks.
	waitAllServing(t, n1.s, ga.ID)

	// Cookie-less requests spread over both gears.
	url := "http://" + lbAddr + "/"
	if got := count(t, client, url, 20); got[ga.ID] == 0 || got[gb.ID] == 0 {
		t.Errorf("20 requests served by %v, want both gears", got)
	}

	// A client with a cookie jar sticks to one gear.
	jar, _ := cookiejar.New(nil)
	jc := &http.Client{Jar: jar, Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	if got := count(t, jc, url, 10); len(got) != 1 {
		t.Errorf("cookie client served by %v, want one gear", got)
	}

	// The load balancer's status page is on the internal API only:
	// /lb-status, on its port or through the front listener, is the app's
	// (a static app without such a file: 404), and shows no gear.
	host := state.AppHost("shop", "ns", "example.test")
	for _, u := range []string{"http://" + lbAddr, "http://" + n1.s.FrontAddr()} {
		code, body := get(t, u+"/lb-status?format=json", host)
		if code == 200 || strings.Contains(body, gb.ID) || strings.Contains(body, n2.ip) {
			t.Errorf("%s/lb-status: %d %.300s, want the app's 404", u, code, body)
		}
	}
	rec := httptest.NewRecorder()
	n1.s.LogHandler().ServeHTTP(rec, httptest.NewRequest("GET", internalapi.GearLBStatusPath(gb.ID), nil))
	if rec.Code != 404 {
		t.Errorf("internal API, lb status of a web gear: %d, want 404", rec.Code)
	}
	fc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	seen := map[string]int{}
	for range 20 {
		id, err := servedBy(fc, "http://"+n1.s.FrontAddr()+"/", host)
		if err != nil {
			t.Fatalf("front listener: %v", err)
		}
		seen[id]++
	}
	if seen[ga.ID] == 0 || seen[gb.ID] == 0 {
		t.Errorf("front listener: 20 requests served by %v, want both gears", seen)
	}

	// Scaling up adds a backend that gets requests.
	gc := n2.gear("webgear03", "shop", "ns", 3)
	n1.put(state.BucketGears, gc.ID, gc)
	n2.waitState(gc.ID, state.GearStarted)
	testutil.WaitFor(t, 10*time.Second, "third gear serving through the LB", func() bool {
		id, err := servedBy(client, url, "")
		return err == nil && id == gc.ID
	}, func() string { return fmt.Sprint(backendIDs(lbStatus(t, n1.s, ga.ID))) })

	// Rotated out: the LB gear's own web process gets nothing once a
	// remote gear is up.
	ga.RotatedOut = true
	n1.put(state.BucketGears, ga.ID, ga)
	testutil.WaitFor(t, 10*time.Second, "local gear rotated out", func() bool { return lbStatus(t, n1.s, ga.ID).Rotation == lb.RotationOut })
	if got := count(t, client, url, 20); got[ga.ID] != 0 || got[gb.ID] == 0 || got[gc.ID] == 0 {
		t.Errorf("rotated out: 20 requests served by %v, want only the two remote gears", got)
	}

	// A deleted gear is no longer a backend.
	n1.del(state.BucketGears, gb.ID)
	testutil.WaitFor(t, 10*time.Second, "deleted gear removed from the LB", func() bool {
		return slices.Equal(backendIDs(lbStatus(t, n1.s, ga.ID)), []string{ga.ID, gc.ID})
	}, func() string { return fmt.Sprint(backendIDs(lbStatus(t, n1.s, ga.ID))) })
	if got := count(t, client, url, 10); got[gc.ID] != 10 {
		t.Errorf("after delete: 10 requests served by %v, want all by %s", got, gc.ID)
	}

	// An LB gear that stops takes its load balancer down, and the app's
	// hostname goes to a web port of the node again.
	ga.State = state.GearStopped
	n1.put(state.BucketGears, ga.ID, ga)
	n1.waitState(ga.ID, state.GearStopped)
	testutil.WaitFor(t, 5*time.Second, "load balancer closed", func() bool { return !answers(lbAddr) })
	if code, body := get(t, "http://"+n1.s.FrontAddr()+"/", host); code == 200 {
		t.Errorf("front listener still routes the app host to a stopped load balancer: %.200s", body)
	}
}

// Stopping and restarting a web gear under steady load through the LB
// fails no request: the LB drains the gear first, and takes it back once
// it answers again. The gears run the helper process, which SIGTERM ends
// at once, with requests that take 100 ms: without the drain, requests in
// flight would fail.
func TestLBGearDrainsStoppingGear(t *testing.T) {
	n := newTestStore(t)
	n.setup = helperPrograms
	n.s = n.startSupervisor()
	testDrain(t, n, n)
}

// The same when the web gear runs on another node than the LB gear: its
// node asks for the drain in the gear's status and waits for load
// balancers elsewhere before it stops the gear.
func TestLBGearDrainsStoppingRemoteGear(t *testing.T) {
	nodes := newTestCluster(t, 2, helperPrograms)
	testDrain(t, nodes[0], nodes[1])
}

// testDrain runs an LB gear on n and a web gear on w, stops, starts and
// restarts the web gear under load, and checks that no request fails and
// that the stopped gear gets no request sent after its stop.
func testDrain(t *testing.T, n, w *testNode) {
	n.put(state.BucketApps, "ns/shop", state.App{ID: "a1", Name: "shop", Domain: "ns", Cartridge: state.CartStatic, Scalable: true,
		State: state.GearStarted, Env: map[string]string{"GEARBOX_NODE_TEST_HELPER": "serve"}})
	ga := n.gear("lbgear01", "shop", "ns", 1)
	ga.LB, ga.Head, ga.LBPort = true, true, freePort(t, n.ip)
	gb := w.gear("webgear02", "shop", "ns", 2)
	n.put(state.BucketGears, ga.ID, ga)
	n.put(state.BucketGears, gb.ID, gb)
	n.waitState(ga.ID, state.GearStarted)
	w.waitState(gb.ID, state.GearStarted)
	url := "http://" + net.JoinHostPort(n.ip, strconv.Itoa(ga.LBPort)) + "/slow"

	// Both must be up before the load starts, so that the stop of one
	// leaves a backend.
	waitAllServing(t, n.s, ga.ID)

	// Clients keep connections to the LB alive, as browsers do.
	tr := &http.Transport{MaxIdleConnsPerHost: 16}
	defer tr.CloseIdleConnections()
	lc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	var (
		mu     sync.Mutex
		served = map[string]int{}
		fails  []error
		late   int // requests sent after gb was seen stopped that gb served
		stop   atomic.Bool
		wg     sync.WaitGroup
		// stoppedAt is when the test saw gb stopped (unix ns), 0 while it
		// runs.
		stoppedAt atomic.Int64
		phase     atomic.Value
	)
	phase.Store("start")
	for range 8 {
		wg.Go(func() {
			for !stop.Load() {
				sent := time.Now().UnixNano()
				// POST: a request cut by the gear's stop is not replayed.
				id, err := servedByMethod(lc, "POST", url, "")
				mu.Lock()
				if err != nil {
					fails = append(fails, fmt.Errorf("phase %s: %w", phase.Load(), err))
				} else {
					served[id]++
				}
				if at := stoppedAt.Load(); id == gb.ID && at != 0 && sent > at {
					late++
				}
				mu.Unlock()
			}
		})
	}
	defer func() {
		stop.Store(true)
		wg.Wait()
	}()
	snapshot := func() map[string]int {
		mu.Lock()
		defer mu.Unlock()
		return maps.Clone(served)
	}
	waitServed := func(what, id string, more int) {
		t.Helper()
		base := snapshot()[id]
		testutil.WaitFor(t, 10*time.Second, what, func() bool { return snapshot()[id] >= base+more },
			func() string { return fmt.Sprint(snapshot()) })
	}
	waitServed("requests to the web gear", gb.ID, 20)
	waitServed("requests to the LB gear", ga.ID, 20)

	phase.Store("stop")
	gb.State = state.GearStopped
	n.put(state.BucketGears, gb.ID, gb)
	w.waitState(gb.ID, state.GearStopped)
	phase.Store("stopped")
	stoppedAt.Store(time.Now().UnixNano())
	waitServed("requests after the stop", ga.ID, 40)
	mu.Lock()
	if late > 0 {
		t.Errorf("the stopped gear served %d requests sent after its stop", late)
	}
	mu.Unlock()
	stoppedAt.Store(0)

	phase.Store("start2")
	gb.State = state.GearStarted
	n.put(state.BucketGears, gb.ID, gb)
	w.waitState(gb.ID, state.GearStarted)
	waitServed("requests to the started gear", gb.ID, 20)

	// A restart drains the gear, and resumes it once it answers again.
	phase.Store("restart")
	gb.Restarts++
	n.put(state.BucketGears, gb.ID, gb)
	sl := w.watchStatus()
	testutil.WaitFor(t, 10*time.Second, "restart", func() bool {
		got := sl.states(gb.ID)
		return slices.Contains(got, "stopped (restarting)") && got[len(got)-1] == state.GearStarted
	}, func() string { return fmt.Sprint(sl.states(gb.ID)) })
	waitServed("requests to the restarted gear", gb.ID, 20)

	stop.Store(true)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(fails) > 0 {
		t.Errorf("%d failed requests, first: %v", len(fails), fails[0])
	}
}

// An LB gear is reported started only once its load balancer listens too.
func TestLBGearStartedOnlyWithLB(t *testing.T) {
	n := newTestNode(t)
	n.put(state.BucketApps, "ns/shop", state.App{ID: "a1", Name: "shop", Domain: "ns", Cartridge: state.CartStatic, Scalable: true, State: state.GearStarted})
	held, err := net.Listen("tcp", n.ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	ga := n.gear("lbgear01", "shop", "ns", 1)
	ga.LB, ga.Head, ga.LBPort = true, true, held.Addr().(*net.TCPAddr).Port
	n.put(state.BucketGears, ga.ID, ga)
	testutil.WaitFor(t, 10*time.Second, "web process up, load balancer not", func() bool {
		st, ok := n.status(ga.ID)
		return ok && answers(n.addr(ga)) && strings.Contains(st.Reason, "load balancer")
	}, func() string { st, _ := n.status(ga.ID); return fmt.Sprintf("%+v", st) })
	if st, _ := n.status(ga.ID); st.State == state.GearStarted {
		t.Errorf("LB gear reported started while its load balancer cannot listen: %+v", st)
	}
	held.Close()
	n.waitState(ga.ID, state.GearStarted)
	if code, body := get(t, "http://"+net.JoinHostPort(n.ip, strconv.Itoa(ga.LBPort))+"/", ""); code != 200 || !strings.Contains(body, ga.ID) {
		t.Errorf("through the load balancer: %d %.200s", code, body)
	}
}

func TestLBConfigFromEnv(t *testing.T) {
	n := newTestStore(t)
	s, err := New(FastConfig(n.st, t.TempDir(), n.ip, "example.test"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.cfg.ClusterSecret = "sekrit"
	tests := []struct {
		name string
		env  map[string]string
		want func(lb.Config) bool
		bad  []string // variables reported as bad
	}{
		{"defaults", nil, func(c lb.Config) bool {
			return c.HealthPath == "/" && c.Balance == lb.LeastConn && c.Rise == 3 && c.Fall == 2 &&
				slices.Equal(c.HealthExpect, []string{"2xx", "3xx", "401"}) && string(c.Secret) == "sekrit" &&
				len(c.TrustedProxies) == 1 && c.TrustedProxies[0].String() == n.ip+"/32"
		}, nil},
		{"all set", map[string]string{EnvLBHealthPath: "/health", EnvLBExpectStatus: "200, 3xx", EnvLBBalance: "RoundRobin",
			EnvLBCheckInterval: "500", EnvLBCheckTimeout: "1s", EnvLBRise: "2", EnvLBFall: "4"}, func(c lb.Config) bool {
			return c.HealthPath == "/health" && slices.Equal(c.HealthExpect, []string{"200", "3xx"}) && c.Balance == lb.RoundRobin &&
				c.HealthInterval == 500*time.Millisecond && c.HealthTimeout == time.Second && c.Rise == 2 && c.Fall == 4
		}, nil},
		{"haproxy expect", map[string]string{EnvLBExpectStatus: "rstatus 2..|3..|401"}, func(c lb.Config) bool {
			return slices.Equal(c.HealthExpect, []string{"2xx", "3xx", "401"})
		}, nil},
		{"bad values keep defaults", map[string]string{EnvLBHealthPath: "health", EnvLBExpectStatus: "ok", EnvLBBalance: "random",
			EnvLBCheckInterval: "-1", EnvLBRise: "0", EnvLBFall: "x"}, func(c lb.Config) bool {
			return c.HealthPath == "/" && len(c.HealthExpect) == 3 && c.Balance == lb.LeastConn &&
				c.HealthInterval == 100*time.Millisecond && c.Rise == 3 && c.Fall == 2
		}, []string{EnvLBHealthPath, EnvLBExpectStatus, EnvLBBalance, EnvLBCheckInterval, EnvLBRise, EnvLBFall}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, errs := s.lbConfig("app", tt.env)
			if !tt.want(cfg) {
				t.Errorf("config %+v", cfg)
			}
			var bad []string
			for _, err := range errs {
				name, _, _ := strings.Cut(err.Error(), "=")
				bad = append(bad, name)
			}
			slices.Sort(bad)
			want := slices.Clone(tt.bad)
			slices.Sort(want)
			if !slices.Equal(bad, want) {
				t.Errorf("bad settings %v, want %v (%v)", bad, want, errors.Join(errs...))
			}
			if _, err := lb.New(cfg); err != nil {
				t.Errorf("lb.New: %v", err)
			}
		})
	}
}

// The only gear of an app restarts (a new deployment, a restart) by
// handing over to a process started beside it: under POST load, through
// the front listener straight to the gear or through the app's load
// balancer, no request fails, and the new process serves at the end.
func TestSoloGearHandover(t *testing.T) {
	for _, scalable := range []bool{false, true} {
		t.Run(fmt.Sprintf("scalable=%v", scalable), func(t *testing.T) {
			n := newTestStore(t)
			n.setup = helperPrograms
			n.s = n.startSupervisor()
			n.put(state.BucketApps, "ns/solo", state.App{ID: "a1", Name: "solo", Domain: "ns", Cartridge: state.CartStatic, Scalable: scalable,
				State: state.GearStarted, Env: map[string]string{"GEARBOX_NODE_TEST_HELPER": "serve"}})
			g := n.gear("sologear1", "solo", "ns", 1)
			if scalable {
				g.LB, g.Head, g.LBPort = true, true, freePort(t, n.ip)
			}
			n.put(state.BucketGears, g.ID, g)
			n.waitState(g.ID, state.GearStarted)
			url := "http://" + n.s.FrontAddr() + "/slow"
			const host = "solo-ns.example.test"
			pid := func() string {
				code, body := get(t, "http://"+n.s.FrontAddr()+"/", host)
				f := strings.Fields(body)
				if code != 200 || len(f) < 3 {
					t.Fatalf("GET /: %d %q", code, body)
				}
				return f[2]
			}
			first := pid()

			var (
				mu    sync.Mutex
				fails []error
				ok    int
				stop  atomic.Bool
				wg    sync.WaitGroup
			)
			for range 4 {
				wg.Go(func() {
					c := &http.Client{Timeout: 10 * time.Second}
					for !stop.Load() {
						_, err := servedByMethod(c, "POST", url, host)
						mu.Lock()
						if err != nil {
							fails = append(fails, err)
						} else {
							ok++
						}
						mu.Unlock()
					}
				})
			}
			done := func() int {
				mu.Lock()
				defer mu.Unlock()
				return ok
			}
			sl := n.watchStatus()
			for i := range 2 {
				before := done()
				g.Restarts++
				n.put(state.BucketGears, g.ID, g)
				testutil.WaitFor(t, 20*time.Second, fmt.Sprintf("handover %d", i+1), func() bool {
					return len(*n.s.sides.Load()) == 0 && slices.Contains(sl.states(g.ID), "started (starting a new process beside the running process)") &&
						sl.states(g.ID)[len(sl.states(g.ID))-1] == state.GearStarted && done() > before+40
				}, func() string { return fmt.Sprint(sl.states(g.ID)) })
			}
			stop.Store(true)
			wg.Wait()
			if len(fails) > 0 {
				t.Errorf("%d of %d requests failed across two handovers; first: %v", len(fails), ok+len(fails), fails[0])
			}
			if containsPrefix(sl.states(g.ID), "stopped") {
				t.Errorf("the only gear was reported stopped: %q", sl.states(g.ID))
			}
			if now := pid(); now == first {
				t.Errorf("the gear's process is still pid %s after two restarts", now)
			}
		})
	}
}
