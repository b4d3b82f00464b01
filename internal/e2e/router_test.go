//go:build linux

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	brokerapi "gearbox/broker/api"
	"gearbox/broker/client"
	"gearbox/router"
	"gearbox/store/internalapi"
	"gearbox/store/state"
)

// lookup asks the DNS server at server for name's records of type qtype
// and returns their data (addresses, or a CNAME's target), sorted, and
// the answer's rcode.
func lookup(server, name string, qtype uint16) ([]string, int, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	r, _, err := (&dns.Client{Timeout: 2 * time.Second}).Exchange(m, server)
	if err != nil {
		return nil, 0, err
	}
	var out []string
	for _, rr := range r.Answer {
		switch v := rr.(type) {
		case *dns.A:
			out = append(out, v.A.String())
		case *dns.CNAME:
			out = append(out, v.Target)
		case *dns.NS:
			out = append(out, v.Ns)
		}
	}
	sort.Strings(out)
	return out, r.Rcode, nil
}

// webhookReceiver records the routing events POSTed to it.
type webhookReceiver struct {
	*httptest.Server
	mu     sync.Mutex
	events []state.RoutingEvent
}

func newWebhookReceiver(t *testing.T) *webhookReceiver {
	w := &webhookReceiver{}
	w.Server = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		var e state.RoutingEvent
		if err := json.NewDecoder(r.Body).Decode(&e); err != nil {
			http.Error(rw, err.Error(), http.StatusBadRequest)
			return
		}
		w.mu.Lock()
		w.events = append(w.events, e)
		w.mu.Unlock()
	}))
	t.Cleanup(w.Close)
	return w
}

func (w *webhookReceiver) received() []state.RoutingEvent {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.events)
}

// TestRouterEndToEnd runs the seed's HA walkthrough on separate processes:
// a broker with DNS, three nodes and two routers. Once with the brokers
// managing ha- names, once with the routers creating them.
func TestRouterEndToEnd(t *testing.T) {
	gearboxBinary(t)
	app := t.TempDir()
	buildTestApp(t, app, "v1")
	for _, manage := range []bool{true, false} {
		t.Run(fmt.Sprintf("manage-ha-dns=%v", manage), func(t *testing.T) { routerEndToEnd(t, app, manage) })
	}
}

