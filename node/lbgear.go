package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"gearbox/lb"
	"gearbox/store/state"
)

// An LB gear runs its app's load balancer (an lb.Pool) inside the node, on
// Addr:LBPort, next to its web process. The gear's runtime starts and
// stops it with the gear; the Supervisor keeps every pool's backends in
// line with the store: all the app's gears, on any node, that are meant
// to be started, each at its node's address and web port, the LB gear's
// own web process marked Local so that the gear's RotatedOut applies to
// it.
//
// Before a web process stops, every pool on this node that balances over
// it drains it (see drainBackend). LB gears on other nodes are not told:
// they notice by their health checks, and a request they send to the
// stopped process meanwhile fails to connect and is retried on another
// backend.

// Environment variables of the app that tune its load balancers. A value
// that does not parse is logged and ignored.
const (
	// EnvLBHealthPath is the path health checks GET, such as /health.
	EnvLBHealthPath = "GEARBOX_LB_HTTPCHK_URI"
	// EnvLBExpectStatus lists the statuses that pass a check: codes or
	// classes such as "200" or "2xx,3xx,401" (haproxy's "2.." also works).
	EnvLBExpectStatus = "GEARBOX_LB_EXPECT_STATUS"
	// EnvLBBalance is leastconn or roundrobin.
	EnvLBBalance = "GEARBOX_LB_BALANCE"
	// EnvLBCheckInterval is the time between checks: milliseconds as in
	// haproxy's "inter 2000", or a duration such as "2s".
	EnvLBCheckInterval = "GEARBOX_LB_CHECK_INTERVAL"
	// EnvLBCheckTimeout bounds one check, in the same units.
	EnvLBCheckTimeout = "GEARBOX_LB_CHECK_TIMEOUT"
	// EnvLBRise is how many checks must pass to bring a backend up.
	EnvLBRise = "GEARBOX_LB_RISE"
	// EnvLBFall is how many checks must fail to bring a backend down.
	EnvLBFall = "GEARBOX_LB_FALL"
)

// lbGear is the running load balancer of one LB gear.
type lbGear struct {
	gear string // the LB gear's id
	app  string // its app's key
	key  string // what it runs with; a changed key restarts it
	// pathSet: the app's env sets the health check path for every
	// backend; else each backend is checked on its own gear's path.
	pathSet bool
	pool    *lb.Pool
	srv     *lb.FastServer
	done    chan struct{} // closed when srv.Serve returns
}

// lbConfig returns the load balancer configuration of an LB gear of app
// (an app key) with env, and the problems found in the env's settings,
// which are ignored.
func (s *Supervisor) lbConfig(app string, env map[string]string) (lb.Config, []error) {
	cfg := s.cfg.LB
	cfg.Secret = []byte(s.cfg.ClusterSecret)
	// The front listener of this node and the cluster's routers forward
	// X-Forwarded-Proto and -Host, and prove it is them (see trust.go).
	cfg.TrustedProxies = s.trustedProxies()
	cfg.TrustProof = lb.Proof(cfg.Secret, app)
	// The status page (node addresses and ports, gear ids) is not for
	// whoever can reach the app: /lb-status goes to the app like any
	// other path, and members read the page on the internal API
	// (Supervisor.LogHandler, internalapi.GearLBStatusPath).
	cfg.NoStatus = true
	var errs []error
	bad := func(name, v, why string) { errs = append(errs, fmt.Errorf("%s=%q: %s", name, v, why)) }
	if v, ok := env[EnvLBHealthPath]; ok {
		v = strings.TrimSpace(v)
		if strings.HasPrefix(v, "/") && !strings.ContainsAny(v, " \t\r\n") {
			cfg.HealthPath = v
		} else {
			bad(EnvLBHealthPath, v, "want a path starting with /")
		}
	}
	if v, ok := env[EnvLBExpectStatus]; ok {
		if list := parseExpectStatus(v); len(list) > 0 {
			cfg.HealthExpect = list
		} else {
			bad(EnvLBExpectStatus, v, "want status codes or classes such as 200 or 2xx,3xx,401")
		}
	}
	if v, ok := env[EnvLBBalance]; ok {
		switch b := strings.ToLower(strings.TrimSpace(v)); b {
		case lb.LeastConn, lb.RoundRobin:
			cfg.Balance = b
		default:
			bad(EnvLBBalance, v, "want leastconn or roundrobin")
		}
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
	}{{EnvLBCheckInterval, &cfg.HealthInterval}, {EnvLBCheckTimeout, &cfg.HealthTimeout}} {
		if v, ok := env[d.name]; ok {
			if x, ok := parseMillis(v); ok {
				*d.v = x
			} else {
				bad(d.name, v, "want milliseconds or a duration such as 2s")
			}
		}
	}
	for _, n := range []struct {
		name string
		v    *int
	}{{EnvLBRise, &cfg.Rise}, {EnvLBFall, &cfg.Fall}} {
		if v, ok := env[n.name]; ok {
			if x, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && x > 0 && x <= 100 {
				*n.v = x
			} else {
				bad(n.name, v, "want a count from 1 to 100")
			}
		}
	}
	return cfg, errs
}

