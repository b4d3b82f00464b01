package dnsmgr

import (
	"strings"

	"github.com/miekg/dns"
)

// UDP sizes.
const (
	// minUDPSize is what every client takes over UDP (RFC 1035).
	minUDPSize = dns.MinMsgSize
	// maxUDPSize is the largest UDP reply sent, and the size advertised
	// in OPT: 1232 bytes, as DNS Flag Day 2020 and BIND, so that replies
	// are never fragmented; larger ones are truncated and go over TCP.
	maxUDPSize = 1232
)

// Answer returns the reply to req from table t, or nil when req is a
// response (answering responses lets anyone make two servers talk to each
// other forever). It never recurses and never answers for names outside
// t's zone (REFUSED); it sets AA on answers from the zone. It does not
// truncate (see Fit) and refuses zone transfers, which Server serves
// apart.
func Answer(t *Table, req *dns.Msg) *dns.Msg {
	if req.Response {
		return nil
	}
	m := new(dns.Msg)
	m.SetReply(req)
	m.Compress = true
	opt := req.IsEdns0()
	if opt != nil {
		m.SetEdns0(maxUDPSize, opt.Do())
	}
	switch {
	case req.Opcode != dns.OpcodeQuery:
		// NOTIFY included: this server is the zone's primary.
		return rcode(m, dns.RcodeNotImplemented)
	case len(req.Question) != 1 || countOPT(req.Extra) > 1:
		return rcode(m, dns.RcodeFormatError)
	case opt != nil && opt.Version() != 0:
		return rcode(m, dns.RcodeBadVers)
	}
	q := req.Question[0]
	qname := strings.ToLower(q.Name)
	switch {
	case q.Qclass != dns.ClassINET && q.Qclass != dns.ClassANY:
		return rcode(m, dns.RcodeRefused)
	case !inZone(qname, t.zone):
		return rcode(m, dns.RcodeRefused)
	case q.Qtype == dns.TypeAXFR || q.Qtype == dns.TypeIXFR:
		return rcode(m, dns.RcodeRefused)
	}
	m.Authoritative = true
	t.lookup(m, qname, q.Qtype)
	return m
}

// lookup fills m's sections with the answer to qname (lower case, in the
// zone) and qtype.
func (t *Table) lookup(m *dns.Msg, qname string, qtype uint16) {
	n := t.names[qname]
	if n == nil {
		m.Rcode = dns.RcodeNameError
		m.Ns = []dns.RR{t.negativeSOA()}
		return
	}
	if c := n.cname(); c != nil && qtype != dns.TypeCNAME && qtype != dns.TypeANY {
		m.Answer = append(m.Answer, c)
		// Follow the alias once when it points inside the zone; a
		// target outside is for the client's resolver.
		if inZone(c.Target, t.zone) {
			if tn := t.names[c.Target]; tn == nil {
				m.Rcode = dns.RcodeNameError
				m.Ns = []dns.RR{t.negativeSOA()}
			} else if rrs := t.data(tn, qtype); len(rrs) > 0 {
				m.Answer = append(m.Answer, rrs...)
			} else if tn.cname() == nil {
				m.Ns = []dns.RR{t.negativeSOA()}
			}
		}
		return
	}
	rrs := t.data(n, qtype)
	if len(rrs) == 0 {
		// NODATA: the name exists, without records of that type.
		m.Ns = []dns.RR{t.negativeSOA()}
		return
	}
	m.Answer = append(m.Answer, rrs...)
	if qtype == dns.TypeNS {
		m.Extra = append(m.Extra, n.extra...)
	}
}

// data returns n's records of qtype; for ANY, its CNAME or the RFC 8482
// record (see below).
func (t *Table) data(n *name, qtype uint16) []dns.RR {
	if qtype != dns.TypeANY {
		return n.get(qtype)
	}
	switch {
	case len(n.sets) == 0:
		return nil
	case n.cname() != nil:
		return n.get(dns.TypeCNAME)
	}
	return []dns.RR{t.anyHINFO(n.owner)}
}

// ANY queries get a minimal answer (RFC 8482): every record of a name in
// one UDP reply is what reflection attacks look for (the apex's SOA, NS
// records and their addresses are many times the query), and no client
// needs it: resolvers ask by type. Of the RFC's choices this server
// takes the synthesized HINFO (section 4.2), whose CPU field says
// "RFC8482" and OS field is empty, rather than one RRset of the name
// (section 4.1): its size does not depend on the name (one RRset of an
// app with a hundred nodes is a hundred A records), and it tells whoever
// reads it why. A name with a CNAME answers the CNAME alone, as section 4.2
// asks (the CNAME matches ANY, so it is not followed); a name without
// records stays NODATA. The answer is the same over TCP, which section 4.4
// would allow to be complete: a name's records are all there by type.
// Its TTL is the zone's: an operator changing this rule waits no longer
// than for any other record.

// anyHINFO is the record that answers ANY at owner.
func (t *Table) anyHINFO(owner string) dns.RR {
	return &dns.HINFO{Hdr: dns.RR_Header{Name: owner, Rrtype: dns.TypeHINFO, Class: dns.ClassINET, Ttl: seconds(t.opts.TTL)},
		Cpu: "RFC8482"}
}

// rcode makes m an empty reply with code c.
func rcode(m *dns.Msg, c int) *dns.Msg {
	m.Rcode = c
	m.Authoritative = false
	m.Answer, m.Ns = nil, nil
	return m
}

func countOPT(rrs []dns.RR) int {
	n := 0
	for _, rr := range rrs {
		if rr.Header().Rrtype == dns.TypeOPT {
			n++
		}
	}
	return n
}

// inZone reports whether name (lower case, fully qualified) is zone or
// below it.
func inZone(name, zone string) bool {
	if strings.IndexByte(name, '\\') >= 0 {
		// An escaped dot is no label boundary: let miekg/dns split.
		return dns.IsSubDomain(zone, name)
	}
	return name == zone || len(name) > len(zone) && name[len(name)-len(zone)-1] == '.' && name[len(name)-len(zone):] == zone
}

// Fit truncates reply m to req's size limit when the reply goes over UDP:
// the client's EDNS0 UDP size, at least 512 and at most 1232 bytes, or 512
// without EDNS0. It sets TC when records had to be left out, which sends
// the client to TCP. Over TCP it does nothing.
func Fit(m, req *dns.Msg, tcp bool) {
	if tcp {
		return
	}
	m.Truncate(udpLimit(req))
}

// udpLimit is the largest UDP reply req may get.
func udpLimit(req *dns.Msg) int {
	size := minUDPSize
	if opt := req.IsEdns0(); opt != nil {
		size = min(max(int(opt.UDPSize()), minUDPSize), maxUDPSize)
	}
	return size
}
