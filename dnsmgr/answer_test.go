package dnsmgr

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"gearbox/store"
	"gearbox/store/state"
)

// The fixture zone's SOA (serial 7) and its form in negative answers
// (TTL: the negative TTL).
const (
	soa7    = "apps.example.com. 30 IN SOA ns-b-3.apps.example.com. hostmaster.apps.example.com. 7 300 60 1209600 10"
	negSOA7 = "apps.example.com. 10 IN SOA ns-b-3.apps.example.com. hostmaster.apps.example.com. 7 300 60 1209600 10"
)

// answerCase is one query and the reply it must get.
type answerCase struct {
	name   string
	req    *dns.Msg
	rcode  int
	aa     bool
	answer []string
	ns     []string
	extra  []string
}

func runAnswerCases(t *testing.T, tbl *Table, cases []answerCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := Answer(tbl, tc.req)
			if m == nil {
				t.Fatal("no reply")
			}
			if m.Rcode != tc.rcode {
				t.Errorf("rcode %s, want %s", dns.RcodeToString[m.Rcode], dns.RcodeToString[tc.rcode])
			}
			if m.Authoritative != tc.aa {
				t.Errorf("AA %v, want %v", m.Authoritative, tc.aa)
			}
			if m.RecursionAvailable {
				t.Error("RA set")
			}
			if m.Id != tc.req.Id || !m.Response {
				t.Errorf("id %d response %v, want id %d and a response", m.Id, m.Response, tc.req.Id)
			}
			if len(tc.req.Question) == 1 && (len(m.Question) != 1 || m.Question[0] != tc.req.Question[0]) {
				t.Errorf("question %v, want %v echoed", m.Question, tc.req.Question)
			}
			checkSection(t, "answer", m.Answer, tc.answer)
			checkSection(t, "authority", m.Ns, tc.ns)
			var extra []dns.RR
			for _, rr := range m.Extra {
				if rr.Header().Rrtype != dns.TypeOPT {
					extra = append(extra, rr)
				}
			}
			checkSection(t, "additional", extra, tc.extra)
			if _, err := m.Pack(); err != nil {
				t.Errorf("reply does not pack: %v", err)
			}
		})
	}
}

