package dnsmgr

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/rs/zerolog"

	"gearbox/internal/testutil"
	"gearbox/store"
	"gearbox/store/state"
)

// putInputs writes in's records (all but the membership) to st.
func putInputs(t testing.TB, st *store.Store, in Inputs) {
	t.Helper()
	var ops []store.Op
	for _, a := range in.Apps {
		ops = append(ops, store.Op{Bucket: state.BucketApps, Key: state.AppKey(a.Domain, a.Name), Value: a})
	}
	for _, g := range in.Gears {
		ops = append(ops, store.Op{Bucket: state.BucketGears, Key: g.ID, Value: g})
	}
	for _, s := range in.Statuses {
		ops = append(ops, store.Op{Bucket: state.BucketGearStatus, Key: s.ID, Value: s})
	}
	for _, n := range in.Nodes {
		ops = append(ops, store.Op{Bucket: state.BucketNodes, Key: n.Name, Value: n})
	}
	for _, r := range in.Routers {
		ops = append(ops, store.Op{Bucket: state.BucketRouters, Key: r.Name, Value: r})
	}
	for _, c := range in.Claims {
		ops = append(ops, store.Op{Bucket: state.BucketHADNS, Key: state.HADNSKey(c.App, c.Router), Value: c})
	}
	if _, err := st.Batch(context.Background(), ops); err != nil {
		t.Fatalf("write records: %v", err)
	}
}

