//go:build linux

package node

import (
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gearbox/internal/testutil"
	"gearbox/store/state"
)

func TestParseProcNetTCP(t *testing.T) {
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		t.Skip("the table below is a little-endian host's")
	}
	// From a little-endian host: 127.0.2.11:35531 listening as uid
	// 40001, 0.0.0.0:80 as root, an established connection, and [::]:22
	// and [::ffff:127.0.2.12]:8080 in tcp6.
	tcp := `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0B02007F:8ACB 00000000:0000 0A 00000000:00000000 00:00000000 00000000 40001        0 1001 1 0000000000000000 100 0 0 10 0
   1: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1002 1 0000000000000000 100 0 0 10 0
   2: 0B02007F:8ACB 0B02007F:D431 01 00000000:00000000 00:00000000 00000000 40001        0 1003 1 0000000000000000 20 4 30 10 -1
`
	tcp6 := `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2001 1 0000000000000000 100 0 0 10 0
   1: 0000000000000000FFFF00000C02007F:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 2002 1 0000000000000000 100 0 0 10 0
`
	for _, c := range []struct {
		name, table string
		want        []string
	}{
		{"tcp", tcp, []string{"127.0.2.11:35531 40001", "0.0.0.0:80 0"}},
		{"tcp6", tcp6, []string{"[::]:22 0", "[::ffff:127.0.2.12]:8080 1000"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			ls, err := parseProcNetTCP(strings.NewReader(c.table))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, l := range ls {
				got = append(got, l.addr.String()+" "+strconv.Itoa(l.uid))
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
	ip := netip.MustParseAddr("127.0.2.12")
	for _, c := range []struct {
		bound string
		want  bool
	}{{"0.0.0.0", true}, {"::", true}, {"127.0.2.12", true}, {"::ffff:127.0.2.12", true}, {"127.0.2.11", false}, {"::1", false}} {
		if got := takes(netip.MustParseAddr(c.bound), ip); got != c.want {
			t.Errorf("takes(%s, %s) = %v, want %v", c.bound, ip, got, c.want)
		}
	}
}

// The kernel's own tables name the owner of a socket this process
// listens on.
func TestPortListeners(t *testing.T) {
	ip := ips.Next()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	uids, err := portListeners(netip.MustParseAddr(ip), port)
	if err != nil || !slices.Equal(uids, []int{os.Geteuid()}) {
		t.Fatalf("portListeners(%s, %d) = %v, %v; want [%d]", ip, port, uids, err, os.Geteuid())
	}
	if err := checkPortOwner(netip.MustParseAddr(ip), port, os.Geteuid()+1); err == nil {
		t.Errorf("checkPortOwner with another uid passed")
	}
	if err := checkPortOwner(netip.MustParseAddr(ip), port, os.Geteuid()); err != nil {
		t.Errorf("checkPortOwner with the owner's uid: %v", err)
	}
}

// Port squatting: an isolated gear listens on the port that the broker
// gave another gear, before that gear starts. The victim gear is not
// reported started, its status says why and asks load balancers to send
// it nothing, and the front listener does not send the squatter the
// victim's requests; once the squatter has gone, the victim starts and
// gets them.
func TestPortSquatting(t *testing.T) {
	needRoot(t)
	n := newTestStore(t)
	n.setup = helperPrograms
	n.s = n.startSupervisor()
	if !n.s.iso.on() {
		t.Fatalf("a node that runs as root does not isolate gears: %s", n.s.Isolation())
	}
	n.helperApp("ns", "evil")
	n.helperApp("ns", "victim")
	evil := n.gear("dddd00000000000000000001", "evil", "ns", 1)
	n.put(state.BucketGears, evil.ID, evil)
	n.waitState(evil.ID, state.GearStarted)
	squatter := n.whoami(evil).UID

	victim := n.gear("dddd00000000000000000002", "victim", "ns", 1)
	if code, body := get(t, "http://"+n.addr(evil)+"/listen?port="+strconv.Itoa(victim.Port), ""); code != 200 || body != "ok" {
		t.Fatalf("squatter listens on %d: %d %q", victim.Port, code, body)
	}
	log := n.watchStatus()
	n.put(state.BucketGears, victim.ID, victim)
	var last state.GearStatus
	testutil.WaitFor(t, 15*time.Second, "victim reported with its port taken", func() bool {
		last, _ = n.status(victim.ID)
		return last.PortTaken && strings.Contains(last.Reason, "port "+strconv.Itoa(victim.Port)+" is taken by a process of uid "+strconv.Itoa(squatter))
	}, func() string { return last.State + " " + last.Reason })

	front := "http://" + n.s.FrontAddr() + "/"
	hosts := []string{state.AppHost(victim.ID, victim.Domain, "example.test"), state.AppHost("victim", "ns", "example.test")}
	// Long enough for several launches of the victim (backoff 50 ms
	// doubling to 400 ms), each of which the squatter answers.
	for end := time.Now().Add(1500 * time.Millisecond); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		for _, h := range hosts {
			code, body := get(t, front, h)
			if strings.Contains(body, "squatter") || code != 503 {
				t.Fatalf("front, Host %s: %d %q: the squatter got the victim's request", h, code, body)
			}
		}
	}
	if got := log.states(victim.ID); slices.Contains(got, state.GearStarted) {
		t.Fatalf("victim reported started with its port taken: %q", got)
	}

	// The squatter goes: the victim starts, on its own process.
	n.del(state.BucketGears, evil.ID)
	st := n.waitState(victim.ID, state.GearStarted)
	if st.PortTaken || st.Reason != "" {
		t.Errorf("victim started with status %+v", st)
	}
	if code, body := get(t, front, hosts[0]); code != 200 || !strings.HasPrefix(body, "helper "+victim.ID) {
		t.Errorf("front, Host %s, after the squatter left: %d %q", hosts[0], code, body)
	}
}