// parseExpectStatus turns "2xx, 3xx|401", "rstatus 2..|3..|401" and the
// like into lb's HealthExpect entries; it returns nil if any item is not a
// status code or class.
func parseExpectStatus(v string) []string {
	fields := strings.FieldsFunc(strings.ToLower(v), func(r rune) bool {
		return r == ',' || r == '|' || r == ' ' || r == '\t' || r == ';'
	})
	var out []string
	for _, f := range fields {
		if f == "rstatus" || f == "status" {
			continue
		}
		f = strings.ReplaceAll(f, ".", "x")
		if len(f) != 3 || f[0] < '1' || f[0] > '5' {
			return nil
		}
		if f[1:] != "xx" && (f[1] < '0' || f[1] > '9' || f[2] < '0' || f[2] > '9') {
			return nil
		}
		out = append(out, f)
	}
	return out
}

// parseMillis parses a positive duration given in milliseconds ("2000")
// or as a Go duration ("2s").
func parseMillis(v string) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if n, err := strconv.Atoi(v); err == nil {
		return time.Duration(n) * time.Millisecond, n > 0
	}
	d, err := time.ParseDuration(v)
	return d, err == nil && d > 0
}

// lbKey is what a running load balancer depends on: a change restarts it.
func lbKey(port int, cfg lb.Config) string {
	return fmt.Sprintf("port=%d balance=%s path=%s expect=%v inter=%s timeout=%s rise=%d fall=%d",
		port, cfg.Balance, cfg.HealthPath, cfg.HealthExpect, cfg.HealthInterval, cfg.HealthTimeout, cfg.Rise, cfg.Fall)
}

// ensureLB runs the gear's load balancer if d asks for one (an LB gear
// with a valid LBPort), restarting it if its settings changed, and stops
// it otherwise. It runs on the gear's goroutine, before the web process
// is started, so that a gear is reported started only once both listen.
func (g *gear) ensureLB(d desired) {
	spec := &d.gear
	if !spec.LB {
		g.stopLB()
		g.setLBDown("")
		return
	}
	if spec.LBPort <= 0 || spec.LBPort > 65535 {
		g.stopLB()
		g.setLBDown(fmt.Sprintf("load balancer has no valid port (%d)", spec.LBPort))
		return
	}
	cfg, errs := g.s.lbConfig(spec.App, d.env)
	key := lbKey(spec.LBPort, cfg)
	if g.lb != nil && g.lb.key == key {
		g.lb.pool.SetRotation(spec.RotatedOut)
		return
	}
	for _, err := range errs {
		g.log.Warn().Err(err).Msg("ignore bad load balancer setting")
	}
	g.stopLB()
	l, err := g.s.startLB(g.id, spec.App, spec.LBPort, key, cfg)
	if err != nil {
		g.log.Error().Err(err).Int("lb_port", spec.LBPort).Msg("start load balancer failed")
		g.setLBDown("load balancer: " + err.Error())
		// Try again later: the port may be held by a process on its way
		// out.
		if g.retry == nil {
			g.retry = time.AfterFunc(g.s.cfg.Backoff.Initial, g.poke)
		} else {
			g.retry.Reset(g.s.cfg.Backoff.Initial)
		}
		return
	}
	l.pool.SetRotation(spec.RotatedOut)
	_, l.pathSet = d.env[EnvLBHealthPath]
	g.lb = l
	g.log.Info().Int("lb_port", spec.LBPort).Str("balance", cfg.Balance).Str("health", cfg.HealthPath).Msg("load balancer started")
	g.setLBDown("")
}

