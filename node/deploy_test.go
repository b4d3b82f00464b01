package node

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"gearbox/internal/testutil"
	"gearbox/store/internalapi"
	"gearbox/store/state"
)

// blobServer serves deployment archives on a member's internal address,
// as members that hold them do, to callers with the cluster secret (the
// member's internal API admits no other).
type blobServer struct {
	mu    sync.Mutex
	blobs map[string][]byte // by the id asked for
	gets  map[string]int    // GETs served, by id
}

// serveBlobs serves a blobServer on n's internal API (at its store's
// InternalAddr).
func serveBlobs(t *testing.T, n *testNode) *blobServer {
	t.Helper()
	b := &blobServer{blobs: make(map[string][]byte), gets: make(map[string]int)}
	// The node's member has no peers: the blob server takes the whole of
	// its internal API, where the node fetches deployments from.
	n.m.Handle("/", b)
	return b
}

func (b *blobServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id, ok := internalapi.BlobID(r.URL.Path)
	b.mu.Lock()
	data, found := b.blobs[id]
	b.gets[id]++
	b.mu.Unlock()
	if !ok || !found {
		http.NotFound(w, r)
		return
	}
	w.Write(data)
}

func (b *blobServer) count(id string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.gets[id]
}

// newDeployNode starts a node and a blob server on its internal address.
// The node has its store's cluster secret (none: newTestStore's store
// has none), as in a member.
func newDeployNode(t *testing.T, opts ...func(*Config)) (*testNode, *blobServer) {
	n := newTestNode(t, opts...)
	return n, serveBlobs(t, n)
}

// deploy makes archive a kept deployment of app held by n, served as
// served (archive itself if nil), and returns its id.
func (n *testNode) deploy(b *blobServer, app string, archive, served []byte) string {
	sum := sha256.Sum256(archive)
	id := hex.EncodeToString(sum[:])
	if served == nil {
		served = archive
	}
	b.mu.Lock()
	b.blobs[id] = served
	b.mu.Unlock()
	n.put(state.BucketDeployments, state.DeploymentKey(app, id),
		state.Deployment{ID: id, App: app, Size: int64(len(archive)), Holders: []string{n.st.Name()}, CreatedAt: time.Now()})
	return id
}

// setDeployment makes id the current (and newest kept) deployment of app
// ns/name and moves every gear of the app to it at once, as a broker's
// roll-out ends.
func (n *testNode) setDeployment(ns, name, id string) {
	n.t.Helper()
	app := state.AppKey(ns, name)
	var prev state.App
	n.st.Get(state.BucketApps, app, &prev)
	kept := slices.DeleteFunc(prev.Deployments, func(x string) bool { return x == id || x == "" })
	n.put(state.BucketApps, app, state.App{ID: "a-" + name, Name: name, Domain: ns,
		Cartridge: state.CartStatic, State: state.GearStarted, Deployment: id, Deployments: append(kept, id)})
	recs, err := n.st.List(state.BucketGears)
	if err != nil {
		n.t.Fatal(err)
	}
	for _, r := range recs {
		var g state.Gear
		if r.Decode(&g) == nil && g.App == app {
			g.Deployment = id
			n.put(state.BucketGears, g.ID, g)
		}
	}
}

// depDir is where n unpacks and builds deployment id of app.
func (n *testNode) depDir(app, id string) string {
	return filepath.Join(n.dir, "data", "deployments", "apps", strings.Replace(app, "/", "+", 1), id)
}

// waitBody waits until GET url answers 200 with a body holding want.
func waitBody(t *testing.T, url, want string) {
	t.Helper()
	var last string
	testutil.WaitFor(t, 15*time.Second, fmt.Sprintf("GET %s to hold %q", url, want), func() bool {
		code, body, err := tryGet(url, "")
		last = fmt.Sprint(code, " ", body, " ", err)
		return err == nil && code == 200 && strings.Contains(body, want)
	}, func() string { return "last: " + last })
}

