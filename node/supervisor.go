package node

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"gearbox/store"
	"gearbox/store/state"
)

// Supervisor is the node role: it runs the gears that the store assigns to
// this member, reports what it observes of them, and serves the front
// listener that routes requests to them by Host. Create it with New, then
// Start it; Close stops it.
//
// It follows the gear records (and their apps' records, for the env) of
// the store: a gear whose Node is this member gets a directory, is
// started or stopped as its State asks, restarted when its Restarts count
// goes up, and destroyed (stopped, its directory and status removed) when
// its record is deleted or names another node. Watches drive this; a full
// pass at Start, and then every ResyncInterval, catches up with anything
// missed, such as changes made while the node was down.
//
// An LB gear also runs its app's load balancer (see lbgear.go), whose
// backends follow the app's gear records and the node records of the
// whole cluster.
//
// A node that closes takes its gears down with it: Close stops every
// gear's process (reporting the gears stopped if the store is still open)
// but leaves their directories for the next start.
type Supervisor struct {
	cfg  Config
	st   *store.Store
	name string
	log  zerolog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	started  bool
	closed   bool
	closeErr error

	// Owned by the reconcile goroutine (by Start before it runs).
	watch *store.Watch
	gears map[string]*gear // by id: the gears this node runs

	metrics   nodeMetrics // counters for the Prometheus collector
	lbMetrics *lbMetrics  // nil without Config.Metrics
	// onSyncWait, if set (tests), is called when Start begins to wait
	// for the cluster's records.
	onSyncWait func()
	dying      map[string]*gear // by id: gears being destroyed
	apps       map[string]appInfo

	routes atomic.Pointer[routeTable]
	// routerAddrs are the routers' addresses, which LB gears trust
	// (see trust.go); set by the reconcile loop.
	routerAddrs atomic.Pointer[[]netip.Prefix]
	// sides are the ports of the side processes of gears handing over
	// (see handover.go), by gear id; replaced whole under lbMu.
	sides      atomic.Pointer[map[string]sideProc]
	routesKick chan struct{} // asks the reconcile loop to rebuild routes and refresh load balancers
	front      *front

	// The load balancers of the LB gears running here, by gear id: their
	// gears' runtimes add and remove them, the reconcile loop updates
	// their backends.
	lbMu sync.Mutex
	lbs  map[string]*lbGear
	web  map[string]bool // gears whose web process runs here
	// drainingHere are the gears drainBackend drained, until they run
	// again or stop: a refresh does not resume them.
	drainingHere map[string]bool

	deploys *deployer
	iso     *isolator // set by Start
	// answering holds the ids of the gears whose web process was found
	// ready, listening on the gear's port as the gear's own (see
	// portowner.go): when gears are isolated, the front routes to no
	// other gear's port, whatever listens there.
	answering sync.Map

	// The node's connection to its NATS server, in the platform's
	// account, and the buckets opened there (see singleton.go).
	natsMu  sync.Mutex
	nc      *nats.Conn
	js      jetstream.JetStream
	buckets map[string]jetstream.KeyValue

	// program returns what a gear runs and a key that differs whenever
	// that differs (a changed key restarts the gear). Tests replace it
	// before Start.
	program func(d desired, dir string) (Program, string)
}

// appInfo is what gears need of their app's record.
type appInfo struct {
	id      string
	env     map[string]string
	aliases []string
	// redirect and hsts are the app's HTTPS choices (state.App).
	redirect bool
	hsts     string
}