// startServer starts a Server for testZone on 127.0.0.1:0 over st, with
// members as the membership when set; it is closed in t.Cleanup.
func startServer(t testing.TB, st *store.Store, members func() []store.Member, mutate ...func(*Config)) *Server {
	t.Helper()
	cfg := DefaultConfig(st, testZone)
	cfg.Addr = "127.0.0.1:0"
	cfg.RebuildDelay = 10 * time.Millisecond
	cfg.Logger = testLogger()
	// Tests send every query from one address; the tests of the limit
	// turn it on.
	cfg.RateLimit = 0
	for _, m := range mutate {
		m(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("new dns server: %v", err)
	}
	if members != nil {
		s.members = members
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatalf("start dns server: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

// exchange sends req to addr over net ("udp" or "tcp").
func exchange(t testing.TB, network, addr string, req *dns.Msg) *dns.Msg {
	t.Helper()
	c := &dns.Client{Net: network, Timeout: 2 * time.Second}
	m, _, err := c.Exchange(req, addr)
	if err != nil {
		t.Fatalf("%s query %s: %v", network, req.Question[0].Name, err)
	}
	return m
}

// answers returns the answer section of name/qtype from addr as strings.
func answers(t testing.TB, addr, name string, qtype uint16) []string {
	t.Helper()
	return rrStrings(exchange(t, "udp", addr, query(name, qtype)).Answer)
}

func TestServerUDPAndTCP(t *testing.T) {
	testutil.CheckNoLeaks(t, leakPatterns...)
	st := startStore(t, "b1", store.RoleBroker)
	in := fixture()
	big := bigApp(100)
	in.Apps = append(in.Apps, big.Apps...)
	in.Gears = append(in.Gears, big.Gears...)
	in.Statuses = append(in.Statuses, big.Statuses...)
	in.Nodes = append(in.Nodes, big.Nodes...)
	putInputs(t, st, in)
	members := append(slices.Clone(in.Members), big.Members...)
	s := startServer(t, st, func() []store.Member { return members }, func(c *Config) {
		c.AllowTransfer = []string{"127.0.0.1/32"}
	})
	addr := s.Addr()
	if !strings.HasPrefix(addr, "127.0.0.1:") || strings.HasSuffix(addr, ":0") {
		t.Fatalf("Addr %q, want the bound port", addr)
	}
	webA := canonical(t, []string{"web-dev.apps.example.com. 30 IN A 10.0.1.1", "web-dev.apps.example.com. 30 IN A 10.0.1.2"})

	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			m := exchange(t, network, addr, query("Web-DEV.apps.example.com.", dns.TypeA))
			if !m.Authoritative || m.Rcode != dns.RcodeSuccess || m.RecursionAvailable {
				t.Errorf("AA %v rcode %d RA %v", m.Authoritative, m.Rcode, m.RecursionAvailable)
			}
			if got := rrStrings(m.Answer); strings.ToLower(strings.Join(got, "\n")) != strings.ToLower(strings.Join(webA, "\n")) {
				t.Errorf("answer %v, want %v", got, webA)
			}
			if m.Question[0].Name != "Web-DEV.apps.example.com." {
				t.Errorf("question %q, want the query's case", m.Question[0].Name)
			}
			m = exchange(t, network, addr, query("nope-dev.apps.example.com.", dns.TypeA))
			if m.Rcode != dns.RcodeNameError || len(m.Ns) != 1 {
				t.Errorf("NXDOMAIN: rcode %d authority %v", m.Rcode, m.Ns)
			}
			m = exchange(t, network, addr, query("www.example.org.", dns.TypeA))
			if m.Rcode != dns.RcodeRefused || len(m.Answer)+len(m.Ns) != 0 {
				t.Errorf("outside the zone: rcode %d, %v %v", m.Rcode, m.Answer, m.Ns)
			}
		})
	}

	t.Run("EDNS0", func(t *testing.T) {
		req := query("web-dev.apps.example.com.", dns.TypeA)
		req.SetEdns0(4096, true)
		m := exchange(t, "udp", addr, req)
		if opt := m.IsEdns0(); opt == nil || opt.UDPSize() != maxUDPSize || !opt.Do() || len(m.Answer) != 2 {
			t.Errorf("OPT %v, %d answers", opt, len(m.Answer))
		}
	})

	t.Run("truncation", func(t *testing.T) {
		m := exchange(t, "udp", addr, query("big-dev.apps.example.com.", dns.TypeA))
		if !m.Truncated || len(m.Answer) >= 100 {
			t.Errorf("UDP: TC %v with %d records, want TC", m.Truncated, len(m.Answer))
		}
		req := query("big-dev.apps.example.com.", dns.TypeA)
		req.SetEdns0(1232, false)
		if m := exchange(t, "udp", addr, req); !m.Truncated {
			t.Errorf("UDP with EDNS0 1232: TC %v with %d records, want TC", m.Truncated, len(m.Answer))
		}
		m = exchange(t, "tcp", addr, query("big-dev.apps.example.com.", dns.TypeA))
		if m.Truncated || len(m.Answer) != 100 {
			t.Errorf("TCP: TC %v with %d records, want all 100", m.Truncated, len(m.Answer))
		}
	})

	t.Run("malformed packets", func(t *testing.T) {
		conn, err := net.Dial("udp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		for _, p := range [][]byte{{1, 2, 3}, make([]byte, 12), {0, 1, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0xff}} {
			conn.Write(p)
		}
		// The server still answers.
		if got := answers(t, addr, "aaa1-dev.apps.example.com.", dns.TypeA); len(got) != 1 {
			t.Errorf("after malformed packets: %v", got)
		}
	})

	t.Run("AXFR allowed", func(t *testing.T) {
		tr := new(dns.Transfer)
		req := new(dns.Msg)
		req.SetAxfr(testZone)
		env, err := tr.In(req, addr)
		if err != nil {
			t.Fatal(err)
		}
		var rrs []dns.RR
		for e := range env {
			if e.Error != nil {
				t.Fatalf("transfer: %v", e.Error)
			}
			rrs = append(rrs, e.RR...)
		}
		want := s.Table().Records()
		if len(rrs) != len(want) || len(rrs) < 200 {
			t.Fatalf("transferred %d records, want %d", len(rrs), len(want))
		}
		if rrs[0].Header().Rrtype != dns.TypeSOA || rrs[len(rrs)-1].Header().Rrtype != dns.TypeSOA {
			t.Errorf("not framed by SOA: first %s, last %s", rrs[0], rrs[len(rrs)-1])
		}
		// IXFR gets the whole zone too.
		req.SetIxfr(testZone, 1, "ns."+testZone, "hostmaster."+testZone)
		if env, err = new(dns.Transfer).In(req, addr); err != nil {
			t.Fatal(err)
		}
		n := 0
		for e := range env {
			if e.Error != nil {
				t.Fatalf("IXFR: %v", e.Error)
			}
			n += len(e.RR)
		}
		if n != len(want) {
			t.Errorf("IXFR: %d records, want %d", n, len(want))
		}
	})

	t.Run("AXFR refused", func(t *testing.T) {
		// From an address not allowed.
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}, Timeout: 2 * time.Second}
		conn, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		tr := &dns.Transfer{Conn: &dns.Conn{Conn: conn}}
		defer tr.Close()
		req := new(dns.Msg)
		req.SetAxfr(testZone)
		env, err := tr.In(req, addr)
		if err != nil {
			t.Fatal(err)
		}
		e := <-env
		if e == nil || e.Error == nil || !strings.Contains(e.Error.Error(), "rcode: 5") {
			t.Errorf("transfer from 127.0.0.2: %+v, want REFUSED", e)
		}
		// Over UDP, even from an allowed address.
		m := exchange(t, "udp", addr, req)
		if m.Rcode != dns.RcodeRefused || len(m.Answer) != 0 {
			t.Errorf("AXFR over UDP: rcode %d, %d records", m.Rcode, len(m.Answer))
		}
		// IXFR over UDP: the SOA alone.
		req.SetIxfr(testZone, 1, "ns."+testZone, "hostmaster."+testZone)
		m = exchange(t, "udp", addr, req)
		if m.Rcode != dns.RcodeSuccess || len(m.Answer) != 1 || m.Answer[0].Header().Rrtype != dns.TypeSOA {
			t.Errorf("IXFR over UDP: rcode %d, %v", m.Rcode, m.Answer)
		}
	})
}

