package dnsmgr

import (
	"crypto/sha256"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"

	"gearbox/store"
	"gearbox/store/state"
)

// Inputs are the records a table is built from: the live records of the
// store's buckets, and the membership as this member sees it.
type Inputs struct {
	Apps     []state.App
	Gears    []state.Gear
	Statuses []state.GearStatus
	Nodes    []state.Node
	Routers  []state.Router
	Claims   []state.HADNS
	// NameServers are the brokers whose DNS server serves: only those
	// of alive members are the zone's name servers.
	NameServers []state.NameServer
	Members     []store.Member
}

// Table is an immutable snapshot of the zone: every name it holds, with
// its records. Build makes one; Answer answers from one. It is safe for
// concurrent use.
type Table struct {
	opts   Options
	zone   string // lower case, fully qualified
	serial uint32
	soa    *dns.SOA
	apex   *name
	names  map[string]*name
	// digest identifies the records apart from the SOA: two tables with
	// the same digest answer alike, serial aside.
	digest [sha256.Size]byte
	// conflicts counts names that two kinds of record wanted (such as an
	// app named like a gear); the first kind built kept the name.
	conflicts int
}

// name is one owner name of the zone and its records. Every name but the
// apex is one label below it (ns-, app, ha- and gear names hold no dot),
// so the zone has no empty non-terminals. A name without records exists
// all the same (NODATA, not NXDOMAIN): an app with no node to give.
type name struct {
	owner string
	sets  []rrset // sorted by type; a CNAME, if any, is alone
	// extra are records for the additional section of answers of type
	// NS: the addresses of the name servers.
	extra []dns.RR
	// packed caches wire replies per query type, built on first use (see
	// fast.go).
	packed [numCached]atomic.Pointer[[]byte]
}

type rrset struct {
	rrtype uint16
	rrs    []dns.RR
}

// get returns the records of type t at n, or nil.
func (n *name) get(t uint16) []dns.RR {
	for i := range n.sets {
		if n.sets[i].rrtype == t {
			return n.sets[i].rrs
		}
	}
	return nil
}

// cname returns n's CNAME record, or nil.
func (n *name) cname() *dns.CNAME {
	if rrs := n.get(dns.TypeCNAME); len(rrs) > 0 {
		return rrs[0].(*dns.CNAME)
	}
	return nil
}

// Zone returns the zone the table is for, lower case and fully qualified.
func (t *Table) Zone() string { return t.zone }

// Serial returns the serial of the table's SOA.
func (t *Table) Serial() uint32 { return t.serial }

// Conflicts returns how many names two kinds of record wanted; the first
// kind built (name servers, apps, ha- names, gears, in that order) kept
// each.
func (t *Table) Conflicts() int { return t.conflicts }

// SameRecords reports whether t and u hold the same records, SOA aside.
func (t *Table) SameRecords(u *Table) bool {
	return u != nil && t.digest == u.digest && t.zone == u.zone
}

// setSerial gives the table serial s. Only before the table is shared.
func (t *Table) setSerial(s uint32) {
	t.serial = s
	t.setSOA()
}

// NextSerial is the serial that follows prev at time now: prev+1, or the
// Unix time in seconds if that is larger, so that serials also rise
// across restarts.
func NextSerial(prev uint32, now time.Time) uint32 {
	s := prev + 1
	if u := uint32(now.Unix()); int64(u) == now.Unix() && u > s {
		s = u
	}
	return s
}

// SOA timers: secondaries hear of changes by NOTIFY; refresh is the
// fallback when one is lost.
const (
	soaRefresh = 300     // 5 min
	soaRetry   = 60      // 1 min
	soaExpire  = 1209600 // 2 weeks: better stale than no answer
)

// setSOA makes t's SOA from its serial and puts it at the apex.
func (t *Table) setSOA() {
	mname := t.zone
	if ns := t.apex.get(dns.TypeNS); len(ns) > 0 {
		mname = ns[0].(*dns.NS).Ns
	}
	t.soa = &dns.SOA{
		Hdr:     dns.RR_Header{Name: t.zone, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: seconds(t.opts.TTL)},
		Ns:      mname,
		Mbox:    "hostmaster." + t.zone,
		Serial:  t.serial,
		Refresh: soaRefresh,
		Retry:   soaRetry,
		Expire:  soaExpire,
		Minttl:  seconds(t.opts.NegativeTTL),
	}
	sets := make([]rrset, 0, len(t.apex.sets)+1)
	for _, s := range t.apex.sets {
		if s.rrtype != dns.TypeSOA {
			sets = append(sets, s)
		}
	}
	sets = append(sets, rrset{dns.TypeSOA, []dns.RR{t.soa}})
	sortSets(sets)
	t.apex.sets = sets
}