// stopLB stops the gear's load balancer, if it runs.
func (g *gear) stopLB() {
	if g.lb == nil {
		return
	}
	g.s.stopLB(g.lb)
	g.lb = nil
	g.log.Info().Msg("load balancer stopped")
}

// startLB starts a load balancer for LB gear id of app on Addr:port and
// registers it, so that it follows the app's gears.
func (s *Supervisor) startLB(id, app string, port int, key string, cfg lb.Config) (*lbGear, error) {
	cfg.Logger = s.cfg.Logger.With().Str("gear", id).Logger()
	if s.lbMetrics != nil {
		cfg.Metrics = lb.NewMetrics(s.lbMetrics.responses, s.lbMetrics.duration, app, id)
	}
	pool, err := lb.New(cfg)
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort(s.cfg.Addr, strconv.Itoa(port))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		pool.Close()
		return nil, err
	}
	l := &lbGear{gear: id, app: app, key: key, pool: pool, srv: lb.NewFastServer(pool), done: make(chan struct{})}
	s.lbMu.Lock()
	err = s.setBackendsLocked(l, nil)
	s.lbs[id] = l
	// The routers may have changed since cfg was made.
	pool.SetTrustedProxies(s.trustedProxies())
	s.lbMu.Unlock()
	if err != nil {
		s.log.Warn().Err(err).Str("gear", id).Msg("set load balancer backends failed")
	}
	pool.Start(s.ctx)
	go func() {
		defer close(l.done)
		if err := l.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			s.log.Error().Err(err).Str("gear", id).Msg("load balancer listener failed")
		}
	}()
	s.kickRoutes()
	return l, nil
}

// stopLB unregisters l, lets its requests in flight finish for up to
// StopGrace, and stops it.
func (s *Supervisor) stopLB(l *lbGear) {
	s.lbMu.Lock()
	if s.lbs[l.gear] == l {
		delete(s.lbs, l.gear)
	}
	s.lbMu.Unlock()
	s.kickRoutes()
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.StopGrace)
	defer cancel()
	if err := l.srv.Shutdown(ctx); err != nil {
		l.srv.Close()
	}
	<-l.done
	l.pool.Close()
	if m := s.lbMetrics; m != nil {
		m.duration.DeleteLabelValues(l.app, l.gear)
		m.responses.DeletePartialMatch(prometheus.Labels{"gear": l.gear})
	}
}

// refreshLBs hands every load balancer of this node its app's current
// backends. The reconcile loop calls it whenever gear or node records
// change.
func (s *Supervisor) refreshLBs() {
	s.lbMu.Lock()
	defer s.lbMu.Unlock()
	if len(s.lbs) == 0 {
		return
	}
	c := &backendCache{}
	for _, l := range s.lbs {
		if err := s.setBackendsLocked(l, c); err != nil {
			s.log.Warn().Err(err).Str("gear", l.gear).Msg("set load balancer backends failed")
		}
	}
}