// TestServerFollowsStore runs the server on a real two-member cluster:
// answers change after writes to the store and after the node member
// fails, and the serial rises with each change.
func TestServerFollowsStore(t *testing.T) {
	testutil.CheckNoLeaks(t, leakPatterns...)
	b1 := startStore(t, "b1", store.RoleBroker, store.RoleNode)
	n2 := startStore(t, "n2", store.RoleNode)
	self := selfMember(t, b1)
	if _, err := n2.Join([]string{net.JoinHostPort(self.Addr, fmt.Sprint(self.Port))}); err != nil {
		t.Fatalf("join: %v", err)
	}
	n2Addr := selfMember(t, n2).Addr
	testutil.WaitFor(t, 5*time.Second, "two alive members", func() bool { return aliveCount(b1) == 2 })

	s := startServer(t, b1, nil)
	addr := s.Addr()
	// The broker is the name server once its server has registered.
	var ns []string
	want := canonical(t, []string{testZone + " 30 IN NS ns-b1." + testZone})
	testutil.WaitFor(t, 5*time.Second, "ns-b1 as the name server", func() bool {
		ns = answers(t, addr, testZone, dns.TypeNS)
		return slices.Equal(ns, want)
	})
	serial := func() uint32 {
		rrs := exchange(t, "udp", addr, query(testZone, dns.TypeSOA)).Answer
		return rrs[0].(*dns.SOA).Serial
	}
	s0 := serial()

	ctx := context.Background()
	put := func(bucket, key string, v any) {
		t.Helper()
		if _, err := b1.Put(ctx, bucket, key, v); err != nil {
			t.Fatal(err)
		}
	}
	put(state.BucketNodes, "b1", state.Node{Name: "b1", Addr: self.Addr})
	put(state.BucketNodes, "n2", state.Node{Name: "n2", Addr: n2Addr})
	put(state.BucketApps, "dev/web", app("web", "dev", true, false))
	for _, g := range []state.Gear{gear("g1", "web", "dev", "b1", true), gear("g2", "web", "dev", "n2", true)} {
		put(state.BucketGears, g.ID, g)
		put(state.BucketGearStatus, g.ID, status(g.ID, g.Node, state.GearStarted, false))
	}
	webA := func(ips ...string) []string {
		var out []string
		for _, ip := range ips {
			out = append(out, "web-dev."+testZone+" 30 IN A "+ip)
		}
		slices.Sort(out)
		return canonical(t, out)
	}
	waitAnswer := func(what string, want []string) {
		t.Helper()
		var got []string
		testutil.WaitFor(t, 10*time.Second, what, func() bool {
			got = answers(t, addr, "web-dev."+testZone, dns.TypeA)
			slices.Sort(got)
			return slices.Equal(got, want)
		})
	}
	waitAnswer("both nodes", webA(self.Addr, n2Addr))
	s1 := serial()
	if s1 <= s0 {
		t.Errorf("serial %d after writes, was %d: want it to rise", s1, s0)
	}

	// b1's gear stops: only n2 serves.
	put(state.BucketGearStatus, "g1", status("g1", "b1", state.GearStopped, false))
	waitAnswer("n2 alone", webA(n2Addr))
	s2 := serial()
	if s2 <= s1 {
		t.Errorf("serial %d after a gear stopped, was %d", s2, s1)
	}

	// A write DNS does not show leaves the serial alone.
	st := status("g2", "n2", state.GearStarted, false)
	st.Reason = "checked"
	put(state.BucketGearStatus, "g2", st)
	put(state.BucketGearStatus, "g1", status("g1", "b1", state.GearStopped, false))
	time.Sleep(100 * time.Millisecond) // nothing to wait for: the serial must not move
	if s := serial(); s != s2 {
		t.Errorf("serial %d after writes that change no record, was %d", s, s2)
	}

	// n2 fails (stops without leaving): no healthy gear is left, and the
	// app falls back to its alive node, b1.
	n2.Close()
	waitAnswer("n2 dropped after its member failed", webA(self.Addr))
	if s := serial(); s <= s2 {
		t.Errorf("serial %d after a member failed, was %d", s, s2)
	}
}

