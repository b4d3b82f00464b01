//go:build linux

package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	brokerapi "gearbox/broker/api"
	"gearbox/broker/client"
	"gearbox/lb"
	"gearbox/store/internalapi"
)

// appVersionRE reads what testdata/e2eapp answers.
var appVersionRE = regexp.MustCompile(`^app (\S+) gear ([a-z0-9]+) method (\S+) body (\d+) uid (\d+)`)

// appAnswer is one answer of the deployed test app, or why there was none.
type appAnswer struct {
	version, gear string
	uid           int
	err           error
}

// askApp sends one request to the app through front with the app's host:
// a GET, or a POST with a body that no transport may replay.
func askApp(c *http.Client, front, host, method string) appAnswer {
	var body io.Reader
	if method == "POST" {
		body = strings.NewReader("order=42")
	}
	req, err := http.NewRequest(method, front+"/", body)
	if err != nil {
		return appAnswer{err: err}
	}
	req.Host = host
	resp, err := c.Do(req)
	if err != nil {
		return appAnswer{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return appAnswer{err: err}
	}
	m := appVersionRE.FindSubmatch(b)
	if resp.StatusCode != http.StatusOK || m == nil {
		return appAnswer{err: fmt.Errorf("%s %s: %.200q", method, resp.Status, b)}
	}
	uid, _ := strconv.Atoi(string(m[5]))
	return appAnswer{version: string(m[1]), gear: string(m[2]), uid: uid}
}

// appLoad sends requests to the app without pause from a few clients,
// GETs and POSTs, until stopped, and keeps what failed.
type appLoad struct {
	stop  atomic.Bool
	wg    sync.WaitGroup
	mu    sync.Mutex
	fails []string
	byVer map[string]int
	n     int
}

func startLoad(front, host string, clients int) *appLoad {
	return startLoadOn([]string{front}, host, clients, true)
}

// startLoadOn is startLoad through several fronts (client i uses front
// i modulo their number), with POSTs from every other client if post.
func startLoadOn(fronts []string, host string, clients int, post bool) *appLoad {
	l := &appLoad{byVer: map[string]int{}}
	for i := range clients {
		method := "GET"
		if post && i%2 == 1 {
			method = "POST"
		}
		front := fronts[i%len(fronts)]
		l.wg.Go(func() {
			c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
			for !l.stop.Load() {
				a := askApp(c, front, host, method)
				l.mu.Lock()
				l.n++
				if a.err != nil {
					l.fails = append(l.fails, time.Now().Format("15:04:05.000")+" "+front+" "+a.err.Error())
				} else {
					l.byVer[a.version]++
				}
				l.mu.Unlock()
			}
		})
	}
	return l
}

// end stops the load and returns the number of requests and the failures.
func (l *appLoad) end() (int, []string) {
	l.stop.Store(true)
	l.wg.Wait()
	return l.n, l.fails
}

// count returns the number of requests answered so far.
func (l *appLoad) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n
}

