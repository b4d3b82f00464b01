package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gearbox/internal/testutil"
	"gearbox/store/state"
	"gearbox/store/storetest"
)

func TestNewValidatesConfig(t *testing.T) {
	n := newTestStore(t)
	good := FastConfig(n.st, t.TempDir(), n.ip, "example.test")
	tests := []struct {
		name  string
		mod   func(*Config)
		field string
	}{
		{"no store", func(c *Config) { c.Store = nil }, "Store"},
		{"no data dir", func(c *Config) { c.DataDir = "" }, "DataDir"},
		{"bad addr", func(c *Config) { c.Addr = "node1" }, "Addr"},
		{"no domain", func(c *Config) { c.Domain = "" }, "Domain"},
		{"bad http addr", func(c *Config) { c.HTTPAddr = "80" }, "HTTPAddr"},
		{"negative grace", func(c *Config) { c.StopGrace = -time.Second }, "StopGrace"},
		{"negative deploy size", func(c *Config) { c.MaxDeploySize = -1 }, "MaxDeploySize"},
		{"backoff max below initial", func(c *Config) { c.Backoff = Backoff{Initial: time.Minute, Max: time.Second} }, "Backoff.Max"},
		{"unknown isolation", func(c *Config) { c.Isolation = "chroot" }, "Isolation"},
		{"uid range reversed", func(c *Config) { c.GearUIDMin, c.GearUIDMax = 50000, 40000 }, "GearUIDMin"},
		{"tiny limits", func(c *Config) { c.Limits = map[string]Limits{state.SizeLarge: {Memory: 1 << 20}} }, "Limits[large]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good
			tt.mod(&c)
			_, err := New(c)
			if err == nil || !strings.Contains(err.Error(), tt.field) {
				t.Errorf("New: error %v, want one naming %s", err, tt.field)
			}
		})
	}
	s, err := New(good)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := s.Start(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Start after Close: %v, want ErrClosed", err)
	}
}

// A static gear goes through its whole life: created, started (serving the
// welcome page), stopped, started, restarted, destroyed.
func TestStaticGearLifecycle(t *testing.T) {
	n := newTestNode(t)
	sl := n.watchStatus()
	n.put(state.BucketApps, "ns/shop", state.App{ID: "a1", Name: "shop", Domain: "ns", Cartridge: state.CartStatic, State: state.GearStarted})
	g := n.gear("0123456789abcdef01234567", "shop", "ns", 1)
	n.put(state.BucketGears, g.ID, g)

	st := n.waitState(g.ID, state.GearStarted)
	for _, sub := range []string{"app", "data", "logs"} {
		if fi, err := os.Stat(filepath.Join(n.gearDir(g.ID), sub)); err != nil || !fi.IsDir() {
			t.Errorf("gear directory %s: %v", sub, err)
		}
	}
	if st.Node != n.st.Name() || st.Reason != "" || st.UpdatedAt.IsZero() {
		t.Errorf("status %+v", st)
	}
	want := state.Endpoint{CartridgeName: state.CartStatic, ExternalAddress: n.ip, ExternalPort: g.Port,
		InternalAddress: n.ip, InternalPort: g.Port, Protocols: []string{"http", "ws"}, Types: []string{"web_framework"}}
	if len(st.Endpoints) != 1 || !sameEndpoints(st.Endpoints, []state.Endpoint{want}) {
		t.Errorf("endpoints %+v, want %+v", st.Endpoints, want)
	}
	if got := sl.states(g.ID); got[0] != state.GearNew || got[len(got)-1] != state.GearStarted ||
		slices.ContainsFunc(got, func(s string) bool { return strings.HasPrefix(s, state.GearStopped) }) {
		t.Errorf("states %q, want new ... started", got)
	}
	code, body := get(t, "http://"+n.addr(g)+"/", "")
	if code != 200 || !strings.Contains(body, "Welcome to shop") || !strings.Contains(body, g.ID) || !strings.Contains(body, "ns") {
		t.Errorf("welcome page: %d %s", code, body)
	}
	if code, _ := get(t, "http://"+n.addr(g)+"/nothing", ""); code != 404 {
		t.Errorf("GET /nothing: %d, want 404", code)
	}

	g.State = state.GearStopped
	n.put(state.BucketGears, g.ID, g)
	n.waitState(g.ID, state.GearStopped)
	if answers(n.addr(g)) {
		t.Error("a stopped gear's port answers")
	}

	g.State = state.GearStarted
	n.put(state.BucketGears, g.ID, g)
	n.waitState(g.ID, state.GearStarted)
	if !answers(n.addr(g)) {
		t.Error("a started gear's port does not answer")
	}

	before := len(sl.states(g.ID))
	g.Restarts++
	n.put(state.BucketGears, g.ID, g)
	// The app's only gear restarts by handing over to a process started
	// beside it: it never stops.
	testutil.WaitFor(t, 10*time.Second, "restart", func() bool {
		got := sl.states(g.ID)[before:]
		return slices.Contains(got, "started (starting a new process beside the running process)") && got[len(got)-1] == state.GearStarted
	}, func() string { return fmt.Sprint(sl.states(g.ID)[before:]) })
	if got := sl.states(g.ID)[before:]; containsPrefix(got, "stopped") {
		t.Errorf("the only gear was stopped while it restarted: %q", got)
	}

	n.del(state.BucketGears, g.ID)
	testutil.WaitFor(t, 10*time.Second, "gear destroyed", func() bool {
		_, err := os.Stat(n.gearDir(g.ID))
		_, ok := n.status(g.ID)
		return errors.Is(err, os.ErrNotExist) && !ok
	})
	if answers(n.addr(g)) {
		t.Error("a destroyed gear's port answers")
	}
}

