package dnsmgr

import (
	"fmt"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"gearbox/store"
	"gearbox/store/state"
)

// TestFastMatchesAnswer checks that the cached wire replies say exactly
// what Answer says, for every name of the fixture, every cached type and
// every variant of query the fast path patches (id, RD, CD, case, EDNS0
// with and without DO), over UDP and TCP.
func TestFastMatchesAnswer(t *testing.T) {
	for _, mode := range []struct {
		name string
		opts func(*Options)
	}{
		{"routers", func(*Options) {}},
		{"cname", func(o *Options) { o.RouterHostname = "web-dev.apps.example.com" }},
	} {
		o := testOptions()
		mode.opts(&o)
		tbl := Build(fixture(), o, 7)
		var names []string
		for n := range tbl.names {
			names = append(names, n)
		}
		fast := 0
		for _, name := range names {
			for _, qtype := range []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeNS, dns.TypeSOA, dns.TypeCNAME, dns.TypeANY, dns.TypeMX} {
				for v := range 16 {
					qname := name
					if v&1 != 0 {
						qname = strings.ToUpper(name[:1]) + name[1:]
					}
					req := query(qname, qtype)
					req.Id = uint16(1000 + v)
					req.RecursionDesired = v&2 != 0
					req.CheckingDisabled = v&4 != 0
					if v&8 != 0 {
						req.SetEdns0(4096, v&1 != 0)
					}
					for _, tcp := range []bool{false, true} {
						what := fmt.Sprintf("%s %s variant %d tcp %v", mode.name, dns.TypeToString[qtype], v, tcp)
						b, ok := tbl.appendFast(nil, req, tcp)
						if !ok {
							if cacheSlot(qtype) >= 0 {
								t.Errorf("%s %s: not served by the fast path", qname, what)
							}
							continue
						}
						fast++
						got := new(dns.Msg)
						if err := got.Unpack(b); err != nil {
							t.Fatalf("%s %s: fast reply does not unpack: %v", qname, what, err)
						}
						want := Answer(tbl, req)
						Fit(want, req, tcp)
						wb, err := want.Pack()
						if err != nil {
							t.Fatal(err)
						}
						want = new(dns.Msg)
						want.Unpack(wb)
						// Owner names may come out in the query's
						// case through compression pointers.
						if g, w := strings.ToLower(got.String()), strings.ToLower(want.String()); g != w {
							t.Errorf("%s %s:\nfast:\n%s\nanswer:\n%s", qname, what, g, w)
						}
						if got.Question[0].Name != qname {
							t.Errorf("%s %s: question %q, want the query's case", qname, what, got.Question[0].Name)
						}
					}
				}
			}
		}
		if fast == 0 {
			t.Errorf("%s: nothing went the fast path", mode.name)
		}
	}
}

// TestFastDeclines checks what the fast path leaves to Answer.
func TestFastDeclines(t *testing.T) {
	tbl := Build(fixture(), testOptions(), 7)
	ednsV1 := query("web-dev.apps.example.com.", dns.TypeA)
	ednsV1.SetEdns0(1232, false)
	ednsV1.IsEdns0().SetVersion(1)
	response := query("web-dev.apps.example.com.", dns.TypeA)
	response.Response = true
	notify := query("apps.example.com.", dns.TypeSOA)
	notify.Opcode = dns.OpcodeNotify
	chaos := query("web-dev.apps.example.com.", dns.TypeA)
	chaos.Question[0].Qclass = dns.ClassCHAOS
	for name, req := range map[string]*dns.Msg{
		"NXDOMAIN":    query("nope-dev.apps.example.com.", dns.TypeA),
		"REFUSED":     query("example.org.", dns.TypeA),
		"MX":          query("web-dev.apps.example.com.", dns.TypeMX),
		"EDNS v1":     ednsV1,
		"response":    response,
		"NOTIFY":      notify,
		"class CHAOS": chaos,
	} {
		if _, ok := tbl.appendFast(nil, req, false); ok {
			t.Errorf("%s: served by the fast path", name)
		}
	}
}

