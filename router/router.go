package router

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"gearbox/lb"
	"gearbox/store"
	"gearbox/store/state"
	"gearbox/store/tlscert"
)

// Router is the router role: it proxies the ha- names, aliases and
// hostnames of apps to their LB gears (see the package doc). Create it
// with New, then Start it; Close stops it.
type Router struct {
	cfg   Config
	st    *store.Store
	name  string
	log   zerolog.Logger
	names hostNames

	// table maps hosts to pools; replaced whole by each rebuild, read by
	// every request.
	table atomic.Pointer[table]
	// lastSeq is the highest routing event sequence seen.
	lastSeq atomic.Uint64

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu        sync.Mutex
	started   bool
	closed    bool
	closeErr  error
	srv       *lb.FastServer
	ln        net.Listener
	served    chan struct{} // closed when srv.Serve returns
	httpAddr  string        // the address the listener is bound to
	tlsLn     net.Listener  // the HTTPS listener, if any
	tlsServed chan struct{} // closed when srv.Serve of tlsLn returns
	httpsAddr string        // the address the HTTPS listener is bound to

	// certs are what the HTTPS listener serves; wildcard is TLSCert's.
	certs    tlscert.Set
	wildcard *tls.Certificate
	loader   tlscert.Loader // owned by whoever rebuilds (Start, then run)

	metrics *metrics // nil without Config.Metrics

	// Owned by the run goroutine (by Start before it runs).
	watch   *store.Watch
	members <-chan struct{}
	pools   map[string]*lb.Pool // by app key
	hosts   map[string]string   // the last table's hosts to app keys, for logs
	clashes map[string]bool     // the last table's names claimed twice, logged once
}

// table is one routing table: every host the router serves, normalised,
// to the pool of its app.
type table struct {
	hosts map[string]*lb.Pool
	// apps holds, by app key, the app's pool and the hosts routed to it,
	// for the status report.
	apps map[string]appStatusRef
}

// appStatusRef is an app's pool and hosts in a table.
type appStatusRef struct {
	pool  *lb.Pool
	hosts []string
}

// New validates cfg and returns a Router that does nothing until Start.
func New(cfg Config) (*Router, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	r := &Router{
		cfg:   cfg,
		st:    cfg.Store,
		name:  cfg.Name,
		log:   cfg.Logger.With().Str("component", "router").Logger(),
		names: hostNames{zone: cfg.Domain, prefix: cfg.HAPrefix, suffix: cfg.HASuffix},
		pools: make(map[string]*lb.Pool),
	}
	r.table.Store(&table{})
	r.ctx, r.cancel = context.WithCancel(context.Background())
	if cfg.Metrics != nil {
		r.metrics = newMetrics(r)
		if err := r.metrics.register(cfg.Metrics); err != nil {
			return nil, fmt.Errorf("router: register metrics: %w", err)
		}
	}
	return r, nil
}

