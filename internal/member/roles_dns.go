package member

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"gearbox/dnsmgr"
	"gearbox/internal/cmdline"
	"gearbox/store"
)

// dnsFlags are the flags of the authoritative DNS server that brokers run
// for --domain.
func dnsFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "dns-addr", Value: dnsmgr.DefaultAddr, EnvVars: cmdline.Env("DNS_ADDR"), Category: "dns",
			Usage: "address (UDP and TCP) of the authoritative DNS server for --domain that each broker runs (empty: none)"},
		&cli.DurationFlag{Name: "dns-ttl", Value: dnsmgr.DefaultTTL, EnvVars: cmdline.Env("DNS_TTL"), Category: "dns",
			Usage: "TTL of DNS answers, in whole seconds: low, so that a failed node leaves resolvers' caches quickly"},
		&cli.DurationFlag{Name: "dns-negative-ttl", Value: dnsmgr.DefaultNegativeTTL, EnvVars: cmdline.Env("DNS_NEGATIVE_TTL"), Category: "dns",
			Usage: "how long resolvers may cache that a name or record does not exist (the SOA minimum), in whole seconds"},
		&cli.StringFlag{Name: "router-hostname", EnvVars: cmdline.Env("ROUTER_HOSTNAME"), Category: "dns",
			Usage: "host name of the routing layer (such as a load balancer in front of the routers): HA apps' ha- names become a CNAME to it instead of the routers' addresses"},
		&cli.BoolFlag{Name: "manage-ha-dns", Value: true, EnvVars: cmdline.Env("MANAGE_HA_DNS"), Category: "dns",
			Usage: "brokers publish HA apps' ha- names (the alive routers' addresses, or a CNAME to --router-hostname); false leaves them to the routing layer: each router publishes its own address for the apps it serves"},
		&cli.IntFlag{Name: "dns-rate-limit", Value: dnsmgr.DefaultRateLimit, EnvVars: cmdline.Env("DNS_RATE_LIMIT"), Category: "dns",
			Usage: "UDP responses a second the DNS server sends one client network (a /24 of IPv4, a /56 of IPv6), with a burst of a quarter of it; above it, every second reply is sent empty and truncated so that real clients retry over TCP, and the others are dropped, so that queries with a forged source cannot make the server flood someone (response-rate limiting, as in BIND and NSD); 0 turns it off"},
		&cli.StringSliceFlag{Name: "dns-allow-transfer", EnvVars: cmdline.Env("DNS_ALLOW_TRANSFER"), Category: "dns",
			Usage: "secondary DNS servers (BIND, NSD) that may transfer the zone over TCP (AXFR): IP, IP:port or CIDR, repeated or comma separated; IPs and IP:ports are also sent a NOTIFY on every change (port 53 if none)"},
	}
}

// dnsOptions are the validated DNS settings.
type dnsOptions struct {
	// Addr is where DNS listens; empty: no DNS.
	Addr             string
	TTL, NegativeTTL time.Duration
	RouterHostname   string
	ManageHADNS      bool
	AllowTransfer    []string
	// RateLimit is UDP responses a second per client prefix; 0: none.
	RateLimit int
	// Default is true when --dns-addr was not given: a failure to bind
	// it is logged, not fatal.
	Default bool
}

// maxDNSTTL bounds --dns-ttl and --dns-negative-ttl.
const maxDNSTTL = 7 * 24 * time.Hour

// maxDNSRateLimit bounds --dns-rate-limit: a million responses a second
// to one network is no limit, and 0 says so.
const maxDNSRateLimit = 1_000_000