// waitReason waits until gear id's status reason holds want.
func (n *testNode) waitReason(id, want string) state.GearStatus {
	n.t.Helper()
	var last state.GearStatus
	testutil.WaitFor(n.t, 15*time.Second, fmt.Sprintf("gear %s reason %q", id, want), func() bool {
		s, ok := n.status(id)
		last = s
		return ok && strings.Contains(s.Reason, want)
	}, func() string { return fmt.Sprintf("last status %+v", last) })
	return last
}

// A deployment of plain files is served as it is, index.html at "/".
func TestDeploymentStaticFiles(t *testing.T) {
	n, b := newDeployNode(t)
	n.setDeployment("ns", "site", "")
	g := n.gear("a1", "site", "ns", 1)
	n.put(state.BucketGears, g.ID, g)
	waitBody(t, "http://"+n.addr(g)+"/", "Welcome to site")

	id := n.deploy(b, state.AppKey("ns", "site"), tarGz(t, tarFile("index.html", "<h1>hello static</h1>"),
		tarDir("css"), tarFile("css/site.css", "body{}")), nil)
	n.setDeployment("ns", "site", id)
	waitBody(t, "http://"+n.addr(g)+"/", "hello static")
	if code, body := get(t, "http://"+n.addr(g)+"/css/site.css", ""); code != 200 || body != "body{}" {
		t.Errorf("GET /css/site.css: %d %q", code, body)
	}
	if code, _ := get(t, "http://"+n.addr(g)+"/nothing", ""); code != 404 {
		t.Errorf("GET /nothing: %d, want 404", code)
	}
	// The new process answers before the handover ends: wait for the
	// status to say it is done.
	n.waitStarted(g.ID, id)
	if fi, err := os.Stat(filepath.Join(n.depDir(state.AppKey("ns", "site"), id), "index.html")); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("unpacked deployment: %v", err)
	}
}

// A deployment with a web command runs it in the deployment's directory;
// its build runs once on the node, before the gears start, without PORT.
func TestDeploymentWebCommandAndBuild(t *testing.T) {
	if !inGearPath("python3") {
		t.Skipf("python3 is not in the gear PATH %s; it serves the test deployment", defaultPath)
	}
	if !inGearPath("sh") {
		t.Skip("no sh in the gear PATH")
	}
	n, b := newDeployNode(t)
	manifest := "web: echo \"$GEARBOX_DEPLOYMENT_ID\" > \"$GEARBOX_DATA_DIR/deployment\"; exec python3 -m http.server \"$PORT\" --bind \"$GEARBOX_IP\"\n" +
		"build: sleep 0.5 && test -z \"$PORT\" && echo built by \"$GEARBOX_APP\" >> built.txt\n" +
		"health: /hello.txt\n"
	app := state.AppKey("ns", "py")
	id := n.deploy(b, app, tarGz(t, tarFile(ManifestFile, manifest), tarFile("hello.txt", "hello from python")), nil)
	n.setDeployment("ns", "py", id)
	g1, g2 := n.gear("p1", "py", "ns", 1), n.gear("p2", "py", "ns", 2)
	n.put(state.BucketGears, g1.ID, g1)
	n.put(state.BucketGears, g2.ID, g2)
	st := n.waitReason(g1.ID, "building deployment")
	if st.State != state.GearBuilding || answers(n.addr(g1)) {
		t.Errorf("status %+v during the build, want building and the port closed", st)
	}
	for _, g := range []state.Gear{g1, g2} {
		// Started: its health check passed; the status tells load
		// balancers where to check it.
		if st := n.waitState(g.ID, state.GearStarted); st.Deployment != id || st.Health != "/hello.txt" {
			t.Errorf("gear %s status %+v: want deployment %s, health /hello.txt", g.ID, st, short(id))
		}
		waitBody(t, "http://"+n.addr(g)+"/hello.txt", "hello from python")
		if code, body := get(t, "http://"+n.addr(g)+"/built.txt", ""); code != 200 || body != "built by py\n" {
			t.Errorf("gear %s: built.txt %d %q, want one build's line", g.ID, code, body)
		}
		if data, err := os.ReadFile(filepath.Join(n.gearDir(g.ID), "data", "deployment")); err != nil || strings.TrimSpace(string(data)) != id {
			t.Errorf("gear %s: GEARBOX_DEPLOYMENT_ID %q (%v), want %s", g.ID, data, err, id)
		}
	}
	if c := b.count(id); c != 1 {
		t.Errorf("archive fetched %d times, want once", c)
	}
	if _, err := os.Stat(n.depDir(app, id) + ".built"); err != nil {
		t.Errorf("build marker: %v", err)
	}
	if _, err := os.Stat(n.depDir(app, id) + ".build.log"); err != nil {
		t.Errorf("build log: %v", err)
	}
}