// setBackendsLocked hands l its app's current backends. A web gear of
// this node that is no longer meant to run but whose process still does
// (it is being stopped or destroyed) is kept, drained, until its process
// has stopped: removing it at once would lose the drain that its stop
// waits for.
func (s *Supervisor) setBackendsLocked(l *lbGear, c *backendCache) error {
	if c == nil {
		c = &backendCache{}
	}
	list := s.appBackends(l.app, l.gear, c)
	if l.pathSet {
		for i := range list {
			list[i].HealthPath = ""
		}
	}
	in := make(map[string]bool, len(list))
	for _, b := range list {
		in[b.ID] = true
	}
	var keep []string
	for _, b := range l.pool.Backends() {
		if !in[b.ID] && s.web[b.ID] {
			list = append(list, b)
			keep = append(keep, b.ID)
		}
	}
	if err := l.pool.SetBackends(list); err != nil {
		return err
	}
	for _, id := range keep {
		l.pool.Drain(id)
	}
	// A gear whose node says it is about to stop it is drained here
	// too, and sent requests again once its node says so.
	for _, b := range list {
		if c.draining[b.ID] {
			l.pool.Drain(b.ID)
		} else if !slices.Contains(keep, b.ID) && !s.drainingHere[b.ID] {
			l.pool.Resume(b.ID)
		}
	}
	return nil
}

// setWebRunning notes whether gear id's web process runs. Once it has
// stopped, the load balancers are refreshed, which drops it from those
// that kept it only while it ran.
func (s *Supervisor) setWebRunning(id string, running bool) {
	s.lbMu.Lock()
	was := s.web[id]
	if running {
		s.web[id] = true
	} else {
		delete(s.web, id)
		delete(s.drainingHere, id)
	}
	s.lbMu.Unlock()
	if was && !running {
		s.kickRoutes()
	}
}

// backendCache holds the store's gear and node listings for one refresh.
type backendCache struct {
	loaded   bool
	gears    []state.Gear
	nodes    map[string]string // node name to address
	draining map[string]bool   // gears whose status asks for a drain
	health   map[string]string // gears' health check paths, from their statuses
	started  map[string]string // gears reported started, to the node that reports it
}

// appBackends returns the backends of the load balancer of LB gear lbID:
// the gears of app meant to be started, in order, the LB gear's own
// marked Local. Gears on a node whose address is unknown are left out.
func (s *Supervisor) appBackends(app, lbID string, c *backendCache) []lb.Backend {
	if c == nil {
		c = &backendCache{}
	}
	if !c.loaded {
		c.loaded = true
		c.nodes = make(map[string]string)
		if recs, err := s.st.List(state.BucketNodes); err == nil {
			for _, r := range recs {
				var n state.Node
				if r.Decode(&n) == nil && n.Addr != "" {
					c.nodes[r.Key] = n.Addr
				}
			}
		} else {
			s.log.Warn().Err(err).Msg("list nodes failed")
		}
		if recs, err := s.st.List(state.BucketGears); err == nil {
			for _, r := range recs {
				var g state.Gear
				if r.Decode(&g) == nil && g.ID == r.Key {
					c.gears = append(c.gears, g)
				}
			}
		} else {
			s.log.Warn().Err(err).Msg("list gears failed")
		}
		c.nodes[s.name] = s.cfg.Addr
		c.draining, c.health, c.started = make(map[string]bool), make(map[string]string), make(map[string]string)
		if recs, err := s.st.List(state.BucketGearStatus); err == nil {
			for _, r := range recs {
				var st state.GearStatus
				if r.Decode(&st) != nil {
					continue
				}
				if st.Draining || st.PortTaken {
					// A gear whose port another uid holds gets nothing:
					// whatever answers there is not the gear.
					c.draining[r.Key] = true
				}
				if st.Health != "" {
					c.health[r.Key] = st.Health
				}
				if st.State == state.GearStarted && !st.Draining && !st.PortTaken {
					c.started[r.Key] = st.Node
				}
			}
		} else {
			s.log.Warn().Err(err).Msg("list gear statuses failed")
		}
	}
	var gs []state.Gear
	for _, g := range c.gears {
		if g.App == app && g.State != state.GearStopped && g.Port > 0 && g.Port <= 65535 && c.nodes[g.Node] != "" {
			gs = append(gs, g)
		}
	}
	sort.Slice(gs, func(i, j int) bool {
		if gs[i].Ordinal != gs[j].Ordinal {
			return gs[i].Ordinal < gs[j].Ordinal
		}
		return gs[i].ID < gs[j].ID
	})
	out := make([]lb.Backend, 0, len(gs))
	sides := *s.sides.Load()
	for _, g := range gs {
		local := g.ID == lbID && g.Node == s.name
		out = append(out, lb.Backend{ID: g.ID, Addr: net.JoinHostPort(c.nodes[g.Node], strconv.Itoa(g.Port)), Local: local,
			HealthPath: c.health[g.ID], Ready: c.started[g.ID] == g.Node})
		if side, ok := sides[g.ID]; ok && g.Node == s.name {
			out = append(out, lb.Backend{ID: g.ID + sideSuffix, Addr: net.JoinHostPort(s.cfg.Addr, strconv.Itoa(side.port)), Local: local,
				HealthPath: side.health})
		}
	}
	return out
}

