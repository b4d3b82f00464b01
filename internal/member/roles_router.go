package member

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"gearbox/internal/cmdline"
	"gearbox/router"
	"gearbox/store"
)

// routerFlags are the flags of the router role on `gearbox serve`.
func routerFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "router-addr", Value: router.DefaultHTTPAddr, EnvVars: cmdline.Env("ROUTER_ADDR"), Category: "router",
			Usage: "address of the router's HTTP listener: it proxies the ha- hostnames of HA apps, and the aliases and " +
				"APP-NAMESPACE.DOMAIN hostnames of every app, to the app's load balancers (empty: no router on this member, " +
				"even with the router role); on a member that is also a node, it must differ from --http-addr"},
	}
}

// routerOptions are the validated settings of the router role.
type routerOptions struct {
	// HTTPAddr is where the router listens; empty: the member runs no
	// router.
	HTTPAddr string
	// Default is true when --router-addr was not given: on a member that
	// is also a node, the router then moves aside for the front listener.
	Default bool
}

// parseRouterOptions reads --router-addr: [HOST]:PORT, or empty.
func parseRouterOptions(c *cli.Context) (routerOptions, error) {
	addr := strings.TrimSpace(c.String("router-addr"))
	if addr == "" {
		return routerOptions{}, nil
	}
	def := !c.IsSet("router-addr")
	_, port, err := net.SplitHostPort(addr)
	n, perr := strconv.Atoi(port)
	if err != nil || perr != nil || n < 0 || n > 65535 {
		return routerOptions{}, fmt.Errorf("--router-addr %q: want [HOST]:PORT such as :80 or 10.0.0.5:80, or empty for no router", addr)
	}
	return routerOptions{HTTPAddr: addr, Default: def}, nil
}

// sharedRouterPort is where the router listens by default on a member
// that is also a node, whose front listener has the default port.
const sharedRouterPort = "8080"

// checkRouterAddr reports a --router-addr that the node's front listener
// (--http-addr) of the same member would take too. A default one (the
// flag not given, as with --role all) moves to port sharedRouterPort
// instead, and moved says so.
func checkRouterAddr(cfg *Config) (moved bool, err error) {
	roles := cfg.Store.Roles
	ra, ha := cfg.Roles.Router.HTTPAddr, cfg.Roles.HTTPAddr
	if !slices.Contains(roles, store.RoleRouter) || !slices.Contains(roles, store.RoleNode) || ra == "" || ha == "" {
		return false, nil
	}
	if host, _, err := net.SplitHostPort(ra); err == nil && cfg.Roles.Router.Default && addrsOverlap(ra, ha) {
		if alt := net.JoinHostPort(host, sharedRouterPort); !addrsOverlap(alt, ha) {
			cfg.Roles.Router.HTTPAddr = alt
			return true, nil
		}
	}
	if addrsOverlap(ra, ha) {
		return false, fmt.Errorf("--router-addr %s and --http-addr %s overlap on this member, which runs the router and node roles: "+
			"give the router another port or address (such as --router-addr :8080), or run it on another member", ra, ha)
	}
	return false, nil
}

// addrsOverlap reports whether listeners on host:port addresses a and b
// would take the same port: the same port (not 0) on the same host, or
// on any host if either is a wildcard.
func addrsOverlap(a, b string) bool {
	ha, pa, err1 := net.SplitHostPort(a)
	hb, pb, err2 := net.SplitHostPort(b)
	na, err3 := strconv.Atoi(pa)
	nb, err4 := strconv.Atoi(pb)
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil || na != nb || na == 0 {
		return false
	}
	wild := func(h string) bool {
		ip := net.ParseIP(h)
		return h == "" || ip != nil && ip.IsUnspecified()
	}
	if wild(ha) || wild(hb) {
		return true
	}
	if ia, ib := net.ParseIP(ha), net.ParseIP(hb); ia != nil && ib != nil {
		return ia.Equal(ib)
	}
	return strings.EqualFold(ha, hb)
}

// startRouter starts the router role on the member's started store,
// unless --router-addr is empty.
func (m *Member) startRouter(ctx context.Context, cfg Config) error {
	if cfg.Roles.Router.HTTPAddr == "" {
		m.log.Info().Str("role", store.RoleRouter).Msg("role not started: --router-addr is empty")
		return nil
	}
	addr := m.st.AdvertiseAddr()
	rc := router.DefaultConfig(m.st, addr, cfg.Domain)
	rc.HTTPAddr = cfg.Roles.Router.HTTPAddr
	rc.HTTPSAddr = cfg.Roles.HTTPSAddr
	rc.TLSCert, rc.TLSKey = cfg.Roles.Broker.TLSCert, cfg.Roles.Broker.TLSKey
	rc.Metrics = m.metrics
	rc.HAPrefix, rc.HASuffix = cfg.Roles.HAPrefix, cfg.Roles.HASuffix
	rc.ClusterSecret = cfg.Store.ClusterSecret
	rc.Logger = cfg.Store.Logger
	r, err := router.New(rc)
	if err != nil {
		return err
	}
	if err := r.Start(ctx); err != nil {
		return err
	}
	m.log.Info().Str("role", store.RoleRouter).Str("addr", addr).Str("http", r.HTTPAddr()).Str("https", r.HTTPSAddr()).Msg("role started")
	status := r.StatusHandler()
	m.internal.routerStatus.Store(&status)
	m.roles = append(m.roles, roleStop{store.RoleRouter, func(ctx context.Context) error {
		m.internal.routerStatus.Store(nil)
		return r.Shutdown(ctx)
	}})
	return nil
}