// Start opens the HTTP listener, builds the routing table from the store,
// serves, registers the router and keeps the table up to date from then
// on. ctx bounds the registration's write.
func (r *Router) Start(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.closed:
		return ErrClosed
	case r.started:
		return ErrStarted
	}
	ln, err := net.Listen("tcp", r.cfg.HTTPAddr)
	if err != nil {
		if errors.Is(err, syscall.EACCES) {
			return fmt.Errorf("router: listen on %s: %w (ports below 1024 need root or CAP_NET_BIND_SERVICE; or choose another --router-addr)", r.cfg.HTTPAddr, err)
		}
		return fmt.Errorf("router: listen on %s: %w", r.cfg.HTTPAddr, err)
	}
	r.ln, r.httpAddr = ln, ln.Addr().String()
	if r.wildcard, err = tlscert.LoadFiles(r.cfg.TLSCert, r.cfg.TLSKey); err != nil {
		ln.Close()
		return fmt.Errorf("router: %w", err)
	}
	if r.cfg.HTTPSAddr != "" {
		tln, err := net.Listen("tcp", r.cfg.HTTPSAddr)
		if err != nil {
			ln.Close()
			if errors.Is(err, syscall.EACCES) {
				return fmt.Errorf("router: listen on %s: %w (ports below 1024 need root or CAP_NET_BIND_SERVICE; or choose another --https-addr)", r.cfg.HTTPSAddr, err)
			}
			return fmt.Errorf("router: listen on %s: %w", r.cfg.HTTPSAddr, err)
		}
		r.httpsAddr = tln.Addr().String()
		r.tlsLn = tls.NewListener(tln, r.certs.Config())
	}
	closeListeners := func() {
		ln.Close()
		if r.tlsLn != nil {
			r.tlsLn.Close()
		}
	}
	// The watches come first so that no change between the listing and
	// the watch is missed.
	r.watch = r.st.Watch(state.BucketApps, state.BucketGears, state.BucketGearStatus, state.BucketNodes, state.BucketRoutingEvents, state.BucketCerts)
	r.members = r.st.MemberChanges()
	r.lastSeq.Store(r.newestEvent())
	if err := r.rebuild(ctx); err != nil {
		r.watch.Close()
		closeListeners()
		r.closePools()
		return err
	}
	r.srv = lb.NewFastRouter(r.cfg.LB, r.route, r.cfg.NotFoundPage)
	r.srv.SetACMEAnswers(func(host, token string) (string, bool) { return tlscert.Challenge(r.st, host, token) })
	r.served = make(chan struct{})
	go func() {
		defer close(r.served)
		if err := r.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			r.log.Error().Err(err).Str("http", r.httpAddr).Msg("router listener failed")
		}
	}()
	r.tlsServed = make(chan struct{})
	if r.tlsLn == nil {
		close(r.tlsServed)
	} else {
		go func() {
			defer close(r.tlsServed)
			if err := r.srv.Serve(r.tlsLn); !errors.Is(err, http.ErrServerClosed) {
				r.log.Error().Err(err).Str("https", r.httpsAddr).Msg("router HTTPS listener failed")
			}
		}()
	}
	if err := r.register(ctx); err != nil {
		r.srv.Close()
		<-r.served
		<-r.tlsServed
		closeListeners() // if Serve had not begun, it returns without closing them
		r.watch.Close()
		r.closePools()
		return err
	}
	r.started = true
	r.wg.Go(r.run)
	r.log.Info().Str("name", r.name).Str("addr", r.cfg.Addr).Str("http", r.httpAddr).Str("https", r.httpsAddr).Int("apps", len(r.pools)).
		Uint64("routing_seq", r.lastSeq.Load()).Msg("router started")
	return nil
}

// HTTPAddr returns the address the HTTP listener is bound to once
// started (Config.HTTPAddr before).
func (r *Router) HTTPAddr() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.httpAddr == "" {
		return r.cfg.HTTPAddr
	}
	return r.httpAddr
}

// HTTPSAddr returns the address the HTTPS listener is bound to once
// started, "" without one.
func (r *Router) HTTPSAddr() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.httpsAddr
}

// LastEvent returns the sequence of the newest routing event the router
// has seen.
func (r *Router) LastEvent() uint64 { return r.lastSeq.Load() }

// Close is Shutdown with no deadline of its own: requests in flight get
// StopGrace.
func (r *Router) Close() error { return r.Shutdown(context.Background()) }

// Shutdown removes the router's registration and ha- claims (while the
// store is open), stops serving, lets requests in flight finish for up to
// StopGrace or until ctx ends, whichever comes first, and stops every
// pool. It is safe to call twice, and with Close, and returns the first
// error.
func (r *Router) Shutdown(ctx context.Context) error {
	r.mu.Lock()
	if r.closed {
		err := r.closeErr
		r.mu.Unlock()
		return err
	}
	r.closed = true
	started := r.started
	r.mu.Unlock()
	r.cancel()
	if !started {
		return nil
	}
	r.wg.Wait()
	// Unregistered first: DNS stops giving this router out while it
	// finishes what it serves.
	uctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	err := r.unregister(uctx)
	cancel()
	sctx, cancel := context.WithTimeout(ctx, r.cfg.StopGrace)
	if serr := r.srv.Shutdown(sctx); serr != nil {
		r.srv.Close()
	}
	cancel()
	<-r.served
	<-r.tlsServed
	r.ln.Close() // if Serve had not begun, it returns without closing ln
	if r.tlsLn != nil {
		r.tlsLn.Close()
	}
	r.closePools()
	r.log.Info().Msg("router stopped")
	r.mu.Lock()
	r.closeErr = err
	r.mu.Unlock()
	return err
}