// TestTransferRefusalsLogCapped sends more refused zone transfers than
// are logged in a minute: a burst is logged, the rest only counted.
func TestTransferRefusalsLogCapped(t *testing.T) {
	testutil.CheckNoLeaks(t, leakPatterns...)
	st := startStore(t, "b1", store.RoleBroker)
	var buf testutil.Buffer
	s := startServer(t, st, nil, func(c *Config) { c.Logger = zerolog.New(&buf) })
	req := new(dns.Msg)
	req.SetAxfr(testZone)
	const asked = 3 * refusalLogBurst
	for range asked {
		if m := exchange(t, "udp", s.Addr(), req); m.Rcode != dns.RcodeRefused {
			t.Fatalf("AXFR from a stranger: rcode %s, want REFUSED", dns.RcodeToString[m.Rcode])
		}
	}
	if n := strings.Count(buf.String(), `"message":"zone transfer refused"`); n != refusalLogBurst {
		t.Errorf("%d refusals logged of %d, want %d", n, asked, refusalLogBurst)
	}
	if n := s.refused.Load(); n != asked {
		t.Errorf("%d refusals counted, want %d", n, asked)
	}
}

// TestNameServersAreServingBrokers runs three brokers of which two serve
// DNS: only those two are the zone's name servers, each with the address
// it answers on, and one that stops leaves the NS set.
func TestNameServersAreServingBrokers(t *testing.T) {
	testutil.CheckNoLeaks(t, leakPatterns...)
	b1 := startStore(t, "b1", store.RoleBroker)
	b2 := startStore(t, "b2", store.RoleBroker)
	b3 := startStore(t, "b3", store.RoleBroker) // runs no DNS server
	self := selfMember(t, b1)
	for _, st := range []*store.Store{b2, b3} {
		if _, err := st.Join([]string{net.JoinHostPort(self.Addr, fmt.Sprint(self.Port))}); err != nil {
			t.Fatalf("join: %v", err)
		}
	}
	testutil.WaitFor(t, 5*time.Second, "three alive members", func() bool { return aliveCount(b1) == 3 && aliveCount(b2) == 3 })

	// b1 listens on all addresses and gives out the advertised one; b2
	// is bound to one address, which is what it gives out.
	s1 := startServer(t, b1, nil, func(c *Config) { c.Addr, c.AdvertiseAddr = "0.0.0.0:0", "127.0.0.250" })
	s2, err := New(func() Config {
		c := DefaultConfig(b2, testZone)
		c.Addr, c.RebuildDelay, c.Logger = "127.0.0.1:0", 10*time.Millisecond, testLogger()
		return c
	}())
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s2.Close() })
	_, port, _ := net.SplitHostPort(s1.Addr())
	addr := net.JoinHostPort("127.0.0.1", port)

	both := canonical(t, []string{
		testZone + " 30 IN NS ns-b1." + testZone, testZone + " 30 IN NS ns-b2." + testZone,
		"ns-b1." + testZone + " 30 IN A 127.0.0.250", "ns-b2." + testZone + " 30 IN A 127.0.0.1",
	})
	nsSet := func() []string {
		m := exchange(t, "udp", addr, query(testZone, dns.TypeNS))
		got := append(rrStrings(m.Answer), rrStrings(m.Extra)...)
		slices.Sort(got)
		return got
	}
	var got []string
	testutil.WaitFor(t, 10*time.Second, "b1 and b2 as name servers", func() bool {
		got = nsSet()
		return slices.Equal(got, both)
	})
	if m := exchange(t, "udp", addr, query("ns-b3."+testZone, dns.TypeA)); m.Rcode != dns.RcodeNameError {
		t.Errorf("ns-b3 (a broker without DNS): rcode %s, want NXDOMAIN", dns.RcodeToString[m.Rcode])
	}
	var rec state.NameServer
	if _, err := b1.Get(state.BucketNameServers, "b2", &rec); err != nil || rec.DNS != s2.Addr() {
		t.Errorf("b2's record %+v (%v), want DNS %s", rec, err, s2.Addr())
	}

	// b2's server stops: it leaves the NS set, though its member lives.
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
	only := canonical(t, []string{testZone + " 30 IN NS ns-b1." + testZone, "ns-b1." + testZone + " 30 IN A 127.0.0.250"})
	testutil.WaitFor(t, 10*time.Second, "b1 alone as name server", func() bool {
		got = nsSet()
		return slices.Equal(got, only)
	})
	if _, err := b1.Get(state.BucketNameServers, "b2", &rec); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("b2's record after its server stopped: %v, want not found", err)
	}
}

