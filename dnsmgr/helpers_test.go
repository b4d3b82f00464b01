package dnsmgr

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/rs/zerolog"

	"gearbox/internal/testutil"
	"gearbox/store"
	"gearbox/store/state"
	"gearbox/store/storetest"
)

const testZone = "apps.example.com."

func testLogger() zerolog.Logger {
	if os.Getenv("GEARBOX_TEST_LOG") != "" {
		return zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr}).With().Timestamp().Logger()
	}
	return zerolog.Nop()
}

// testOptions are the options of the fixture zone: TTL 30 s, negative TTL
// 10 s, ha- prefix, brokers manage ha- names.
func testOptions() Options {
	return Options{Zone: "Apps.Example.COM", TTL: 30 * time.Second, NegativeTTL: 10 * time.Second,
		HAPrefix: "ha-", ManageHADNS: true}
}

func member(name, addr, status string, roles ...string) store.Member {
	return store.Member{Name: name, Addr: addr, Status: status, Roles: roles}
}

func app(name, ns string, scalable, ha bool) state.App {
	return state.App{ID: name + ns, Name: name, Domain: ns, Scalable: scalable, HA: ha, State: state.GearStarted}
}

func gear(id, appName, ns, node string, lb bool) state.Gear {
	return state.Gear{ID: id, App: state.AppKey(ns, appName), AppName: appName, Domain: ns, Node: node, LB: lb,
		State: state.GearStarted}
}

func status(id, node, st string, draining bool) state.GearStatus {
	return state.GearStatus{ID: id, Node: node, State: st, Draining: draining}
}

// fixture is a cluster of every case the zone has:
//
//   - brokers b1 (alive, 10.0.0.1) and b2 (failed); b.3 (alive, 2001:db8::b3),
//     all three with a DNS server registered; b4 (alive) runs none;
//   - nodes n1 10.0.1.1, n2 10.0.1.2, n3 2001:db8::3 alive, n4 10.0.1.4 failed;
//   - routers r1 10.0.2.1 and r2 10.0.2.2 alive, r3 10.0.2.3 failed;
//   - web-dev: scalable, HA, LB gears on n1, n2 (healthy) and n4 (failed
//     member), a web gear on n3;
//   - solo-dev: not scalable, its gear on n3;
//   - down-dev: its LB gear on n1 stopped (fallback to alive nodes);
//   - gone-dev: its LB gear on failed n4 (no address: NODATA);
//   - drain-dev: LB gears on n1 (draining) and n2;
//   - claimed-dev: HA, claimed by r1 and failed r3 (routing layer mode).
func fixture() Inputs {
	return Inputs{
		Members: []store.Member{
			member("b1", "10.0.0.1", store.StatusAlive, store.RoleBroker),
			member("b2", "10.0.0.2", store.StatusFailed, store.RoleBroker),
			member("B.3", "2001:db8::b3", store.StatusAlive, store.RoleBroker, store.RoleRouter),
			member("b4", "10.0.0.4", store.StatusAlive, store.RoleBroker),
			member("n1", "10.0.1.1", store.StatusAlive, store.RoleNode),
			member("n2", "10.0.1.2", store.StatusAlive, store.RoleNode),
			member("n3", "2001:db8::3", store.StatusAlive, store.RoleNode),
			member("n4", "10.0.1.4", store.StatusFailed, store.RoleNode),
			member("r1", "10.0.2.1", store.StatusAlive, store.RoleRouter),
			member("r2", "10.0.2.2", store.StatusAlive, store.RoleRouter),
			member("r3", "10.0.2.3", store.StatusFailed, store.RoleRouter),
		},
		NameServers: []state.NameServer{{Name: "b1", Addr: "10.0.0.1"}, {Name: "b2", Addr: "10.0.0.2"},
			{Name: "B.3", Addr: "2001:db8::b3"}},
		Nodes: []state.Node{{Name: "n1", Addr: "10.0.1.1"}, {Name: "n2", Addr: "10.0.1.2"},
			{Name: "n3", Addr: "2001:db8::3"}, {Name: "n4", Addr: "10.0.1.4"}},
		Routers: []state.Router{{Name: "r1", Addr: "10.0.2.1"}, {Name: "r2", Addr: "10.0.2.2"}, {Name: "r3", Addr: "10.0.2.3"}},
		Apps: []state.App{app("web", "dev", true, true), app("solo", "dev", false, false), app("down", "dev", true, false),
			app("gone", "dev", true, false), app("drain", "dev", true, false), app("claimed", "dev", true, true)},
		Gears: []state.Gear{
			gear("aaa1", "web", "dev", "n1", true), gear("aaa2", "web", "dev", "n2", true),
			gear("aaa3", "web", "dev", "n4", true), gear("aaa4", "web", "dev", "n3", false),
			gear("bbb1", "solo", "dev", "n3", false),
			gear("ccc1", "down", "dev", "n1", true),
			gear("ddd1", "gone", "dev", "n4", true),
			gear("eee1", "drain", "dev", "n1", true), gear("eee2", "drain", "dev", "n2", true),
		},
		Statuses: []state.GearStatus{
			status("aaa1", "n1", state.GearStarted, false), status("aaa2", "n2", state.GearStarted, false),
			status("aaa3", "n4", state.GearStarted, false), status("aaa4", "n3", state.GearStarted, false),
			status("bbb1", "n3", state.GearStarted, false),
			status("ccc1", "n1", state.GearStopped, false),
			status("ddd1", "n4", state.GearStarted, false),
			status("eee1", "n1", state.GearStarted, true), status("eee2", "n2", state.GearStarted, false),
		},
		Claims: []state.HADNS{
			{App: "dev/claimed", Name: "ha-claimed-dev.apps.example.com", Router: "r1", Addr: "10.0.2.1"},
			{App: "dev/claimed", Name: "ha-claimed-dev.apps.example.com", Router: "r3", Addr: "10.0.2.3"},
			{App: "dev/web", Name: "ha-web-dev.apps.example.com", Router: "r2", Addr: "10.0.2.2"},
		},
	}
}