// A failing build keeps the gear down, with the reason in its status.
func TestDeploymentBuildFails(t *testing.T) {
	n, b := newDeployNode(t)
	id := n.deploy(b, state.AppKey("ns", "bad"), tarGz(t, tarFile(ManifestFile, "web: sleep 100\nbuild: echo broken; exit 7\n")), nil)
	n.setDeployment("ns", "bad", id)
	g := n.gear("b1", "bad", "ns", 1)
	n.put(state.BucketGears, g.ID, g)
	st := n.waitReason(g.ID, "build of deployment")
	if st.State == state.GearStarted || answers(n.addr(g)) {
		t.Errorf("a gear whose build failed runs: %+v", st)
	}
	if st.FailedDeployment != id {
		t.Errorf("status of a gear whose build failed names failed deployment %q, want %s", st.FailedDeployment, id)
	}
	if _, err := os.Stat(n.depDir(state.AppKey("ns", "bad"), id) + ".built"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("build marker after a failed build: %v", err)
	}
	log, _ := os.ReadFile(n.depDir(state.AppKey("ns", "bad"), id) + ".build.log")
	if !strings.Contains(string(log), "broken") {
		t.Errorf("build log %q", log)
	}
}

// A build that runs longer than BuildTimeout is stopped, with all it
// started, and the deployment fails on the node.
func TestDeploymentBuildTimeout(t *testing.T) {
	n, b := newDeployNode(t, func(c *Config) { c.BuildTimeout = 300 * time.Millisecond })
	id := n.deploy(b, state.AppKey("ns", "slow"), tarGz(t, tarFile(ManifestFile, "web: sleep 100\nbuild: echo building; sleep 60 & echo $! > sleeper.pid; wait\n")), nil)
	n.setDeployment("ns", "slow", id)
	g := n.gear("w1", "slow", "ns", 1)
	n.put(state.BucketGears, g.ID, g)
	st := n.waitReason(g.ID, "took longer than 300ms and was stopped")
	if st.State == state.GearStarted {
		t.Errorf("a gear whose build timed out runs: %+v", st)
	}
	pid, err := os.ReadFile(filepath.Join(n.depDir(state.AppKey("ns", "slow"), id), "sleeper.pid"))
	if err != nil {
		t.Fatal(err)
	}
	p, _ := strconv.Atoi(strings.TrimSpace(string(pid)))
	testutil.WaitFor(t, 5*time.Second, "the build's child process gone", func() bool { return processGone(p) })
}