// negativeSOA is the SOA of NXDOMAIN and NODATA answers: its TTL is the
// smaller of its own and its minimum (RFC 2308, section 3).
func (t *Table) negativeSOA() *dns.SOA {
	soa := *t.soa
	soa.Hdr.Ttl = min(soa.Hdr.Ttl, soa.Minttl)
	return &soa
}

func seconds(d time.Duration) uint32 { return uint32(d / time.Second) }

// Build makes the table of the zone from in, with SOA serial serial. It
// never fails: records it cannot use (an address that is
// not an IP, a name longer than DNS allows) are left out. o must have been
// checked by Config validation or come from it; Build normalizes a copy.
func Build(in Inputs, o Options, serial uint32) *Table {
	_ = o.normalize() // errors were reported by New; use what normalizes
	b := &builder{opts: o, zone: o.Zone, ttl: seconds(o.TTL), names: make(map[string]*name), kinds: make(map[string]int)}
	b.index(in)
	b.nameServers(in.NameServers)
	b.apps()
	b.haNames()
	b.gears()
	t := &Table{opts: o, zone: b.zone, names: b.names, conflicts: b.conflicts}
	t.apex = b.name(b.zone)
	t.digest = t.computeDigest()
	t.setSerial(serial)
	return t
}

// Record kinds, in the order names are given to them.
const (
	kindApex = iota + 1
	kindNS
	kindApp
	kindHA
	kindGear
)

type builder struct {
	opts      Options
	zone      string
	ttl       uint32
	names     map[string]*name
	kinds     map[string]int // name -> kind that owns it
	conflicts int

	alive    map[string]store.Member // alive members by name
	nodeAddr map[string]netip.Addr   // node member name -> address
	status   map[string]state.GearStatus
	gearsOf  map[string][]state.Gear // AppKey -> gears
	appList  []state.App
	gearList []state.Gear
	routers  []state.Router
	claims   map[string][]state.HADNS // AppKey -> claims
}

func (b *builder) index(in Inputs) {
	b.alive = make(map[string]store.Member)
	for _, m := range in.Members {
		if m.Status == store.StatusAlive {
			b.alive[m.Name] = m
		}
	}
	b.nodeAddr = make(map[string]netip.Addr)
	for _, n := range in.Nodes {
		if a, err := netip.ParseAddr(n.Addr); err == nil {
			b.nodeAddr[n.Name] = a.Unmap()
		}
	}
	b.status = make(map[string]state.GearStatus, len(in.Statuses))
	for _, s := range in.Statuses {
		b.status[s.ID] = s
	}
	b.gearsOf = make(map[string][]state.Gear)
	for _, g := range in.Gears {
		b.gearsOf[g.App] = append(b.gearsOf[g.App], g)
	}
	b.claims = make(map[string][]state.HADNS)
	for _, c := range in.Claims {
		b.claims[c.App] = append(b.claims[c.App], c)
	}
	b.appList, b.gearList, b.routers = in.Apps, in.Gears, in.Routers
}

// name returns the name owner (lower case, fully qualified), creating it.
func (b *builder) name(owner string) *name {
	n := b.names[owner]
	if n == nil {
		n = &name{owner: owner}
		b.names[owner] = n
	}
	return n
}

// claim gives owner to kind, unless another kind has it. It reports
// whether kind has it.
func (b *builder) claim(owner string, kind int) bool {
	switch k := b.kinds[owner]; k {
	case 0:
		b.kinds[owner] = kind
		return true
	case kind:
		return true
	default:
		b.conflicts++
		return false
	}
}

// host returns label.ZONE lower case, or "" if label does not make a
// valid name (too long a label or name).
func (b *builder) host(label string) string {
	label = strings.ToLower(label)
	if len(label) == 0 || len(label) > 63 || len(label)+1+len(b.zone) > 254 {
		return ""
	}
	return label + "." + b.zone
}

// add puts rr at owner.
func (b *builder) add(owner string, rr dns.RR) {
	n := b.name(owner)
	t := rr.Header().Rrtype
	for i := range n.sets {
		if n.sets[i].rrtype == t {
			n.sets[i].rrs = append(n.sets[i].rrs, rr)
			return
		}
	}
	n.sets = append(n.sets, rrset{t, []dns.RR{rr}})
	sortSets(n.sets)
}

