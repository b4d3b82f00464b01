package dnsmgr

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/miekg/dns"
	"github.com/rs/zerolog"

	"gearbox/store"
	"gearbox/store/state"
)

// Defaults.
const (
	// DefaultAddr is where the server listens, UDP and TCP.
	DefaultAddr = ":53"
	// DefaultTTL is the TTL of positive answers: low, so that a failed
	// node leaves resolvers' caches quickly.
	DefaultTTL = 30 * time.Second
	// DefaultNegativeTTL is the SOA minimum, how long resolvers cache
	// NXDOMAIN and NODATA. Shorter than the positive TTL: a name is often
	// looked up just before its app is created, and an app without a
	// healthy gear should resolve again as soon as one is back.
	DefaultNegativeTTL = 10 * time.Second
	// DefaultRebuildDelay is how long changes are gathered before the
	// table is rebuilt.
	DefaultRebuildDelay = 50 * time.Millisecond
	// DefaultNotifyTimeout bounds one NOTIFY exchange.
	DefaultNotifyTimeout = 2 * time.Second
	// DefaultNotifyRetries is how many more times a NOTIFY that got no
	// answer is sent.
	DefaultNotifyRetries = 3
)

// Config configures a Server. Use DefaultConfig and set Store and Zone.
type Config struct {
	// Store is the member's started store: the server reads apps, gears,
	// gear statuses, nodes, routers and ha- claims from it, and the
	// membership. Required.
	Store *store.Store
	// Zone is the zone served, the cloud domain (such as
	// apps.example.com), with or without the trailing dot; any case.
	// Required.
	Zone string
	// Addr is host:port the server listens on, UDP and TCP. Default
	// DefaultAddr (":53"). Port 0 picks a free port, the same for both
	// (see Server.Addr).
	Addr string
	// AdvertiseAddr is the IP given out as this server's address (the A
	// or AAAA record of its NS name) when Addr's host is a wildcard or
	// empty. Default: the address the store's local member advertises.
	AdvertiseAddr string
	// TTL is the TTL of records in answers, whole seconds. Default
	// DefaultTTL (30 s).
	TTL time.Duration
	// NegativeTTL is the SOA minimum: how long NXDOMAIN and NODATA
	// answers may be cached (RFC 2308), whole seconds. Default
	// DefaultNegativeTTL (10 s).
	NegativeTTL time.Duration

	// HAPrefix and HASuffix make HA apps' routing-layer names: PREFIX
	// APP-NS SUFFIX .ZONE (state.HAHost). Default state.DefaultHADNSPrefix
	// ("ha-") and state.DefaultHADNSSuffix (""); not both empty.
	HAPrefix, HASuffix string
	// RouterHostname, when set, makes every ha- name a CNAME to it (the
	// name of the routing layer, such as a load balancer in front of the
	// routers). Default "": ha- names hold the routers' addresses. Only
	// used with ManageHADNS.
	RouterHostname string
	// ManageHADNS makes the server answer ha- names from the alive
	// routers (or RouterHostname). False leaves them to the routing layer,
	// as OpenShift's MANAGE_HA_DNS=false: the server answers ha- names
	// from the claims routers write in state.BucketHADNS. Default true.
	ManageHADNS bool

	// AllowTransfer lists who may transfer the zone (AXFR over TCP):
	// IPs, IP:port pairs and CIDR prefixes. IPs and IP:port pairs are
	// also sent a NOTIFY when the zone's serial changes, at most once a
	// second (port 53 when none is given); prefixes are only allowed.
	// Default none: no transfers, no NOTIFY.
	AllowTransfer []string
	// NotifyTimeout bounds one NOTIFY exchange. Default
	// DefaultNotifyTimeout (2 s).
	NotifyTimeout time.Duration
	// NotifyRetries is how many more times a NOTIFY is sent when it gets
	// no answer, after 1 s, 2 s, 4 s... Default DefaultNotifyRetries (3);
	// negative: none.
	NotifyRetries int

	// RateLimit is how many UDP responses a second one client prefix (a
	// /24 of IPv4, a /56 of IPv6) gets: response-rate limiting, as in
	// NSD and BIND, so that queries with a forged source cannot make the
	// server flood their victim (see ratelimit.go). Replies above it are
	// dropped, but every RateSlip-th, sent empty and truncated so that
	// real clients retry over TCP, which is not limited. DefaultConfig:
	// DefaultRateLimit (200); 0: no limit (tests and benchmarks, which
	// send everything from one address).
	RateLimit int
	// RateBurst is how many responses a prefix gets at once, above the
	// rate. Default a quarter of RateLimit (50 at the default rate), at
	// least 1.
	RateBurst int
	// RateSlip sends every RateSlip-th limited response empty with TC
	// set, and drops the others. Default DefaultRateSlip (2); 1: every
	// one truncated; negative: all dropped.
	RateSlip int

	// MaxTCPConns bounds the TCP connections served at once: one more is
	// closed as soon as it is accepted, so that clients holding
	// connections open cannot take every file descriptor and goroutine.
	// Default DefaultMaxTCPConns (150).
	MaxTCPConns int
	// TCPTimeout is how long a TCP connection may wait for its first
	// query, and then between queries, before it is closed (RFC 7766
	// asks for seconds); it also bounds sending a reply. Default
	// DefaultTCPTimeout (10 s).
	TCPTimeout time.Duration

	// RebuildDelay is how long changes are gathered before the table is
	// rebuilt, so that a burst of writes costs one rebuild. Rebuilds are
	// also spaced by at least twice the time the last one took. Default
	// DefaultRebuildDelay (50 ms).
	RebuildDelay time.Duration

	// Logger receives the server's logs. Default: disabled.
	Logger zerolog.Logger
}