func TestAnswer(t *testing.T) {
	tbl := Build(fixture(), testOptions(), 7)
	withClass := func(m *dns.Msg, c uint16) *dns.Msg { m.Question[0].Qclass = c; return m }
	withOpcode := func(m *dns.Msg, op int) *dns.Msg { m.Opcode = op; return m }
	twoQuestions := query("web-dev.apps.example.com.", dns.TypeA)
	twoQuestions.Question = append(twoQuestions.Question, twoQuestions.Question[0])
	noQuestion := query("web-dev.apps.example.com.", dns.TypeA)
	noQuestion.Question = nil
	ednsV1 := query("web-dev.apps.example.com.", dns.TypeA)
	ednsV1.SetEdns0(1232, false)
	ednsV1.IsEdns0().SetVersion(1)
	twoOPT := query("web-dev.apps.example.com.", dns.TypeA)
	twoOPT.SetEdns0(1232, false)
	twoOPT.SetEdns0(1232, false)

	runAnswerCases(t, tbl, []answerCase{
		// The apex.
		{name: "SOA", req: query("apps.example.com.", dns.TypeSOA), aa: true, answer: []string{soa7}},
		{name: "NS with addresses", req: query("apps.example.com.", dns.TypeNS), aa: true,
			answer: []string{"apps.example.com. 30 IN NS ns-b-3.apps.example.com.", "apps.example.com. 30 IN NS ns-b1.apps.example.com."},
			extra:  []string{"ns-b-3.apps.example.com. 30 IN AAAA 2001:db8::b3", "ns-b1.apps.example.com. 30 IN A 10.0.0.1"}},
		{name: "apex A is NODATA", req: query("apps.example.com.", dns.TypeA), aa: true, ns: []string{negSOA7}},
		{name: "name server address", req: query("ns-b1.apps.example.com.", dns.TypeA), aa: true,
			answer: []string{"ns-b1.apps.example.com. 30 IN A 10.0.0.1"}},
		{name: "name server AAAA", req: query("ns-b-3.apps.example.com.", dns.TypeAAAA), aa: true,
			answer: []string{"ns-b-3.apps.example.com. 30 IN AAAA 2001:db8::b3"}},
		{name: "failed broker has no NS name", req: query("ns-b2.apps.example.com.", dns.TypeA), aa: true,
			rcode: dns.RcodeNameError, ns: []string{negSOA7}},
		{name: "broker without a DNS server has no NS name", req: query("ns-b4.apps.example.com.", dns.TypeA), aa: true,
			rcode: dns.RcodeNameError, ns: []string{negSOA7}},

		// App names.
		{name: "app: nodes of healthy LB gears, failed node left out", req: query("web-dev.apps.example.com.", dns.TypeA), aa: true,
			answer: []string{"web-dev.apps.example.com. 30 IN A 10.0.1.1", "web-dev.apps.example.com. 30 IN A 10.0.1.2"}},
		{name: "app: case-insensitive, question echoed", req: query("WEB-Dev.APPS.example.Com.", dns.TypeA), aa: true,
			answer: []string{"web-dev.apps.example.com. 30 IN A 10.0.1.1", "web-dev.apps.example.com. 30 IN A 10.0.1.2"}},
		{name: "app: web gear's node not given", req: query("web-dev.apps.example.com.", dns.TypeAAAA), aa: true,
			ns: []string{negSOA7}},
		{name: "app: ANY is minimal (RFC 8482)", req: query("web-dev.apps.example.com.", dns.TypeANY), aa: true,
			answer: []string{`web-dev.apps.example.com. 30 IN HINFO "RFC8482" ""`}},
		{name: "apex: ANY is minimal, no additional", req: query("apps.example.com.", dns.TypeANY), aa: true,
			answer: []string{`apps.example.com. 30 IN HINFO "RFC8482" ""`}},
		{name: "ANY at a name without records: NODATA", req: query("gone-dev.apps.example.com.", dns.TypeANY), aa: true,
			ns: []string{negSOA7}},
		{name: "ANY at a missing name: NXDOMAIN", req: query("nope-dev.apps.example.com.", dns.TypeANY), aa: true,
			rcode: dns.RcodeNameError, ns: []string{negSOA7}},
		{name: "app: NODATA for MX", req: query("web-dev.apps.example.com.", dns.TypeMX), aa: true, ns: []string{negSOA7}},
		{name: "non-scalable app: its gear's node", req: query("solo-dev.apps.example.com.", dns.TypeAAAA), aa: true,
			answer: []string{"solo-dev.apps.example.com. 30 IN AAAA 2001:db8::3"}},
		{name: "non-scalable app: no A", req: query("solo-dev.apps.example.com.", dns.TypeA), aa: true, ns: []string{negSOA7}},
		{name: "no healthy gear: alive nodes instead", req: query("down-dev.apps.example.com.", dns.TypeA), aa: true,
			answer: []string{"down-dev.apps.example.com. 30 IN A 10.0.1.1"}},
		{name: "no alive node: NODATA", req: query("gone-dev.apps.example.com.", dns.TypeA), aa: true, ns: []string{negSOA7}},
		{name: "draining gear left out", req: query("drain-dev.apps.example.com.", dns.TypeA), aa: true,
			answer: []string{"drain-dev.apps.example.com. 30 IN A 10.0.1.2"}},
		{name: "name below an app", req: query("x.web-dev.apps.example.com.", dns.TypeA), aa: true,
			rcode: dns.RcodeNameError, ns: []string{negSOA7}},

		// ha- names.
		{name: "ha-: alive routers", req: query("ha-web-dev.apps.example.com.", dns.TypeA), aa: true,
			answer: []string{"ha-web-dev.apps.example.com. 30 IN A 10.0.2.1", "ha-web-dev.apps.example.com. 30 IN A 10.0.2.2"}},
		{name: "ha-: claims unused when brokers manage", req: query("ha-claimed-dev.apps.example.com.", dns.TypeA), aa: true,
			answer: []string{"ha-claimed-dev.apps.example.com. 30 IN A 10.0.2.1", "ha-claimed-dev.apps.example.com. 30 IN A 10.0.2.2"}},
		{name: "ha-: not for apps that are not HA", req: query("ha-solo-dev.apps.example.com.", dns.TypeA), aa: true,
			rcode: dns.RcodeNameError, ns: []string{negSOA7}},

		// Gear names.
		{name: "gear: its node", req: query("aaa1-dev.apps.example.com.", dns.TypeA), aa: true,
			answer: []string{"aaa1-dev.apps.example.com. 30 IN A 10.0.1.1"}},
		{name: "gear: on a failed node, still its node", req: query("aaa3-dev.apps.example.com.", dns.TypeA), aa: true,
			answer: []string{"aaa3-dev.apps.example.com. 30 IN A 10.0.1.4"}},
		{name: "gear: IPv6 node", req: query("bbb1-dev.apps.example.com.", dns.TypeAAAA), aa: true,
			answer: []string{"bbb1-dev.apps.example.com. 30 IN AAAA 2001:db8::3"}},

		// Errors.
		{name: "NXDOMAIN", req: query("nope-dev.apps.example.com.", dns.TypeA), aa: true,
			rcode: dns.RcodeNameError, ns: []string{negSOA7}},
		{name: "outside the zone: REFUSED", req: query("example.com.", dns.TypeA), rcode: dns.RcodeRefused},
		{name: "sibling with the zone as suffix: REFUSED", req: query("xapps.example.com.", dns.TypeA), rcode: dns.RcodeRefused},
		{name: "escaped dot is no label boundary: REFUSED", req: query(`x\.apps.example.com.`, dns.TypeA), rcode: dns.RcodeRefused},
		{name: "root: REFUSED", req: query(".", dns.TypeNS), rcode: dns.RcodeRefused},
		{name: "class CHAOS: REFUSED", req: withClass(query("version.bind.", dns.TypeTXT), dns.ClassCHAOS), rcode: dns.RcodeRefused},
		{name: "class ANY answers", req: withClass(query("aaa1-dev.apps.example.com.", dns.TypeA), dns.ClassANY), aa: true,
			answer: []string{"aaa1-dev.apps.example.com. 30 IN A 10.0.1.1"}},
		{name: "NOTIFY: NOTIMP", req: withOpcode(query("apps.example.com.", dns.TypeSOA), dns.OpcodeNotify), rcode: dns.RcodeNotImplemented},
		{name: "UPDATE: NOTIMP", req: withOpcode(query("apps.example.com.", dns.TypeSOA), dns.OpcodeUpdate), rcode: dns.RcodeNotImplemented},
		{name: "two questions: FORMERR", req: twoQuestions, rcode: dns.RcodeFormatError},
		{name: "no question: FORMERR", req: noQuestion, rcode: dns.RcodeFormatError},
		{name: "two OPT records: FORMERR", req: twoOPT, rcode: dns.RcodeFormatError},
		{name: "EDNS version 1: BADVERS", req: ednsV1, rcode: dns.RcodeBadVers},
		{name: "AXFR outside a transfer: REFUSED", req: query("apps.example.com.", dns.TypeAXFR), rcode: dns.RcodeRefused},
	})
}