// Gears of other nodes are left alone, and a gear moved to another node is
// destroyed here without touching the status the other node writes.
func TestGearsOfOtherNodes(t *testing.T) {
	n := newTestNode(t)
	other := n.gear("aaaa00000000000000000001", "shop", "ns", 1)
	other.Node = "elsewhere"
	n.put(state.BucketGears, other.ID, other)
	mine := n.gear("aaaa00000000000000000002", "shop", "ns", 2)
	n.put(state.BucketGears, mine.ID, mine)
	n.waitState(mine.ID, state.GearStarted)
	if _, err := os.Stat(n.gearDir(other.ID)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("another node's gear got a directory here: %v", err)
	}
	if _, ok := n.status(other.ID); ok {
		t.Error("another node's gear got a status from here")
	}

	mine.Node = "elsewhere"
	n.put(state.BucketGears, mine.ID, mine)
	testutil.WaitFor(t, 10*time.Second, "moved gear destroyed", func() bool {
		_, err := os.Stat(n.gearDir(mine.ID))
		_, ok := n.status(mine.ID)
		return errors.Is(err, os.ErrNotExist) && !ok && !answers(n.addr(mine))
	})
}

// A gear running a command gets the platform's and the app's environment,
// logs to its log file, is relaunched when it crashes and when its app's
// env changes, and is reached through the front listener.
func TestCommandGear(t *testing.T) {
	n := newTestStore(t)
	n.setup = helperPrograms
	n.s = n.startSupervisor()
	sl := n.watchStatus()
	app := state.App{ID: "a1", Name: "api", Domain: "ns", State: state.GearStarted,
		Env: map[string]string{"GEARBOX_NODE_TEST_HELPER": "serve", "FOO": "bar", "GEARBOX_IP": "1.2.3.4"}}
	n.put(state.BucketApps, "ns/api", app)
	g := n.gear("bbbb00000000000000000001", "api", "ns", 1)
	n.put(state.BucketGears, g.ID, g)
	n.waitState(g.ID, state.GearStarted)

	_, env := get(t, "http://"+n.addr(g)+"/env", "")
	dir := n.gearDir(g.ID)
	for _, kv := range []string{
		"PORT=" + strconv.Itoa(g.Port), "GEARBOX_IP=" + n.ip, "GEARBOX_APP=api", "GEARBOX_NAMESPACE=ns",
		"GEARBOX_GEAR_ID=" + g.ID, "GEARBOX_APP_DNS=api-ns.example.test", "GEARBOX_DATA_DIR=" + filepath.Join(dir, "data"),
		"GEARBOX_DEPLOYMENT_ID=", "FOO=bar", "HOME=" + filepath.Join(dir, "app"),
	} {
		if !slices.Contains(strings.Split(env, "\n"), kv) {
			t.Errorf("gear env lacks %s:\n%s", kv, env)
		}
	}
	if strings.Contains(env, "GOROOT") || strings.Contains(env, "GEARBOX_TEST_LOG") {
		t.Errorf("the node's environment reached the gear:\n%s", env)
	}

	pid := func() string {
		_, body, _ := tryGet("http://"+n.addr(g)+"/", "")
		f := strings.Fields(body)
		if len(f) != 3 {
			return ""
		}
		return f[2]
	}
	pid1 := pid()
	if b, err := os.ReadFile(filepath.Join(n.dir, "data", "run", g.ID+".pid")); err != nil || strings.TrimSpace(string(b)) != pid1 {
		t.Errorf("pid file holds %q (%v), want %s", b, err, pid1)
	}
	logPath := filepath.Join(dir, "logs", "gear.log")
	b, _ := os.ReadFile(logPath)
	if !regexp.MustCompile(`(?m)^\S+Z helper listening on `+regexp.QuoteMeta(n.addr(g))+`$`).Match(b) ||
		!regexp.MustCompile(`(?m)^\S+Z gearbox: started pid `+pid1+`$`).Match(b) {
		t.Errorf("gear log lacks stamped lines of the process and of the supervisor:\n%s", b)
	}

	// A crash is reported with its exit status and the gear comes back.
	before := len(sl.states(g.ID))
	tryGet("http://"+n.addr(g)+"/exit", "")
	testutil.WaitFor(t, 10*time.Second, "relaunch after crash", func() bool {
		got := sl.states(g.ID)[before:]
		return slices.Contains(got, "stopped (crashed: exit status 3; restarting in 50ms)") && got[len(got)-1] == state.GearStarted
	}, func() string { return fmt.Sprint(sl.states(g.ID)[before:]) })
	if pid2 := pid(); pid2 == "" || pid2 == pid1 {
		t.Errorf("pid after crash %q, before %q", pid2, pid1)
	}
	if b, _ := os.ReadFile(logPath); !strings.Contains(string(b), "helper exiting on request") {
		t.Errorf("gear log lacks the crash:\n%s", b)
	}

	// A change of the app's env relaunches the gear with it.
	app.Env["FOO"] = "baz"
	n.put(state.BucketApps, "ns/api", app)
	testutil.WaitFor(t, 10*time.Second, "new env", func() bool {
		_, env, _ := tryGet("http://"+n.addr(g)+"/env", "")
		return slices.Contains(strings.Split(env, "\n"), "FOO=baz")
	})

	// Through the front, the app sees its hostname and X-Forwarded-*.
	code, body := get(t, "http://"+n.s.FrontAddr()+"/headers", "API-ns.example.test:80")
	for _, h := range []string{`Host=API-ns\.example\.test:80`, `X-Forwarded-For=127\.\d+\.\d+\.\d+`,
		`X-Forwarded-Host=API-ns\.example\.test:80`, `X-Forwarded-Proto=http`} {
		if code != 200 || !regexp.MustCompile(`(?m)^`+h+`$`).MatchString(body) {
			t.Errorf("through the front: %d, want %s in\n%s", code, h, body)
		}
	}

	// Closing the node takes the gear's process down.
	last, _ := strconv.Atoi(pid())
	if err := n.s.Close(); err != nil {
		t.Fatal(err)
	}
	if last == 0 || !processGone(last) {
		t.Errorf("gear process %d outlived Close", last)
	}
	if st, _ := n.status(g.ID); st.State != state.GearStopped || st.Reason != "node stopped" {
		t.Errorf("status after Close %+v, want stopped (node stopped)", st)
	}
}

