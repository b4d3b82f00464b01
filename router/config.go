package router

import (
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"gearbox/lb"
	"gearbox/store"
	"gearbox/store/state"
)

// Config configures a Router. Store, Addr and Domain are required; every
// other zero field takes its default. DefaultConfig spells the defaults
// out and FastConfig is a preset for tests and development.
type Config struct {
	// Store is this member's started store. Required.
	Store *store.Store
	// Name is the member name the router registers under and signs its
	// ha- DNS claims with. Default: the store's member name.
	Name string
	// Addr is the member's advertised IP: what DNS gives out for the ha-
	// names this router serves. Required.
	Addr string
	// HTTPAddr is where the router's HTTP listener listens
	// (--router-addr). Default ":80". Port 0 picks a free port, which
	// Router.HTTPAddr tells once started.
	HTTPAddr string
	// HTTPSAddr is where the router serves HTTPS (--https-addr), with
	// the certificate SNI picks: an alias's own (uploaded by its owner),
	// else TLSCert's. Empty: no HTTPS listener.
	HTTPSAddr string
	// TLSCert and TLSKey are the PEM files of the cloud domain's
	// certificate (a wildcard *.DOMAIN) and its key (--tls-cert,
	// --tls-key). Empty: aliases with certificates of their own only.
	TLSCert, TLSKey string
	// Domain is the cloud domain (the zone) that app hostnames end in:
	// APP-NS.DOMAIN. Required.
	Domain string
	// HAPrefix and HASuffix make the ha- names of HA apps: PREFIX APP-NS
	// SUFFIX .DOMAIN (state.HAHost; --ha-dns-prefix, --ha-dns-suffix).
	// Both empty: state.DefaultHADNSPrefix and state.DefaultHADNSSuffix
	// ("ha-" and "").
	HAPrefix, HASuffix string
	// ClusterSecret is the cluster's secret, the Secret of every app's
	// pool. Routers set no affinity cookie (LB gears do, with the same
	// secret), so it matters only if LB turns affinity on. Default "".
	ClusterSecret string
	// LB is what the pool of each app starts from: health check timing,
	// retries, timeouts, trusted proxies in front of the router. The
	// router sets Host and HealthHost (the app's hostname), NoAffinity,
	// NoStatus (the status path goes to the app's LB gears), Secret,
	// Backends and Logger. Its ClientTimeout (headers, idle connections,
	// and a body or an answer that passes no byte), MaxClientConns and
	// MaxIdleConns apply to the listener, and its TunnelTimeout to every
	// app's WebSockets. DefaultConfig: lb.DefaultConfig(); FastConfig:
	// lb.FastConfig(). Zero fields take lb's defaults.
	LB lb.Config
	// NotFoundPage is the HTML body of the 404 answer to a host the
	// router does not serve. Default: lb's page, which says that no
	// application is configured for the host name.
	NotFoundPage string
	// CoalesceInterval is the least time between two rebuilds of the
	// routing table: the first change after a quiet time is applied at
	// once, the changes that follow within the interval together at its
	// end. Default 50 ms.
	CoalesceInterval time.Duration
	// ResyncInterval is how often the table is rebuilt and the router's
	// records are checked even if nothing seems to have changed, as a
	// safety net besides watches; each wait is jittered by up to a
	// quarter. Default 30 s.
	ResyncInterval time.Duration
	// StopGrace is how long Close lets requests in flight finish before
	// it cuts their connections. Default 10 s.
	StopGrace time.Duration
	// Logger receives the router's logs, with component=router; each
	// app's pool logs with component=lb and app=NS/APP. Default:
	// disabled.
	Logger zerolog.Logger
	// Metrics, if set, is where the router registers its Prometheus
	// metrics (gearbox_router_*). Default none.
	Metrics prometheus.Registerer
	// Now is the clock of the records' times. Default time.Now.
	Now func() time.Time
}

// Defaults.
const (
	DefaultHTTPAddr         = ":80"
	DefaultCoalesceInterval = 50 * time.Millisecond
	DefaultResyncInterval   = 30 * time.Second
	DefaultStopGrace        = 10 * time.Second
)

// DefaultConfig returns production defaults for a router on st that
// advertises addr and serves the apps of domain.
func DefaultConfig(st *store.Store, addr, domain string) Config {
	return Config{
		Store:            st,
		Addr:             addr,
		HTTPAddr:         DefaultHTTPAddr,
		Domain:           domain,
		HAPrefix:         state.DefaultHADNSPrefix,
		HASuffix:         state.DefaultHADNSSuffix,
		LB:               lb.DefaultConfig(),
		CoalesceInterval: DefaultCoalesceInterval,
		ResyncInterval:   DefaultResyncInterval,
		StopGrace:        DefaultStopGrace,
		Logger:           zerolog.Nop(),
		Now:              time.Now,
	}
}