func TestAnswerIgnoresResponses(t *testing.T) {
	tbl := Build(fixture(), testOptions(), 7)
	req := query("web-dev.apps.example.com.", dns.TypeA)
	req.Response = true
	if m := Answer(tbl, req); m != nil {
		t.Errorf("answered a response: %v", m)
	}
}

func TestAnswerEDNS(t *testing.T) {
	tbl := Build(fixture(), testOptions(), 7)
	for _, do := range []bool{false, true} {
		req := query("web-dev.apps.example.com.", dns.TypeA)
		req.SetEdns0(4096, do)
		m := Answer(tbl, req)
		opt := m.IsEdns0()
		if opt == nil || opt.UDPSize() != maxUDPSize || opt.Do() != do || opt.Version() != 0 {
			t.Errorf("DO %v: OPT %v, want size %d and DO echoed", do, opt, maxUDPSize)
		}
	}
	if m := Answer(tbl, query("web-dev.apps.example.com.", dns.TypeA)); m.IsEdns0() != nil {
		t.Error("OPT in the reply to a query without EDNS0")
	}
	// Errors carry OPT too.
	req := query("example.org.", dns.TypeA)
	req.SetEdns0(1232, false)
	if m := Answer(tbl, req); m.Rcode != dns.RcodeRefused || m.IsEdns0() == nil {
		t.Errorf("REFUSED to an EDNS0 query: rcode %d, OPT %v", m.Rcode, m.IsEdns0())
	}
}