// The front listener routes by Host to the gears of this node.
func TestFrontRoutesByHost(t *testing.T) {
	n := newTestNode(t)
	a := n.gear("cccc00000000000000000001", "one", "ns", 1)
	b := n.gear("cccc00000000000000000002", "two", "ns", 1)
	c := n.gear("cccc00000000000000000003", "three", "ns", 1)
	c.State = state.GearStopped
	for _, g := range []state.Gear{a, b, c} {
		n.put(state.BucketGears, g.ID, g)
	}
	n.waitState(a.ID, state.GearStarted)
	n.waitState(b.ID, state.GearStarted)
	n.waitState(c.ID, state.GearStopped)
	front := "http://" + n.s.FrontAddr() + "/"
	tests := []struct {
		host string
		code int
		want string
	}{
		{"one-ns.example.test", 200, "Welcome to one"},
		{"TWO-NS.example.test:8080", 200, "Welcome to two"},
		{b.ID + "-ns.example.test", 200, "gear <code>" + b.ID},
		{"three-ns.example.test", 503, "not answering"},
		{"four-ns.example.test", 404, "No application is served at four-ns.example.test"},
		{"one-ns.example.test.evil", 404, "Not found"},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			code, body := get(t, front, tt.host)
			if code != tt.code || !strings.Contains(body, tt.want) {
				t.Errorf("GET Host %s: %d %s, want %d with %q", tt.host, code, body, tt.code, tt.want)
			}
		})
	}
	// Routes follow the store.
	n.del(state.BucketGears, a.ID)
	testutil.WaitFor(t, 10*time.Second, "route removed", func() bool {
		code, _, _ := tryGet(front, "one-ns.example.test")
		return code == 404
	})
}