// FastConfig returns DefaultConfig with settings for tests and
// development: the listener on addr:0, pools with lb.FastConfig's timings,
// a rebuild at most every 10 ms, a resync every 2 s and a 2 s stop grace.
func FastConfig(st *store.Store, addr, domain string) Config {
	c := DefaultConfig(st, addr, domain)
	c.HTTPAddr = net.JoinHostPort(addr, "0")
	c.LB = lb.FastConfig()
	c.CoalesceInterval = 10 * time.Millisecond
	c.ResyncInterval = 2 * time.Second
	c.StopGrace = 2 * time.Second
	return c
}

// affixRE matches a valid HAPrefix or HASuffix: it goes inside one DNS
// label.
var affixRE = regexp.MustCompile(`^[a-z0-9-]{0,20}$`)

// validate checks c and fills its defaults.
func (c *Config) validate() error {
	var errs []error
	if c.Store == nil {
		errs = append(errs, errors.New("Store is required"))
	} else if c.Name == "" {
		c.Name = c.Store.Name()
	}
	if net.ParseIP(c.Addr) == nil {
		errs = append(errs, fmt.Errorf("Addr %q is not an IP address", c.Addr))
	}
	c.Domain = strings.ToLower(strings.TrimSuffix(c.Domain, "."))
	if c.Domain == "" {
		errs = append(errs, errors.New("Domain is required"))
	}
	if c.HTTPAddr == "" {
		c.HTTPAddr = DefaultHTTPAddr
	}
	if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
		errs = append(errs, fmt.Errorf("HTTPAddr %q: %w", c.HTTPAddr, err))
	}
	if c.HTTPSAddr != "" {
		if _, _, err := net.SplitHostPort(c.HTTPSAddr); err != nil {
			errs = append(errs, fmt.Errorf("HTTPSAddr %q: %w", c.HTTPSAddr, err))
		}
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, errors.New("TLSCert and TLSKey go together"))
	}
	if c.HAPrefix == "" && c.HASuffix == "" {
		c.HAPrefix, c.HASuffix = state.DefaultHADNSPrefix, state.DefaultHADNSSuffix
	}
	c.HAPrefix, c.HASuffix = strings.ToLower(c.HAPrefix), strings.ToLower(c.HASuffix)
	if !affixRE.MatchString(c.HAPrefix) || !affixRE.MatchString(c.HASuffix) || c.HAPrefix == "" && c.HASuffix == "" {
		errs = append(errs, fmt.Errorf("HAPrefix %q and HASuffix %q: want letters, digits and dashes, up to 20, not both empty", c.HAPrefix, c.HASuffix))
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"CoalesceInterval", &c.CoalesceInterval, DefaultCoalesceInterval},
		{"ResyncInterval", &c.ResyncInterval, DefaultResyncInterval},
		{"StopGrace", &c.StopGrace, DefaultStopGrace},
	} {
		switch {
		case *d.v < 0:
			errs = append(errs, fmt.Errorf("%s %s is negative", d.name, *d.v))
		case *d.v == 0:
			*d.v = d.def
		}
	}
	// The pools' settings are checked by making one.
	check := c.poolConfig("", "app-ns.example.com")
	check.Logger = zerolog.Nop()
	if p, err := lb.New(check); err != nil {
		errs = append(errs, fmt.Errorf("LB: %w", err))
	} else {
		p.Close()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if len(errs) > 0 {
		return fmt.Errorf("router config: %w", errors.Join(errs...))
	}
	return nil
}

// poolConfig is the configuration of the pool of app (an AppKey), whose
// hostname is host.
func (c *Config) poolConfig(app, host string) lb.Config {
	cfg := c.LB
	cfg.Host = host
	cfg.HealthHost = host
	cfg.NoAffinity = true
	cfg.NoStatus = true
	cfg.Secret = []byte(c.ClusterSecret)
	// The app's LB gears trust the X-Forwarded-* of a router only with
	// this proof that it holds the cluster secret (see lb.ProofField).
	cfg.SendProof = lb.Proof(cfg.Secret, app)
	cfg.Backends = nil
	cfg.Logger = c.Logger.With().Str("app", app).Logger()
	return cfg
}