func TestAnswerCNAMEMode(t *testing.T) {
	o := testOptions()
	o.RouterHostname = "Router.Example.NET"
	tbl := Build(fixture(), o, 7)
	runAnswerCases(t, tbl, []answerCase{
		{name: "A gets the CNAME", req: query("ha-web-dev.apps.example.com.", dns.TypeA), aa: true,
			answer: []string{"ha-web-dev.apps.example.com. 30 IN CNAME router.example.net."}},
		{name: "CNAME", req: query("ha-web-dev.apps.example.com.", dns.TypeCNAME), aa: true,
			answer: []string{"ha-web-dev.apps.example.com. 30 IN CNAME router.example.net."}},
		{name: "every HA app", req: query("HA-claimed-dev.apps.example.com.", dns.TypeAAAA), aa: true,
			answer: []string{"ha-claimed-dev.apps.example.com. 30 IN CNAME router.example.net."}},
		{name: "not for apps that are not HA", req: query("ha-solo-dev.apps.example.com.", dns.TypeA), aa: true,
			rcode: dns.RcodeNameError, ns: []string{negSOA7}},
		{name: "ANY gets the CNAME alone", req: query("ha-web-dev.apps.example.com.", dns.TypeANY), aa: true,
			answer: []string{"ha-web-dev.apps.example.com. 30 IN CNAME router.example.net."}},
	})

	// A target inside the zone is followed.
	o.RouterHostname = "web-dev.apps.example.com"
	runAnswerCases(t, Build(fixture(), o, 7), []answerCase{
		{name: "target in the zone", req: query("ha-web-dev.apps.example.com.", dns.TypeA), aa: true,
			answer: []string{"ha-web-dev.apps.example.com. 30 IN CNAME web-dev.apps.example.com.",
				"web-dev.apps.example.com. 30 IN A 10.0.1.1", "web-dev.apps.example.com. 30 IN A 10.0.1.2"}},
		{name: "target in the zone, NODATA", req: query("ha-web-dev.apps.example.com.", dns.TypeMX), aa: true,
			answer: []string{"ha-web-dev.apps.example.com. 30 IN CNAME web-dev.apps.example.com."}, ns: []string{negSOA7}},
		{name: "target in the zone, ANY: not followed", req: query("ha-web-dev.apps.example.com.", dns.TypeANY), aa: true,
			answer: []string{"ha-web-dev.apps.example.com. 30 IN CNAME web-dev.apps.example.com."}},
	})
	o.RouterHostname = "missing.apps.example.com"
	runAnswerCases(t, Build(fixture(), o, 7), []answerCase{
		{name: "missing target in the zone", req: query("ha-web-dev.apps.example.com.", dns.TypeA), aa: true,
			rcode:  dns.RcodeNameError,
			answer: []string{"ha-web-dev.apps.example.com. 30 IN CNAME missing.apps.example.com."}, ns: []string{negSOA7}},
	})
}

func TestAnswerRoutingLayerMode(t *testing.T) {
	o := testOptions()
	o.ManageHADNS = false
	tbl := Build(fixture(), o, 7)
	runAnswerCases(t, tbl, []answerCase{
		{name: "claims of alive routers", req: query("ha-claimed-dev.apps.example.com.", dns.TypeA), aa: true,
			answer: []string{"ha-claimed-dev.apps.example.com. 30 IN A 10.0.2.1"}},
		{name: "one claim", req: query("ha-web-dev.apps.example.com.", dns.TypeA), aa: true,
			answer: []string{"ha-web-dev.apps.example.com. 30 IN A 10.0.2.2"}},
		{name: "app names unchanged", req: query("web-dev.apps.example.com.", dns.TypeA), aa: true,
			answer: []string{"web-dev.apps.example.com. 30 IN A 10.0.1.1", "web-dev.apps.example.com. 30 IN A 10.0.1.2"}},
	})
	// No claim: no name. A claim whose routers all failed: no records.
	in := fixture()
	in.Claims = slices.DeleteFunc(in.Claims, func(c state.HADNS) bool { return c.App == "dev/web" || c.Router == "r1" })
	runAnswerCases(t, Build(in, o, 7), []answerCase{
		{name: "no claim", req: query("ha-web-dev.apps.example.com.", dns.TypeA), aa: true,
			rcode: dns.RcodeNameError, ns: []string{negSOA7}},
		{name: "claimant failed", req: query("ha-claimed-dev.apps.example.com.", dns.TypeA), aa: true,
			ns: []string{negSOA7}},
	})
}