// A deployment that no app keeps any more is removed from the node once
// no gear runs it; the one in use stays.
func TestDeploymentPruned(t *testing.T) {
	n, b := newDeployNode(t, func(c *Config) { c.ResyncInterval = 100 * time.Millisecond })
	app := state.AppKey("ns", "pr")
	a := n.deploy(b, app, tarGz(t, tarFile("index.html", "version A")), nil)
	bb := n.deploy(b, app, tarGz(t, tarFile("index.html", "version B")), nil)
	n.setDeployment("ns", "pr", a)
	g := n.gear("p1", "pr", "ns", 1)
	n.put(state.BucketGears, g.ID, g)
	waitBody(t, "http://"+n.addr(g)+"/", "version A")
	n.setDeployment("ns", "pr", bb)
	waitBody(t, "http://"+n.addr(g)+"/", "version B")
	dir := func(id string) string { return n.depDir(app, id) }
	if _, err := os.Stat(dir(a)); err != nil {
		t.Fatalf("deployment A removed while the app keeps it: %v", err)
	}
	// The node keeps the archives it fetched and serves them to others.
	for _, id := range []string{a, bb} {
		rec := httptest.NewRecorder()
		n.s.BlobHandler().ServeHTTP(rec, httptest.NewRequest("GET", internalapi.BlobPath(id), nil))
		sum := sha256.Sum256(rec.Body.Bytes())
		if rec.Code != 200 || hex.EncodeToString(sum[:]) != id || !n.s.HasBlob(id) {
			t.Errorf("archive %s served as %d, %d bytes", short(id), rec.Code, rec.Body.Len())
		}
	}
	rec := httptest.NewRecorder()
	n.s.BlobHandler().ServeHTTP(rec, httptest.NewRequest("GET", internalapi.BlobPath("../../state.db"), nil))
	if rec.Code != 404 {
		t.Errorf("a path out of the archives: %d", rec.Code)
	}
	// The app no longer keeps A.
	n.put(state.BucketApps, app, state.App{ID: "a-pr", Name: "pr", Domain: "ns", Cartridge: state.CartStatic,
		State: state.GearStarted, Deployment: bb, Deployments: []string{bb}})
	// Its directory goes, then its archive.
	testutil.WaitFor(t, 10*time.Second, "deployment A removed", func() bool {
		_, err := os.Stat(dir(a))
		return errors.Is(err, os.ErrNotExist) && !n.s.HasBlob(a)
	})
	if _, err := os.Stat(dir(bb)); err != nil {
		t.Errorf("deployment B, in use, removed: %v", err)
	}
	if n.s.HasBlob(a) || !n.s.HasBlob(bb) {
		t.Errorf("archives kept after the prune: A %v, B %v; want B only", n.s.HasBlob(a), n.s.HasBlob(bb))
	}
	waitBody(t, "http://"+n.addr(g)+"/", "version B")
}

// A deployment is fetched from its holders first, then from the other
// nodes that run the app's gears, which keep what they fetched.
func TestDeploymentSources(t *testing.T) {
	n := newTestStore(t)
	n.s = n.startSupervisor()
	for i, node := range []string{"n3", n.st.Name(), "b1", "n2", "n3"} {
		g := state.Gear{ID: fmt.Sprintf("g%d", i), App: "ns/app", Node: node, State: state.GearStarted}
		n.put(state.BucketGears, g.ID, g)
	}
	n.put(state.BucketGears, "other", state.Gear{ID: "other", App: "ns/other", Node: "n9"})
	if got := n.s.deploys.sources("ns/app", []string{"b1"}); !slices.Equal(got, []string{"b1", "n2", "n3"}) {
		t.Errorf("sources %v, want the holder b1, then n2 and n3 (not this node, not another app's)", got)
	}
}

// An archive whose bytes are not the deployment's id is refused: the gear
// keeps running the deployment it ran.
func TestDeploymentHashMismatch(t *testing.T) {
	n, b := newDeployNode(t)
	app := state.AppKey("ns", "hm")
	a := n.deploy(b, app, tarGz(t, tarFile("index.html", "version A")), nil)
	n.setDeployment("ns", "hm", a)
	g := n.gear("h1", "hm", "ns", 1)
	n.put(state.BucketGears, g.ID, g)
	waitBody(t, "http://"+n.addr(g)+"/", "version A")
	n.waitStarted(g.ID, a)

	bad := n.deploy(b, app, tarGz(t, tarFile("index.html", "version B")), tarGz(t, tarFile("index.html", "tampered")))
	n.setDeployment("ns", "hm", bad)
	st := n.waitReason(g.ID, "sha256")
	if st.State != state.GearStarted {
		t.Errorf("status %+v, want started with the reason", st)
	}
	testutil.WaitFor(t, 10*time.Second, "a retry", func() bool { return b.count(bad) >= 2 })
	if _, body := get(t, "http://"+n.addr(g)+"/", ""); body != "version A" {
		t.Errorf("GET / after a refused deployment: %q, want version A", body)
	}
	if _, err := os.Stat(n.depDir(app, bad)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("refused deployment unpacked: %v", err)
	}
	if n.s.HasBlob(bad) {
		t.Error("refused archive kept")
	}
}

