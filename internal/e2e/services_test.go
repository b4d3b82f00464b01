//go:build linux

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	brokerapi "gearbox/broker/api"
	"gearbox/broker/client"
	"gearbox/internal/demo"
	"gearbox/internal/testutil"
)

// demoLine is one line of the cluster demo's log, as the broker gives it.
type demoLine struct {
	at    time.Time
	gear  string // the gear that wrote it
	kind  string // send, recv, job or web
	value int64  // send and recv: the counter value; job: the job count
	token int64  // send and recv: the fencing token of the sending daemon
	tick  int64  // job: the tick
	path  string // web: the path
}

var (
	sendRE = regexp.MustCompile(`^(\S+) (\S+) send gear=\S+ counter=(\d+) token=(\d+)$`)
	recvRE = regexp.MustCompile(`^(\S+) (\S+) recv gear=\S+ msg="counter=(\d+) token=(\d+) gear=\S+"`)
	jobRE  = regexp.MustCompile(`^(\S+) (\S+) job gear=\S+ tick=(\d+) job=(\d+)$`)
	webRE  = regexp.MustCompile(`^(\S+) (\S+) web gear=\S+ path=(\S+)`)
)

// parseDemoLine reads one line of the demo's log; ok is false for other
// lines (failures, skipped ticks, the platform's own lines).
func parseDemoLine(s string) (l demoLine, ok bool) {
	num := func(s string) int64 { n, _ := strconv.ParseInt(s, 10, 64); return n }
	var m []string
	switch {
	case sendRE.MatchString(s):
		m = sendRE.FindStringSubmatch(s)
		l.kind, l.value, l.token = "send", num(m[3]), num(m[4])
	case recvRE.MatchString(s):
		m = recvRE.FindStringSubmatch(s)
		l.kind, l.value, l.token = "recv", num(m[3]), num(m[4])
	case jobRE.MatchString(s):
		m = jobRE.FindStringSubmatch(s)
		l.kind, l.tick, l.value = "job", num(m[3]), num(m[4])
	case webRE.MatchString(s):
		m = webRE.FindStringSubmatch(s)
		l.kind, l.path = "web", m[3]
	default:
		return l, false
	}
	at, err := time.Parse(time.RFC3339Nano, m[1])
	if err != nil {
		return l, false
	}
	l.at, l.gear = at, m[2]
	return l, true
}

// demoLog collects the demo app's log lines by reading the app's log
// through the broker (the last lines of every gear) twice a second; a
// line is kept once. Reading rather than following survives gears that
// stop and nodes that die.
type demoLog struct {
	mu    sync.Mutex
	seen  map[string]bool
	lines []demoLine // in the order they were read
	other []string   // the lines that are none of those, for a failure
}

func followDemoLog(t testing.TB, c *client.Client, ns, app string) *demoLog {
	d := &demoLog{seen: map[string]bool{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			d.read(ctx, c, ns, app)
			select {
			case <-ctx.Done():
			case <-time.After(500 * time.Millisecond):
			}
		}
	}()
	return d
}

func (d *demoLog) read(ctx context.Context, c *client.Client, ns, app string) {
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	rc, err := c.Logs(rctx, ns, app, 2000, false)
	if err != nil {
		return
	}
	defer rc.Close()
	var fresh []demoLine
	sc := bufio.NewScanner(rc)
	for sc.Scan() {
		s := sc.Text()
		d.mu.Lock()
		seen := d.seen[s]
		d.seen[s] = true
		d.mu.Unlock()
		if seen {
			continue
		}
		if l, ok := parseDemoLine(s); ok {
			fresh = append(fresh, l)
		} else {
			d.mu.Lock()
			d.other = append(d.other, s)
			d.mu.Unlock()
		}
	}
	// Lines read in one go are in time order; so are the batches, but
	// for lines of gears whose logs could not be read for a while.
	d.mu.Lock()
	d.lines = append(d.lines, fresh...)
	d.mu.Unlock()
}

// since returns the lines of kind read after mark (a length of lines).
func (d *demoLog) since(mark int, kind string) []demoLine {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []demoLine
	for _, l := range d.lines[min(mark, len(d.lines)):] {
		if l.kind == kind {
			out = append(out, l)
		}
	}
	return out
}

