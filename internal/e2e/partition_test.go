//go:build linux

package e2e

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"gearbox/broker/client"
)

// lostLeaseRE matches the note a gear's node writes in the gear's log
// when it stopped the singletons of a lease it could not renew.
var lostLeaseRE = regexp.MustCompile(`^(\S+) (\S+) gearbox: this gear lost the app's lease: .*\(fencing token (\d+)\)$`)

// heldLeaseRE matches the note of a gear that took the app's lease.
var heldLeaseRE = regexp.MustCompile(`^(\S+) (\S+) gearbox: this gear runs the app's daemons and jobs \(fencing token (\d+)\)$`)

// A network partition between the node that runs the daemon and the
// rest: the isolated node stops its daemon before its lease can expire,
// so the daemon of the next lease starts only after the last line of the
// old one, and no counter value is sent twice or skipped. The node comes
// back and the daemon stays where it went.
func TestServicesPartition(t *testing.T) {
	lab := newNetLab(t)
	c := startDemoClusterOn(t, lab, 200*time.Millisecond, time.Second)
	ctx := context.Background()
	if _, _, err := c.dev.AppEvent(ctx, demoNS, demoApp, "scale-up"); err != nil {
		t.Fatalf("scale-up: %v", err)
	}
	c.waitGears(3)
	holder, node := c.waitHealed()
	last, _ := c.log.lastOf("send")
	start := time.Now()
	lab.cut(node)
	took, first := c.failover(start, last, 60*time.Second)
	if first.gear == holder {
		t.Fatalf("counter %d was sent by gear %s, cut off with its node %s", first.value, holder, node)
	}
	// Now, on the cut-off node, nothing runs under the old lease.
	if pids := pidsWithEnv(func(kv string) bool {
		v, ok := strings.CutPrefix(kv, "GEARBOX_FENCING_TOKEN=")
		token, err := strconv.ParseInt(v, 10, 64)
		return ok && err == nil && token <= last.token
	}); len(pids) > 0 {
		t.Errorf("processes %v still run under fencing token %d or older after token %d's first send", pids, last.token, first.token)
	}
	t.Logf("cut %s off (gear %s, token %d): gear %s sent counter %d under token %d %v later", node, holder, last.token, first.gear, first.value, first.token, took)
	if took > 3*time.Second {
		t.Logf("the nodes' lines meanwhile:\n%s\nthe app's:\n%s", c.linesBetween(start, first.at), c.otherBetween(start, first.at))
	}
	c.waitLines(c.log.mark(), 5, "send", 30*time.Second)

	lab.heal(node)
	t.Logf("healed the partition at %s", time.Now().UTC().Format("15:04:05.000"))
	admin := &client.Client{BaseURL: "http://" + c.ips["b1"] + ":7480", User: "admin", Password: "adminpass1"}
	waitAliveNodes(t, admin, 3, 120*time.Second, c.logs)
	// The cut-off gear's log, readable again, says when its daemon
	// stopped: before the next lease's first send, and after every line
	// of its send loop.
	var stopped time.Time
	waitUntil(t, 60*time.Second, fmt.Sprintf("gear %s's note that it lost the lease of token %d", holder, last.token), c.logs, func() bool {
		c.log.mu.Lock()
		defer c.log.mu.Unlock()
		for _, s := range c.log.other {
			if m := lostLeaseRE.FindStringSubmatch(s); m != nil && m[2] == holder && m[3] == strconv.FormatInt(last.token, 10) {
				stopped, _ = time.Parse(time.RFC3339Nano, m[1])
				return true
			}
		}
		return false
	})
	if !stopped.Before(first.at) {
		t.Errorf("gear %s's daemons stopped at %s, after token %d's first send at %s", holder, stopped.Format(time.StampMilli), first.token, first.at.Format(time.StampMilli))
	}
	// Its send attempts (failed ones included) up to the gear's next
	// lease, if it took one again after the heal, are all before the
	// next lease's first send.
	c.log.mu.Lock()
	until := time.Now()
	for _, s := range c.log.other {
		if m := heldLeaseRE.FindStringSubmatch(s); m != nil && m[2] == holder {
			token, _ := strconv.ParseInt(m[3], 10, 64)
			at, err := time.Parse(time.RFC3339Nano, m[1])
			if err == nil && token > last.token && at.Before(until) {
				until = at
			}
		}
	}
	var attempts []string
	for _, s := range c.log.other {
		if f := strings.Fields(s); len(f) > 3 && f[1] == holder && f[2] == "send" {
			if at, err := time.Parse(time.RFC3339Nano, f[0]); err == nil && !at.Before(first.at) && at.Before(until) {
				attempts = append(attempts, s)
			}
		}
	}
	c.log.mu.Unlock()
	for _, l := range c.log.since(0, "send") {
		if l.gear == holder && l.token == last.token && !l.at.Before(first.at) {
			attempts = append(attempts, fmt.Sprintf("%s counter=%d", l.at.Format(time.StampMilli), l.value))
		}
	}
	if len(attempts) > 0 {
		t.Errorf("gear %s's daemon (token %d) still ran after token %d's first send at %s:\n%s",
			holder, last.token, first.token, first.at.Format(time.StampMilli), strings.Join(attempts, "\n"))
	}
	t.Logf("gear %s's daemons stopped %v after the cut, %v before the next lease's first send",
		holder, stopped.Sub(start), first.at.Sub(stopped))

	// The sends go on, and every value sent is received once the node
	// is back. JetStream's Raft has no pre-vote: the node that was cut
	// off comes back with a higher term and forces an election in every
	// group it is in, which can cost the holder its renewal and move the
	// daemon once more (under a newer token).
	mark := c.log.mark()
	for _, l := range c.waitLines(mark, 10, "send", 60*time.Second) {
		if l.token != first.token {
			t.Logf("after the partition healed, the daemon moved: counter %d sent under token %d by gear %s", l.value, l.token, l.gear)
			break
		}
	}
	c.waitReceived(30 * time.Second)
	t.Logf("%d sends checked", c.log.checkSends(t))
}