// New validates cfg and returns a Supervisor that does nothing until
// Start. On a system other than Linux it returns an error that wraps
// ErrUnsupportedOS.
func New(cfg Config) (*Supervisor, error) {
	if err := checkPlatform(); err != nil {
		return nil, err
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	s := &Supervisor{
		cfg:   cfg,
		st:    cfg.Store,
		name:  cfg.Store.Name(),
		log:   cfg.Logger.With().Str("component", "node").Logger(),
		gears: make(map[string]*gear),
		dying: make(map[string]*gear),
		apps:  make(map[string]appInfo),
		lbs:   make(map[string]*lbGear),
		web:   make(map[string]bool),

		drainingHere: make(map[string]bool),

		routesKick: make(chan struct{}, 1),
	}
	s.program = s.defaultProgram
	s.deploys = newDeployer(s)
	s.routes.Store(&routeTable{})
	s.sides.Store(&map[string]sideProc{})
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if cfg.Metrics != nil {
		var err error
		if s.lbMetrics, err = newLBMetrics(cfg.Metrics); err != nil {
			return nil, fmt.Errorf("node: register metrics: %w", err)
		}
	}
	return s, nil
}

// Start opens the front listener, reconciles every gear of this node and
// keeps reconciling from then on. It returns once the front listener
// listens; gears come up in the background.
func (s *Supervisor) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return ErrClosed
	case s.started:
		return ErrStarted
	}
	for _, d := range []string{s.gearsDir(), s.runDir()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("create %s: %w", d, err)
		}
	}
	iso, tried, err := detectIsolation(&s.cfg, s.name)
	if err != nil {
		return err
	}
	s.iso = iso
	s.logIsolation(tried)
	if s.cfg.HTTPAddr != "" {
		f, err := newFront(s)
		if err != nil {
			s.iso.close()
			return err
		}
		s.front = f
	}
	s.awaitClusterState(ctx)
	// The watch comes first so that no change between the listing and
	// the watch is missed.
	s.watch = s.st.Watch(state.BucketGears, state.BucketApps, state.BucketNodes, state.BucketGearStatus, state.BucketRouters, state.BucketCerts)
	if err := s.reconcileAll(); err != nil {
		s.watch.Close()
		if s.front != nil {
			s.front.close(0)
		}
		s.iso.close()
		return err
	}
	s.warnStrayDirs()
	s.started = true
	s.wg.Go(s.run)
	if s.front != nil {
		s.wg.Go(s.front.serve)
	}
	s.log.Info().Str("addr", s.cfg.Addr).Str("http", s.FrontAddr()).Int("gears", len(s.gears)).Msg("node started")
	return nil
}