// A node started after gears changed catches up: gears deleted or moved
// while it was down are destroyed, stopped ones stay down, new ones start.
func TestNodeRestartCatchesUp(t *testing.T) {
	n := newTestNode(t)
	del := n.gear("dddd00000000000000000001", "app", "ns", 1)
	stop := n.gear("dddd00000000000000000002", "app", "ns", 2)
	moved := n.gear("dddd00000000000000000003", "app", "ns", 3)
	for _, g := range []state.Gear{del, stop, moved} {
		n.put(state.BucketGears, g.ID, g)
	}
	for _, g := range []state.Gear{del, stop, moved} {
		n.waitState(g.ID, state.GearStarted)
	}
	if err := n.s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, g := range []state.Gear{del, stop, moved} {
		if answers(n.addr(g)) {
			t.Errorf("gear %s answers after the node closed", g.ID)
		}
		if st, _ := n.status(g.ID); st.State != state.GearStopped {
			t.Errorf("gear %s status %+v after the node closed, want stopped", g.ID, st)
		}
	}

	n.del(state.BucketGears, del.ID)
	stop.State = state.GearStopped
	n.put(state.BucketGears, stop.ID, stop)
	moved.Node = "elsewhere"
	n.put(state.BucketGears, moved.ID, moved)
	added := n.gear("dddd00000000000000000004", "app", "ns", 4)
	n.put(state.BucketGears, added.ID, added)

	n.s = n.startSupervisor()
	n.waitState(added.ID, state.GearStarted)
	for _, g := range []state.Gear{del, moved} {
		testutil.WaitFor(t, 10*time.Second, "gear "+g.ID+" destroyed", func() bool {
			_, err := os.Stat(n.gearDir(g.ID))
			_, ok := n.status(g.ID)
			return errors.Is(err, os.ErrNotExist) && !ok
		})
	}
	st := n.waitState(stop.ID, state.GearStopped)
	if st.Reason != "" || answers(n.addr(stop)) {
		t.Errorf("stopped gear: status %+v, answers %v", st, answers(n.addr(stop)))
	}
	if _, err := os.Stat(n.gearDir(stop.ID)); err != nil {
		t.Errorf("stopped gear lost its directory: %v", err)
	}
}