// manyServers is the fixture with n more brokers serving DNS, whose
// apex has n+2 NS records and as many addresses.
func manyServers(n int) Inputs {
	in := fixture()
	for i := range n {
		name := fmt.Sprintf("broker-with-a-long-name-%02d", i)
		addr := fmt.Sprintf("10.0.9.%d", i+1)
		in.Members = append(in.Members, member(name, addr, store.StatusAlive, store.RoleBroker))
		in.NameServers = append(in.NameServers, state.NameServer{Name: name, Addr: addr})
	}
	return in
}

// TestAnyAmplification sends ANY for the apex of a zone with many name
// servers, the name with the most records, as a reflection attack would:
// the reply, from Answer and from the fast path, over UDP and TCP, is one
// small record, not the name's records.
func TestAnyAmplification(t *testing.T) {
	tbl := Build(manyServers(30), testOptions(), 7)
	apex := tbl.names[tbl.zone]
	full := new(dns.Msg)
	full.SetReply(query(testZone, dns.TypeANY))
	full.Compress = true
	for _, set := range apex.sets {
		full.Answer = append(full.Answer, set.rrs...)
	}
	full.Extra = apex.extra
	fb, err := full.Pack()
	if err != nil {
		t.Fatal(err)
	}
	req := query(testZone, dns.TypeANY)
	req.SetEdns0(4096, false)
	qb, _ := req.Pack()
	for _, tcp := range []bool{false, true} {
		m := Answer(tbl, req)
		Fit(m, req, tcp)
		ab, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		checkSection(t, "answer", m.Answer, []string{`apps.example.com. 30 IN HINFO "RFC8482" ""`})
		fast, ok := tbl.appendFast(nil, req, tcp)
		if !ok {
			t.Fatalf("tcp %v: ANY not served by the fast path", tcp)
		}
		t.Logf("tcp %v: query %d bytes, all records %d bytes, reply %d bytes (fast path %d)", tcp, len(qb), len(fb), len(ab), len(fast))
		for what, n := range map[string]int{"answer": len(ab), "fast path": len(fast)} {
			if n > 2*len(qb) || 10*n > len(fb) {
				t.Errorf("tcp %v: %s reply %d bytes to a %d-byte query, all records %d bytes: want at most twice the query and a tenth of all",
					tcp, what, n, len(qb), len(fb))
			}
		}
		if m.Truncated {
			t.Errorf("tcp %v: TC set", tcp)
		}
	}
}

func TestAnswerHAAffixes(t *testing.T) {
	o := testOptions()
	o.HAPrefix, o.HASuffix = "", "-HA"
	runAnswerCases(t, Build(fixture(), o, 7), []answerCase{
		{name: "suffix", req: query("web-dev-ha.apps.example.com.", dns.TypeA), aa: true,
			answer: []string{"web-dev-ha.apps.example.com. 30 IN A 10.0.2.1", "web-dev-ha.apps.example.com. 30 IN A 10.0.2.2"}},
		{name: "no prefix", req: query("ha-web-dev.apps.example.com.", dns.TypeA), aa: true,
			rcode: dns.RcodeNameError, ns: []string{negSOA7}},
	})
}

// TestFailedNodeDropsOut builds the zone before and after a node member
// fails, as a member change makes the server do.
func TestFailedNodeDropsOut(t *testing.T) {
	in := fixture()
	before := Build(in, testOptions(), 7)
	for i, m := range in.Members {
		if m.Name == "n1" {
			in.Members[i].Status = store.StatusFailed
		}
	}
	after := Build(in, testOptions(), 8)
	if after.SameRecords(before) {
		t.Error("the zone did not change when a node failed")
	}
	runAnswerCases(t, after, []answerCase{
		{name: "app", req: query("web-dev.apps.example.com.", dns.TypeA), aa: true,
			answer: []string{"web-dev.apps.example.com. 30 IN A 10.0.1.2"}},
		{name: "fallback app without alive node", req: query("down-dev.apps.example.com.", dns.TypeA), aa: true,
			ns: []string{"apps.example.com. 10 IN SOA ns-b-3.apps.example.com. hostmaster.apps.example.com. 8 300 60 1209600 10"}},
	})
}