// awaitClusterState waits, up to Config.SyncWait, for the store's first
// anti-entropy round with a peer, when this member has been part of a
// cluster (its store holds another node's record): what it kept from its
// last run may be stale, gears moved away while it was down among it, and
// starting them would run copies that are no longer its own. A member
// alone, or one whose peers do not answer in time, goes on with what it
// has; the first round then destroys what moved away.
func (s *Supervisor) awaitClusterState(ctx context.Context) {
	if s.cfg.SyncWait <= 0 || s.st.SyncedSinceStart() {
		return
	}
	recs, err := s.st.List(state.BucketNodes)
	if err != nil {
		return
	}
	others := false
	for _, r := range recs {
		if r.Key != s.name && !r.Deleted {
			others = true
		}
	}
	if !others {
		return
	}
	s.log.Info().Dur("up_to", s.cfg.SyncWait).Msg("waiting for the cluster's records before starting gears")
	if s.onSyncWait != nil {
		s.onSyncWait()
	}
	start := time.Now()
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for !s.st.SyncedSinceStart() {
		if time.Since(start) > s.cfg.SyncWait {
			s.log.Warn().Dur("waited", s.cfg.SyncWait).Msg("no peer answered anti-entropy: starting gears from the records kept here")
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
	s.log.Info().Dur("waited", time.Since(start)).Msg("records in sync with a peer")
}

// Isolation returns how the node isolates its gears, as its node record
// reports it: ModeCgroup2, ModeCgroup1, ModeRlimit, or "none (turned
// off)" when the operator asked for IsolateNone. It is meant to be called
// after Start.
func (s *Supervisor) Isolation() string {
	if s.iso == nil {
		return ""
	}
	return s.iso.String()
}

// logIsolation says how gears are isolated, loudly when less than by a
// uid and a cgroup each, and why stronger modes were passed over.
func (s *Supervisor) logIsolation(tried []error) {
	iso := s.iso
	for _, err := range tried {
		s.log.Warn().Err(err).Msg("gear isolation mode unusable here")
	}
	switch iso.mode {
	case ModeNone:
		s.log.Warn().Str("isolation", iso.String()).
			Str("fix", "run the node as root with --gear-isolation auto, unless it is a single-user node").
			Msg("GEARS ARE NOT ISOLATED (--gear-isolation none): they run as the node's own user, without resource limits, can reach each other's files and the node's state, and brokers place here only gears of the user whose gears the node already hosts")
	case ModeRlimit:
		s.log.Warn().Str("isolation", iso.String()).Int("uid_min", s.cfg.GearUIDMin+1).Int("uid_max", s.cfg.GearUIDMax).
			Msg("gears run as their own uids but without a cgroup: memory is limited per process (RLIMIT_DATA), and processes that leave a gear's process group are not stopped with it")
	default:
		s.log.Info().Str("isolation", iso.String()).Int("uid_min", s.cfg.GearUIDMin+1).Int("uid_max", s.cfg.GearUIDMax).
			Msg("gears isolated")
	}
	if iso.on() {
		for _, size := range []string{state.SizeSmall, state.SizeMedium, state.SizeLarge} {
			l := iso.limitsFor(size)
			s.log.Info().Str("size", size).Int64("memory", l.Memory).Int("procs", l.Procs).Msg("gear limits")
		}
	}
}

// FrontAddr returns the address the front listener listens on, or "" if
// it has none. It is meant to be called after Start.
func (s *Supervisor) FrontAddr() string {
	if s.front == nil {
		return ""
	}
	return s.front.ln.Addr().String()
}

// Close is Shutdown with no deadline of its own: requests in flight on
// the front listener get StopGrace.
func (s *Supervisor) Close() error { return s.Shutdown(context.Background()) }

// Shutdown stops the front listener, letting requests in flight finish for
// up to StopGrace or until ctx ends, whichever comes first; then every
// gear's process (SIGTERM, then SIGKILL after StopGrace; all gears at
// once), and returns once every goroutine of the node has ended. It is
// safe to call twice, and with Close.
func (s *Supervisor) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		err := s.closeErr
		s.mu.Unlock()
		return err
	}
	s.closed = true
	s.mu.Unlock()

	// The front goes first, so that no new request reaches a gear that is
	// stopping; requests in flight get the stop grace to finish.
	var errs []error
	if s.front != nil {
		grace := s.cfg.StopGrace
		if dl, ok := ctx.Deadline(); ok {
			grace = min(grace, max(time.Until(dl), 0))
		}
		if err := s.front.close(grace); err != nil {
			errs = append(errs, err)
		}
	}
	s.cancel()
	s.wg.Wait()
	s.closeNATS()
	if s.iso != nil {
		s.iso.close()
	}
	err := errors.Join(errs...)
	s.mu.Lock()
	s.closeErr = err
	s.mu.Unlock()
	s.log.Info().Msg("node stopped")
	return err
}

func (s *Supervisor) gearsDir() string         { return filepath.Join(s.cfg.DataDir, "gears") }
func (s *Supervisor) runDir() string           { return filepath.Join(s.cfg.DataDir, "run") }
func (s *Supervisor) gearDir(id string) string { return filepath.Join(s.gearsDir(), id) }

// run is the reconcile loop: changes as they come, everything now and
// then.
func (s *Supervisor) run() {
	defer s.watch.Close()
	t := time.NewTimer(jitter(s.cfg.ResyncInterval))
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.watch.C():
			s.applyChanges(s.watch.Next())
		case <-s.routesKick:
			s.rebuildRoutes()
			s.refreshLBs()
		case <-t.C:
			if err := s.reconcileAll(); err != nil {
				s.log.Error().Err(err).Msg("reconcile gears failed")
			}
			t.Reset(jitter(s.cfg.ResyncInterval))
		}
	}
}