// query makes a query for name and type, RD set as stub resolvers do.
func query(name string, qtype uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	return m
}

// rrStrings returns rrs as miekg/dns prints them.
func rrStrings(rrs []dns.RR) []string {
	out := make([]string, 0, len(rrs))
	for _, rr := range rrs {
		out = append(out, rr.String())
	}
	return out
}

// canonical parses each of rrs and prints it back, so that tests write
// records with plain spaces.
func canonical(t testing.TB, rrs []string) []string {
	t.Helper()
	out := make([]string, 0, len(rrs))
	for _, s := range rrs {
		rr, err := dns.NewRR(s)
		if err != nil {
			t.Fatalf("bad record %q in test: %v", s, err)
		}
		out = append(out, rr.String())
	}
	return out
}

// checkSection compares a section with the wanted records, in order.
func checkSection(t testing.TB, section string, got []dns.RR, want []string) {
	t.Helper()
	g, w := rrStrings(got), canonical(t, want)
	if strings.Join(g, "\n") != strings.Join(w, "\n") {
		t.Errorf("%s:\ngot\n\t%s\nwant\n\t%s", section, strings.Join(g, "\n\t"), strings.Join(w, "\n\t"))
	}
}

// ips hands out the dnsmgr tests' addresses, 127.0.3.x, one per test
// member.
var ips = testutil.NewIPs(3, 1)

// leakPatterns match the goroutines that run dnsmgr or miekg/dns code
// (tests aside).
var leakPatterns = []string{"gearbox/dnsmgr.", "github.com/miekg/dns."}

// startStore starts a one-member store (storetest) on a fresh address with
// roles; it is closed in t.Cleanup.
func startStore(t testing.TB, name string, roles ...string) *store.Store {
	t.Helper()
	cfg := store.LocalConfig(name, t.TempDir(), ips.Next())
	cfg.Roles = roles
	cfg.Logger = testLogger().With().Str("member", name).Logger()
	return storetest.Start(t, cfg).Store
}
