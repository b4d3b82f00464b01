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
	"gearbox/store/state"
)

// An LB gear passes on X-Forwarded-Proto and -Host from the routers of
// the cluster, registered after it started, without being restarted;
// once a router's record goes, its headers are replaced again.
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
	waitAllServing(t, lbAddr)
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