// remoteLBs reports whether app has an LB gear on another node, whose
// load balancer learns of a drain through the gear's status.
func (s *Supervisor) remoteLBs(app string) bool {
	recs, err := s.st.List(state.BucketGears)
	if err != nil {
		return true
	}
	for _, r := range recs {
		var g state.Gear
		if r.Decode(&g) == nil && g.App == app && g.LB && g.Node != s.name {
			return true
		}
	}
	return false
}

// drainBackend drains gear id in every load balancer of this node that
// balances over it, and waits until none has a request to it in flight,
// or DrainTimeout. A gear's runtime calls it before stopping the gear's
// web process.
func (s *Supervisor) drainBackend(id string) {
	var chans []<-chan struct{}
	s.lbMu.Lock()
	s.drainingHere[id] = true
	for _, l := range s.lbs {
		if ch, err := l.pool.Drain(id); err == nil {
			chans = append(chans, ch)
		}
	}
	s.lbMu.Unlock()
	if len(chans) == 0 {
		return
	}
	t := time.NewTimer(s.cfg.DrainTimeout)
	defer t.Stop()
	for _, ch := range chans {
		select {
		case <-ch:
		case <-t.C:
			s.log.Warn().Str("gear", id).Dur("timeout", s.cfg.DrainTimeout).Msg("gear not drained in time; stopping it anyway")
			return
		}
	}
}

// resumeBackend ends the drain of gear id in the load balancers of this
// node, once its web process answers again, and has them check it at
// once: a check they made before the process listened took it down, and
// it would otherwise stay out for their rise checks, a new app's only
// gear answering 503 meanwhile. Each checks with its own health path and
// expected statuses, so a gear they would not take stays out.
func (s *Supervisor) resumeBackend(id string) {
	s.lbMu.Lock()
	delete(s.drainingHere, id)
	pools := make([]*lb.Pool, 0, len(s.lbs))
	for _, l := range s.lbs {
		l.pool.Resume(id)
		pools = append(pools, l.pool)
	}
	s.lbMu.Unlock()
	// Checks go out of the lock: they may take the check timeout.
	for _, p := range pools {
		p.CheckNow(s.ctx, id, "process ready")
	}
}

// serveLBStatus answers r with the status page of LB gear id's load
// balancer, or 404 if it does not run here.
func (s *Supervisor) serveLBStatus(w http.ResponseWriter, r *http.Request, id string) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	s.lbMu.Lock()
	l := s.lbs[id]
	s.lbMu.Unlock()
	if l == nil {
		http.Error(w, fmt.Sprintf("no load balancer of gear %q runs on this node", id), http.StatusNotFound)
		return
	}
	l.pool.StatusHandler().ServeHTTP(w, r)
}

// runningLBs returns the ids of the LB gears whose load balancer runs.
func (s *Supervisor) runningLBs() map[string]bool {
	s.lbMu.Lock()
	defer s.lbMu.Unlock()
	out := make(map[string]bool, len(s.lbs))
	for id := range s.lbs {
		out[id] = true
	}
	return out
}

// kickRoutes asks the reconcile loop to rebuild the routing table.
func (s *Supervisor) kickRoutes() {
	select {
	case s.routesKick <- struct{}{}:
	default:
	}
}