func routerEndToEnd(t *testing.T, appDir string, manageHADNS bool) {
	const secret = "e2e-router-secret"
	pidDir := t.TempDir()
	if err := os.Chmod(pidDir, 0o777); err != nil {
		t.Fatal(err)
	}
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
	ips := map[string]string{"b1": "127.0.0.41", "n1": "127.0.0.42", "n2": "127.0.0.43", "n3": "127.0.0.44",
		"r1": "127.0.0.45", "r2": "127.0.0.46"}
	order := []string{"b1", "n1", "n2", "n3", "r1", "r2"}
	dnsAddr := ips["b1"] + ":5353"
	members := map[string]*member{}
	for i, name := range order {
		ip := ips[name]
		dataDir := gearDataDir(t)
		args := []string{"--log-format", "json", "serve", "--name", name, "--bind", ip, "--data-dir", dataDir,
			"--anti-entropy-interval", "1s", "--domain", "apps.example.com",
			"--manage-ha-dns=" + strconv.FormatBool(manageHADNS)}
		switch name[0] {
		case 'b':
			args = append(args, "--role", "broker", "--api-addr", ip+":7480",
				"--dns-addr", dnsAddr, "--dns-ttl", "1s")
		case 'n':
			args = append(args, "--role", "node", "--http-addr", ip+":8080", "--zone", "z"+name,
				"--gear-uid-range", fmt.Sprintf("%d-%d", 64000+i*1000, 64999+i*1000))
		case 'r':
			args = append(args, "--role", "router", "--router-addr", ip+":8080")
		}
		if name != "b1" {
			args = append(args, "--join", ips["b1"])
		}
		members[name] = startMember(t, name, ip, append(secretEnv(secret), adminEnv), args...)
	}
	logs := func() string {
		var b strings.Builder
		for _, name := range order {
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
	api := "http://" + ips["b1"] + ":7480"
	admin := &client.Client{BaseURL: api, User: "admin", Password: "adminpass1"}
	waitAliveNodes(t, admin, 3, 60*time.Second, logs)

	// A webhook registered before the app gets every event of it.
	hook := newWebhookReceiver(t)
	if _, err := admin.Do(ctx, "POST", "/broker/rest/routing/webhooks", url.Values{"url": {hook.URL}}, nil); err != nil {
		t.Fatalf("add webhook: %v", err)
	}

	if _, _, err := admin.CreateDomain(ctx, "e2e"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := admin.CreateApp(ctx, "e2e", "shop", client.AppOptions{Scale: true}); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{"E2E_PIDDIR": pidDir, "GEARBOX_LB_GEAR_RATIO": "-1"} {
		if _, _, err := admin.SetEnv(ctx, "e2e", "shop", k, v); err != nil {
			t.Fatalf("set %s: %v", k, err)
		}
	}
	const host, haHost = "shop-e2e.apps.example.com", "ha-shop-e2e.apps.example.com"
	cliAuth := []string{"--api", api, "--user", "admin"}
	cliEnv := []string{"GEARBOX_PASSWORD=adminpass1"} // never on the command line
	if out, stderr, code := runGearboxEnv(t, 30*time.Second, cliEnv, append([]string{"app", "deploy", "shop", appDir, "-n", "e2e"}, cliAuth...)...); code != 0 {
		t.Fatalf("deploy (exit %d):\n%s\n%s", code, out, stderr)
	}
	if _, _, err := admin.SetScale(ctx, "e2e", "shop", "static", 3, -1); err != nil {
		t.Fatalf("scale to 3: %v", err)
	}
	if _, _, err := admin.AppEvent(ctx, "e2e", "shop", "make-ha"); err != nil {
		t.Fatalf("make-ha: %v", err)
	}
	gears := func() []brokerapi.Gear {
		gg, err := admin.GearGroups(ctx, "e2e", "shop")
		if err != nil || len(gg) != 1 {
			return nil
		}
		return gg[0].Gears
	}
	var lbNodes []string // IPs of the nodes of the LB gears
	var head brokerapi.Gear
	waitUntil(t, 90*time.Second, "three gears started, two of them LB gears on two nodes", logs, func() bool {
		gs := gears()
		lbNodes = nil
		for _, g := range gs {
			if g.State != "started" {
				return false
			}
			if g.LB {
				lbNodes = append(lbNodes, ips[g.Node])
			}
			if g.Head {
				head = g
			}
		}
		sort.Strings(lbNodes)
		return len(gs) == 3 && len(lbNodes) == 2 && lbNodes[0] != lbNodes[1] && head.ID != ""
	})

	// DNS: the ha- name gives both routers; the app name the LB gears'
	// nodes.
	routers := []string{ips["r1"], ips["r2"]}
	waitUntil(t, 30*time.Second, "ha- name resolves to both routers", logs, func() bool {
		got, _, err := lookup(dnsAddr, haHost, dns.TypeA)
		return err == nil && slices.Equal(got, routers)
	})
	waitUntil(t, 30*time.Second, "app name resolves to the LB gears' nodes", logs, func() bool {
		got, _, err := lookup(dnsAddr, host, dns.TypeA)
		return err == nil && slices.Equal(got, lbNodes)
	})
	if _, rcode, err := lookup(dnsAddr, "www.example.org", dns.TypeA); err != nil || rcode != dns.RcodeRefused {
		t.Errorf("a name outside the zone: rcode %d, %v; want REFUSED", rcode, err)
	}
	// The broker serving DNS is the zone's one name server, at the
	// address its DNS is bound to.
	if got, _, err := lookup(dnsAddr, "apps.example.com", dns.TypeNS); err != nil || !slices.Equal(got, []string{"ns-b1.apps.example.com."}) {
		t.Errorf("NS %v, %v; want ns-b1.apps.example.com.", got, err)
	}
	if got, _, err := lookup(dnsAddr, "ns-b1.apps.example.com", dns.TypeA); err != nil || !slices.Equal(got, []string{ips["b1"]}) {
		t.Errorf("ns-b1 A %v, %v; want %s", got, err, ips["b1"])
	}

	// Either router reaches the app's gears.
	plain := &http.Client{Timeout: 30 * time.Second}
	for _, r := range []string{"r1", "r2"} {
		front := "http://" + ips[r] + ":8080"
		seen := map[string]bool{}
		waitUntil(t, 30*time.Second, "requests through "+r+" reach all three gears", logs, func() bool {
			if a := askApp(plain, front, haHost, "GET"); a.err == nil && a.version == "v1" {
				seen[a.gear] = true
			}
			return len(seen) == 3
		})
	}
	// What a router routes: its status on the internal API.
	serving := func(r string) int {
		resp, err := internalClient(secret).Get(internalapi.URL(ips[r]+":7947", internalapi.PathRouterStatus))
		if err != nil {
			return -1
		}
		defer resp.Body.Close()
		var st router.Status
		json.NewDecoder(resp.Body).Decode(&st)
		n := 0
		for _, b := range st.Apps["e2e/shop"].Pool.Backends {
			if b.Serving {
				n++
			}
		}
		return n
	}
	waitUntil(t, 30*time.Second, "router r1 serves through both LB gears", logs, func() bool { return serving("r1") == 2 })

	// SIGKILL the node of the head LB gear, and its gear processes, under
	// a steady request loop through a router: no request fails, none
	// takes long, and DNS drops the node.
	victim := head.Node
	var pids []int
	for _, g := range gears() {
		if g.Node == victim {
			b, err := os.ReadFile(filepath.Join(pidDir, g.ID+".pid"))
			if err != nil {
				t.Fatal(err)
			}
			pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
			pids = append(pids, pid)
		}
	}
	var (
		stop    atomic.Bool
		wg      sync.WaitGroup
		mu      sync.Mutex
		n       int
		fails   []string
		longest time.Duration
	)
	for range 2 {
		wg.Go(func() {
			c := &http.Client{Timeout: 30 * time.Second}
			for !stop.Load() {
				start := time.Now()
				a := askApp(c, "http://"+ips["r1"]+":8080", haHost, "GET")
				took := time.Since(start)
				mu.Lock()
				n++
				longest = max(longest, took)
				if a.err != nil {
					fails = append(fails, time.Now().Format("15:04:05.000")+" "+a.err.Error())
				}
				mu.Unlock()
			}
		})
	}
	count := func() int { mu.Lock(); defer mu.Unlock(); return n }
	waitUntil(t, 10*time.Second, "load running", logs, func() bool { return count() > 50 })
	members[victim].kill()
	for _, pid := range pids {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	killed := time.Now()
	// Their replacements, under other nodes' uids, note their own pids.
	for _, g := range gears() {
		if g.Node == victim {
			os.Remove(filepath.Join(pidDir, g.ID+".pid"))
		}
	}
	waitUntil(t, 10*time.Second, "the killed node out of the app name's A records", logs, func() bool {
		got, _, err := lookup(dnsAddr, host, dns.TypeA)
		return err == nil && len(got) == 1 && got[0] != ips[victim]
	})
	t.Logf("A records dropped the killed node after %s", time.Since(killed).Round(time.Millisecond))
	before := count()
	waitUntil(t, 20*time.Second, "requests after the kill", logs, func() bool { return count() > before+100 })
	stop.Store(true)
	wg.Wait()
	if len(fails) > 0 {
		t.Errorf("node kill: %d of %d requests through the router failed; first: %s", len(fails), n, fails[0])
	}
	if longest > 2*time.Second {
		t.Errorf("node kill: the longest request took %s, want under 2 s", longest)
	}
	t.Logf("fail-over: %d requests, %d failed, longest %s", n, len(fails), longest.Round(time.Millisecond))

	// Healing: the head's node gone for the grace, its gears are placed
	// on other nodes, another LB gear is the head, and the app is back
	// to two LB gears on two nodes in the routers.
	var newHead brokerapi.Gear
	waitUntil(t, 30*time.Second, "the killed node's gears replaced, started, with a head elsewhere", logs, func() bool {
		gs := gears()
		newHead = brokerapi.Gear{}
		for _, g := range gs {
			if g.Node == victim || g.State != "started" {
				return false
			}
			if g.Head {
				newHead = g
			}
		}
		return len(gs) == 3 && newHead.ID != "" && newHead.ID != head.ID
	})
	waitUntil(t, 30*time.Second, "router r1 serves through two LB gears again", logs, func() bool { return serving("r1") == 2 })
	t.Logf("head node kill: replacements serving %s after the kill, head now %s on %s", time.Since(killed).Round(100*time.Millisecond), newHead.ID, newHead.Node)
	wantFailedThenReplaced(t, admin, victim, head.ID)

	// Restarted, the node rejoins without its old gears (they run
	// elsewhere now): DNS and the routers go on with the LB gears'
	// current nodes.
	members[victim].start()
	lbNodes = nil
	for _, g := range gears() {
		if g.LB {
			lbNodes = append(lbNodes, ips[g.Node])
		}
	}
	sort.Strings(lbNodes)
	waitUntil(t, 60*time.Second, "the app name's A records on the LB gears' nodes", logs, func() bool {
		got, _, err := lookup(dnsAddr, host, dns.TypeA)
		return err == nil && slices.Equal(got, lbNodes)
	})
	waitUntil(t, 30*time.Second, "router r2 serves through both LB gears", logs, func() bool { return serving("r2") == 2 })
	for _, g := range gears() {
		if g.Node == victim {
			t.Errorf("gear %s is on the returned node %s again", g.ID, victim)
		}
	}

	// The webhook got every event, in order, as the feed has them.
	var feed []state.RoutingEvent
	if _, err := admin.Do(ctx, "GET", "/broker/rest/routing/events", url.Values{"after": {"0"}}, &feed); err != nil {
		t.Fatalf("routing events: %v", err)
	}
	waitUntil(t, 30*time.Second, "webhook caught up with the feed", logs, func() bool {
		got := hook.received()
		return len(got) > 0 && len(feed) > 0 && got[len(got)-1].Seq >= feed[len(feed)-1].Seq
	})
	got := hook.received()
	var first int
	for first < len(feed) && feed[first].Seq < got[0].Seq {
		first++
	}
	want := feed[first:]
	if len(got) < len(want) {
		t.Fatalf("webhook received %d events, the feed has %d since %d", len(got), len(want), got[0].Seq)
	}
	var haSeen bool
	for i, e := range want {
		if got[i].Seq != e.Seq || got[i].Action != e.Action {
			t.Fatalf("webhook event %d is %d %s, the feed's is %d %s", i, got[i].Seq, got[i].Action, e.Seq, e.Action)
		}
		haSeen = haSeen || e.Action == state.ActionEnableHA && e.AppName == "shop"
	}
	if !haSeen || want[0].Action != state.ActionCreateApplication {
		t.Errorf("webhook events from %s on, enable_ha seen %v; want all from create_application", want[0].Action, haSeen)
	}
}
