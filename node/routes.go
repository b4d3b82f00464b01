package node

import (
	"net"
	"strconv"
	"strings"

	"gearbox/store/state"
)

// routeTable maps the hostnames the front listener serves (lower case, no
// port, no trailing dot) to the local address ("ip:port") serving each.
// It is immutable once built; the Supervisor swaps in a new one whenever
// the gears or apps change.
type routeTable struct {
	hosts map[string]string
	// gears names, for the hosts routed to a gear's web port, that gear:
	// a gear handing over to a new process (see handover.go) is reached
	// at its side process meanwhile.
	gears map[string]string
	// lbApps names, for the hosts routed to a load balancer, its app's
	// key: the front proves to it that it is the front (lb.Proof).
	lbApps map[string]string
	// https holds, for the hosts of apps that made HTTPS choices, what
	// the front does over plain HTTP and HTTPS.
	https map[string]httpsPolicy
}

// httpsPolicy is an app's HTTPS choices: redirect plain HTTP to HTTPS,
// and the Strict-Transport-Security value of answers over HTTPS.
type httpsPolicy struct {
	redirect bool
	hsts     string
}

// httpsOf returns the HTTPS choices of host's app.
func (t *routeTable) httpsOf(host string) httpsPolicy { return t.https[canonicalHost(host)] }

// lbAppOf returns the app whose load balancer serves host, if one does.
func (t *routeTable) lbAppOf(host string) string { return t.lbApps[canonicalHost(host)] }

// gearOf returns the gear whose web port serves host, if one does.
func (t *routeTable) gearOf(host string) string { return t.gears[canonicalHost(host)] }

// route returns the local address serving host (a Host header: any case,
// with or without a port or trailing dot), and false if none does.
func (t *routeTable) route(host string) (string, bool) {
	addr, ok := t.hosts[canonicalHost(host)]
	return addr, ok
}

// canonicalHost lower-cases host and strips its port and trailing dot.
func canonicalHost(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return strings.TrimSuffix(strings.ToLower(host), ".")
}

// buildRoutes builds the routing table of the gears of this node, whose
// web ports listen on addr:
//
//   - GEARID-NS.DOMAIN goes to that gear's web port;
//   - APP-NS.DOMAIN, and each of the app's aliases, goes to the app's
//     load balancer if one of its LB gears here runs it (lbs names those
//     gears), the head gear's first; else to one of its gears here: a
//     non-scalable app's single gear, or for a scalable app the first by
//     ordinal of those meant to be started and not rotated out, then of
//     those meant to be started, then of any. An app host whose gears are
//     all stopped so still finds its gear, which fails with 503 rather
//     than an unknown host's 404.
//
// An app host is matched before a gear host of the same name.
func buildRoutes(gears []state.Gear, apps map[string]appInfo, domain, addr string, lbs map[string]bool) *routeTable {
	t := &routeTable{hosts: make(map[string]string, 2*len(gears)), gears: make(map[string]string, 2*len(gears)),
		lbApps: make(map[string]string), https: make(map[string]httpsPolicy)}
	at := func(port int) string { return net.JoinHostPort(addr, strconv.Itoa(port)) }
	best := make(map[string]*state.Gear) // by app key
	for i := range gears {
		g := &gears[i]
		t.hosts[canonicalHost(state.AppHost(g.ID, g.Domain, domain))] = at(g.Port)
		t.gears[canonicalHost(state.AppHost(g.ID, g.Domain, domain))] = g.ID
		if b := best[g.App]; b == nil || routeRank(g, lbs) < routeRank(b, lbs) ||
			routeRank(g, lbs) == routeRank(b, lbs) && g.Ordinal < b.Ordinal {
			best[g.App] = g
		}
	}
	for key, g := range best {
		target, gear := at(g.Port), g.ID
		if lbs[g.ID] {
			target, gear = at(g.LBPort), ""
		}
		hosts := append([]string{state.AppHost(g.AppName, g.Domain, domain)}, apps[key].aliases...)
		for _, h := range hosts {
			if a := apps[key]; a.redirect || a.hsts != "" {
				t.https[canonicalHost(h)] = httpsPolicy{redirect: a.redirect, hsts: a.hsts}
			}
			t.hosts[canonicalHost(h)] = target
			if gear != "" {
				t.gears[canonicalHost(h)] = gear
			} else {
				delete(t.gears, canonicalHost(h))
				t.lbApps[canonicalHost(h)] = key
			}
		}
	}
	return t
}

// routeRank orders an app's gears for its hostname: lower is better.
func routeRank(g *state.Gear, lbs map[string]bool) int {
	started := g.State != state.GearStopped
	switch {
	case lbs[g.ID] && started && g.Head:
		return 0
	case lbs[g.ID] && started:
		return 1
	case started && !g.RotatedOut:
		return 2
	case started:
		return 3
	default:
		return 4
	}
}