// Processes a gear left behind when its node died are killed before the
// gear starts again, so that they do not hold its port.
func TestOrphanedGearProcessesAreKilled(t *testing.T) {
	n := newTestStore(t)
	g := n.gear("eeee00000000000000000001", "app", "ns", 1)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// What an earlier run of the node left: the gear's web process, still
	// serving its port, and the pid file naming its group.
	env := []string{"GEARBOX_NODE_TEST_HELPER=serve", "GEARBOX_GEAR_ID=" + g.ID, "GEARBOX_IP=" + n.ip, "PORT=" + strconv.Itoa(g.Port)}
	run, err := Command{Path: exe, Env: env}.Launch(&testutil.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { run.Stop(time.Second) })
	testutil.WaitFor(t, 10*time.Second, "orphan serving", func() bool { return answers(n.addr(g)) })
	runDir := filepath.Join(n.dir, "data", "run")
	if err := os.MkdirAll(runDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := writePIDFile(filepath.Join(runDir, g.ID+".pid"), run.PID()); err != nil {
		t.Fatal(err)
	}

	n.s = n.startSupervisor()
	n.put(state.BucketGears, g.ID, g)
	n.waitState(g.ID, state.GearStarted)
	select {
	case <-run.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the orphaned process still runs")
	}
	if _, body := get(t, "http://"+n.addr(g)+"/", ""); !strings.Contains(body, "Welcome to app") {
		t.Errorf("the gear's port serves %q, want the welcome page", body)
	}
}

// A port taken by something else keeps the gear from starting, with the
// reason in its status, until the port is free.
func TestGearWhosePortIsTaken(t *testing.T) {
	n := newTestNode(t)
	g := n.gear("ffff00000000000000000001", "app", "ns", 1)
	ln, err := net.Listen("tcp", n.addr(g))
	if err != nil {
		t.Fatal(err)
	}
	n.put(state.BucketGears, g.ID, g)
	var last state.GearStatus
	testutil.WaitFor(t, 10*time.Second, "start failure reported", func() bool {
		last, _ = n.status(g.ID)
		return last.State == state.GearStopped && strings.HasPrefix(last.Reason, "start failed: ") &&
			strings.Contains(last.Reason, "address already in use; retrying in")
	}, func() string { return fmt.Sprintf("%+v", last) })
	ln.Close()
	n.waitState(g.ID, state.GearStarted)
}

// A gear id names a directory: one that could name another is refused.
func TestGearWithInvalidIDIsIgnored(t *testing.T) {
	n := newTestNode(t)
	bad := n.gear("../escape", "app", "ns", 1)
	n.put(state.BucketGears, bad.ID, bad)
	good := n.gear("abcd00000000000000000001", "app", "ns", 2)
	n.put(state.BucketGears, good.ID, good)
	n.waitState(good.ID, state.GearStarted)
	if _, ok := n.status(bad.ID); ok {
		t.Error("a gear with an invalid id got a status")
	}
	if _, err := os.Stat(filepath.Join(n.dir, "data", "escape")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a gear with an invalid id got a directory: %v", err)
	}
	if answers(n.addr(bad)) {
		t.Error("a gear with an invalid id was started")
	}
}

func TestStartTwice(t *testing.T) {
	n := newTestNode(t)
	if err := n.s.Start(context.Background()); !errors.Is(err, ErrStarted) {
		t.Errorf("second Start: %v, want ErrStarted", err)
	}
}

// A status record of a gear written by another node (a stale copy on the
// node it was moved away from), or deleted by it, is written again by the
// node that runs the gear.
func TestStatusOfAnotherNodeIsReportedAgain(t *testing.T) {
	n := newTestNode(t)
	g := n.gear("ffff00000000000000000001", "app", "ns", 1)
	n.put(state.BucketGears, g.ID, g)
	n.waitState(g.ID, state.GearStarted)
	stale := state.GearStatus{ID: g.ID, Node: "elsewhere", State: state.GearStopped, UpdatedAt: time.Now()}
	n.put(state.BucketGearStatus, g.ID, stale)
	testutil.WaitFor(t, 10*time.Second, "the status reported again", func() bool {
		st, ok := n.status(g.ID)
		return ok && st.Node == n.st.Name() && st.State == state.GearStarted
	})
	n.del(state.BucketGearStatus, g.ID)
	testutil.WaitFor(t, 10*time.Second, "the deleted status reported again", func() bool {
		st, ok := n.status(g.ID)
		return ok && st.Node == n.st.Name() && st.State == state.GearStarted
	})
}

// A node member restarting after its gear moved away while it was down
// does not start that gear from the records it kept: it waits for the
// cluster's records first.
func TestRestartedNodeWaitsForTheClusterRecords(t *testing.T) {
	n := newTestNode(t, func(c *Config) { c.SyncWait = 20 * time.Second })
	peer := startStore(t, "peer-"+n.ip, filepath.Join(t.TempDir(), "peer"), ips.Next())
	peer.Join(t, n.m)
	// The peer is a node the broker may place on: the restarting member
	// has been part of a cluster.
	peer.Store.Put(context.Background(), state.BucketNodes, peer.Config.Name, state.Node{Name: peer.Config.Name, Addr: peer.Config.AdvertiseAddr})
	g := n.gear("ffff00000000000000000002", "app", "ns", 1)
	n.put(state.BucketGears, g.ID, g)
	n.waitState(g.ID, state.GearStarted)
	testutil.WaitFor(t, 10*time.Second, "the peer has the records", func() bool {
		_, err := peer.Store.GetRecord(state.BucketGears, g.ID)
		_, err2 := n.st.GetRecord(state.BucketNodes, peer.Config.Name)
		return err == nil && err2 == nil
	})
	if err := n.s.Close(); err != nil {
		t.Fatal(err)
	}
	n.m.Close()
	// While the member is down, its gear moves to the peer.
	moved := g
	moved.Node = peer.Config.Name
	if _, err := peer.Store.Put(context.Background(), state.BucketGears, g.ID, moved); err != nil {
		t.Fatal(err)
	}
	// and the peer reports it started there.
	if _, err := peer.Store.Put(context.Background(), state.BucketGearStatus, g.ID,
		state.GearStatus{ID: g.ID, Node: moved.Node, State: state.GearStarted, UpdatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	// The peer is out of reach while the member restarts.
	peer.Close()
	n.m = storetest.Start(t, n.m.Config)
	n.st = n.m.Store
	restart := time.Now()
	w := n.st.Watch(state.BucketGearStatus)
	defer w.Close()
	cfg := FastConfig(n.st, filepath.Join(n.dir, "data"), n.ip, "example.test")
	cfg.Logger = testLogger()
	cfg.SyncWait = 20 * time.Second
	if os.Geteuid() != 0 {
		cfg.Isolation = IsolateNone
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	waiting := make(chan struct{})
	s.onSyncWait = func() { close(waiting) }
	started := make(chan error, 1)
	go func() { started <- s.Start(context.Background()) }()
	select {
	case <-waiting:
	case err := <-started:
		t.Fatalf("the restarted node started its gears without waiting for the cluster's records (Start: %v)", err)
	}
	// The peer comes back: the member syncs, then starts.
	pcfg := peer.Config
	pcfg.Join = []string{n.m.GossipAddr()}
	peer = storetest.Start(t, pcfg)
	if err := <-started; err != nil {
		t.Fatal(err)
	}
	n.s = s
	// Its stale copy is destroyed, and the peer's status kept.
	testutil.WaitFor(t, 10*time.Second, "the stale copy destroyed", func() bool {
		_, err := os.Stat(n.gearDir(g.ID))
		return errors.Is(err, os.ErrNotExist)
	})
	if st, ok := n.status(g.ID); !ok || st.Node != moved.Node {
		t.Fatalf("status after the stale copy went: %+v %v", st, ok)
	}
	for _, r := range w.Next() {
		var st state.GearStatus
		if r.Key == g.ID && !r.Deleted && r.Decode(&st) == nil && st.Node == n.st.Name() && st.UpdatedAt.After(restart) {
			t.Fatalf("the restarted node reported gear %s, which moved to %s while it was down: %+v", g.ID, moved.Node, st)
		}
	}
}

// A gear that keeps crashing is reported crashing, with the end of its
// log, and is not relaunched at once any more; a change of the app (here
// its env, as a fix would be deployed) starts it afresh.
func TestCrashLoopIsReported(t *testing.T) {
	n := newTestStore(t)
	n.setup = helperPrograms
	n.s = n.startSupervisor(func(c *Config) {
		c.Backoff = Backoff{Initial: 20 * time.Millisecond, Max: 40 * time.Millisecond, ResetAfter: time.Second,
			CrashLimit: 3, CrashWindow: time.Minute, CrashWait: time.Hour}
	})
	app := state.App{ID: "a1", Name: "api", Domain: "ns", State: state.GearStarted,
		Env: map[string]string{"GEARBOX_NODE_TEST_HELPER": "crash"}}
	n.put(state.BucketApps, "ns/api", app)
	g := n.gear("g1", "api", "ns", 0)
	g.Cartridge = "go"
	n.put(state.BucketGears, g.ID, g)

	st := n.waitState(g.ID, state.GearCrashing)
	if !strings.Contains(st.Reason, "ended 4 times in 1m0s") || !strings.Contains(st.Reason, "exit status 1") || !strings.Contains(st.Reason, "starting again in 1h0m0s") {
		t.Errorf("crashing reason %q", st.Reason)
	}
	if !slices.ContainsFunc(st.LogTail, func(l string) bool { return strings.HasSuffix(l, "helper: cannot reach the database") }) {
		t.Errorf("log tail %q lacks the gear's last words", st.LogTail)
	}
	if len(st.LogTail) > CrashLogLines {
		t.Errorf("log tail has %d lines, want at most %d", len(st.LogTail), CrashLogLines)
	}

	app.Env["GEARBOX_NODE_TEST_HELPER"] = "serve"
	n.put(state.BucketApps, "ns/api", app)
	if st := n.waitState(g.ID, state.GearStarted); len(st.LogTail) != 0 {
		t.Errorf("a started gear still reports a log tail: %q", st.LogTail)
	}
}
