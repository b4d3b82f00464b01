package dnsmgr

import (
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"

	"gearbox/store"
)

// rateServer is fuzzServer with the rate limit of DefaultConfig and a
// clock the test sets.
func rateServer(t *testing.T) (*Server, *time.Time) {
	t.Helper()
	cfg := DefaultConfig(nil, testZone)
	cfg.validate() // fills RateBurst and RateSlip; the missing store is no matter here
	if cfg.RateLimit != 200 || cfg.RateBurst != 50 || cfg.RateSlip != 2 {
		t.Fatalf("defaults: rate %d burst %d slip %d, want 200, 50 and 2", cfg.RateLimit, cfg.RateBurst, cfg.RateSlip)
	}
	s := fuzzServer()
	s.cfg = cfg
	s.limitLog = testLogger()
	now := time.Unix(1_700_000_000, 0)
	s.now = func() time.Time { return now }
	s.rrl = newRateLimiter(cfg.RateLimit, cfg.RateBurst, cfg.RateSlip, rateTableSize, now)
	return s, &now
}

// udpQuery sends req to s's UDP handler from ip and returns the reply, nil
// for none.
func udpQuery(t *testing.T, s *Server, ip string, req *dns.Msg) *dns.Msg {
	t.Helper()
	b, err := req.Pack()
	if err != nil {
		t.Fatal(err)
	}
	w := &udpReply{remote: &net.UDPAddr{IP: net.ParseIP(ip), Port: 40000}}
	handler{s, false}.servePacket(w, b)
	if len(w.buf) == 0 {
		return nil
	}
	m := new(dns.Msg)
	if err := m.Unpack(w.buf); err != nil {
		t.Fatalf("reply does not unpack: %v", err)
	}
	return m
}

// TestRateLimitFlood is a reflection attack: 1000 queries for a name with
// 60 records in one second, from addresses of one /24 (the victim's,
// forged). At most the rate and the burst get answers; of the others,
// every second gets an empty truncated reply and the rest nothing. Another
// prefix is answered meanwhile, and the flooded one once its bucket has
// refilled.
func TestRateLimitFlood(t *testing.T) {
	s, now := rateServer(t)
	start := *now
	req := query("big-dev.apps.example.com.", dns.TypeA)
	req.SetEdns0(1232, false)
	var full, slipped, dropped int
	for i := range 1000 {
		*now = start.Add(time.Duration(i) * time.Millisecond)
		m := udpQuery(t, s, fmt.Sprintf("192.0.2.%d", i%250+1), req)
		switch {
		case m == nil:
			dropped++
		case m.Truncated && len(m.Answer) == 0 && m.Rcode == dns.RcodeSuccess:
			slipped++
			if m.Id != req.Id || len(m.Question) != 1 || m.Question[0] != req.Question[0] || m.IsEdns0() == nil {
				t.Fatalf("slipped reply %v: want the query's id, question and OPT", m)
			}
		case !m.Truncated && len(m.Answer) == 60:
			full++
		default:
			t.Fatalf("reply %d: %v", i, m)
		}
	}
	t.Logf("1000 queries in 1 s from one /24: %d answered, %d truncated, %d dropped", full, slipped, dropped)
	if full > 200+50 || full < 200 {
		t.Errorf("%d answered, want the rate and the burst, 200 to 250", full)
	}
	if limited := 1000 - full; slipped != limited/2 || dropped != limited-slipped {
		t.Errorf("%d limited: %d truncated and %d dropped, want every second truncated", limited, slipped, dropped)
	}
	if got := s.limited.Load(); got != int64(1000-full) {
		t.Errorf("%d counted as limited, want %d", got, 1000-full)
	}

	if m := udpQuery(t, s, "198.51.100.7", req); m == nil || m.Truncated || len(m.Answer) != 60 {
		t.Errorf("another prefix during the flood: %v, want an answer", m)
	}
	if m := udpQuery(t, s, "192.0.2.99", req); m != nil && !m.Truncated {
		t.Errorf("flooded prefix, same second: answered")
	}
	*now = now.Add(time.Second)
	if m := udpQuery(t, s, "192.0.2.99", req); m == nil || m.Truncated || len(m.Answer) != 60 {
		t.Errorf("flooded prefix a second later: %v, want an answer", m)
	}

	// TCP is not limited: it is where slipped clients go.
	w := &recorder{tcp: true}
	b, _ := req.Pack()
	for range 300 {
		handler{s, true}.servePacket(w, b)
	}
	if len(w.replies) != 300 {
		t.Errorf("TCP: %d replies to 300 queries", len(w.replies))
	}
}

