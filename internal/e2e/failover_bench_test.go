package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	brokerapi "gearbox/broker/api"
)

// failoverRuns is how many times each failure is tried.
const failoverRuns = 10

// BenchmarkSingletonFailover measures how long the cluster demo's
// daemon takes to send again from another gear, ten times each after
// its gear is stopped (gear stop), after its gear's processes are
// killed (a crash), and after its node's member and gears are killed
// with SIGKILL (a dead machine), under the daemon's steady stream of
// messages: the median and the slowest (the p99 of ten) of each. Across
// all thirty, no counter value may be lost or repeated and every message
// must be received. It runs once whatever b.N, for minutes:
//
//	go test ./internal/e2e -run '^$' -bench SingletonFailover -timeout 60m
func BenchmarkSingletonFailover(b *testing.B) {
	c := startDemoCluster(b, 200*time.Millisecond, time.Second)
	ctx := context.Background()
	if _, _, err := c.dev.AppEvent(ctx, demoNS, demoApp, "scale-up"); err != nil {
		b.Fatalf("scale-up: %v", err)
	}
	c.waitGears(3)
	failures := []struct {
		name   string
		target time.Duration // the target: slower runs log what happened
		fail   func(gear, node string)
		again  func(gear, node string)
	}{
		{"stop", time.Second, func(gear, _ string) {
			if _, _, err := c.dev.GearEvent(ctx, gear, "stop"); err != nil {
				b.Fatalf("gear stop %s: %v", gear, err)
			}
		}, func(gear, _ string) {
			waitUntil(b, 30*time.Second, "gear stopped", c.logs, func() bool { return c.gear(gear).State == "stopped" })
			if _, _, err := c.dev.GearEvent(ctx, gear, "start"); err != nil {
				b.Fatalf("gear start %s: %v", gear, err)
			}
		}},
		{"crash", time.Second, func(gear, _ string) {
			for _, pid := range c.gearPIDsOf(gear) {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}, func(string, string) {}},
		{"sigkill", 3 * time.Second, func(_, node string) { c.killNode(node) }, func(_, node string) { c.members[node].start() }},
	}
	b.ResetTimer()
	for _, f := range failures {
		var took []time.Duration
		for i := range failoverRuns {
			// Each failure hits a cluster that healed from the last: every
			// replica of the app's streams current again, none led from
			// the holder's node (two failures closer than that are two
			// nodes of three down at once).
			holder, node := c.waitHealed()
			last, _ := c.log.lastOf("send")
			start := time.Now()
			f.fail(holder, node)
			d, first := c.failover(start, last, 60*time.Second)
			if f.name != "crash" && first.gear == holder {
				b.Fatalf("%s %d: after the %s of %s, counter %d was sent by that gear", f.name, i, f.name, holder, first.value)
			}
			took = append(took, d)
			if d > f.target {
				b.Logf("%s %d took %v; the nodes' lines meanwhile:\n%s\nthe app's:\n%s", f.name, i, d,
					c.linesBetween(start, start.Add(d)), c.otherBetween(start, start.Add(d)))
			}
			b.Logf("%s %d at %s: gear %s on %s, sent again by %s after %v", f.name, i, start.UTC().Format("15:04:05.000"), holder, node, first.gear, d)
			f.again(holder, node)
			c.waitGears(3)
			c.waitLines(c.log.mark(), 5, "send", 30*time.Second)
		}
		slices.Sort(took)
		med, slowest := (took[len(took)/2-1]+took[len(took)/2])/2, took[len(took)-1]
		b.ReportMetric(med.Seconds(), f.name+"-median-s")
		b.ReportMetric(slowest.Seconds(), f.name+"-p99-s")
		b.Logf("%s: median %v, p99 (slowest of %d) %v, all %v", f.name, med, len(took), slowest, took)
	}
	b.StopTimer()
	// The last sends may still be on their way.
	c.waitLines(c.log.mark(), 10, "recv", 30*time.Second)
	n := c.log.checkSends(b)
	c.log.checkJobs(b, time.Second)
	b.Logf("%d sends checked", n)
}

// waitHealed waits until the app's streams and consumers have a leader,
// not on the node of the gear that runs the daemon, and every replica
// current, and returns that gear and its node.
func (c *demoCluster) waitHealed() (holder, node string) {
	c.t.Helper()
	var last string
	waitUntil(c.t, 90*time.Second, "the app's streams healed", func() string { return "\n" + last + c.logs() }, func() bool {
		holder = c.holder()
		node = c.gear(holder).Node
		last = c.unhealed(node)
		return last == ""
	})
	return holder, node
}

// unhealed says what is not healed yet in the app's streams and
// consumers (see waitHealed), seen through node avoid's peers; "" when
// all is.
func (c *demoCluster) unhealed(avoid string) string {
	var gear brokerapi.Gear
	for _, g := range c.gears() {
		if g.Node != avoid && g.State == "started" {
			gear = g
		}
	}
	if gear.ID == "" {
		return "no started gear off " + avoid
	}
	opt, err := nats.NkeyOptionFromSeed(filepath.Join(c.data[gear.Node], "gears", gear.ID, "nats.nk"))
	if err != nil {
		return err.Error()
	}
	nc, err := nats.Connect("nats://"+c.ips[gear.Node]+":4222", opt)
	if err != nil {
		return err.Error()
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err.Error()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	check := func(what string, ci *jetstream.ClusterInfo) string {
		switch {
		case ci == nil || ci.Leader == "":
			return what + ": no leader"
		case ci.Leader == avoid:
			return what + ": led from the holder's node " + avoid
		case len(ci.Replicas) != 2:
			return fmt.Sprintf("%s: %d other replicas", what, len(ci.Replicas))
		}
		for _, r := range ci.Replicas {
			if !r.Current || r.Offline {
				return fmt.Sprintf("%s: replica %s not current", what, r.Name)
			}
		}
		return ""
	}
	streams := js.ListStreams(ctx)
	n := 0
	for info := range streams.Info() {
		n++
		if bad := check("stream "+info.Config.Name, info.Cluster); bad != "" {
			return bad
		}
		st, err := js.Stream(ctx, info.Config.Name)
		if err != nil {
			return err.Error()
		}
		consumers := st.ListConsumers(ctx)
		for ci := range consumers.Info() {
			if bad := check("consumer "+ci.Name, ci.Cluster); bad != "" {
				return bad
			}
		}
		if err := consumers.Err(); err != nil {
			return err.Error()
		}
	}
	if err := streams.Err(); err != nil {
		return err.Error()
	}
	if n == 0 {
		return "no stream"
	}
	return ""
}

// linesBetween returns the node members' log lines about the services,
// leases and daemons logged between from and to, for a slow fail-over.
func (c *demoCluster) linesBetween(from, to time.Time) string {
	var b strings.Builder
	for _, name := range []string{"n1", "n2", "n3"} {
		for _, line := range strings.Split(c.members[name].output.String(), "\n") {
			var l struct {
				Time      time.Time `json:"time"`
				Component string    `json:"component"`
			}
			if json.Unmarshal([]byte(line), &l) != nil || l.Time.Before(from) || l.Time.After(to) ||
				strings.Contains(line, "Error trying to connect to route") {
				continue
			}
			if l.Component == "services" || strings.Contains(line, "lease") || strings.Contains(line, "daemon") || strings.Contains(line, "leaders") {
				fmt.Fprintf(&b, "%s: %s\n", name, line)
			}
		}
	}
	return b.String()
}

// otherBetween returns the app's log lines other than send, recv, job and
// web lines (failures, the platform's notes) logged between from and to.
func (c *demoCluster) otherBetween(from, to time.Time) string {
	c.log.mu.Lock()
	defer c.log.mu.Unlock()
	var b strings.Builder
	for _, s := range c.log.other {
		at, err := time.Parse(time.RFC3339Nano, strings.SplitN(s, " ", 2)[0])
		if err == nil && !at.Before(from) && !at.After(to) {
			fmt.Fprintln(&b, s)
		}
	}
	return b.String()
}