func selfMember(t testing.TB, st *store.Store) store.Member {
	t.Helper()
	for _, m := range st.Members() {
		if m.Name == st.Name() {
			return m
		}
	}
	t.Fatalf("member %s not in its own membership", st.Name())
	return store.Member{}
}

func aliveCount(st *store.Store) int {
	n := 0
	for _, m := range st.Members() {
		if m.Status == store.StatusAlive {
			n++
		}
	}
	return n
}

// TestNotify runs a fake secondary: it gets a NOTIFY when the zone
// changes, and can then transfer the zone with the new serial.
func TestNotify(t *testing.T) {
	testutil.CheckNoLeaks(t, leakPatterns...)
	st := startStore(t, "b1", store.RoleBroker)
	var mu sync.Mutex
	var serials []uint32
	var sources []string
	secondary := &dns.Server{Addr: "127.0.0.1:0", Net: "udp", Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		if r.Opcode == dns.OpcodeNotify && len(r.Answer) == 1 {
			mu.Lock()
			serials = append(serials, r.Answer[0].(*dns.SOA).Serial)
			sources = append(sources, w.RemoteAddr().(*net.UDPAddr).IP.String())
			mu.Unlock()
		}
		m := new(dns.Msg)
		m.SetReply(r)
		w.WriteMsg(m)
	})}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	secondary.PacketConn = pc
	go secondary.ActivateAndServe()
	t.Cleanup(func() { secondary.Shutdown() })

	// The server listens on 127.0.0.2: NOTIFY must come from there, the
	// only address a secondary takes it from.
	s := startServer(t, st, nil, func(c *Config) {
		c.Addr = "127.0.0.2:0"
		c.AllowTransfer = []string{pc.LocalAddr().String()}
	})
	lastNotified := func() uint32 {
		mu.Lock()
		defer mu.Unlock()
		if len(serials) == 0 {
			return 0
		}
		return serials[len(serials)-1]
	}
	// The first table is announced at start.
	testutil.WaitFor(t, 5*time.Second, "NOTIFY of the first serial", func() bool { return lastNotified() == s.Table().Serial() })
	first := lastNotified()

	if _, err := st.Put(context.Background(), state.BucketNodes, "n1", state.Node{Name: "n1", Addr: "10.0.0.9"}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Put(context.Background(), state.BucketGears, "g1", gear("g1", "web", "dev", "n1", true)); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 5*time.Second, "NOTIFY of a new serial", func() bool { return lastNotified() > first })
	if got, want := lastNotified(), s.Table().Serial(); got != want {
		t.Errorf("notified serial %d, table serial %d", got, want)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, src := range sources {
		if src != "127.0.0.2" {
			t.Errorf("NOTIFY sent from %s, want the server's address 127.0.0.2", src)
		}
	}
}

