//go:build linux

package e2e

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// netLab gives each node member a host of its own: a network namespace
// per node, joined to a bridge on the test's host by a veth pair, so
// that the test can cut one node off from all the others (on loopback
// every member's traffic comes from the same host, and no rule can tell
// them apart). The broker and the router stay on the test's host, on
// addresses of the bridge.
type netLab struct {
	t   testing.TB
	ips map[string]string // member name to address
}

// Names of the lab's links and namespaces; a lab left by a killed test
// is removed by the next.
const (
	labBridge = "gbpbr"
	labNet    = "10.213.0."
)

func labNS(node string) string   { return "gbp-" + node }
func labVeth(node string) string { return "gbpv-" + node }

// newNetLab builds the lab for nodes n1, n2 and n3, or skips the test
// where namespaces cannot be made (not root, no iproute2 or nsenter).
func newNetLab(t testing.TB) *netLab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root")
	}
	for _, tool := range []string{"ip", "nsenter"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("network namespaces need %s: %v", tool, err)
		}
	}
	l := &netLab{t: t, ips: map[string]string{
		"b1": labNet + "51", "n1": labNet + "52", "n2": labNet + "53", "n3": labNet + "54", "r1": labNet + "55"}}
	l.remove()
	t.Cleanup(l.remove)
	// No forwarding delay: a port that comes back up forwards at once.
	l.ip("link", "add", labBridge, "type", "bridge", "forward_delay", "0")
	for _, m := range []string{"b1", "r1"} {
		l.ip("addr", "add", l.ips[m]+"/24", "dev", labBridge)
	}
	l.ip("link", "set", labBridge, "up")
	for _, n := range []string{"n1", "n2", "n3"} {
		l.ip("netns", "add", labNS(n))
		l.ip("link", "add", labVeth(n), "type", "veth", "peer", "name", "eth0", "netns", labNS(n))
		l.ip("link", "set", labVeth(n), "master", labBridge, "up")
		l.ip("-n", labNS(n), "addr", "add", l.ips[n]+"/24", "dev", "eth0")
		l.ip("-n", labNS(n), "link", "set", "eth0", "up")
		l.ip("-n", labNS(n), "link", "set", "lo", "up")
	}
	return l
}

// wrap returns the command that runs member name on its host.
func (l *netLab) wrap(name string) []string {
	if !strings.HasPrefix(name, "n") {
		return nil
	}
	return []string{"nsenter", "--net=/run/netns/" + labNS(name), "--"}
}

// cut takes node off the network: no packet in or out until heal.
func (l *netLab) cut(node string) { l.ip("link", "set", labVeth(node), "down") }

// heal puts node back on the network.
func (l *netLab) heal(node string) { l.ip("link", "set", labVeth(node), "up") }

func (l *netLab) ip(args ...string) {
	l.t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		l.t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// remove deletes the lab's namespaces (their veth ends go with them) and
// its bridge, whether or not they exist.
func (l *netLab) remove() {
	for _, n := range []string{"n1", "n2", "n3"} {
		exec.Command("ip", "netns", "del", labNS(n)).Run()
		exec.Command("ip", "link", "del", labVeth(n)).Run()
	}
	exec.Command("ip", "link", "del", labBridge).Run()
}