// parseDNSOptions reads and checks the DNS flags.
func parseDNSOptions(c *cli.Context) (dnsOptions, error) {
	o := dnsOptions{
		Addr:           c.String("dns-addr"),
		TTL:            c.Duration("dns-ttl"),
		NegativeTTL:    c.Duration("dns-negative-ttl"),
		RouterHostname: c.String("router-hostname"),
		ManageHADNS:    c.Bool("manage-ha-dns"),
		AllowTransfer:  c.StringSlice("dns-allow-transfer"),
		RateLimit:      c.Int("dns-rate-limit"),
		Default:        !c.IsSet("dns-addr"),
	}
	var errs []error
	if o.Addr != "" {
		host, port, err := net.SplitHostPort(o.Addr)
		p, perr := strconv.Atoi(port)
		switch {
		case err != nil || perr != nil || p < 1 || p > 65535:
			errs = append(errs, fmt.Errorf("--dns-addr %q: want HOST:PORT or :PORT with a port of 1-65535, such as :53 or 127.0.0.1:5353 (empty: no DNS)", o.Addr))
		case host != "" && net.ParseIP(host) == nil:
			errs = append(errs, fmt.Errorf("--dns-addr %q: the host must be an IP address, or empty for all", o.Addr))
		}
	}
	for _, f := range []struct {
		flag string
		d    time.Duration
	}{{"--dns-ttl", o.TTL}, {"--dns-negative-ttl", o.NegativeTTL}} {
		if f.d < time.Second || f.d > maxDNSTTL || f.d%time.Second != 0 {
			errs = append(errs, fmt.Errorf("%s %s: want whole seconds from 1s to %s", f.flag, f.d, maxDNSTTL))
		}
	}
	if o.RouterHostname != "" {
		if validDomain(o.RouterHostname) != nil || net.ParseIP(o.RouterHostname) != nil {
			errs = append(errs, fmt.Errorf("--router-hostname %q: want a host name such as router.example.com", o.RouterHostname))
		}
		if !o.ManageHADNS {
			errs = append(errs, errors.New("--router-hostname has no use with --manage-ha-dns=false: the routing layer then publishes the ha- names itself"))
		}
	}
	if o.RateLimit < 0 || o.RateLimit > maxDNSRateLimit {
		errs = append(errs, fmt.Errorf("--dns-rate-limit %d: want responses a second per client network, 1 to %d, or 0 for no limit", o.RateLimit, maxDNSRateLimit))
	}
	if _, _, err := dnsmgr.ParseAllowTransfer(o.AllowTransfer); err != nil {
		errs = append(errs, fmt.Errorf("--dns-allow-transfer: %w", err))
	}
	if len(errs) > 0 {
		return dnsOptions{}, cmdline.JoinErrors(errs)
	}
	return o, nil
}

// startDNS starts the DNS server of a broker member, unless --dns-addr is
// empty.
func (m *Member) startDNS(ctx context.Context, cfg Config) error {
	o, st, log, mlog := cfg.Roles.DNS, m.st, cfg.Store.Logger, m.log
	if o.Addr == "" {
		mlog.Info().Msg("dns disabled (--dns-addr is empty)")
		return unregisterDNS(ctx, st)
	}
	dc := dnsmgr.DefaultConfig(st, cfg.Domain)
	dc.Addr, dc.TTL, dc.NegativeTTL = o.Addr, o.TTL, o.NegativeTTL
	dc.AdvertiseAddr = cfg.Store.AdvertiseAddr
	dc.HAPrefix, dc.HASuffix = cfg.Roles.HAPrefix, cfg.Roles.HASuffix
	dc.RouterHostname, dc.ManageHADNS = o.RouterHostname, o.ManageHADNS
	dc.AllowTransfer = o.AllowTransfer
	dc.RateLimit = o.RateLimit
	dc.Logger = log
	s, err := dnsmgr.New(dc)
	if err != nil {
		return err
	}
	if err := s.Start(ctx); err != nil {
		// The default :53 needs root and a port no local resolver holds
		// (systemd-resolved listens on 127.0.0.53:53): without it the
		// broker runs on, and says loudly that it serves no DNS.
		if o.Default && (errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EADDRINUSE)) {
			mlog.Error().Err(err).Str("fix", "set --dns-addr to an address of this host, such as 10.0.0.5:53, or empty to disable DNS").
				Msg("dns not started: the default --dns-addr :53 cannot be bound")
			return unregisterDNS(ctx, st)
		}
		return fmt.Errorf("%w (--dns-addr; empty disables DNS)", err)
	}
	m.metrics.MustRegister(s.Collector())
	mlog.Info().Str("role", "dns").Str("addr", s.Addr()).Str("zone", cfg.Domain).Msg("role started")
	m.roles = append(m.roles, roleStop{"dns", func(context.Context) error { return s.Close() }})
	return nil
}

// unregisterDNS makes sure a broker that serves no DNS is not the zone's
// name server by a record an earlier run of it left.
func unregisterDNS(ctx context.Context, st *store.Store) error {
	if err := dnsmgr.Unregister(ctx, st); err != nil {
		return fmt.Errorf("dns: %w", err)
	}
	return nil
}
