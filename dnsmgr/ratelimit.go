package dnsmgr

import (
	"encoding/binary"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Response-rate limiting (RRL), as in NSD and BIND. A UDP query's source
// address can be forged, so that an attacker can make the server send its
// replies to a victim; the limit bounds what one client prefix (a /24 of
// IPv4, a /56 of IPv6: what one network holds) gets a second, so that
// the server is no use for such floods. Above the limit most replies are
// dropped, and every Config.RateSlip-th is sent empty with TC set (it
// "slips"): a real client, whose queries a flood aimed at its network
// would otherwise silence, retries over TCP, which is not limited (a TCP
// client's address cannot be forged: the handshake proves it). The limit
// counts every UDP reply, errors included; TCP is bounded by its own cap
// (see tcp.go).

// Rate limit defaults.
const (
	// DefaultRateLimit is the UDP responses a second one client prefix
	// gets, as NSD's rrl-ratelimit: far above what the resolvers of a
	// network ask of one zone, far below what a flood needs.
	DefaultRateLimit = 200
	// DefaultRateSlip sends every second limited reply truncated, as
	// BIND's and NSD's default slip: half of a real client's retries
	// reach TCP at once, and a flood is halved and sent as empty replies,
	// no larger than its queries.
	DefaultRateSlip = 2
	// rateBurstDivisor makes the default burst a quarter of a second at
	// the rate: a resolver asking for a page's names at once is answered,
	// a flood gets little more than the rate.
	rateBurstDivisor = 4
	// limitLogBurst is how many rate-limited responses are logged a
	// minute; the "limited" field of each counts them all.
	limitLogBurst = 10
)

// The limiter's table of prefixes is bounded: a flood of forged sources
// from many prefixes must not grow it without end. rateTableSize entries
// (about 40 bytes each with the map's overhead: a few megabytes) are
// spread over rateShards shards, each with its lock, so that the UDP
// readers rarely wait on each other. When a shard is full, a new prefix
// evicts entries whose bucket has refilled (they hold nothing a new entry
// would not), and when there are too few of those, any entries (the map's
// order, which Go randomizes): a prefix evicted while limited starts again
// with a full burst, the cost of a bound, as in BIND's max-table-size.
// Each eviction frees at least an eighth of the shard, so that its scan
// costs a few steps a query even under such a flood.
const (
	rateTableSize = 1 << 16
	rateShards    = 64
)

// rateVerdict is what the limiter makes of one reply.
type rateVerdict uint8

const (
	rateAllow rateVerdict = iota // send the reply
	rateSlip                     // send it empty and truncated
	rateDrop                     // send nothing
)

// rateLimiter is a token bucket per client prefix, kept as the bucket's
// theoretical arrival time (GCRA, the generic cell rate algorithm: one
// integer an entry): a reply is allowed when sending it keeps that time
// within the burst of now. It is safe for concurrent use.
type rateLimiter struct {
	interval  int64 // nanoseconds a reply costs: a second over the rate
	tolerance int64 // how far ahead of now the bucket may run: burst replies
	slip      int   // every slip-th limited reply slips; 0: none
	perShard  int   // entries a shard holds at most
	epoch     time.Time
	shards    [rateShards]rateShard
}

type rateShard struct {
	mu sync.Mutex
	m  map[uint64]rateEntry
	_  [48]byte // a cache line a shard, so that locks do not share one
}

type rateEntry struct {
	// tat is the time, in nanoseconds since the limiter's epoch, the
	// bucket is full again; not after now, it is full.
	tat int64
	// limited counts the prefix's limited replies, for the slip.
	limited uint32
}

// newRateLimiter returns a limiter of rate replies a second, burst at
// once, every slip-th limited reply slipping (0: none), at most size
// prefixes, its clock starting at epoch (the time of the first reply is
// as good as any: the limiter only compares times it is given).
func newRateLimiter(rate, burst, slip, size int, epoch time.Time) *rateLimiter {
	interval := int64(time.Second) / int64(rate)
	l := &rateLimiter{interval: interval, tolerance: int64(burst) * interval, slip: max(slip, 0),
		perShard: max(size/rateShards, 1), epoch: epoch}
	for i := range l.shards {
		l.shards[i].m = make(map[uint64]rateEntry)
	}
	return l
}

// prefixKey identifies the client prefix of addr: its first 24 bits for
// IPv4 (an IPv4-mapped IPv6 address counts as IPv4), its first 56 bits for
// IPv6, the top bit telling them apart.
func prefixKey(addr netip.Addr) uint64 {
	addr = addr.Unmap()
	if addr.Is4() {
		b := addr.As4()
		return 1<<63 | uint64(b[0])<<16 | uint64(b[1])<<8 | uint64(b[2])
	}
	b := addr.As16()
	return binary.BigEndian.Uint64(b[:8]) >> 8
}

// clientPrefix is the prefix prefixKey stands for, for logs.
func clientPrefix(addr netip.Addr) netip.Prefix {
	addr = addr.Unmap()
	bits := 56
	if addr.Is4() {
		bits = 24
	}
	p, _ := addr.Prefix(bits)
	return p
}

// allow takes a reply to addr at now from the bucket of addr's prefix, and
// says whether to send it, slip it or drop it.
func (l *rateLimiter) allow(addr netip.Addr, now time.Time) rateVerdict {
	key := prefixKey(addr)
	t := int64(now.Sub(l.epoch))
	sh := &l.shards[(key*0x9e3779b97f4a7c15)>>(64-6)] // 2^6 = rateShards
	sh.mu.Lock()
	e, ok := sh.m[key]
	if !ok {
		if len(sh.m) >= l.perShard {
			sh.evict(t, max(l.perShard/8, 1))
		}
		e.tat = t
	}
	tat := max(e.tat, t)
	if tat+l.interval-t <= l.tolerance {
		e.tat = tat + l.interval
		sh.m[key] = e
		sh.mu.Unlock()
		return rateAllow
	}
	e.limited++
	sh.m[key] = e
	sh.mu.Unlock()
	if l.slip > 0 && e.limited%uint32(l.slip) == 0 {
		return rateSlip
	}
	return rateDrop
}

// evict deletes the entries whose bucket is full at t, and others if that
// frees fewer than want.
func (sh *rateShard) evict(t int64, want int) {
	freed := 0
	for k, e := range sh.m {
		if e.tat <= t {
			delete(sh.m, k)
			freed++
		}
	}
	for k := range sh.m {
		if freed >= want {
			break
		}
		delete(sh.m, k)
		freed++
	}
}

// len returns how many prefixes the limiter holds.
func (l *rateLimiter) len() int {
	n := 0
	for i := range l.shards {
		sh := &l.shards[i]
		sh.mu.Lock()
		n += len(sh.m)
		sh.mu.Unlock()
	}
	return n
}

// limit is the limiter's verdict on a UDP reply to remote: always allow
// when the limit is off or remote is no UDP address. It logs limited
// prefixes, a burst a minute.
func (s *Server) limit(remote net.Addr) rateVerdict {
	if s.rrl == nil {
		return rateAllow
	}
	a, ok := remote.(*net.UDPAddr)
	if !ok {
		return rateAllow
	}
	addr := a.AddrPort().Addr()
	v := s.rrl.allow(addr, s.now())
	if v != rateAllow {
		n := s.limited.Add(1)
		if e := s.limitLog.Warn(); e.Enabled() {
			e.Stringer("prefix", clientPrefix(addr)).Int64("limited", n).Int("rate_limit", s.cfg.RateLimit).
				Str("fix", "a flood of forged queries needs nothing; a resolver this busy may need a higher --dns-rate-limit").
				Msg("dns responses rate-limited")
		}
	}
	return v
}

// truncated is the reply that slips: the query's header and question with
// TC set and nothing else, which sends the client to TCP.
func truncated(req *dns.Msg) *dns.Msg {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Truncated = true
	if opt := req.IsEdns0(); opt != nil {
		m.SetEdns0(maxUDPSize, opt.Do())
	}
	return m
}