// reconcileAll brings every gear in line with the full list of records:
// gears of this node are (re)applied, gears it runs that are no longer its
// own are destroyed, and so are gears it reported on before (its status
// records) whose record went while it was down.
func (s *Supervisor) reconcileAll() error {
	grs, err := s.st.List(state.BucketGears)
	if err != nil {
		return fmt.Errorf("list gears: %w", err)
	}
	ars, err := s.st.List(state.BucketApps)
	if err != nil {
		return fmt.Errorf("list apps: %w", err)
	}
	srs, err := s.st.List(state.BucketGearStatus)
	if err != nil {
		return fmt.Errorf("list gear statuses: %w", err)
	}
	// Before gears start their load balancers.
	s.refreshTrusted()
	s.apps = make(map[string]appInfo, len(ars))
	for _, r := range ars {
		s.setApp(r)
	}
	mine := make(map[string]bool)
	for _, r := range grs {
		var g state.Gear
		if err := r.Decode(&g); err != nil {
			s.log.Warn().Err(err).Str("gear", r.Key).Msg("skip undecodable gear record")
			continue
		}
		if g.Node == s.name && g.ID == r.Key && s.validID(g.ID) {
			mine[g.ID] = true
			s.want(g)
		}
	}
	for id := range s.gears {
		if !mine[id] {
			s.drop(id)
		}
	}
	for id, g := range s.dying {
		select {
		case <-g.done:
			delete(s.dying, id)
		default:
		}
	}
	reported := make(map[string]bool, len(srs))
	for _, r := range srs {
		var st state.GearStatus
		if r.Decode(&st) != nil {
			continue
		}
		reported[r.Key] = true
		if g := s.gears[r.Key]; g != nil && st.Node != s.name {
			g.reassert(&st)
		}
		if st.Node != s.name || mine[r.Key] || s.dying[r.Key] != nil || !s.validID(r.Key) {
			continue
		}
		s.log.Info().Str("gear", r.Key).Msg("destroy gear whose record went while the node was away")
		s.dying[r.Key] = s.spawn(r.Key, desired{destroy: true})
	}
	for id, g := range s.gears {
		if !reported[id] {
			g.reassert(nil)
		}
	}
	s.rebuildRoutes()
	s.refreshLBs()
	s.pruneDeployments(ars)
	return nil
}

// pruneDeployments removes the deployments this node prepared that no
// app keeps any more and no gear here asks for or runs, each app's
// apart, and the archives no deployment kept here has.
func (s *Supervisor) pruneDeployments(apps []store.Record) {
	keep := make(map[depKey]bool)
	for _, r := range apps {
		var a state.App
		if r.Decode(&a) != nil {
			return // better keep everything than remove what is in use
		}
		for _, id := range a.Deployments {
			keep[depKey{r.Key, id}] = true
		}
		keep[depKey{r.Key, a.Deployment}] = true
	}
	anyApp := make(map[string]bool) // a dying gear's app may be gone
	for _, g := range s.gears {
		d := g.desired()
		keep[depKey{d.gear.App, d.deployment}] = true
		g.statusMu.Lock()
		keep[depKey{d.gear.App, g.running}] = true
		g.statusMu.Unlock()
	}
	for _, g := range s.dying {
		g.statusMu.Lock()
		anyApp[g.running] = true
		g.statusMu.Unlock()
	}
	if removed := s.deploys.prune(keep, anyApp); len(removed) > 0 {
		s.log.Info().Strs("deployments", removed).Msg("removed deployments no app keeps")
	}
}

// applyChanges acts on watched records, the newest of each key last.
func (s *Supervisor) applyChanges(recs []store.Record) {
	gears := make(map[string]store.Record)
	apps := make(map[string]bool)
	nodes, routers := false, false
	for _, r := range recs {
		switch r.Bucket {
		case state.BucketCerts:
			if s.front != nil {
				s.front.loadCerts()
			}
		case state.BucketGearStatus:
			// A drain asked for or ended by a gear's node.
			nodes = true
			if g := s.gears[r.Key]; g != nil {
				var st state.GearStatus
				if r.Deleted {
					g.reassert(nil)
				} else if r.Decode(&st) == nil && st.Node != s.name {
					g.reassert(&st)
				}
			}
		case state.BucketGears:
			gears[r.Key] = r
		case state.BucketApps:
			s.setApp(r)
			apps[r.Key] = true
		case state.BucketNodes:
			nodes = true
		case state.BucketRouters:
			routers = true
		}
	}
	if routers {
		s.refreshTrusted()
	}
	for id, r := range gears {
		var g state.Gear
		if !r.Deleted && r.Decode(&g) == nil && g.Node == s.name && g.ID == id && s.validID(id) {
			s.want(g)
		} else if s.gears[id] != nil {
			s.drop(id)
		}
	}
	// A changed app (its env) is handed to the gears that did not just
	// get it along with their own change.
	if len(apps) > 0 {
		for id, g := range s.gears {
			if _, done := gears[id]; done {
				continue
			}
			if d := g.desired(); apps[d.gear.App] {
				a := s.apps[d.gear.App]
				d.env = a.env
				g.set(d)
			}
		}
	}
	s.rebuildRoutes()
	// Any gear of the cluster may be a backend of a load balancer here.
	if len(gears) > 0 || nodes {
		s.refreshLBs()
	}
}