func TestServerLifecycle(t *testing.T) {
	testutil.CheckNoLeaks(t, leakPatterns...)
	st := startStore(t, "b1", store.RoleBroker)
	cfg := DefaultConfig(st, testZone)
	cfg.Addr = "127.0.0.1:0"
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if s.Addr() != "" || s.Table() != nil {
		t.Error("address or table before Start")
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); !errors.Is(err, ErrStarted) {
		t.Errorf("second Start: %v, want ErrStarted", err)
	}
	// A second server on the same address fails with a clear error.
	cfg.Addr = s.Addr()
	s2, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "listen for dns on "+s.Addr()) {
		t.Errorf("start on a taken address: %v", err)
	}
	s2.Close()
	if err := s.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second close: %v", err)
	}
	if err := s.Start(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Start after Close: %v, want ErrClosed", err)
	}
}

func TestConfigValidation(t *testing.T) {
	st := startStore(t, "b1", store.RoleBroker)
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string // in the error; "" for none
	}{
		{"defaults", func(*Config) {}, ""},
		{"no store", func(c *Config) { c.Store = nil }, "Store is required"},
		{"no zone", func(c *Config) { c.Zone = "" }, "Zone"},
		{"bad zone", func(c *Config) { c.Zone = "a..b" }, "Zone"},
		{"bad addr", func(c *Config) { c.Addr = "53" }, "Addr"},
		{"TTL too short", func(c *Config) { c.TTL = time.Millisecond }, "TTL"},
		{"negative TTL", func(c *Config) { c.NegativeTTL = -time.Second }, "NegativeTTL"},
		{"no affixes", func(c *Config) { c.HAPrefix, c.HASuffix = "", "" }, "HAPrefix"},
		{"dot in prefix", func(c *Config) { c.HAPrefix = "ha." }, "HAPrefix"},
		{"bad router hostname", func(c *Config) { c.RouterHostname = "router example" }, "RouterHostname"},
		{"router hostname without managing", func(c *Config) { c.RouterHostname = "r.example.com"; c.ManageHADNS = false }, "ManageHADNS"},
		{"bad transfer peer", func(c *Config) { c.AllowTransfer = []string{"host.example.com"} }, "AllowTransfer"},
		{"transfer peers", func(c *Config) { c.AllowTransfer = []string{"192.0.2.1", "[2001:db8::1]:5353", "10.0.0.0/8"} }, ""},
		{"negative rate limit", func(c *Config) { c.RateLimit = -1 }, "RateLimit"},
		{"no rate limit", func(c *Config) { c.RateLimit = 0 }, ""},
		{"negative rate burst", func(c *Config) { c.RateBurst = -1 }, "RateBurst"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig(st, testZone)
			tt.mutate(&cfg)
			_, err := New(cfg)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("error %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("error %v, want one naming %s", err, tt.want)
			}
		})
	}
}