// route returns the pool of host, nil if the router serves no app there.
// It is the request path: an exact match costs one map lookup.
func (r *Router) route(host string) *lb.Pool {
	t := r.table.Load()
	if p, ok := t.hosts[host]; ok {
		return p
	}
	if h := normalizeHost(host); h != host {
		return t.hosts[h]
	}
	return nil
}

// run rebuilds the routing table on changes, coalesced, and on the resync
// timer.
func (r *Router) run() {
	defer r.watch.Close()
	resync := time.NewTimer(jitter(r.cfg.ResyncInterval))
	defer resync.Stop()
	due := time.NewTimer(time.Hour)
	due.Stop()
	defer due.Stop()
	last, pending := time.Now(), false
	changed := func() {
		if !pending {
			pending = true
			due.Reset(max(0, r.cfg.CoalesceInterval-time.Since(last)))
		}
	}
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-r.watch.C():
			r.follow(r.watch.Next())
			changed()
		case <-r.members:
			changed()
		case <-due.C:
			pending = false
			if err := r.rebuild(r.ctx); err != nil && r.ctx.Err() == nil {
				r.log.Warn().Err(err).Msg("rebuild routing table failed")
			}
			last = time.Now()
		case <-resync.C:
			if err := r.rebuild(r.ctx); err != nil && r.ctx.Err() == nil {
				r.log.Warn().Err(err).Msg("rebuild routing table failed")
			}
			if err := r.checkRegistration(r.ctx); err != nil && r.ctx.Err() == nil {
				r.log.Warn().Err(err).Msg("register router failed")
			}
			last = time.Now()
			resync.Reset(jitter(r.cfg.ResyncInterval))
		}
	}
}

// jitter shortens d by a random part of up to a quarter.
func jitter(d time.Duration) time.Duration {
	return d - time.Duration(rand.Int64N(int64(d)/4+1))
}

// rebuild derives the routing table from the store and membership,
// applies it, and reconciles the router's ha- claims with it.
func (r *Router) rebuild(ctx context.Context) error {
	snap, err := r.snapshot()
	if err != nil {
		return err
	}
	routes := buildRoutes(snap, r.names)
	r.apply(routes)
	r.loadCerts()
	return r.reconcileClaims(ctx, routes)
}

// snapshot reads what the routing table is derived from.
func (r *Router) snapshot() (snapshot, error) {
	snap := snapshot{
		apps:    make(map[string]state.App),
		status:  make(map[string]state.GearStatus),
		nodes:   make(map[string]state.Node),
		members: make(map[string]string),
	}
	list := func(bucket string, each func(store.Record) error) error {
		recs, err := r.st.List(bucket)
		if err != nil {
			return fmt.Errorf("list %s: %w", bucket, err)
		}
		for _, rec := range recs {
			if err := each(rec); err != nil {
				r.log.Warn().Err(err).Str("bucket", bucket).Str("key", rec.Key).Msg("skip undecodable record")
			}
		}
		return nil
	}
	err := errors.Join(
		list(state.BucketApps, func(rec store.Record) error {
			var a state.App
			if err := rec.Decode(&a); err != nil {
				return err
			}
			if state.AppKey(a.Domain, a.Name) != rec.Key {
				return fmt.Errorf("app %s/%s under key %s", a.Domain, a.Name, rec.Key)
			}
			snap.apps[rec.Key] = a
			return nil
		}),
		list(state.BucketGears, func(rec store.Record) error {
			var g state.Gear
			if err := rec.Decode(&g); err != nil {
				return err
			}
			if g.ID == rec.Key {
				snap.gears = append(snap.gears, g)
			}
			return nil
		}),
		list(state.BucketGearStatus, func(rec store.Record) error {
			var s state.GearStatus
			if err := rec.Decode(&s); err != nil {
				return err
			}
			snap.status[rec.Key] = s
			return nil
		}),
		list(state.BucketNodes, func(rec store.Record) error {
			var n state.Node
			if err := rec.Decode(&n); err != nil {
				return err
			}
			snap.nodes[rec.Key] = n
			return nil
		}),
	)
	if err != nil {
		return snapshot{}, err
	}
	for _, m := range r.st.Members() {
		snap.members[m.Name] = m.Status
	}
	return snap, nil
}