// DefaultConfig returns the defaults for zone on st.
func DefaultConfig(st *store.Store, zone string) Config {
	return Config{
		Store:         st,
		Zone:          zone,
		Addr:          DefaultAddr,
		TTL:           DefaultTTL,
		NegativeTTL:   DefaultNegativeTTL,
		HAPrefix:      state.DefaultHADNSPrefix,
		HASuffix:      state.DefaultHADNSSuffix,
		ManageHADNS:   true,
		NotifyTimeout: DefaultNotifyTimeout,
		NotifyRetries: DefaultNotifyRetries,
		RateLimit:     DefaultRateLimit,
		MaxTCPConns:   DefaultMaxTCPConns,
		TCPTimeout:    DefaultTCPTimeout,
		RebuildDelay:  DefaultRebuildDelay,
		Logger:        zerolog.Nop(),
	}
}

// validate checks c, fills the defaults of zero fields and returns the
// parsed transfer list.
func (c *Config) validate() (acl []netip.Prefix, notify []netip.AddrPort, err error) {
	var errs []error
	if c.Store == nil {
		errs = append(errs, errors.New("Store is required"))
	}
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		errs = append(errs, fmt.Errorf("Addr %q: want host:port: %w", c.Addr, err))
	}
	if c.AdvertiseAddr != "" {
		if _, err := netip.ParseAddr(c.AdvertiseAddr); err != nil {
			errs = append(errs, fmt.Errorf("AdvertiseAddr %q: want an IP address", c.AdvertiseAddr))
		}
	}
	if c.TTL == 0 {
		c.TTL = DefaultTTL
	}
	if c.NegativeTTL == 0 {
		c.NegativeTTL = DefaultNegativeTTL
	}
	if c.NotifyTimeout <= 0 {
		c.NotifyTimeout = DefaultNotifyTimeout
	}
	if c.NotifyRetries == 0 {
		c.NotifyRetries = DefaultNotifyRetries
	}
	if c.RebuildDelay <= 0 {
		c.RebuildDelay = DefaultRebuildDelay
	}
	switch {
	case c.RateLimit < 0 || c.RateLimit > int(time.Second):
		errs = append(errs, fmt.Errorf("RateLimit %d: want responses a second per client prefix, 1 to %d, or 0 for no limit", c.RateLimit, int(time.Second)))
	case c.RateBurst < 0 || c.RateBurst > int(time.Second):
		errs = append(errs, fmt.Errorf("RateBurst %d: want 1 to %d, or 0 for a quarter of RateLimit", c.RateBurst, int(time.Second)))
	case c.RateBurst == 0:
		c.RateBurst = max(c.RateLimit/rateBurstDivisor, 1)
	}
	if c.RateSlip == 0 {
		c.RateSlip = DefaultRateSlip
	}
	if c.MaxTCPConns < 0 {
		errs = append(errs, fmt.Errorf("MaxTCPConns %d: want 0 (DefaultMaxTCPConns) or more", c.MaxTCPConns))
	}
	if c.MaxTCPConns == 0 {
		c.MaxTCPConns = DefaultMaxTCPConns
	}
	if c.TCPTimeout <= 0 {
		c.TCPTimeout = DefaultTCPTimeout
	}
	acl, notify, err = ParseAllowTransfer(c.AllowTransfer)
	if err != nil {
		errs = append(errs, fmt.Errorf("AllowTransfer: %w", err))
	}
	if _, err := c.options(); err != nil {
		errs = append(errs, err)
	}
	return acl, notify, errors.Join(errs...)
}

// options returns the table options of c: what Build needs.
func (c *Config) options() (Options, error) {
	o := Options{Zone: c.Zone, TTL: c.TTL, NegativeTTL: c.NegativeTTL, HAPrefix: c.HAPrefix, HASuffix: c.HASuffix,
		RouterHostname: c.RouterHostname, ManageHADNS: c.ManageHADNS}
	return o, o.normalize()
}