// bigApp is a zone where app big-dev has n LB gears on n nodes.
func bigApp(n int) Inputs {
	in := Inputs{Apps: []state.App{app("big", "dev", true, false)}}
	for i := range n {
		node := fmt.Sprintf("m%d", i)
		addr := fmt.Sprintf("10.1.%d.%d", i/250, i%250+1)
		in.Members = append(in.Members, member(node, addr, store.StatusAlive, store.RoleNode))
		in.Nodes = append(in.Nodes, state.Node{Name: node, Addr: addr})
		id := fmt.Sprintf("big%d", i)
		in.Gears = append(in.Gears, gear(id, "big", "dev", node, true))
		in.Statuses = append(in.Statuses, status(id, node, state.GearStarted, false))
	}
	return in
}

func TestTruncation(t *testing.T) {
	tbl := Build(bigApp(100), testOptions(), 7) // 100 A records: about 1.6 KB
	tests := []struct {
		name      string
		edns      uint16 // 0: no EDNS0
		tcp       bool
		tc        bool
		maxLen    int
		allAnswer bool
	}{
		{name: "UDP without EDNS0: 512 bytes", tc: true, maxLen: 512},
		{name: "EDNS0 size below 512 counts as 512", edns: 100, tc: true, maxLen: 512},
		{name: "EDNS0 1000", edns: 1000, tc: true, maxLen: 1000},
		{name: "EDNS0 4096 capped at 1232", edns: 4096, tc: true, maxLen: 1232},
		{name: "TCP: everything", tcp: true, allAnswer: true, maxLen: 65535},
		{name: "TCP with EDNS0: everything", edns: 512, tcp: true, allAnswer: true, maxLen: 65535},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := query("big-dev.apps.example.com.", dns.TypeA)
			if tt.edns > 0 {
				req.SetEdns0(tt.edns, false)
			}
			if _, ok := tbl.appendFast(nil, req, tt.tcp); ok != tt.allAnswer {
				t.Errorf("fast path taken: %v, want %v", ok, tt.allAnswer)
			}
			m := Answer(tbl, req)
			Fit(m, req, tt.tcp)
			b, err := m.Pack()
			if err != nil {
				t.Fatal(err)
			}
			if m.Truncated != tt.tc || len(b) > tt.maxLen {
				t.Errorf("TC %v, %d bytes; want TC %v and at most %d bytes", m.Truncated, len(b), tt.tc, tt.maxLen)
			}
			if tt.allAnswer && len(m.Answer) != 100 {
				t.Errorf("%d records, want 100", len(m.Answer))
			}
			if tt.edns > 0 && m.IsEdns0() == nil {
				t.Error("OPT lost in truncation")
			}
		})
	}
}

func BenchmarkAppendFast(b *testing.B) {
	tbl := Build(fixture(), testOptions(), 7)
	req := query("Web-dev.apps.example.com.", dns.TypeA)
	req.SetEdns0(1232, false)
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = tbl.appendFast(buf[:0], req, false)
	}
}

func BenchmarkAnswer(b *testing.B) {
	tbl := Build(fixture(), testOptions(), 7)
	req := query("web-dev.apps.example.com.", dns.TypeA)
	req.SetEdns0(1232, false)
	b.ReportAllocs()
	for b.Loop() {
		m := Answer(tbl, req)
		Fit(m, req, false)
		m.Pack()
	}
}

// BenchmarkAppendFastCounted is BenchmarkAppendFast with the query counted
// as the server counts each answer for its metrics: the difference is
// the metrics' cost on the fast path.
func BenchmarkAppendFastCounted(b *testing.B) {
	tbl := Build(fixture(), testOptions(), 7)
	req := query("Web-dev.apps.example.com.", dns.TypeA)
	req.SetEdns0(1232, false)
	buf := make([]byte, 0, 512)
	var q queryCounts
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = tbl.appendFast(buf[:0], req, false)
		q.count(req.Question[0].Qtype, int(buf[3]&0x0f))
	}
	if q.n[0][0].Load() == 0 {
		b.Fatal("nothing counted")
	}
}