// mark returns how many lines have been read so far.
func (d *demoLog) mark() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.lines)
}

// lastOf returns the latest line of kind, by its time.
func (d *demoLog) lastOf(kind string) (demoLine, bool) {
	var last demoLine
	for _, l := range d.since(0, kind) {
		if l.at.After(last.at) {
			last = l
		}
	}
	return last, !last.at.IsZero()
}

// checkSends checks that the daemon's sends are the counter's values one
// after the other, none repeated, none skipped, whatever gear sent them,
// and that the queue delivered each of them (at least once); it returns
// how many there were.
func (d *demoLog) checkSends(t testing.TB) int {
	t.Helper()
	sends := d.since(0, "send")
	if len(sends) == 0 {
		t.Fatal("no send in the demo's log")
	}
	recv := map[int64]bool{}
	logged := map[int64]bool{}
	for _, l := range sends {
		logged[l.value] = true
	}
	for _, l := range d.since(0, "recv") {
		recv[l.value] = true
		// A daemon logs its send after the message is stored: a SIGKILL
		// in between (or of the member that carries its output) loses
		// the line, not the message, which names its sender.
		if !logged[l.value] {
			logged[l.value] = true
			sends = append(sends, demoLine{at: l.at, gear: "(unlogged)", kind: "send", value: l.value, token: l.token})
		}
	}
	slices.SortFunc(sends, func(a, b demoLine) int { return int(a.value - b.value) })
	for i, l := range sends {
		if i > 0 && l.value != sends[i-1].value+1 {
			t.Errorf("counter sent %d after %d (gears %s, %s)", l.value, sends[i-1].value, sends[i-1].gear, l.gear)
		}
		// Two daemons never sent at once: a value sent under a lease
		// never follows one sent under a newer lease.
		if i > 0 && l.token < sends[i-1].token {
			t.Errorf("counter %d sent under fencing token %d after counter %d under token %d (gears %s, %s)",
				l.value, l.token, sends[i-1].value, sends[i-1].token, l.gear, sends[i-1].gear)
		}
		// The last few may still be on their way.
		if i < len(sends)-5 && !recv[l.value] {
			t.Errorf("counter value %d sent by gear %s was never received", l.value, l.gear)
		}
	}
	return len(sends)
}

// waitReceived waits until every value sent so far but the last five
// (which checkSends lets be on their way) has been received.
func (c *demoCluster) waitReceived(timeout time.Duration) {
	c.t.Helper()
	var missing []int64
	waitUntil(c.t, timeout, "every value sent received", func() string { return fmt.Sprintf("\nnot received: %v%s", missing, c.logs()) }, func() bool {
		recv := map[int64]bool{}
		for _, l := range c.log.since(0, "recv") {
			recv[l.value] = true
		}
		sends := c.log.since(0, "send")
		missing = nil
		for _, l := range sends[:max(0, len(sends)-5)] {
			if !recv[l.value] {
				missing = append(missing, l.value)
			}
		}
		return len(missing) == 0
	})
}

// checkJobs checks that each tick of the job, which ticks every every,
// counted once, ticks and counts one after the other across holders.
//
// A job's line can be lost where its value is not: a SIGKILL of the
// member that carries its output, after the count was stored. Two logged
// counts further apart than one are therefore fine when exactly as many
// ticks lie between them, each of which counted once; a tick counted
// twice or not at all still shows.
func (d *demoLog) checkJobs(t testing.TB, every time.Duration) {
	t.Helper()
	jobs := d.since(0, "job")
	if len(jobs) == 0 {
		t.Fatal("no job tick in the demo's log")
	}
	slices.SortFunc(jobs, func(a, b demoLine) int { return int(a.value - b.value) })
	for i, l := range jobs {
		if i == 0 {
			continue
		}
		prev := jobs[i-1]
		gap := l.value - prev.value
		switch {
		case l.tick <= prev.tick || gap < 1:
			t.Errorf("job counted %d at tick %d after %d at tick %d (gears %s, %s)",
				l.value, l.tick, prev.value, prev.tick, prev.gear, l.gear)
		case gap > 1 && l.tick-prev.tick != gap*every.Milliseconds():
			t.Errorf("job counted %d at tick %d after %d at tick %d: %d ticks apart, %d counts (gears %s, %s)",
				l.value, l.tick, prev.value, prev.tick, (l.tick-prev.tick)/every.Milliseconds(), gap, prev.gear, l.gear)
		case gap > 1:
			t.Logf("job counts %d to %d not logged, their ticks between %d and %d", prev.value+1, l.value-1, prev.tick, l.tick)
		}
	}
}