// An archive with an entry out of the tree is refused and nothing of it
// is written; a new gear stays down.
func TestDeploymentUnsafeArchive(t *testing.T) {
	n, b := newDeployNode(t)
	id := n.deploy(b, state.AppKey("ns", "evil"), tarGz(t, tarFile("index.html", "x"), tarFile("../evil", "x")), nil)
	n.setDeployment("ns", "evil", id)
	g := n.gear("e1", "evil", "ns", 1)
	n.put(state.BucketGears, g.ID, g)
	st := n.waitReason(g.ID, `archive entry "../evil"`)
	if st.State == state.GearStarted || answers(n.addr(g)) {
		t.Errorf("status %+v, want the gear down with the entry named", st)
	}
	deps := filepath.Join(n.dir, "data", "deployments")
	for _, p := range []string{n.depDir(state.AppKey("ns", "evil"), id), filepath.Join(n.dir, "data", "evil"), filepath.Join(deps, "evil"), filepath.Join(deps, "apps", "evil")} {
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: %v, want nothing", p, err)
		}
	}
}

// Switching the app to another kept deployment restarts the gear on it;
// a deployment the node has is not fetched again.
func TestDeploymentSwitch(t *testing.T) {
	n, b := newDeployNode(t)
	sl := n.watchStatus()
	app := state.AppKey("ns", "sw")
	a := n.deploy(b, app, tarGz(t, tarFile("index.html", "version A")), nil)
	bb := n.deploy(b, app, tarGz(t, tarFile("index.html", "version B")), nil)
	n.setDeployment("ns", "sw", a)
	g := n.gear("s1", "sw", "ns", 1)
	n.put(state.BucketGears, g.ID, g)
	waitBody(t, "http://"+n.addr(g)+"/", "version A")
	// A handover starts from a gear reported started; its front may
	// answer a moment before the status says so.
	n.waitStarted(g.ID, a)

	before := len(sl.states(g.ID))
	n.setDeployment("ns", "sw", bb)
	waitBody(t, "http://"+n.addr(g)+"/", "version B")
	if got := sl.states(g.ID)[before:]; !containsPrefix(got, "started (starting deployment "+short(bb)+" beside the running process)") ||
		containsPrefix(got, "stopped") {
		t.Errorf("states %q, want a handover without a stop", got)
	}
	n.setDeployment("ns", "sw", a)
	waitBody(t, "http://"+n.addr(g)+"/", "version A")
	if ca, cb := b.count(a), b.count(bb); ca != 1 || cb != 1 {
		t.Errorf("fetches: A %d, B %d, want one each", ca, cb)
	}
}

// An archive over MaxDeploySize is refused.
func TestDeploymentTooLarge(t *testing.T) {
	n := newTestNode(t, func(c *Config) { c.MaxDeploySize = 100 })
	b := serveBlobs(t, n)
	id := n.deploy(b, state.AppKey("ns", "big"), tarGz(t, tarFile("index.html", strings.Repeat("big page ", 100))), nil)
	n.setDeployment("ns", "big", id)
	g := n.gear("t1", "big", "ns", 1)
	n.put(state.BucketGears, g.ID, g)
	if st := n.waitReason(g.ID, "larger than the limit of 100 bytes"); st.State == state.GearStarted {
		t.Errorf("status %+v", st)
	}
}

// A fetch with another cluster secret than the holder's fails: the
// internal API's mutual TLS refuses it.
func TestDeploymentFetchNeedsSecret(t *testing.T) {
	n := newTestNode(t, func(c *Config) { c.ClusterSecret = "wrong" })
	b := serveBlobs(t, n)
	id := n.deploy(b, state.AppKey("ns", "sec"), tarGz(t, tarFile("index.html", "x")), nil)
	n.setDeployment("ns", "sec", id)
	g := n.gear("c1", "sec", "ns", 1)
	n.put(state.BucketGears, g.ID, g)
	n.waitReason(g.ID, "peer does not hold the cluster secret")
}

