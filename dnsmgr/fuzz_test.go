package dnsmgr

import (
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/miekg/dns"
	"github.com/rs/zerolog"
)

// recorder is a dns.ResponseWriter that keeps what is written, as
// coredns's dnstest.Recorder does.
type recorder struct {
	tcp     bool
	replies [][]byte
}

func (r *recorder) LocalAddr() net.Addr {
	if r.tcp {
		return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53}
	}
	return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53}
}

func (r *recorder) RemoteAddr() net.Addr {
	if r.tcp {
		return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
	}
	return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
}

func (r *recorder) WriteMsg(m *dns.Msg) error {
	b, err := m.Pack()
	if err != nil {
		return err
	}
	_, err = r.Write(b)
	return err
}

func (r *recorder) Write(b []byte) (int, error) {
	r.replies = append(r.replies, append([]byte(nil), b...))
	return len(b), nil
}

func (r *recorder) Close() error        { return nil }
func (r *recorder) TsigStatus() error   { return nil }
func (r *recorder) TsigTimersOnly(bool) {}
func (r *recorder) Hijack()             {}

// fuzzServer is a Server over the fixture zone, without sockets or store,
// that lets 127.0.0.1 transfer the zone.
func fuzzServer() *Server {
	s := &Server{log: zerolog.Nop(), allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}
	s.bufs.New = func() any { b := make([]byte, 0, 512); return &b }
	big := bigApp(60)
	in := fixture()
	in.Apps = append(in.Apps, big.Apps...)
	in.Gears = append(in.Gears, big.Gears...)
	in.Statuses = append(in.Statuses, big.Statuses...)
	in.Nodes = append(in.Nodes, big.Nodes...)
	in.Members = append(in.Members, big.Members...)
	o := testOptions()
	o.RouterHostname = "router.example.net"
	s.table.Store(Build(in, o, 7))
	return s
}

// FuzzServeDNS feeds packets to the handler as the UDP loop and TCP
// connections do: nothing panics; packets without a header and responses
// get no reply; every other query gets one (FORMERR if it does not
// unpack) that unpacks, fits UDP's limit, carries the query's id, and
// holds no record outside the zone.
func FuzzServeDNS(f *testing.F) {
	seed := func(m *dns.Msg) {
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	seed(query("web-dev.apps.example.com.", dns.TypeA))
	seed(query("WEB-dev.Apps.example.com.", dns.TypeAAAA))
	seed(query("ha-web-dev.apps.example.com.", dns.TypeA))
	seed(query("apps.example.com.", dns.TypeNS))
	seed(query("apps.example.com.", dns.TypeANY))
	seed(query("nope-dev.apps.example.com.", dns.TypeA))
	seed(query("example.org.", dns.TypeA))
	seed(query(`x\.apps.example.com.`, dns.TypeA))
	big := query("big-dev.apps.example.com.", dns.TypeA)
	seed(big)
	big.SetEdns0(700, true)
	seed(big)
	axfr := new(dns.Msg)
	axfr.SetAxfr(testZone)
	seed(axfr)
	ixfr := new(dns.Msg)
	ixfr.SetIxfr(testZone, 1, "ns."+testZone, "hostmaster."+testZone)
	seed(ixfr)
	notify := new(dns.Msg)
	notify.SetNotify(testZone)
	seed(notify)
	two := query("web-dev.apps.example.com.", dns.TypeA)
	two.Question = append(two.Question, dns.Question{Name: "example.org.", Qtype: dns.TypeA, Qclass: dns.ClassINET})
	seed(two)
	v1 := query("web-dev.apps.example.com.", dns.TypeA)
	v1.SetEdns0(1232, false)
	v1.IsEdns0().SetVersion(1)
	seed(v1)
	f.Add([]byte{})
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12})
	f.Add([]byte(strings.Repeat("\xff", 40)))

	s := fuzzServer()
	zone := s.table.Load().zone
	f.Fuzz(func(t *testing.T, pkt []byte) {
		// req is the query as the handler sees it; nil when it does
		// not unpack (the reply must then be FORMERR).
		req := new(dns.Msg)
		if err := req.Unpack(pkt); err != nil {
			req = nil
		}
		for _, tcp := range []bool{false, true} {
			var replies [][]byte
			if tcp {
				w := &recorder{tcp: true}
				handler{s, true}.servePacket(w, pkt)
				replies = w.replies
			} else {
				w := &udpReply{local: &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53},
					remote: &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}}
				handler{s, false}.servePacket(w, pkt)
				if len(w.buf) > 0 {
					replies = [][]byte{w.buf}
				}
			}
			if n := s.panics.Load(); n > 0 {
				t.Fatalf("handler panicked on %x", pkt)
			}
			if len(pkt) < 12 || pkt[2]&0x80 != 0 {
				if len(replies) > 0 {
					t.Errorf("reply to a packet without header or to a response: %x", pkt)
				}
				continue
			}
			if len(replies) == 0 && (req == nil || req.Opcode == dns.OpcodeQuery) {
				t.Errorf("no reply (tcp %v) to %x", tcp, pkt)
			}
			for _, b := range replies {
				m := new(dns.Msg)
				if err := m.Unpack(b); err != nil {
					t.Fatalf("reply does not unpack: %v\nquery: %x", err, pkt)
				}
				if id := uint16(pkt[0])<<8 | uint16(pkt[1]); m.Id != id || !m.Response || m.RecursionAvailable {
					t.Errorf("reply id %d response %v RA %v to query %d", m.Id, m.Response, m.RecursionAvailable, id)
				}
				if req == nil {
					if m.Rcode != dns.RcodeFormatError {
						t.Errorf("%s to a query that does not unpack", dns.RcodeToString[m.Rcode])
					}
					continue
				}
				if !tcp && len(b) > udpLimit(req) {
					t.Errorf("UDP reply of %d bytes, limit %d", len(b), udpLimit(req))
				}
				for _, sec := range [][]dns.RR{m.Answer, m.Ns, m.Extra} {
					for _, rr := range sec {
						if rr.Header().Rrtype == dns.TypeOPT {
							continue
						}
						if !dns.IsSubDomain(zone, rr.Header().Name) {
							t.Errorf("record outside the zone: %s\nquery: %v", rr, req)
						}
					}
				}
				if len(req.Question) == 1 && !dns.IsSubDomain(zone, req.Question[0].Name) &&
					(m.Rcode != dns.RcodeRefused && m.Rcode != dns.RcodeNotImplemented && m.Rcode != dns.RcodeFormatError &&
						m.Rcode != dns.RcodeBadVers || len(m.Answer)+len(m.Ns) > 0) {
					t.Errorf("query outside the zone got %s with %d records", dns.RcodeToString[m.Rcode], len(m.Answer)+len(m.Ns))
				}
			}
		}
	})
}