// apply makes routes the routing table: a pool for each new app, new
// backends for those that changed, and the pools of apps that went
// closed.
func (r *Router) apply(routes []route) {
	pools := make(map[string]*lb.Pool, len(routes))
	t := &table{hosts: make(map[string]*lb.Pool)}
	owner := make(map[string]string) // host to app key
	clashes := make(map[string]bool) // "host app" of names an app does not get
	for _, rt := range routes {
		p := r.pools[rt.app]
		if p == nil {
			var err error
			cfg := r.cfg.poolConfig(rt.app, rt.host)
			cfg.Metrics = r.metrics.forApp(rt.app)
			if p, err = lb.New(cfg); err != nil {
				// Only a bad Config.LB fails, and New checked it.
				r.log.Error().Err(err).Str("app", rt.app).Msg("create pool failed")
				continue
			}
			p.Start(r.ctx)
			r.log.Info().Str("app", rt.app).Strs("hosts", rt.hosts).Int("backends", len(rt.backends)).Msg("app routed")
		}
		if !slices.Equal(p.Backends(), rt.backends) {
			if err := p.SetBackends(rt.backends); err != nil {
				r.log.Warn().Err(err).Str("app", rt.app).Msg("set backends failed")
			}
		}
		p.SetHTTPS(rt.redirect, rt.hsts)
		pools[rt.app] = p
	}
	// An app's own names come first, then aliases; of two apps that
	// claim one alias, the one with the lower key keeps it.
	own := func(rt route, h string) bool { return h == rt.host || h == rt.haHost }
	for _, pass := range []bool{true, false} {
		for _, rt := range routes {
			p := pools[rt.app]
			if p == nil {
				continue
			}
			for _, h := range rt.hosts {
				if own(rt, h) != pass {
					continue
				}
				if other, taken := owner[h]; taken {
					if !r.clashes[h+" "+rt.app] {
						r.log.Warn().Str("host", h).Str("app", rt.app).Str("kept_by", other).Msg("host name claimed twice")
					}
					clashes[h+" "+rt.app] = true
					continue
				}
				owner[h] = rt.app
				t.hosts[h] = p
			}
		}
	}
	t.apps = make(map[string]appStatusRef, len(pools))
	for h, key := range owner {
		ref := t.apps[key]
		ref.pool, ref.hosts = pools[key], append(ref.hosts, h)
		t.apps[key] = ref
	}
	r.table.Store(t)
	for key, p := range r.pools {
		if pools[key] == nil {
			p.Close()
			r.metrics.forget(key)
			r.log.Info().Str("app", key).Msg("app no longer routed")
		}
	}
	for h, key := range owner {
		if r.hosts[h] != key {
			r.log.Debug().Str("host", h).Str("app", key).Msg("host routed")
		}
	}
	for h := range r.hosts {
		if _, ok := owner[h]; !ok {
			r.log.Debug().Str("host", h).Msg("host no longer routed")
		}
	}
	r.pools, r.hosts, r.clashes = pools, owner, clashes
}

// loadCerts makes the aliases' certificates in the store and the
// wildcard certificate those the HTTPS listener serves.
func (r *Router) loadCerts() {
	if r.tlsLn == nil {
		return
	}
	r.loader.Secret = r.cfg.ClusterSecret
	aliases, err := r.loader.Load(r.st)
	if err != nil {
		r.log.Warn().Err(err).Msg("some alias certificates cannot be served")
	}
	r.certs.Update(aliases, r.wildcard)
}

// closePools stops every pool.
func (r *Router) closePools() {
	r.table.Store(&table{})
	for key, p := range r.pools {
		p.Close()
		delete(r.pools, key)
	}
}