// addAddrs puts an A or AAAA record at owner for each of addrs, sorted
// and without duplicates.
func (b *builder) addAddrs(owner string, addrs []netip.Addr) {
	slices.SortFunc(addrs, func(x, y netip.Addr) int { return x.Compare(y) })
	addrs = slices.Compact(addrs)
	for _, a := range addrs {
		b.add(owner, b.addrRR(owner, a))
	}
}

func (b *builder) addrRR(owner string, a netip.Addr) dns.RR {
	if a.Is4() {
		return &dns.A{Hdr: dns.RR_Header{Name: owner, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: b.ttl}, A: a.AsSlice()}
	}
	return &dns.AAAA{Hdr: dns.RR_Header{Name: owner, Rrtype: dns.TypeAAAA, Class: dns.ClassINET, Ttl: b.ttl}, AAAA: a.AsSlice()}
}

// nameServers makes the apex and one NS name per serving DNS server of an
// alive member, with the server's address: ns-NAME.ZONE, NAME being the
// member's name made a DNS label. A broker that runs no DNS server, or
// whose server stopped or could not bind, registers none and is left
// out: resolvers would wait on it for nothing.
func (b *builder) nameServers(in []state.NameServer) {
	b.claim(b.zone, kindApex)
	b.name(b.zone)
	type server struct {
		name string
		addr netip.Addr
	}
	var servers []server
	for _, ns := range in {
		m, ok := b.alive[ns.Name]
		if !ok {
			continue
		}
		a, err := netip.ParseAddr(ns.Addr)
		if err != nil {
			if a, err = netip.ParseAddr(m.Addr); err != nil {
				continue
			}
		}
		servers = append(servers, server{ns.Name, a})
	}
	slices.SortFunc(servers, func(x, y server) int { return strings.Compare(x.name, y.name) })
	taken := make(map[string]bool)
	for _, s := range servers {
		a := s.addr
		label := nsLabel(s.name)
		for i := 2; taken[label]; i++ {
			label = nsLabel(s.name) + "-" + strconv.Itoa(i)
		}
		taken[label] = true
		owner := b.host(label)
		if owner == "" || !b.claim(owner, kindNS) {
			continue
		}
		b.add(b.zone, &dns.NS{Hdr: dns.RR_Header{Name: b.zone, Rrtype: dns.TypeNS, Class: dns.ClassINET, Ttl: b.ttl}, Ns: owner})
		rr := b.addrRR(owner, a.Unmap())
		b.add(owner, rr)
		apex := b.name(b.zone)
		apex.extra = append(apex.extra, rr)
	}
}

// nsLabel makes member name a label of the form ns-NAME: lower case,
// characters other than letters, digits and dashes replaced by dashes,
// short enough to leave room for a "-N" that tells apart two members
// whose names make the same label.
func nsLabel(member string) string {
	var sb strings.Builder
	sb.WriteString("ns-")
	dash := true
	for _, c := range strings.ToLower(member) {
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		switch {
		case ok:
			sb.WriteRune(c)
			dash = false
		case !dash:
			sb.WriteByte('-')
			dash = true
		}
		if sb.Len() >= 56 {
			break
		}
	}
	return strings.TrimRight(sb.String(), "-")
}

// healthy reports whether gear g serves: desired started, observed
// started and not draining, on an alive node member.
func (b *builder) healthy(g state.Gear) bool {
	s, ok := b.status[g.ID]
	_, alive := b.alive[g.Node]
	return g.State == state.GearStarted && ok && s.State == state.GearStarted && !s.Draining && alive
}

// apps makes APP-NS.ZONE for every app: the addresses of the nodes of the
// app's healthy LB gears, or of its gears when it is not scalable. When
// none is healthy, the nodes of those gears whose member is alive, so that
// a stopped or starting app still reaches a node that answers for it;
// when none is alive either, the name exists without records (NODATA).
func (b *builder) apps() {
	for _, a := range b.appList {
		owner := b.host(a.Name + "-" + a.Domain)
		if owner == "" || !b.claim(owner, kindApp) {
			continue
		}
		b.name(owner)
		var serving []state.Gear
		for _, g := range b.gearsOf[state.AppKey(a.Domain, a.Name)] {
			if g.LB || !a.Scalable {
				serving = append(serving, g)
			}
		}
		var healthy, alive []netip.Addr
		for _, g := range serving {
			addr, ok := b.nodeAddr[g.Node]
			if !ok {
				continue
			}
			if _, up := b.alive[g.Node]; up {
				alive = append(alive, addr)
			}
			if b.healthy(g) {
				healthy = append(healthy, addr)
			}
		}
		if len(healthy) == 0 {
			healthy = alive
		}
		b.addAddrs(owner, healthy)
	}
}