func containsPrefix(ss []string, p string) bool {
	for _, s := range ss {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// inGearPath reports whether name is an executable in the PATH gears get.
func inGearPath(name string) bool {
	for _, d := range filepath.SplitList(defaultPath) {
		if fi, err := os.Stat(filepath.Join(d, name)); err == nil && fi.Mode()&0o111 != 0 {
			return true
		}
	}
	return false
}

// The attack of issue #12 (item 10): two apps upload the same archive,
// whose build writes the app's env into the tree. Each app gets a build
// of its own, with its own env, and its gears run it; the archive is
// fetched and kept once. When one app goes, its build goes; the other's
// and the archive stay.
func TestDeploymentBuiltPerApp(t *testing.T) {
	if !inGearPath("sh") || !inGearPath("cp") || !inGearPath("sleep") {
		t.Skip("no sh, cp or sleep in the gear PATH")
	}
	n, b := newDeployNode(t, func(c *Config) { c.ResyncInterval = 100 * time.Millisecond })
	archive := tarGz(t, tarFile(ManifestFile, "build: echo \"secret=$APP_SECRET\" > built.txt\n"+
		"web: cp built.txt \"$GEARBOX_DATA_DIR/seen\"; exec sleep 100\n"))
	var id string
	gears := map[string]state.Gear{}
	seen := func(name string) string {
		b, _ := os.ReadFile(filepath.Join(n.gearDir(gears[name].ID), "data", "seen"))
		return string(b)
	}
	for i, name := range []string{"victim", "attacker"} {
		app := state.AppKey("ns", name)
		id = n.deploy(b, app, archive, nil)
		n.put(state.BucketApps, app, state.App{ID: "a-" + name, Name: name, Domain: "ns", Cartridge: state.CartStatic,
			State: state.GearStarted, Deployment: id, Deployments: []string{id}, Env: map[string]string{"APP_SECRET": name + "-only"}})
		g := n.gear(name[:1]+"1", name, "ns", i+1)
		n.put(state.BucketGears, g.ID, g)
		gears[name] = g
		// One after the other: the second app asks once the first's
		// build is done, as an attacker who uploads a victim's archive.
		testutil.WaitFor(t, 15*time.Second, "gear of "+name+" runs its build", func() bool { return seen(name) != "" },
			func() string { st, _ := n.status(g.ID); return fmt.Sprintf("status %+v", st) })
	}
	for name := range gears {
		if got, want := seen(name), "secret="+name+"-only\n"; got != want {
			t.Errorf("the gear of app %s runs a build that wrote %q, want %q", name, got, want)
		}
		if got, _ := os.ReadFile(filepath.Join(n.depDir(state.AppKey("ns", name), id), "built.txt")); string(got) != "secret="+name+"-only\n" {
			t.Errorf("app %s's built tree holds %q", name, got)
		}
	}
	if c := b.count(id); c != 1 {
		t.Errorf("archive fetched %d times, want once for both apps", c)
	}

	// The attacker's app is deleted: its gear, then its build go.
	n.del(state.BucketGears, gears["attacker"].ID)
	n.del(state.BucketApps, state.AppKey("ns", "attacker"))
	gone := filepath.Join(n.dir, "data", "deployments", "apps", "ns+attacker")
	testutil.WaitFor(t, 10*time.Second, "the deleted app's deployments removed", func() bool {
		_, err := os.Stat(gone)
		return errors.Is(err, os.ErrNotExist)
	})
	if _, err := os.Stat(n.depDir(state.AppKey("ns", "victim"), id)); err != nil || !n.s.HasBlob(id) {
		t.Errorf("the other app's deployment (%v) or the shared archive (kept: %v) removed", err, n.s.HasBlob(id))
	}
}
