package router

import (
	"cmp"
	"net"
	"slices"
	"strconv"
	"strings"

	"gearbox/lb"
	"gearbox/store"
	"gearbox/store/state"
)

// EnvHealthPath is the app env variable that sets the path health checks
// GET, such as /health: the one LB gears read (node.EnvLBHealthPath), so
// that routers check what LB gears check.
const EnvHealthPath = "GEARBOX_LB_HTTPCHK_URI"

// snapshot is what the routing table is derived from: the store's
// records and the members' statuses, read at one rebuild.
type snapshot struct {
	apps    map[string]state.App        // by AppKey
	gears   []state.Gear                // every gear of the cluster
	status  map[string]state.GearStatus // by gear id
	nodes   map[string]state.Node       // by member name
	members map[string]string           // member name to serf status
}

// hostNames are the settings that make app hostnames.
type hostNames struct {
	zone, prefix, suffix string
}

// appHost is app's hostname: APP-NS.ZONE, the Host its requests are sent
// to LB gears with.
func (h hostNames) appHost(a state.App) string {
	return strings.ToLower(state.AppHost(a.Name, a.Domain, h.zone))
}

// haHost is app's ha- name.
func (h hostNames) haHost(a state.App) string {
	return strings.ToLower(state.HAHost(a.Name, a.Domain, h.zone, h.prefix, h.suffix))
}

// route is what the router does with one app.
type route struct {
	app    string // AppKey
	host   string // APP-NS.ZONE
	haHost string // the ha- name; empty unless the app is HA
	// hosts are the names the router serves the app on: host, haHost
	// and the aliases.
	hosts []string
	// health is the path health checks GET.
	health   string
	backends []lb.Backend
	// redirect and hsts are the app's HTTPS choices (lb.Pool.SetHTTPS).
	redirect bool
	hsts     string
}

// buildRoutes derives the routes of every app from snap, sorted by app
// key.
func buildRoutes(snap snapshot, names hostNames) []route {
	byApp := make(map[string][]state.Gear)
	for _, g := range snap.gears {
		byApp[g.App] = append(byApp[g.App], g)
	}
	keys := make([]string, 0, len(snap.apps))
	for k := range snap.apps {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]route, 0, len(keys))
	for _, key := range keys {
		a := snap.apps[key]
		r := route{app: key, host: names.appHost(a), redirect: a.HTTPSRedirect, hsts: a.HSTS()}
		r.hosts = append(r.hosts, r.host)
		if a.HA {
			r.haHost = names.haHost(a)
			r.hosts = append(r.hosts, r.haHost)
		}
		for _, al := range a.Aliases {
			if al = normalizeHost(al); al != "" && !slices.Contains(r.hosts, al) {
				r.hosts = append(r.hosts, al)
			}
		}
		gears := byApp[key]
		r.health = healthPath(a, gears, snap.status)
		r.backends = backends(a, gears, snap)
		for i := range r.backends {
			r.backends[i].HealthPath = r.health
		}
		out = append(out, r)
	}
	return out
}

// backends returns the backends of app a, whose gears are gears: its LB
// gears (their load balancers) if it scales, else its gears' web
// processes; only gears meant to be started, on a node whose address is
// known and whose member has not failed or left, ordered by ordinal.
func backends(a state.App, gears []state.Gear, snap snapshot) []lb.Backend {
	var use []state.Gear
	for _, g := range gears {
		port := g.Port
		if a.Scalable {
			if !g.LB {
				continue
			}
			port = g.LBPort
		}
		if g.State == state.GearStopped || port <= 0 || port > 65535 {
			continue
		}
		if n, ok := snap.nodes[g.Node]; !ok || net.ParseIP(n.Addr) == nil {
			continue
		}
		// A member that failed or left takes its gears with it; one that
		// is leaving drains them first, and one not known yet (a router
		// that just joined) is given the benefit of the doubt: health
		// checks and retries cover both.
		switch snap.members[g.Node] {
		case store.StatusFailed, store.StatusLeft:
			continue
		}
		use = append(use, g)
	}
	slices.SortFunc(use, func(x, y state.Gear) int {
		return cmp.Or(cmp.Compare(x.Ordinal, y.Ordinal), strings.Compare(x.ID, y.ID))
	})
	out := make([]lb.Backend, 0, len(use))
	for _, g := range use {
		port := g.Port
		if a.Scalable {
			port = g.LBPort
		}
		// Its node reports it started (an LB gear: its web process
		// answers and its load balancer listens): one check brings it
		// into rotation.
		st, ok := snap.status[g.ID]
		ready := ok && st.Node == g.Node && st.State == state.GearStarted && !st.Draining
		out = append(out, lb.Backend{ID: g.ID, Addr: net.JoinHostPort(snap.nodes[g.Node].Addr, strconv.Itoa(port)), Ready: ready})
	}
	return out
}

// healthPath is the path that checks of app a GET: its env's
// EnvHealthPath if valid, else the health path most of its started gears
// report (their deployment's health:), else "/". During a roll-out to a
// deployment with another health path, the path switches once half the
// gears run the new one.
func healthPath(a state.App, gears []state.Gear, status map[string]state.GearStatus) string {
	if p, ok := a.Env[EnvHealthPath]; ok && validPath(strings.TrimSpace(p)) {
		return strings.TrimSpace(p)
	}
	votes := make(map[string]int)
	for _, g := range gears {
		if st, ok := status[g.ID]; ok && st.State == state.GearStarted {
			votes[cmp.Or(st.Health, "/")]++
		}
	}
	best, n := "/", 0
	for p, c := range votes {
		if c > n || c == n && p < best {
			best, n = p, c
		}
	}
	return best
}

// validPath reports whether p may be a health check path.
func validPath(p string) bool {
	return strings.HasPrefix(p, "/") && !strings.ContainsAny(p, " \t\r\n")
}

// normalizeHost turns a Host header into a table key: lower case, no
// port, no trailing dot. An already normal host comes back as is,
// without allocating.
func normalizeHost(h string) string {
	if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.Contains(h[i:], "]") {
		h = h[:i]
	}
	h = strings.TrimSuffix(h, ".")
	return strings.ToLower(h)
}