// haNames makes the ha- name of every HA app: a CNAME to the router
// hostname; or the addresses of the alive routers; or, when the routing
// layer manages ha- names, the addresses of the alive routers that claim
// the app's name. Without routers the name exists with no records; without
// a claim (routing layer mode) it does not exist.
func (b *builder) haNames() {
	var routers []netip.Addr
	for _, r := range b.routers {
		if _, up := b.alive[r.Name]; !up {
			continue
		}
		if a, err := netip.ParseAddr(r.Addr); err == nil {
			routers = append(routers, a.Unmap())
		}
	}
	for _, a := range b.appList {
		if !a.HA {
			continue
		}
		claims := b.claims[state.AppKey(a.Domain, a.Name)]
		if !b.opts.ManageHADNS && len(claims) == 0 {
			continue
		}
		owner := strings.ToLower(state.HAHost(a.Name, a.Domain, b.zone, b.opts.HAPrefix, b.opts.HASuffix))
		label, _, _ := strings.Cut(owner, ".")
		if b.host(label) == "" || !b.claim(owner, kindHA) {
			continue
		}
		b.name(owner)
		switch {
		case !b.opts.ManageHADNS:
			var addrs []netip.Addr
			for _, c := range claims {
				if _, up := b.alive[c.Router]; !up {
					continue
				}
				if ip, err := netip.ParseAddr(c.Addr); err == nil {
					addrs = append(addrs, ip.Unmap())
				}
			}
			b.addAddrs(owner, addrs)
		case b.opts.RouterHostname != "":
			b.add(owner, &dns.CNAME{Hdr: dns.RR_Header{Name: owner, Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: b.ttl},
				Target: b.opts.RouterHostname})
		default:
			b.addAddrs(owner, slices.Clone(routers))
		}
	}
}

// gears makes GEARID-NS.ZONE for every gear: the address of its node,
// whatever the gear's health (the name says where the gear lives).
func (b *builder) gears() {
	for _, g := range b.gearList {
		owner := b.host(g.ID + "-" + g.Domain)
		if owner == "" || !b.claim(owner, kindGear) {
			continue
		}
		b.name(owner)
		if a, ok := b.nodeAddr[g.Node]; ok {
			b.addAddrs(owner, []netip.Addr{a})
		}
	}
}

func sortSets(sets []rrset) {
	slices.SortFunc(sets, func(x, y rrset) int { return int(x.rrtype) - int(y.rrtype) })
}

// sortedNames returns the table's owner names in canonical DNS order
// (RFC 4034, section 6.1), the apex first.
func (t *Table) sortedNames() []string {
	names := make([]string, 0, len(t.names))
	for k := range t.names {
		names = append(names, k)
	}
	slices.SortFunc(names, compareNames)
	return names
}

// compareNames orders lower-case names canonically: label by label from
// the right.
func compareNames(x, y string) int {
	lx, ly := dns.SplitDomainName(x), dns.SplitDomainName(y)
	for i, j := len(lx)-1, len(ly)-1; i >= 0 && j >= 0; i, j = i-1, j-1 {
		if c := strings.Compare(lx[i], ly[j]); c != 0 {
			return c
		}
	}
	return len(lx) - len(ly)
}

// computeDigest hashes every record but the SOA, in canonical order.
func (t *Table) computeDigest() [sha256.Size]byte {
	h := sha256.New()
	for _, owner := range t.sortedNames() {
		n := t.names[owner]
		h.Write([]byte(owner))
		h.Write([]byte{0})
		for _, s := range n.sets {
			if s.rrtype == dns.TypeSOA {
				continue
			}
			for _, rr := range s.rrs {
				h.Write([]byte(rr.String()))
				h.Write([]byte{'\n'})
			}
		}
	}
	var d [sha256.Size]byte
	h.Sum(d[:0])
	return d
}

// Records returns every record of the zone in transfer order: the SOA,
// the other records by owner name in canonical order, the SOA again
// (RFC 5936).
func (t *Table) Records() []dns.RR {
	out := []dns.RR{t.soa}
	for _, owner := range t.sortedNames() {
		for _, s := range t.names[owner].sets {
			if s.rrtype != dns.TypeSOA {
				out = append(out, s.rrs...)
			}
		}
	}
	return append(out, t.soa)
}
