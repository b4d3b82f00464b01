package node

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gearbox/internal/testutil"
	"gearbox/lb"
	"gearbox/store/state"
)

// An LB gear passes on X-Forwarded-Proto and -Host from the routers of
// the cluster (which prove it with the app's lb.Proof), registered after
// it started, without being restarted; once a router's record goes, its
// headers are replaced again.
func TestLBGearTrustsRouters(t *testing.T) {
	n := newTestStore(t)
	n.setup = helperPrograms
	n.s = n.startSupervisor()
	n.put(state.BucketApps, "ns/shop", state.App{ID: "a1", Name: "shop", Domain: "ns", Cartridge: state.CartStatic, Scalable: true,
		State: state.GearStarted, Env: map[string]string{"GEARBOX_NODE_TEST_HELPER": "serve"}})
	ga := n.gear("lbgear01", "shop", "ns", 1)
	ga.LB, ga.Head, ga.LBPort = true, true, freePort(t, n.ip)
	n.put(state.BucketGears, ga.ID, ga)
	n.waitState(ga.ID, state.GearStarted)
	lbAddr := net.JoinHostPort(n.ip, strconv.Itoa(ga.LBPort))
	waitAllServing(t, n.s, ga.ID)
	n.s.lbMu.Lock()
	pool := n.s.lbs[ga.ID].pool
	n.s.lbMu.Unlock()

	// Requests come from routerIP, as a router on that address sends them.
	routerIP := ips.Next()
	rc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
		DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(routerIP)}}).DialContext}}
	headers := func() string {
		req, _ := http.NewRequest("GET", "http://"+lbAddr+"/headers", nil)
		req.Host = "shop-ns.example.test"
		req.Header.Set("X-Forwarded-Proto", "https")
		req.Header.Set("X-Forwarded-Host", "ha-shop-ns.example.test")
		req.Header.Set(lb.ProofField, lb.Proof([]byte(n.s.cfg.ClusterSecret), "ns/shop"))
		resp, err := rc.Do(req)
		if err != nil {
			return err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	lbTrusted := func() []string {
		n.s.lbMu.Lock()
		defer n.s.lbMu.Unlock()
		var out []string
		for _, p := range n.s.lbs[ga.ID].pool.TrustedProxies() {
			out = append(out, p.String())
		}
		return out
	}

	steps := []struct {
		name   string
		change func()
		want   []string // trusted proxies
		proto  string   // X-Forwarded-Proto the app sees
	}{
		{"no router", func() {}, []string{n.ip + "/32"}, "http"},
		{"router registered", func() {
			n.put(state.BucketRouters, "r1", state.Router{Name: "r1", Addr: routerIP, HTTP: routerIP + ":80"})
		}, []string{n.ip + "/32", routerIP + "/32"}, "https"},
		{"router gone", func() { n.del(state.BucketRouters, "r1") }, []string{n.ip + "/32"}, "http"},
	}
	for _, st := range steps {
		st.change()
		testutil.WaitFor(t, 10*time.Second, st.name+": trusted proxies", func() bool { return slices.Equal(lbTrusted(), st.want) },
			func() string { return fmt.Sprint(lbTrusted()) })
		body := headers()
		if !strings.Contains(body, "X-Forwarded-Proto="+st.proto+"\n") {
			t.Errorf("%s: the app saw %q, want X-Forwarded-Proto=%s", st.name, body, st.proto)
		}
		if want := "X-Forwarded-Host=ha-shop-ns.example.test\n"; (st.proto == "https") != strings.Contains(body, want) {
			t.Errorf("%s: the app saw %q; want %s only from a trusted router", st.name, body, want)
		}
	}
	n.s.lbMu.Lock()
	same := n.s.lbs[ga.ID].pool == pool
	n.s.lbMu.Unlock()
	if !same {
		t.Errorf("the load balancer was restarted when routers changed")
	}
}

// Issue 12: a gear connects to another app's LB gear from the node's
// address (which every gear of the node shares, and which the LB gear
// trusts for its front listener) and sets X-Forwarded-*. The app must see
// them set from the hop, not the gear's. A request through the front
// listener (the edge: it sets X-Forwarded-For to its client), which
// proves it is the front, keeps the front's X-Forwarded-For; the app
// never sees the proof.
func TestLBGearIgnoresForwardedFromGears(t *testing.T) {
	n := newTestStore(t)
	n.setup = helperPrograms
	n.s = n.startSupervisor()
	n.put(state.BucketApps, "ns/shop", state.App{ID: "a1", Name: "shop", Domain: "ns", Cartridge: state.CartStatic, Scalable: true,
		State: state.GearStarted, Env: map[string]string{"GEARBOX_NODE_TEST_HELPER": "serve"}})
	ga := n.gear("lbgear01", "shop", "ns", 1)
	ga.LB, ga.Head, ga.LBPort = true, true, freePort(t, n.ip)
	n.put(state.BucketGears, ga.ID, ga)
	n.waitState(ga.ID, state.GearStarted)
	waitAllServing(t, n.s, ga.ID)
	host := state.AppHost("shop", "ns", "example.test")
	secret := []byte(n.s.cfg.ClusterSecret)

	// get GETs /headers at addr from the address from, with X-Forwarded-*
	// a client chose and proof (if any) in lb.ProofField.
	get := func(from, addr, proof string) string {
		c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
			DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}).DialContext}}
		req, _ := http.NewRequest("GET", "http://"+addr+"/headers", nil)
		req.Host = host
		req.Header.Set("X-Forwarded-Proto", "https")
		req.Header.Set("X-Forwarded-Host", "bank.example")
		req.Header.Set("X-Forwarded-For", "203.0.113.9")
		if proof != "" {
			req.Header.Set(lb.ProofField, proof)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("GET %s from %s: %v", addr, from, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	lbAddr := net.JoinHostPort(n.ip, strconv.Itoa(ga.LBPort))
	client := ips.Next()
	hop := "X-Forwarded-For=" + n.ip + "\nX-Forwarded-Host=" + host + "\nX-Forwarded-Proto=http\nX-Gearbox-Proxy-Proof=\n"
	tests := []struct {
		name, from, addr, proof string
		want                    string // the X-Forwarded-* lines the app sees
	}{
		{"gear, from the node's address", n.ip, lbAddr, "", hop},
		{"gear, with another app's proof", n.ip, lbAddr, lb.Proof(secret, "ns/other"), hop},
		{"gear, with a proof not keyed by the cluster secret", n.ip, lbAddr, lb.Proof([]byte("guess"), "ns/shop"), hop},
		{"client through the front, with a forged proof", client, n.s.FrontAddr(), "forged",
			"X-Forwarded-For=" + client + ", " + n.ip + "\nX-Forwarded-Host=" + host + "\nX-Forwarded-Proto=http\nX-Gearbox-Proxy-Proof=\n"},
	}
	for _, tt := range tests {
		if got := get(tt.from, tt.addr, tt.proof); !strings.HasSuffix(got, tt.want) {
			t.Errorf("%s: the app saw\n%s\nwant it to end with\n%s", tt.name, got, tt.want)
		}
	}
}