func TestParseAllowTransfer(t *testing.T) {
	allow, notify, err := ParseAllowTransfer([]string{" 192.0.2.1 ", "192.0.2.2:5353", "[2001:db8::1]:53", "2001:db8::2", "10.1.2.3/8", ""})
	if err != nil {
		t.Fatal(err)
	}
	var a, n []string
	for _, p := range allow {
		a = append(a, p.String())
	}
	for _, p := range notify {
		n = append(n, p.String())
	}
	wantA := []string{"192.0.2.1/32", "192.0.2.2/32", "2001:db8::1/128", "2001:db8::2/128", "10.0.0.0/8"}
	wantN := []string{"192.0.2.1:53", "192.0.2.2:5353", "[2001:db8::1]:53", "[2001:db8::2]:53"}
	if !slices.Equal(a, wantA) || !slices.Equal(n, wantN) {
		t.Errorf("allow %v notify %v; want %v and %v", a, n, wantA, wantN)
	}
	for _, bad := range []string{"x", "192.0.2.1:0", "192.0.2.1:99999", "192.0.2.1/33", "ns.example.com:53"} {
		if _, _, err := ParseAllowTransfer([]string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestServerIPv6 serves on [::1], through the IPv6 batch reader.
func TestServerIPv6(t *testing.T) {
	if ln, err := net.ListenPacket("udp", "[::1]:0"); err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	} else {
		ln.Close()
	}
	testutil.CheckNoLeaks(t, leakPatterns...)
	st := startStore(t, "b1", store.RoleBroker)
	in := fixture()
	putInputs(t, st, in)
	s := startServer(t, st, func() []store.Member { return in.Members }, func(c *Config) { c.Addr = "[::1]:0" })
	for _, network := range []string{"udp", "tcp"} {
		m := exchange(t, network, s.Addr(), query("solo-dev.apps.example.com.", dns.TypeAAAA))
		if got := rrStrings(m.Answer); len(got) != 1 || !strings.HasSuffix(got[0], "2001:db8::3") {
			t.Errorf("%s over IPv6: %v", network, got)
		}
	}
}

// TestServePanicIsServfail checks that a panic while answering becomes
// SERVFAIL, not a dead server.
func TestServePanicIsServfail(t *testing.T) {
	s := &Server{log: testLogger()}
	s.bufs.New = func() any { b := make([]byte, 0, 512); return &b }
	// No table: answering dereferences nil.
	w := &udpReply{}
	b, _ := query("web-dev.apps.example.com.", dns.TypeA).Pack()
	handler{s, false}.servePacket(w, b)
	m := new(dns.Msg)
	if err := m.Unpack(w.buf); err != nil || m.Rcode != dns.RcodeServerFailure {
		t.Errorf("reply %v (%v), want SERVFAIL", m, err)
	}
	if s.panics.Load() != 1 {
		t.Errorf("%d panics counted, want 1", s.panics.Load())
	}
}

// TestServerAllAddresses serves on every address: a reply must come from
// the address its query went to (127.0.0.3 here), or the client, whose
// socket is connected to that address, never sees it.
func TestServerAllAddresses(t *testing.T) {
	testutil.CheckNoLeaks(t, leakPatterns...)
	st := startStore(t, "b1", store.RoleBroker)
	in := fixture()
	putInputs(t, st, in)
	s := startServer(t, st, func() []store.Member { return in.Members }, func(c *Config) { c.Addr = ":0" })
	_, port, _ := net.SplitHostPort(s.Addr())
	for _, ip := range []string{"127.0.0.3", "127.0.0.1", "::1"} {
		if ip == "::1" {
			if ln, err := net.ListenPacket("udp", "[::1]:0"); err != nil {
				continue
			} else {
				ln.Close()
			}
		}
		m := exchange(t, "udp", net.JoinHostPort(ip, port), query("aaa1-dev.apps.example.com.", dns.TypeA))
		if len(m.Answer) != 1 {
			t.Errorf("via %s: %v", ip, m.Answer)
		}
	}
}

// TestUnregisterLeftRecord: a record left by a run that crashed (Close
// never ran) is removed by Unregister, which a broker that serves no DNS
// calls at start; with no record it writes nothing.
func TestUnregisterLeftRecord(t *testing.T) {
	st := startStore(t, "b1", store.RoleBroker)
	ctx := context.Background()
	if err := Unregister(ctx, st); err != nil {
		t.Fatalf("unregister without a record: %v", err)
	}
	if _, err := st.GetRecord(state.BucketNameServers, "b1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("after unregister without a record: %v, want not found", err)
	}
	if _, err := st.Put(ctx, state.BucketNameServers, "b1", state.NameServer{Name: "b1", Addr: "127.0.0.1", DNS: "127.0.0.1:53"}); err != nil {
		t.Fatal(err)
	}
	if err := Unregister(ctx, st); err != nil {
		t.Fatalf("unregister: %v", err)
	}
	var ns state.NameServer
	if _, err := st.Get(state.BucketNameServers, "b1", &ns); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("left record after unregister: %+v, %v; want not found", ns, err)
	}
}