func (s *Supervisor) setApp(r store.Record) {
	var a state.App
	if r.Deleted || r.Decode(&a) != nil {
		delete(s.apps, r.Key)
		return
	}
	s.apps[r.Key] = appInfo{id: a.ID, env: a.Env, aliases: a.Aliases, redirect: a.HTTPSRedirect, hsts: a.HSTS()}
}

// want hands gear g's record, with its app's env, to its runtime, creating
// the runtime for a gear new to this node.
func (s *Supervisor) want(g state.Gear) {
	a := s.apps[g.App]
	d := desired{gear: g, appID: a.id, env: a.env, deployment: g.Deployment}
	if gr := s.gears[g.ID]; gr != nil {
		gr.set(d)
		return
	}
	s.gears[g.ID] = s.spawn(g.ID, d)
}

// drop destroys gear id: its runtime stops its process, removes its
// directory and status, and ends.
func (s *Supervisor) drop(id string) {
	gr := s.gears[id]
	if gr == nil {
		return
	}
	delete(s.gears, id)
	gr.set(desired{destroy: true})
	s.dying[id] = gr
}

// spawn starts the runtime of gear id with d. If an earlier runtime of
// the same gear is still being destroyed, the new one waits for it.
func (s *Supervisor) spawn(id string, d desired) *gear {
	g := newGear(s, id)
	if old := s.dying[id]; old != nil {
		g.prev = old.done
		delete(s.dying, id)
	}
	g.set(d)
	s.wg.Go(func() { g.run(s.ctx) })
	return g
}

// rebuildRoutes swaps in a routing table for the gears this node runs: an
// app host goes to the app's running load balancer here if there is one.
func (s *Supervisor) rebuildRoutes() {
	gs := make([]state.Gear, 0, len(s.gears))
	for _, g := range s.gears {
		gs = append(gs, g.desired().gear)
	}
	s.routes.Store(buildRoutes(gs, s.apps, s.cfg.Domain, s.cfg.Addr, s.runningLBs()))
}

// warnStrayDirs handles gear directories that no gear of this node
// accounts for. One whose gear record names another node is a stale copy
// of a gear that moved (replaced while this node was gone): it is
// destroyed. One without a gear record or status record is logged and
// left alone: its gear may be known to the cluster but not yet to this
// member's store (a member whose state file was lost), and it may hold
// data.
func (s *Supervisor) warnStrayDirs() {
	ents, err := os.ReadDir(s.gearsDir())
	if err != nil {
		return
	}
	for _, e := range ents {
		id := e.Name()
		if !e.IsDir() || s.gears[id] != nil || s.dying[id] != nil || !gearIDRE.MatchString(id) {
			continue
		}
		var g state.Gear
		if _, err := s.st.Get(state.BucketGears, id, &g); err == nil {
			if g.Node != s.name {
				s.log.Info().Str("gear", id).Str("now_on", g.Node).Msg("destroy stale copy of a gear that moved to another node")
				s.dying[id] = s.spawn(id, desired{destroy: true})
			}
			continue
		}
		s.log.Warn().Str("gear", id).Str("dir", filepath.Join(s.gearsDir(), id)).
			Msg("gear directory without a gear record left in place")
	}
}

// gearIDRE matches the gear ids a node accepts: an id names a directory,
// so it must not be able to name any other.
var gearIDRE = regexp.MustCompile(`^[a-z0-9]{1,64}$`)

// validID reports whether id may name a gear, logging it if not.
func (s *Supervisor) validID(id string) bool {
	if gearIDRE.MatchString(id) {
		return true
	}
	s.log.Warn().Str("gear", id).Msg("ignore gear with an invalid id")
	return false
}

// jitter returns d plus up to a quarter of d at random.
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return d
	}
	return d + rand.N(d/4+1)
}