func TestNextSerial(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	tests := []struct {
		prev uint32
		want uint32
	}{
		{0, 1_700_000_000},             // first build: the clock
		{1_700_000_000, 1_700_000_001}, // two changes in a second
		{1_800_000_000, 1_800_000_001}, // ahead of the clock: still rises
		{5, 1_700_000_000},             // older serial
	}
	for _, tt := range tests {
		if got := NextSerial(tt.prev, now); got != tt.want {
			t.Errorf("NextSerial(%d) = %d, want %d", tt.prev, got, tt.want)
		}
	}
}

func TestBuildConflictsAndLimits(t *testing.T) {
	in := fixture()
	// An app named like a gear takes the name first.
	in.Apps = append(in.Apps, app("aaa1", "dev", false, false))
	// A label over 63 characters is left out.
	long := "a123456789b123456789c123456789d12"
	in.Apps = append(in.Apps, app(long, "nsnsnsnsnsnsnsnsnsnsnsnsnsnsnsns", false, false))
	tbl := Build(in, testOptions(), 7)
	if tbl.Conflicts() != 1 {
		t.Errorf("conflicts %d, want 1", tbl.Conflicts())
	}
	runAnswerCases(t, tbl, []answerCase{
		{name: "app kept the name", req: query("aaa1-dev.apps.example.com.", dns.TypeA), aa: true, ns: []string{negSOA7}},
	})
	m := new(dns.Msg)
	m.Answer = tbl.Records()
	if _, err := m.Pack(); err != nil {
		t.Errorf("the zone holds a record that does not pack: %v", err)
	}
	for _, rr := range m.Answer {
		if strings.HasPrefix(rr.Header().Name, long) {
			t.Errorf("name with a label over 63 characters: %s", rr)
		}
	}
}

func TestBuildDigest(t *testing.T) {
	a, b := Build(fixture(), testOptions(), 1), Build(fixture(), testOptions(), 2)
	if !a.SameRecords(b) {
		t.Error("same inputs, different records")
	}
	in := fixture()
	in.Statuses[0].State = state.GearStopped // aaa1 on n1: web-dev loses n1
	if c := Build(in, testOptions(), 1); c.SameRecords(a) {
		t.Error("a gear stopped and the records did not change")
	}
	in = fixture()
	in.Statuses[0].Reason = "whatever" // no effect on DNS
	if c := Build(in, testOptions(), 1); !c.SameRecords(a) {
		t.Error("a change DNS does not show changed the records")
	}
}

func TestRecords(t *testing.T) {
	tbl := Build(fixture(), testOptions(), 7)
	rrs := tbl.Records()
	if len(rrs) < 3 || rrs[0].Header().Rrtype != dns.TypeSOA || rrs[len(rrs)-1].Header().Rrtype != dns.TypeSOA {
		t.Fatalf("transfer not framed by the SOA: %v", rrStrings(rrs))
	}
	got := rrStrings(rrs)
	for _, want := range canonical(t, []string{
		"apps.example.com. 30 IN NS ns-b1.apps.example.com.",
		"ns-b1.apps.example.com. 30 IN A 10.0.0.1",
		"web-dev.apps.example.com. 30 IN A 10.0.1.2",
		"ha-web-dev.apps.example.com. 30 IN A 10.0.2.1",
		"bbb1-dev.apps.example.com. 30 IN AAAA 2001:db8::3",
	}) {
		if !slices.Contains(got, want) {
			t.Errorf("transfer lacks %s", want)
		}
	}
	for _, rr := range rrs {
		if !dns.IsSubDomain(testZone, rr.Header().Name) {
			t.Errorf("record outside the zone: %s", rr)
		}
	}
}

func TestNSLabel(t *testing.T) {
	for in, want := range map[string]string{
		"b1":                 "ns-b1",
		"Broker.Example.com": "ns-broker-example-com",
		"--x__y--":           "ns-x-y",
		"":                   "ns",
		"αβγ":                "ns",
		"a-very-long-member-name-that-goes-on-and-on-and-on-forever": "ns-a-very-long-member-name-that-goes-on-and-on-and-on-fo",
	} {
		if got := nsLabel(in); got != want {
			t.Errorf("nsLabel(%q) = %q, want %q", in, got, want)
		}
	}
}
