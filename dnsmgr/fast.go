package dnsmgr

import (
	"encoding/binary"
	"strings"

	"github.com/miekg/dns"
)

// The fast path. Most queries ask for an A or AAAA record of a name the
// table holds, and their reply depends only on the name and the type: the
// table keeps that reply packed (built once by Answer, on first use) and a
// query gets a copy with its id, flags, question case and OPT record
// patched in. Anything else, and any reply that would need truncation,
// takes Answer. TestFastMatchesAnswer checks that both agree.

// Query types whose replies are cached, by slot.
const (
	slotA = iota
	slotAAAA
	slotNS
	slotSOA
	slotCNAME
	slotANY
	numCached
)

func cacheSlot(qtype uint16) int {
	switch qtype {
	case dns.TypeA:
		return slotA
	case dns.TypeAAAA:
		return slotAAAA
	case dns.TypeNS:
		return slotNS
	case dns.TypeSOA:
		return slotSOA
	case dns.TypeCNAME:
		return slotCNAME
	case dns.TypeANY:
		return slotANY
	}
	return -1
}

// optLen is the length of the OPT record appended to replies of EDNS0
// queries: root name, type, class (UDP size), TTL (extended rcode,
// version, flags), empty RDATA.
const optLen = 11

// appendFast appends to buf the wire reply to req from t, and reports
// whether it could: false sends the query to Answer. tcp tells the
// transport (no size limit).
func (t *Table) appendFast(buf []byte, req *dns.Msg, tcp bool) ([]byte, bool) {
	if req.Response || req.Opcode != dns.OpcodeQuery || len(req.Question) != 1 {
		return buf, false
	}
	q := &req.Question[0]
	slot := cacheSlot(q.Qtype)
	if slot < 0 || q.Qclass != dns.ClassINET {
		return buf, false
	}
	var opt *dns.OPT
	switch len(req.Extra) {
	case 0:
	case 1:
		var ok bool
		if opt, ok = req.Extra[0].(*dns.OPT); !ok || opt.Version() != 0 {
			return buf, false
		}
	default:
		return buf, false
	}
	qname := strings.ToLower(q.Name)
	n := t.names[qname]
	if n == nil {
		return buf, false
	}
	cached := n.packed[slot].Load()
	if cached == nil {
		var ok bool
		if cached, ok = t.pack(qname, q.Qtype); !ok {
			return buf, false
		}
		n.packed[slot].Store(cached)
	}
	size := len(*cached)
	if opt != nil {
		size += optLen
	}
	if !tcp && size > udpLimit(req) {
		return buf, false
	}
	start := len(buf)
	buf = append(buf, *cached...)
	out := buf[start:]
	binary.BigEndian.PutUint16(out[0:], req.Id)
	if req.RecursionDesired {
		out[2] |= 0x01
	}
	if req.CheckingDisabled {
		out[3] |= 0x10
	}
	// The question name, in the query's case: a name the table holds
	// has no escapes, so each character is one byte of the wire form
	// after its length byte, and each dot a length byte.
	for i := 0; i < len(q.Name); i++ {
		if c := q.Name[i]; c != '.' {
			out[13+i] = c
		}
	}
	if opt != nil {
		binary.BigEndian.PutUint16(out[10:], binary.BigEndian.Uint16(out[10:])+1)
		var flags byte
		if opt.Do() {
			flags = 0x80
		}
		buf = append(buf, 0, byte(dns.TypeOPT>>8), byte(dns.TypeOPT), byte(maxUDPSize>>8), byte(maxUDPSize&0xff),
			0, 0, flags, 0, 0, 0)
	}
	return buf, true
}

// pack returns the packed reply to a plain query for qname and qtype: id
// 0, no RD, no EDNS0. false if it cannot be packed (then Answer will say
// why).
func (t *Table) pack(qname string, qtype uint16) (*[]byte, bool) {
	req := new(dns.Msg)
	req.Question = []dns.Question{{Name: qname, Qtype: qtype, Qclass: dns.ClassINET}}
	m := Answer(t, req)
	b, err := m.Pack()
	if err != nil || len(b) > dns.MaxMsgSize-optLen {
		return nil, false
	}
	return &b, true
}