// buildTestApp compiles testdata/e2eapp into dir/server and writes
// dir/version.txt and dir/gearbox.yml.
func buildTestApp(t testing.TB, dir, version string) {
	t.Helper()
	cmd := exec.Command(goTool(), "build", "-o", filepath.Join(dir, "server"), "./testdata/e2eapp")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build test app: %v\n%s", err, out)
	}
	files := map[string]string{
		"version.txt": version + "\n",
		"gearbox.yml": "web: ./server\nhealth: /health\n",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestNodeEndToEnd runs three members (127.0.0.11-13, one a broker too)
// and takes a scalable app through what its users do: the welcome page, a
// deployment of an HTTP server built here, scaling to three gears spread
// over the nodes, sticky sessions, a gear stop, a rolling deploy under
// load, and the SIGKILL of a whole node (member and gears) under load.
func TestNodeEndToEnd(t *testing.T) {
	gearboxBinary(t)
	const secret = "e2e-node-secret"
	pidDir := t.TempDir()
	// Gears run as uids of their own when the test runs as root: they
	// write their pids here and reach their directories in the data dirs.
	if err := os.Chmod(pidDir, 0o777); err != nil {
		t.Fatal(err)
	}
	// Gear processes run in process groups of their own: a member killed
	// at the end of the test leaves them, so the test ends them itself.
	t.Cleanup(func() {
		ents, _ := os.ReadDir(pidDir)
		for _, e := range ents {
			if b, err := os.ReadFile(filepath.Join(pidDir, e.Name())); err == nil {
				if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 1 {
					syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
	})
	ips := map[string]string{"m1": "127.0.0.11", "m2": "127.0.0.12", "m3": "127.0.0.13"}
	zones := map[string]string{"m1": "za", "m2": "zb", "m3": "zc"}
	members := map[string]*member{}
	uidRanges := map[string]string{"m1": "64000-64999", "m2": "65000-65999", "m3": "66000-66999"}
	for _, name := range []string{"m1", "m2", "m3"} {
		ip := ips[name]
		dataDir := gearDataDir(t)
		args := []string{"--log-format", "json", "serve", "--name", name, "--bind", ip, "--data-dir", dataDir,
			"--zone", zones[name], "--anti-entropy-interval", "1s", "--http-addr", ip + ":8080",
			"--gear-uid-range", uidRanges[name]}
		if name == "m1" {
			args = append(args, "--role", "broker,node", "--api-addr", ip+":7480", "--dns-addr", ip+":5353")
		} else {
			args = append(args, "--role", "node", "--join", ips["m1"])
		}
		members[name] = startMember(t, name, ip, append(secretEnv(secret), adminEnv), args...)
	}
	logs := func() string {
		var b strings.Builder
		for _, name := range []string{"m1", "m2", "m3"} {
			fmt.Fprintf(&b, "\n--- %s ---\n%s", name, members[name].output.String())
		}
		return b.String()
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(logs())
		}
	})
	ctx := context.Background()
	api := "http://127.0.0.11:7480"
	admin := &client.Client{BaseURL: api, User: "admin", Password: "adminpass1"}
	waitAliveNodes(t, admin, 3, 60*time.Second, logs)
	if _, _, err := admin.CreateUser(ctx, "dev", "password1", nil); err != nil {
		t.Fatal(err)
	}
	dev := &client.Client{BaseURL: api, User: "dev", Password: "password1"}
	cliAuth := []string{"--api", api, "--user", "dev"}
	cliEnv := []string{"GEARBOX_PASSWORD=password1"} // never on the command line
	if _, _, err := dev.CreateDomain(ctx, "e2e"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := dev.CreateApp(ctx, "e2e", "shop", client.AppOptions{Scale: true}); err != nil {
		t.Fatal(err)
	}
	// The test app notes its pid for the node kill; the head gear serves
	// too at three gears (no gear ratio), so that requests spread over
	// all three.
	for k, v := range map[string]string{"E2E_PIDDIR": pidDir, "GEARBOX_LB_GEAR_RATIO": "-1"} {
		if _, _, err := dev.SetEnv(ctx, "e2e", "shop", k, v); err != nil {
			t.Fatalf("set %s: %v", k, err)
		}
	}
	const host = "shop-e2e.example.com"
	gears := func() []brokerapi.Gear {
		gg, err := dev.GearGroups(ctx, "e2e", "shop")
		if err != nil || len(gg) != 1 {
			return nil
		}
		return gg[0].Gears
	}
	var head brokerapi.Gear
	waitUntil(t, 30*time.Second, "head gear started", logs, func() bool {
		gs := gears()
		if len(gs) == 1 && gs[0].State == "started" {
			head = gs[0]
		}
		return head.ID != ""
	})
	front := "http://" + ips[head.Node] + ":8080"
	plain := &http.Client{Timeout: 30 * time.Second}
	// The head gear's load balancer shows its status on its node's
	// internal API only, to members holding the cluster secret.
	lbStatusURL := internalapi.URL(ips[head.Node]+":7947", internalapi.GearLBStatusPath(head.ID)+"?format=json")

	// A new app serves the welcome page through the node front.
	req, _ := http.NewRequest("GET", front+"/", nil)
	req.Host = host
	resp, err := plain.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "Welcome to shop") {
		t.Fatalf("welcome page: %s %.300s", resp.Status, body)
	}

	// Deploy the test server; the CLI follows the roll-out to its end.
	v1 := t.TempDir()
	buildTestApp(t, v1, "v1")
	out, stderr, code := runGearboxEnv(t, 30*time.Second, cliEnv, append([]string{"app", "deploy", "shop", v1, "-n", "e2e"}, cliAuth...)...)
	if code != 0 || !strings.Contains(stderr, "roll-out: 1 of 1 gears") {
		t.Fatalf("deploy v1 (exit %d):\n%s\n%s%s", code, out, stderr, logs())
	}
	a := askApp(plain, front, host, "GET")
	if a.err != nil || a.version != "v1" {
		var st string
		if resp, err := internalClient(secret).Get(lbStatusURL); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			st = string(b)
		}
		t.Fatalf("after deploy v1: %+v (%v); load balancer: %s", a, a.err, st)
	}
	// As root, the app runs as a uid of its own, as node list says.
	if os.Geteuid() == 0 {
		nodes, err := admin.Nodes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range nodes {
			if !strings.HasPrefix(n.Isolation, "uid+") {
				t.Errorf("node %s isolates gears by %q", n.Name, n.Isolation)
			}
		}
		if a.uid < 64000 || a.uid > 66999 {
			t.Errorf("the deployed app runs as uid %d, not one of the nodes' gear uids", a.uid)
		}
	}

	// Scale to three: one gear per node (three zones).
	for range 2 {
		if _, _, err := dev.AppEvent(ctx, "e2e", "shop", "scale-up"); err != nil {
			t.Fatalf("scale-up: %v", err)
		}
	}
	waitUntil(t, 60*time.Second, "three gears started on three nodes", logs, func() bool {
		gs, nodes := gears(), map[string]bool{}
		for _, g := range gs {
			if g.State != "started" {
				return false
			}
			nodes[g.Node] = true
		}
		return len(gs) == 3 && len(nodes) == 3
	})
	lbStatus := func() lb.Status {
		var st lb.Status
		resp, err := internalClient(secret).Get(lbStatusURL)
		if err != nil {
			return st
		}
		defer resp.Body.Close()
		json.NewDecoder(resp.Body).Decode(&st)
		return st
	}
	serving := func() map[string]bool {
		out := map[string]bool{}
		for _, b := range lbStatus().Backends {
			if b.Serving {
				out[b.ID] = true
			}
		}
		return out
	}
	waitUntil(t, 60*time.Second, "three backends serving", logs, func() bool { return len(serving()) == 3 })

	// Cookie-less requests spread over all gears.
	seen := map[string]int{}
	for range 60 {
		a := askApp(plain, front, host, "GET")
		if a.err != nil {
			t.Fatalf("spread: %v", a.err)
		}
		seen[a.gear]++
	}
	if len(seen) != 3 {
		t.Errorf("60 cookie-less requests reached gears %v, want all three", seen)
	}

	// A browser-like client sticks to one gear (one that is not the head
	// gear, whose stop would stop the load balancer too).
	var jar http.CookieJar
	var sticky string
	for try := 0; try < 20 && (sticky == "" || sticky == head.ID); try++ {
		jar, _ = cookiejar.New(nil)
		sticky = askApp(&http.Client{Jar: jar, Timeout: 30 * time.Second}, front, host, "GET").gear
	}
	if sticky == "" || sticky == head.ID {
		t.Fatalf("no session stuck to a gear other than the head gear %s", head.ID)
	}
	browser := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	for range 20 {
		if a := askApp(browser, front, host, "GET"); a.err != nil || a.gear != sticky {
			t.Fatalf("sticky session went to %+v, want gear %s", a, sticky)
		}
	}

	// gear stop of the sticky gear: the session moves to another gear
	// and no request fails.
	var (
		bmu      sync.Mutex
		bfails   []string
		bgears   = map[string]int{}
		bstop    atomic.Bool
		bwg      sync.WaitGroup
		stoppedN atomic.Int64 // requests answered after the stop returned
	)
	bwg.Go(func() {
		for !bstop.Load() {
			a := askApp(browser, front, host, "POST")
			bmu.Lock()
			if a.err != nil {
				bfails = append(bfails, a.err.Error())
			} else if stoppedN.Load() > 0 {
				bgears[a.gear]++
				stoppedN.Add(1)
			}
			bmu.Unlock()
		}
	})
	out, stderr, code = runGearboxEnv(t, 30*time.Second, cliEnv, append([]string{"gear", "stop", sticky}, cliAuth...)...)
	if code != 0 {
		t.Fatalf("gearbox gear stop (exit %d):\n%s\n%s", code, out, stderr)
	}
	waitUntil(t, 30*time.Second, "sticky gear stopped", logs, func() bool {
		for _, g := range gears() {
			if g.ID == sticky {
				return g.State == "stopped"
			}
		}
		return false
	})
	stoppedN.Store(1)
	waitUntil(t, 30*time.Second, "20 session requests after the stop", logs, func() bool { return stoppedN.Load() > 20 })
	bstop.Store(true)
	bwg.Wait()
	if len(bfails) > 0 || bgears[sticky] > 0 || len(bgears) != 1 {
		t.Errorf("session across gear stop: %d failed (first %q), served after the stop by %v (stopped gear %s)",
			len(bfails), append(bfails, "")[0], bgears, sticky)
	}
	if _, _, err := dev.GearEvent(ctx, sticky, "start"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 60*time.Second, "three backends serving again", logs, func() bool { return len(serving()) == 3 })

	// A rolling deploy under steady load: no request fails, and the new
	// version answers at the end.
	v2 := t.TempDir()
	buildTestApp(t, v2, "v2")
	load := startLoad(front, host, 4)
	waitUntil(t, 10*time.Second, "load running", logs, func() bool { return load.count() > 50 })
	// Each gear: drained, restarted, checked, and given the time to rise
	// in the load balancer again (about 12 s).
	out, stderr, code = runGearboxEnv(t, 2*time.Minute, cliEnv, append([]string{"app", "deploy", "shop", v2, "-n", "e2e"}, cliAuth...)...)
	before := load.count()
	waitUntil(t, 10*time.Second, "load after the roll-out", logs, func() bool { return load.count() > before+50 })
	n, fails := load.end()
	if code != 0 || !strings.Contains(stderr, "roll-out: 3 of 3 gears") {
		t.Fatalf("deploy v2 (exit %d):\n%s\n%s%s", code, out, stderr, logs())
	}
	if len(fails) > 0 {
		t.Errorf("rolling deploy: %d of %d requests failed; first: %s", len(fails), n, fails[0])
	}
	for range 20 {
		if a := askApp(plain, front, host, "GET"); a.err != nil || a.version != "v2" {
			t.Fatalf("after the roll-out: %+v", a)
		}
	}
	t.Logf("rolling deploy: %d requests (%d failed); answers by version %v", n, len(fails), load.byVer)

	// Nodes keep the archives they fetched and serve them to other
	// members (with the secret): the deployment outlives its broker.
	deps, err := dev.Deployments(ctx, "e2e", "shop")
	if err != nil || len(deps) == 0 {
		t.Fatalf("deployments: %v %+v", err, deps)
	}
	current := deps[len(deps)-1].ID
	for _, name := range []string{"m2", "m3"} {
		resp, err := internalClient(secret).Get(internalapi.URL(ips[name]+":7947", internalapi.BlobPath(current)))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		sum := sha256.Sum256(b)
		if resp.StatusCode != 200 || hex.EncodeToString(sum[:]) != current {
			t.Errorf("node %s serves deployment %s as %s, %d bytes", name, current[:12], resp.Status, len(b))
		}
	}

	// SIGKILL of a whole node (member and gears) that has no LB gear:
	// its gear drops out of rotation within two checks (2 s apart) and
	// no GET fails.
	var victim string
	var victimGear string
	for _, g := range gears() {
		if g.Node != head.Node {
			victim, victimGear = g.Node, g.ID
		}
	}
	getLoad := &appLoad{byVer: map[string]int{}}
	for range 3 {
		getLoad.wg.Go(func() {
			c := &http.Client{Timeout: 30 * time.Second}
			for !getLoad.stop.Load() {
				a := askApp(c, front, host, "GET")
				getLoad.mu.Lock()
				getLoad.n++
				if a.err != nil {
					getLoad.fails = append(getLoad.fails, a.err.Error())
				}
				getLoad.mu.Unlock()
			}
		})
	}
	waitUntil(t, 10*time.Second, "GET load running", logs, func() bool { return getLoad.count() > 50 })
	pid, err := os.ReadFile(filepath.Join(pidDir, victimGear+".pid"))
	if err != nil {
		t.Fatal(err)
	}
	members[victim].kill()
	gearPID, _ := strconv.Atoi(strings.TrimSpace(string(pid)))
	if err := syscall.Kill(gearPID, syscall.SIGKILL); err != nil {
		t.Fatalf("kill gear process %d of node %s: %v", gearPID, victim, err)
	}
	// Its replacement, under another node's uid, notes its own pid.
	os.Remove(filepath.Join(pidDir, victimGear+".pid"))
	killed := time.Now()
	waitUntil(t, 10*time.Second, "killed node's gear out of rotation", logs, func() bool {
		s := serving()
		return len(s) == 2 && !s[victimGear]
	})
	if took := time.Since(killed); took > 5*time.Second {
		t.Errorf("gear of the killed node left rotation after %s, want within two checks", took)
	}
	before = getLoad.count()
	waitUntil(t, 10*time.Second, "GETs after the kill", logs, func() bool { return getLoad.count() > before+100 })

	// Healing: once the node has been gone for the grace (10 s), its
	// gear is placed on a live node, started on the app's deployment,
	// and back in rotation; the app is at full strength again, and no
	// GET failed on the way.
	waitUntil(t, 40*time.Second, "the killed node's gear replaced and started", logs, func() bool {
		for _, g := range gears() {
			if g.ID == victimGear {
				return g.Node != victim && g.State == "started"
			}
		}
		return false
	})
	waitUntil(t, 20*time.Second, "three backends serving after the replacement", logs, func() bool {
		s := serving()
		return len(s) == 3 && s[victimGear]
	})
	replaced := time.Since(killed)
	if replaced > 30*time.Second {
		t.Errorf("the killed node's gear served again %s after the kill, want under 30 s", replaced)
	}
	before = getLoad.count()
	waitUntil(t, 10*time.Second, "GETs after the replacement", logs, func() bool { return getLoad.count() > before+100 })
	n, fails = getLoad.end()
	if len(fails) > 0 {
		t.Errorf("node kill: %d of %d GETs failed; first: %s", len(fails), n, fails[0])
	}
	if a := askApp(plain, front, host, "GET"); a.err != nil || a.version != "v2" {
		t.Errorf("after the replacement: %+v", a)
	}
	t.Logf("node kill: replacement serving %s after the kill; %d GETs, none failed", replaced.Round(100*time.Millisecond), n)
	alerts := wantFailedThenReplaced(t, admin, victim, victimGear)

	// The killed node comes back: it destroys its stale copy of the gear
	// without running it, and the gear keeps serving from its new node.
	m := members[victim]
	dataDir := m.args[slices.Index(m.args, "--data-dir")+1]
	m.start()
	waitAliveNodes(t, admin, 3, 60*time.Second, logs)
	waitUntil(t, 30*time.Second, "the stale gear's directory removed", logs, func() bool {
		_, err := os.Stat(filepath.Join(dataDir, "gears", victimGear))
		return errors.Is(err, os.ErrNotExist)
	})
	for _, line := range strings.Split(m.lastRun(), "\n") {
		if strings.Contains(line, victimGear) && strings.Contains(line, `"gear started"`) {
			t.Errorf("the returning node started the replaced gear: %s", line)
		}
	}
	waitUntil(t, 20*time.Second, "node_recovered alert", logs, func() bool {
		as, err := admin.Alerts(ctx, alerts[len(alerts)-1].Seq, 0)
		return err == nil && slices.ContainsFunc(as, func(a brokerapi.Alert) bool { return a.Kind == "node_recovered" && a.Node == victim })
	})
	for _, g := range gears() {
		if g.ID == victimGear && (g.Node == victim || g.State != "started") {
			t.Errorf("after the node's return the gear is %+v", g)
		}
	}

	// Drain under load of a node with gears (not the head's): each gear
	// moves to another node with its data directory, and no request
	// fails.
	dirOf := func(node string) string {
		m := members[node]
		return filepath.Join(m.args[slices.Index(m.args, "--data-dir")+1], "gears")
	}
	var drained string
	var moving []brokerapi.Gear
	for _, name := range []string{"m1", "m2", "m3"} {
		var on []brokerapi.Gear
		for _, g := range gears() {
			if g.Node == name {
				on = append(on, g)
			}
		}
		if name != head.Node && len(on) > len(moving) {
			drained, moving = name, on
		}
	}
	if drained == "" {
		t.Fatalf("no node but the head's has gears: %+v", gears())
	}
	// What the app keeps in its data directory: a file and a sub-folder,
	// the gear's own.
	for _, g := range moving {
		data := filepath.Join(dirOf(drained), g.ID, "data")
		fi, err := os.Stat(data)
		if err != nil {
			t.Fatal(err)
		}
		uid, gid := int(fi.Sys().(*syscall.Stat_t).Uid), int(fi.Sys().(*syscall.Stat_t).Gid)
		for name, content := range map[string]string{"orders.db": "orders of " + g.ID, "uploads/cat.txt": "meow"} {
			p := filepath.Join(data, name)
			os.MkdirAll(filepath.Dir(p), 0o700)
			if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			os.Chown(filepath.Dir(p), uid, gid)
			os.Chown(p, uid, gid)
		}
	}
	load = startLoad(front, host, 4)
	waitUntil(t, 10*time.Second, "load running before the drain", logs, func() bool { return load.count() > 50 })
	adminCLI := []string{"--api", api, "--user", "admin"}
	adminCLIEnv := []string{"GEARBOX_PASSWORD=adminpass1"}
	out, stderr, code = runGearboxEnv(t, 30*time.Second, adminCLIEnv, append([]string{"node", "drain", drained}, adminCLI...)...)
	if code != 0 || !strings.Contains(out, "move to other nodes one at a time") {
		t.Fatalf("node drain (exit %d):\n%s\n%s", code, out, stderr)
	}
	drainStart := time.Now()
	waitEvacuated(t, admin, drained, 2*time.Minute, logs)
	drainTook := time.Since(drainStart)
	waitUntil(t, 30*time.Second, "three backends serving after the drain", logs, func() bool { return len(serving()) == 3 })
	before = load.count()
	waitUntil(t, 10*time.Second, "load after the drain", logs, func() bool { return load.count() > before+50 })
	n, fails = load.end()
	if len(fails) > 0 {
		t.Errorf("drain: %d of %d requests failed; first: %s", len(fails), n, fails[0])
	}
	t.Logf("drain of %s (%d gears): %s, %d requests, %d failed", drained, len(moving), drainTook.Round(100*time.Millisecond), n, len(fails))
	// The replacements hold the data, as their own uid's.
	alerts, err = admin.Alerts(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range moving {
		i := slices.IndexFunc(alerts, func(a brokerapi.Alert) bool { return a.Kind == "gear_replaced" && a.Gear == g.ID && a.Node == drained })
		if i < 0 || !strings.Contains(alerts[i].Action, "data directory carried") {
			t.Errorf("no gear_replaced alert carrying the data of %s: %+v", g.ID, alerts)
			continue
		}
		m := regexp.MustCompile(`gear (\S+) replaced it on node (\S+),`).FindStringSubmatch(alerts[i].Action)
		if m == nil {
			t.Fatalf("alert action %q", alerts[i].Action)
		}
		data := filepath.Join(dirOf(m[2]), m[1], "data")
		for name, want := range map[string]string{"orders.db": "orders of " + g.ID, "uploads/cat.txt": "meow"} {
			b, err := os.ReadFile(filepath.Join(data, name))
			if err != nil || string(b) != want {
				t.Errorf("replacement %s of %s: %s = %q (%v), want %q", m[1], g.ID, name, b, err, want)
			}
			if fi, err := os.Stat(filepath.Join(data, name)); err == nil && os.Geteuid() == 0 {
				dfi, _ := os.Stat(data)
				if fi.Sys().(*syscall.Stat_t).Uid != dfi.Sys().(*syscall.Stat_t).Uid {
					t.Errorf("replacement %s: %s is not its uid's", m[1], name)
				}
			}
		}
		if _, err := os.Stat(filepath.Join(dirOf(drained), g.ID)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the drained node still has gear %s's directory: %v", g.ID, err)
		}
	}
}