// Options are what Build makes a table with: the zone and the record rules
// of a Config.
type Options struct {
	// Zone is the zone served; any case, trailing dot optional.
	Zone string
	// TTL of records; NegativeTTL, the SOA minimum. Whole seconds, at
	// least 1 s.
	TTL, NegativeTTL time.Duration
	// HAPrefix, HASuffix, RouterHostname and ManageHADNS: as in Config.
	HAPrefix, HASuffix string
	RouterHostname     string
	ManageHADNS        bool
}

// maxTTL bounds TTL and NegativeTTL: a week is more than any use here.
const maxTTL = 7 * 24 * time.Hour

// normalize checks o and puts its names in canonical form: lower case,
// fully qualified.
func (o *Options) normalize() error {
	var errs []error
	zone, err := canonicalName(o.Zone)
	if err != nil || zone == "." {
		errs = append(errs, fmt.Errorf("Zone %q: want a domain name such as apps.example.com", o.Zone))
	}
	o.Zone = zone
	if o.TTL < time.Second || o.TTL > maxTTL {
		errs = append(errs, fmt.Errorf("TTL %s: want 1s to %s", o.TTL, maxTTL))
	}
	if o.NegativeTTL < time.Second || o.NegativeTTL > maxTTL {
		errs = append(errs, fmt.Errorf("NegativeTTL %s: want 1s to %s", o.NegativeTTL, maxTTL))
	}
	o.HAPrefix, o.HASuffix = strings.ToLower(o.HAPrefix), strings.ToLower(o.HASuffix)
	if o.HAPrefix == "" && o.HASuffix == "" {
		errs = append(errs, errors.New("HAPrefix and HASuffix: want at least one not empty, so that ha- names differ from app names"))
	}
	for _, a := range []string{o.HAPrefix, o.HASuffix} {
		if strings.Trim(a, "abcdefghijklmnopqrstuvwxyz0123456789-") != "" {
			errs = append(errs, fmt.Errorf("HAPrefix/HASuffix %q: want letters, digits and dashes", a))
		}
	}
	if o.RouterHostname != "" {
		h, err := canonicalName(o.RouterHostname)
		if err != nil || h == "." {
			errs = append(errs, fmt.Errorf("RouterHostname %q: want a host name such as router.example.com", o.RouterHostname))
		}
		o.RouterHostname = h
		if !o.ManageHADNS {
			errs = append(errs, errors.New("RouterHostname is only used when ManageHADNS is set: with ManageHADNS off, routers publish ha- names themselves"))
		}
	}
	return errors.Join(errs...)
}

// canonicalName returns name lower case and fully qualified, or an error
// if it is not a valid domain name made of letters, digits, dashes and
// underscores.
func canonicalName(name string) (string, error) {
	n := dns.Fqdn(strings.ToLower(strings.TrimSpace(name)))
	if _, ok := dns.IsDomainName(n); !ok || n == "" {
		return "", fmt.Errorf("%q is not a domain name", name)
	}
	if n == "." {
		return n, nil
	}
	for _, l := range dns.SplitDomainName(n) {
		if l == "" || strings.Trim(l, "abcdefghijklmnopqrstuvwxyz0123456789-_") != "" {
			return "", fmt.Errorf("%q is not a domain name", name)
		}
	}
	return n, nil
}

// ParseAllowTransfer reads a transfer list (Config.AllowTransfer): each
// entry an IP, an IP:port ([IPv6]:port) or a CIDR prefix, with any
// surrounding space. allow holds every entry as a prefix (an IP as a
// single-address one); notify the IPs and IP:port pairs, with port 53 when
// none is given.
func ParseAllowTransfer(entries []string) (allow []netip.Prefix, notify []netip.AddrPort, err error) {
	for _, e := range entries {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		if p, err := netip.ParsePrefix(e); err == nil {
			allow = append(allow, p.Masked())
			continue
		}
		if a, err := netip.ParseAddr(e); err == nil {
			a = a.Unmap()
			allow = append(allow, netip.PrefixFrom(a, a.BitLen()))
			notify = append(notify, netip.AddrPortFrom(a, 53))
			continue
		}
		if ap, err := netip.ParseAddrPort(e); err == nil && ap.Port() != 0 {
			a := ap.Addr().Unmap()
			allow = append(allow, netip.PrefixFrom(a, a.BitLen()))
			notify = append(notify, netip.AddrPortFrom(a, ap.Port()))
			continue
		}
		return nil, nil, fmt.Errorf("%q is not an IP, IP:port or CIDR prefix (such as 192.0.2.53, 192.0.2.53:5353, [2001:db8::53]:53 or 192.0.2.0/24)", e)
	}
	return allow, notify, nil
}