func TestRatePrefixes(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		same bool
	}{
		{"192.0.2.1", "192.0.2.254", true},
		{"192.0.2.1", "192.0.3.1", false},
		{"192.0.2.1", "::ffff:192.0.2.9", true},
		{"192.0.2.1", "::c000:201", false}, // IPv6, not mapped
		{"2001:db8:0:100::1", "2001:db8:0:1ff:ffff::1", true},
		{"2001:db8:0:100::1", "2001:db8:0:200::1", false},
		{"2001:db8::1", "2001:db9::1", false},
		{"0.0.0.0", "::", false},
	} {
		a, b := netip.MustParseAddr(tt.a), netip.MustParseAddr(tt.b)
		if got := prefixKey(a) == prefixKey(b); got != tt.same {
			t.Errorf("%s and %s: same prefix %v, want %v", tt.a, tt.b, got, tt.same)
		}
		if got := clientPrefix(a) == clientPrefix(b); got != tt.same {
			t.Errorf("%s and %s: logged as %s and %s", tt.a, tt.b, clientPrefix(a), clientPrefix(b))
		}
	}
	if p := clientPrefix(netip.MustParseAddr("2001:db8:0:1ff::1")).String(); p != "2001:db8:0:100::/56" {
		t.Errorf("logged prefix %s", p)
	}
}

// TestRateTableBounded floods the limiter from many prefixes, as forged
// sources would: the table never holds more than its size; entries whose
// bucket has refilled go first, so that a prefix being limited stays so.
func TestRateTableBounded(t *testing.T) {
	const size = rateShards * 128
	epoch := time.Unix(1_700_000_000, 0)
	l := newRateLimiter(200, 50, 2, size, epoch)
	now := epoch
	addr := func(i int) netip.Addr {
		if i%2 == 0 {
			return netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), 1})
		}
		var b [16]byte
		b[0], b[1], b[4], b[5], b[6] = 0x20, 0x01, byte(i>>16), byte(i>>8), byte(i)
		return netip.AddrFrom16(b)
	}
	for i := range 10 * size {
		now = now.Add(time.Microsecond)
		l.allow(addr(i), now)
		if n := l.len(); n > size {
			t.Fatalf("%d entries after %d prefixes, want at most %d", n, i+1, size)
		}
	}
	if n := l.len(); n < size*7/8 {
		t.Errorf("%d entries, want the table nearly full", n)
	}

	// A second on, every entry has refilled. A prefix floods until
	// limited, then new prefixes come: they take the place of the old
	// ones, not of the limited one.
	now = now.Add(time.Second)
	flood := netip.MustParseAddr("192.0.2.1")
	for range 50 {
		if v := l.allow(flood, now); v != rateAllow {
			t.Fatalf("flood limited before its burst: %v", v)
		}
	}
	if v := l.allow(flood, now); v == rateAllow {
		t.Fatal("flood not limited after its burst")
	}
	for i := range size / 4 {
		l.allow(addr(20*size+i), now)
	}
	if n := l.len(); n > size {
		t.Errorf("%d entries, want at most %d", n, size)
	}
	if v := l.allow(flood, now); v == rateAllow {
		t.Error("flood evicted: answered again within its second")
	}
}

// TestServerRateLimitUDP checks the limit on the server's sockets: with one
// response a second and every limited one slipping, a second UDP query
// gets an empty truncated reply, and the same query over TCP its answer.
func TestServerRateLimitUDP(t *testing.T) {
	st := startStore(t, "b1", store.RoleBroker)
	putInputs(t, st, fixture())
	in := fixture()
	s := startServer(t, st, func() []store.Member { return in.Members }, func(c *Config) {
		c.RateLimit, c.RateBurst, c.RateSlip = 1, 1, 1
	})
	req := query("web-dev.apps.example.com.", dns.TypeA)
	if m := exchange(t, "udp", s.Addr(), req); m.Truncated || len(m.Answer) != 2 {
		t.Fatalf("first query: %v", m)
	}
	if m := exchange(t, "udp", s.Addr(), req); !m.Truncated || len(m.Answer) != 0 {
		t.Errorf("second query within the second: %v, want TC and no answer", m)
	}
	if m := exchange(t, "tcp", s.Addr(), req); m.Truncated || len(m.Answer) != 2 {
		t.Errorf("over TCP: %v, want the answer", m)
	}
}

func BenchmarkRateLimiter(b *testing.B) {
	l := newRateLimiter(DefaultRateLimit, DefaultRateLimit/rateBurstDivisor, DefaultRateSlip, rateTableSize, time.Now())
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			l.allow(netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 1}), time.Now())
		}
	})
}