// demoCluster is a broker, a router and three node members, as separate
// processes, with the cluster demo deployed as app demo of domain e2e.
type demoCluster struct {
	t       testing.TB
	secret  string
	members map[string]*member
	ips     map[string]string // member name to address
	data    map[string]string // node name to data dir
	dev     *client.Client
	log     *demoLog
	router  string // the router's HTTP address
	host    string // the app's host name
}

const demoNS, demoApp = "e2e", "demo"

// startDemoCluster starts the members on loopback addresses and deploys
// the demo, its daemon sending every sendEvery and its job ticking every
// jobEvery, scaled to two gears.
func startDemoCluster(t testing.TB, sendEvery, jobEvery time.Duration) *demoCluster {
	return startDemoClusterOn(t, nil, sendEvery, jobEvery)
}

// demoIPs are the members' addresses on loopback.
var demoIPs = map[string]string{"b1": "127.0.0.51", "n1": "127.0.0.52", "n2": "127.0.0.53", "n3": "127.0.0.54", "r1": "127.0.0.55"}

// startDemoClusterOn is startDemoCluster with the members on lab's
// addresses, each node member in its own network namespace; lab nil is
// loopback.
func startDemoClusterOn(t testing.TB, lab *netLab, sendEvery, jobEvery time.Duration) *demoCluster {
	bin := gearboxBinary(t)
	ips := demoIPs
	if lab != nil {
		ips = lab.ips
	}
	c := &demoCluster{t: t, secret: randomSecret(t), members: map[string]*member{}, data: map[string]string{},
		ips: ips, router: ips["r1"] + ":8080", host: "demo-e2e.apps.example.com"}
	for i, name := range []string{"b1", "n1", "n2", "n3", "r1"} {
		ip := c.ips[name]
		dataDir := gearDataDir(t)
		args := []string{"--log-format", "json", "serve", "--name", name, "--bind", ip, "--data-dir", dataDir,
			"--anti-entropy-interval", "1s", "--domain", "apps.example.com"}
		switch name[0] {
		case 'b':
			// The tests of this cluster are about the services'
			// fail-over across the same gears: nodes killed or cut
			// off for longer than the default grace keep their gears
			// (healing is TestNodeEndToEnd's).
			args = append(args, "--role", "broker", "--api-addr", ip+":7480", "--dns-addr", ip+":5353", "--node-failure-grace", "10m")
		case 'n':
			c.data[name] = dataDir
			args = append(args, "--role", "node", "--http-addr", ip+":8080", "--zone", "z"+name,
				"--gear-uid-range", fmt.Sprintf("%d-%d", 61000+i*1000, 61999+i*1000))
		case 'r':
			args = append(args, "--role", "router", "--router-addr", c.router)
		}
		if name != "b1" {
			args = append(args, "--join", c.ips["b1"])
		}
		m := &member{t: t, name: name, ip: ip, args: args, env: append(secretEnv(c.secret), adminEnv), output: &testutil.Buffer{}}
		if lab != nil {
			m.wrap = lab.wrap(name)
		}
		m.start()
		t.Cleanup(m.kill)
		c.members[name] = m
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(c.logs())
		}
	})
	// A gear's processes that a shell started outlive a killed member
	// (issue: orphans of a crashed member); the test ends every process
	// of its nodes' gears itself, before the members go.
	t.Cleanup(func() {
		for _, pid := range pidsWithEnv(func(kv string) bool {
			for _, n := range []string{"n1", "n2", "n3"} {
				if kv == "GEARBOX_NATS_URL=nats://"+c.ips[n]+":4222" {
					return true
				}
			}
			return false
		}) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	ctx := context.Background()
	api := "http://" + c.ips["b1"] + ":7480"
	admin := &client.Client{BaseURL: api, User: "admin", Password: "adminpass1"}
	waitAliveNodes(t, admin, 3, 60*time.Second, c.logs)
	if _, _, err := admin.CreateUser(ctx, "dev", "password1", url.Values{"ha": {"true"}}); err != nil {
		t.Fatal(err)
	}
	c.dev = &client.Client{BaseURL: api, User: "dev", Password: "password1"}
	if _, _, err := c.dev.CreateDomain(ctx, demoNS); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.dev.CreateApp(ctx, demoNS, demoApp, client.AppOptions{Scale: true}); err != nil {
		t.Fatal(err)
	}
	arch, err := demo.Archive(bin, sendEvery, jobEvery)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.dev.Deploy(ctx, demoNS, demoApp, bytes.NewReader(arch), int64(len(arch))); err != nil {
		t.Fatalf("deploy the demo: %v", err)
	}
	if _, _, err := c.dev.AppEvent(ctx, demoNS, demoApp, "scale-up"); err != nil {
		t.Fatalf("scale-up: %v", err)
	}
	c.waitGears(2)
	c.log = followDemoLog(t, c.dev, demoNS, demoApp)
	return c
}

// logs returns every member's output, for a failed test.
func (c *demoCluster) logs() string {
	var b strings.Builder
	for _, name := range []string{"b1", "n1", "n2", "n3", "r1"} {
		if m := c.members[name]; m != nil {
			fmt.Fprintf(&b, "\n--- %s ---\n%s", name, m.output.String())
		}
	}
	if c.log != nil {
		c.log.mu.Lock()
		other := c.log.other[max(0, len(c.log.other)-200):]
		fmt.Fprintf(&b, "\n--- the app's log, other than send, recv, job and web lines (last 200) ---\n%s\n", strings.Join(other, "\n"))
		c.log.mu.Unlock()
	}
	return b.String()
}

// gears returns the app's gears.
func (c *demoCluster) gears() []brokerapi.Gear {
	gg, err := c.dev.GearGroups(context.Background(), demoNS, demoApp)
	if err != nil || len(gg) != 1 {
		return nil
	}
	return gg[0].Gears
}

// gear returns the app's gear id.
func (c *demoCluster) gear(id string) brokerapi.Gear {
	for _, g := range c.gears() {
		if g.ID == id {
			return g
		}
	}
	return brokerapi.Gear{}
}

// waitGears waits until the app has n gears, all started, on n nodes.
func (c *demoCluster) waitGears(n int) []brokerapi.Gear {
	var gs []brokerapi.Gear
	waitUntil(c.t, 90*time.Second, fmt.Sprintf("%d gears started on %d nodes", n, n), c.logs, func() bool {
		gs = c.gears()
		nodes := map[string]bool{}
		for _, g := range gs {
			if g.State != "started" {
				return false
			}
			nodes[g.Node] = true
		}
		return len(gs) == n && len(nodes) == n
	})
	return gs
}

// waitLines waits until n lines of kind have been read since mark, and
// returns them.
func (c *demoCluster) waitLines(mark, n int, kind string, timeout time.Duration) []demoLine {
	c.t.Helper()
	var ls []demoLine
	waitUntil(c.t, timeout, fmt.Sprintf("%d %s lines", n, kind), c.logs, func() bool {
		ls = c.log.since(mark, kind)
		return len(ls) >= n
	})
	return ls[:n]
}

// holder returns the gear that runs the daemon now: the one of the
// latest send.
func (c *demoCluster) holder() string {
	c.t.Helper()
	c.waitLines(c.log.mark(), 1, "send", 30*time.Second)
	l, _ := c.log.lastOf("send")
	return l.gear
}

// failover waits for the first send by a daemon holding a newer lease
// than last's (a higher fencing token), and returns how long after start
// it was logged.
func (c *demoCluster) failover(start time.Time, last demoLine, timeout time.Duration) (time.Duration, demoLine) {
	c.t.Helper()
	var first demoLine
	waitUntil(c.t, timeout, fmt.Sprintf("a send with a fencing token above %d", last.token), c.logs, func() bool {
		for _, l := range c.log.since(0, "send") {
			if l.token > last.token && (first.at.IsZero() || l.value < first.value) {
				first = l
			}
		}
		return !first.at.IsZero()
	})
	return first.at.Sub(start), first
}

// describe lists lines, one per line, for a failure's message.
func describe(ls []demoLine) string {
	var b strings.Builder
	for _, l := range ls {
		fmt.Fprintf(&b, "%s %s %s %d (token %d)\n", l.at.Format("15:04:05.000"), l.gear, l.kind, l.value, l.token)
	}
	return b.String()
}

// share returns each gear's share of lines.
func share(ls []demoLine) map[string]float64 {
	out := map[string]float64{}
	for _, l := range ls {
		out[l.gear] += 1 / float64(len(ls))
	}
	return out
}

// get asks the app for path through the router with client hc.
func (c *demoCluster) get(hc *http.Client, path string) (string, error) {
	req, _ := http.NewRequest("GET", "http://"+c.router+path, nil)
	req.Host = c.host
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return "", fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	return strings.TrimSpace(string(b)), nil
}

// gearPIDs returns the processes of the gears of node.
func (c *demoCluster) gearPIDs(node string) []int {
	var ids []string
	for _, g := range c.gears() {
		if g.Node == node {
			ids = append(ids, g.ID)
		}
	}
	return c.gearPIDsOf(ids...)
}

// gearPIDsOf returns the processes of gears (found by their
// GEARBOX_GEAR_ID).
func (c *demoCluster) gearPIDsOf(gears ...string) []int {
	ids := map[string]bool{}
	for _, g := range gears {
		ids["GEARBOX_GEAR_ID="+g] = true
	}
	return pidsWithEnv(func(kv string) bool { return ids[kv] })
}

// pidsWithEnv returns the processes with an environment variable
// (KEY=VALUE) for which match holds.
func pidsWithEnv(match func(kv string) bool) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil {
			continue
		}
		for _, kv := range bytes.Split(env, []byte{0}) {
			if match(string(kv)) {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}

// killNode kills node's member and its gears' processes with SIGKILL at
// once, as a machine that dies.
func (c *demoCluster) killNode(node string) {
	pids := c.gearPIDs(node)
	c.members[node].kill()
	for _, pid := range pids {
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// natsAs connects to node's NATS server with the nkey seed in the file a
// gear of the app really gets.
func (c *demoCluster) natsAs(node, gear string) (*nats.Conn, jetstream.JetStream) {
	c.t.Helper()
	opt, err := nats.NkeyOptionFromSeed(filepath.Join(c.data[node], "gears", gear, "nats.nk"))
	if err != nil {
		c.t.Fatalf("the nkey file of gear %s: %v", gear, err)
	}
	nc, err := nats.Connect("nats://"+c.ips[node]+":4222", opt)
	if err != nil {
		c.t.Fatalf("connect as gear %s: %v", gear, err)
	}
	c.t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		c.t.Fatal(err)
	}
	return nc, js
}

// The seed's walkthrough with the real binary: the queue balances over
// the gears, the daemon and the job move with no value repeated or
// skipped when their gear stops, sessions survive the gear that served
// them, the LB gear rotates out at three gears, a node's SIGKILL moves
// the singletons within seconds, and apps cannot reach each other.
func TestServicesEndToEnd(t *testing.T) {
	c := startDemoCluster(t, 200*time.Millisecond, time.Second)
	ctx := context.Background()

	// The queue: each of 50 messages goes to one of the two gears, each
	// getting 40-60 % of them.
	gs := c.waitGears(2)
	c.waitLines(0, 10, "recv", 90*time.Second)
	recv := c.waitLines(c.log.mark(), 50, "recv", 60*time.Second)
	for _, g := range gs {
		if s := share(recv); s[g.ID] < 0.4 || s[g.ID] > 0.6 {
			t.Errorf("gear %s received %.0f %% of 50 messages, want 40-60 %% (%v):\n%s", g.ID, 100*s[g.ID], s, describe(recv))
		}
	}

	// gear stop of the daemon's and the job's gear: the other gear goes
	// on from the cached values and receives every message.
	holder := c.holder()
	var other string
	for _, g := range gs {
		if g.ID != holder {
			other = g.ID
		}
	}
	c.waitLines(0, 1, "job", 30*time.Second)
	if j, _ := c.log.lastOf("job"); j.gear != holder {
		t.Logf("the job's last tick ran on %s, the daemon on %s", j.gear, holder)
	}
	last, _ := c.log.lastOf("send")
	start := time.Now()
	if _, _, err := c.dev.GearEvent(ctx, holder, "stop"); err != nil {
		t.Fatalf("gear stop %s: %v", holder, err)
	}
	took, first := c.failover(start, last, 30*time.Second)
	if first.gear != other {
		t.Fatalf("after gear stop of %s, counter %d was sent by %s", holder, first.value, first.gear)
	}
	t.Logf("gear stop: the daemon sent again from the other gear %v after the stop was asked", took)
	waitUntil(t, 30*time.Second, "gear stopped", c.logs, func() bool { return c.gear(holder).State == "stopped" })
	stopped := time.Now()
	mark := c.log.mark()
	c.waitLines(mark, 2, "job", 30*time.Second)
	c.waitLines(mark, 15, "recv", 30*time.Second)
	for _, kind := range []string{"recv", "job"} {
		for _, l := range c.log.since(mark, kind) {
			if l.gear != other && l.at.After(stopped) {
				t.Errorf("%s %d on gear %s while stopped", kind, l.value, l.gear)
			}
		}
	}
	// gear start: it takes about half of the messages again.
	if _, _, err := c.dev.GearEvent(ctx, holder, "start"); err != nil {
		t.Fatalf("gear start %s: %v", holder, err)
	}
	waitUntil(t, 30*time.Second, "gear started again", c.logs, func() bool { return c.gear(holder).State == "started" })
	mark = c.log.mark()
	waitUntil(t, 30*time.Second, "the restarted gear receives", c.logs, func() bool {
		return share(c.log.since(mark, "recv"))[holder] > 0
	})
	recv = c.waitLines(c.log.mark(), 30, "recv", 30*time.Second)
	if s := share(recv)[holder]; s < 0.25 || s > 0.75 {
		t.Errorf("restarted gear %s received %.0f %% of 30 messages, want about half", holder, 100*s)
	}

	// Scale to three: the head gear's load balancer rotates it out of
	// serving, so its health checks leave its log; the others' go on.
	if _, _, err := c.dev.AppEvent(ctx, demoNS, demoApp, "scale-up"); err != nil {
		t.Fatalf("scale-up: %v", err)
	}
	gs = c.waitGears(3)
	var head string
	for _, g := range gs {
		if g.Head {
			head = g.ID
		}
	}
	var by map[string]int
	waitUntil(t, 30*time.Second, "health checks only on the gears that serve", func() string {
		return fmt.Sprintf("\nhead %s; web lines by gear: %v; gears %+v", head, by, c.gears())
	}, func() bool {
		mark := c.log.mark()
		c.waitLines(mark, 6, "web", 20*time.Second)
		by = map[string]int{}
		for _, l := range c.log.since(mark, "web") {
			by[l.gear]++
		}
		return by[head] == 0 && len(by) == 2
	})

	// Make it HA (two LB gears), then a session: /count counts 1, 2, 3;
	// the gear that answered stops and the next answer is 4.
	if _, _, err := c.dev.AppEvent(ctx, demoNS, demoApp, "make-ha"); err != nil {
		t.Fatalf("make-ha: %v", err)
	}
	waitUntil(t, 60*time.Second, "two LB gears, the app answering through the router", c.logs, func() bool {
		lbs := 0
		for _, g := range c.gears() {
			if g.LB && g.State == "started" {
				lbs++
			}
		}
		_, err := c.get(&http.Client{Timeout: 5 * time.Second}, "/")
		return lbs == 2 && err == nil
	})
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	mark = c.log.mark()
	for i := 1; i <= 3; i++ {
		got, err := c.get(hc, "/count")
		if err != nil || got != strconv.Itoa(i) {
			t.Fatalf("/count %d: %q %v", i, got, err)
		}
	}
	var answered string
	waitUntil(t, 10*time.Second, "the /count lines", c.logs, func() bool {
		for _, l := range c.log.since(mark, "web") {
			if l.path == "/count" {
				answered = l.gear
			}
		}
		return answered != ""
	})
	if _, _, err := c.dev.GearEvent(ctx, answered, "stop"); err != nil {
		t.Fatalf("gear stop %s: %v", answered, err)
	}
	var got string
	waitUntil(t, 20*time.Second, "/count answered after the gear stopped", c.logs, func() bool {
		var err error
		got, err = c.get(hc, "/count")
		return err == nil
	})
	if got != "4" {
		t.Errorf("/count after gear %s stopped: %q, want 4", answered, got)
	}
	if _, _, err := c.dev.GearEvent(ctx, answered, "start"); err != nil {
		t.Fatalf("gear start %s: %v", answered, err)
	}
	c.waitGears(3)

	// SIGKILL of the node that runs the daemon, member and gears: another
	// gear sends within seconds, from the next value.
	holder = c.holder()
	node := c.gear(holder).Node
	last, _ = c.log.lastOf("send")
	start = time.Now()
	c.killNode(node)
	took, first = c.failover(start, last, 30*time.Second)
	if first.gear == holder {
		t.Fatalf("after SIGKILL of %s, counter %d was sent by its gear %s", node, first.value, holder)
	}
	t.Logf("node SIGKILL: the daemon sent again from another node %v after the kill", took)
	c.waitLines(c.log.mark(), 10, "send", 30*time.Second)
	c.members[node].start()
	c.waitGears(3)
	c.waitLines(c.log.mark(), 10, "send", 30*time.Second)

	// Across all of it, no counter value lost or repeated, and every job
	// tick counted once.
	n := c.log.checkSends(t)
	c.log.checkJobs(t, time.Second)
	t.Logf("%d sends checked", n)

	// Isolation, with the key file a gear really gets: app A's gear
	// sees its own buckets, not app B's, and B's messages do not reach it.
	if _, _, err := c.dev.CreateApp(ctx, demoNS, "other", client.AppOptions{}); err != nil {
		t.Fatal(err)
	}
	var otherGear brokerapi.Gear
	waitUntil(t, 60*time.Second, "app other's gear started", c.logs, func() bool {
		gg, err := c.dev.GearGroups(ctx, demoNS, "other")
		if err == nil && len(gg) == 1 && len(gg[0].Gears) == 1 && gg[0].Gears[0].State == "started" {
			otherGear = gg[0].Gears[0]
		}
		return otherGear.ID != ""
	})
	var mine brokerapi.Gear
	for _, g := range c.gears() {
		if g.Node == otherGear.Node {
			mine = g
		}
	}
	ncA, jsA := c.natsAs(mine.Node, mine.ID)
	ncB, jsB := c.natsAs(otherGear.Node, otherGear.ID)
	if _, err := jsA.KeyValue(ctx, "counters"); err != nil {
		t.Fatalf("the demo's gear cannot open its own bucket: %v", err)
	}
	// The killed node came back just before: JetStream may be electing
	// its metadata leader again (no pre-vote, see the README), and a
	// request meanwhile times out; an app retries.
	var kvB jetstream.KeyValue
	var createErr error // the last try's, for a failure
	lastErr := func() string { return fmt.Sprintf("\nlast try: %v%s", createErr, c.logs()) }
	waitUntil(t, 30*time.Second, "app other creates a bucket", lastErr, func() bool {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		kvB, createErr = jsB.CreateOrUpdateKeyValue(cctx, jetstream.KeyValueConfig{Bucket: "secrets"})
		return createErr == nil
	})
	// The new bucket's own stream may be electing its leader too.
	waitUntil(t, 30*time.Second, "app other writes to its bucket", lastErr, func() bool {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_, createErr = kvB.Put(cctx, "k", []byte("b's"))
		return createErr == nil
	})
	if _, err := jsA.KeyValue(ctx, "secrets"); !errors.Is(err, jetstream.ErrBucketNotFound) {
		t.Errorf("the demo's gear opening app other's bucket: %v, want not found", err)
	}
	if _, err := jsB.KeyValue(ctx, "counters"); !errors.Is(err, jetstream.ErrBucketNotFound) {
		t.Errorf("app other's gear opening the demo's bucket: %v, want not found", err)
	}
	subA, err := ncA.SubscribeSync("hello")
	if err != nil {
		t.Fatal(err)
	}
	subB, err := ncB.SubscribeSync("hello")
	if err != nil {
		t.Fatal(err)
	}
	ncA.Flush()
	ncB.Flush()
	if err := ncB.Publish("hello", []byte("from b")); err != nil {
		t.Fatal(err)
	}
	if _, err := subB.NextMsg(5 * time.Second); err != nil {
		t.Fatalf("app other does not receive its own message: %v", err)
	}
	if m, err := subA.NextMsg(time.Second); err == nil {
		t.Errorf("the demo's gear received app other's message %q", m.Data)
	}
}
