package lb

import (
	"cmp"
	"context"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// Pool is a load balancer over a set of backends. It is an http.Handler:
// it proxies each request to one backend, and serves the status page at
// Config.StatusPath.
//
// Create a Pool with New; it serves at once, with backends up or down as
// Config.StartDown says. Start launches the active health checks, without
// which a backend that went down never comes back. Close stops them. All
// methods are safe for concurrent use.
type Pool struct {
	cfg      Config
	log      zerolog.Logger
	clock    Clock
	expect   statusMatcher
	balance  int
	affinity bool

	set   atomic.Pointer[backendSet]
	https atomic.Pointer[httpsPolicy] // never nil
	next  atomic.Uint64               // counts picks: round robin position, leastconn's tie breaker

	sessions      atomic.Int64  // requests in flight, over all backends
	queued        atomic.Int64  // requests waiting for a place under MaxConns
	requests      atomic.Uint64 // requests proxied or refused
	retries       atomic.Uint64 // attempts after the first
	noBackend     atomic.Uint64 // 503s for want of a backend
	queueTimeouts atomic.Uint64 // 503s for want of a place under MaxConns
	sem           chan struct{} // MaxConns places; nil: no cap

	// Rotation of the local backend, read on the request path.
	localOut    atomic.Bool  // the local backend is out of rotation
	rotPending  atomic.Bool  // out was asked and waits for a remote or the deadline
	rotDeadline atomic.Int64 // unix ns after which a pending rotation happens anyway

	proxy     *httputil.ReverseProxy
	transport *http.Transport // to backends
	checker   *http.Client    // for active checks
	dialer    net.Dialer

	// trustedList is Config.TrustedProxies until SetTrustedProxies
	// replaces it; never nil.
	trustedList atomic.Pointer[[]netip.Prefix]
	trustProof  []byte // Config.TrustProof

	errLogNext atomic.Int64  // unix ns before which proxy errors are not logged
	errLogSkip atomic.Uint64 // proxy errors not logged since the last one

	mu       sync.Mutex // serialises SetBackends, rotation changes, Start and Close
	rotOut   bool       // the broker asked for the local backend out
	rotSince time.Time  // when it asked
	kick     chan struct{}
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	closed   atomic.Bool
}

// backendSet is an immutable set of backends, replaced as a whole.
type backendSet struct {
	list     []*backend
	byID     map[string]*backend
	byCookie map[string]*backend
}

const (
	leastConn = iota
	roundRobin
)

// idleConnTimeout is how long an idle connection to a backend is kept. A
// backend that closes idle connections sooner now and then makes a reused
// connection fail: net/http then resends an idempotent request, and the
// pool resends any request of which nothing was written.
const idleConnTimeout = 30 * time.Second

// httpsPolicy is what a FastServer does for the pool's requests over
// plain HTTP and HTTPS (SetHTTPS).
type httpsPolicy struct {
	redirect bool
	hsts     string
}

// SetHTTPS sets, for a FastServer that serves HTTPS too, the app's
// choices: redirect answers the pool's plain HTTP requests with a
// permanent redirect (308) to HTTPS, and hsts, if not empty, is the
// Strict-Transport-Security value added to its answers over HTTPS
// ("max-age=31536000"). Both are off until set; safe at any time.
func (p *Pool) SetHTTPS(redirect bool, hsts string) {
	if cur := p.https.Load(); cur.redirect != redirect || cur.hsts != hsts {
		p.https.Store(&httpsPolicy{redirect: redirect, hsts: hsts})
	}
}

// New validates cfg and returns a pool of cfg.Backends that is ready to
// serve. It starts no goroutine.
func New(cfg Config) (*Pool, error) {
	cfg = cfg.withDefaults()
	expect, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	p := &Pool{
		cfg:      cfg,
		log:      cfg.Logger.With().Str("component", "lb").Logger(),
		clock:    cfg.Clock,
		expect:   expect,
		affinity: !cfg.NoAffinity,
		kick:     make(chan struct{}, 1),
		dialer:   net.Dialer{Timeout: cfg.ConnectTimeout, KeepAlive: 30 * time.Second},
	}
	p.https.Store(&httpsPolicy{})
	if cfg.Balance == RoundRobin {
		p.balance = roundRobin
	}
	if cfg.MaxConns > 0 {
		p.sem = make(chan struct{}, cfg.MaxConns)
	}
	p.transport = &http.Transport{
		DialContext:           p.dial,
		MaxIdleConnsPerHost:   cfg.MaxIdleConns,
		IdleConnTimeout:       idleConnTimeout,
		ResponseHeaderTimeout: cfg.ServerTimeout,
		ExpectContinueTimeout: time.Second,
		// A proxy passes Accept-Encoding through; it must not ask for gzip
		// on its own and decompress.
		DisableCompression: true,
	}
	p.checker = &http.Client{
		Transport: &http.Transport{
			// haproxy opens a connection per check: a check also proves
			// that the backend accepts connections.
			DisableKeepAlives:  true,
			DisableCompression: true,
			DialContext:        (&net.Dialer{Timeout: cfg.HealthTimeout}).DialContext,
		},
		// 3xx passes by default: look at the redirect, do not follow it.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	p.proxy = &httputil.ReverseProxy{
		Rewrite:        p.rewrite,
		Transport:      (*retryTransport)(p),
		ModifyResponse: p.modifyResponse,
		ErrorHandler:   p.proxyError,
		BufferPool:     &bufferPool{},
		ErrorLog:       log.New(logWriter{p.log}, "", 0),
	}
	p.set.Store(&backendSet{})
	p.SetTrustedProxies(cfg.TrustedProxies)
	if cfg.TrustProof != "" {
		p.trustProof = []byte(cfg.TrustProof)
	}
	if err := p.SetBackends(cfg.Backends); err != nil {
		return nil, err
	}
	return p, nil
}

// Start launches the active health checks: a first round at once, then one
// every HealthInterval. They stop when ctx is done or at Close.
func (p *Pool) Start(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed.Load() {
		return ErrClosed
	}
	if p.cancel != nil {
		return ErrStarted
	}
	ctx, p.cancel = context.WithCancel(ctx)
	// The first round checks every backend: earlier additions need no
	// round of their own.
	select {
	case <-p.kick:
	default:
	}
	p.wg.Go(func() { p.runChecks(ctx) })
	return nil
}

// Close stops the health checks, waits for them and closes idle backend
// connections. Requests in flight go on; new ones get a 503. Close is safe
// to call twice and always returns nil.
func (p *Pool) Close() error {
	p.mu.Lock()
	if p.closed.Swap(true) {
		p.mu.Unlock()
		return nil
	}
	cancel := p.cancel
	p.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	// Not under mu: a check that brings a backend up takes mu to update
	// the rotation.
	p.wg.Wait()
	p.transport.CloseIdleConnections()
	p.checker.CloseIdleConnections()
	p.log.Debug().Msg("pool closed")
	return nil
}

// SetBackends replaces the set of backends. A backend whose ID, Addr and
// Local are unchanged keeps its state (health, drain, counters); any other
// is new and starts as Config.StartDown says. Requests in flight to a
// removed backend complete. New backends are checked at once if Start ran.
func (p *Pool) SetBackends(list []Backend) error {
	if err := checkBackends(list); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	old := p.set.Load()
	ns := &backendSet{
		list:     make([]*backend, 0, len(list)),
		byID:     make(map[string]*backend, len(list)),
		byCookie: make(map[string]*backend, len(list)),
	}
	added := false
	for _, spec := range list {
		b := old.byID[spec.ID]
		if b == nil || !sameBackend(b.Backend, spec) {
			b = p.newBackend(spec)
			added = true
			p.log.Info().Str("backend", spec.ID).Str("addr", spec.Addr).Bool("local", spec.Local).
				Bool("up", b.healthy.Load()).Msg("backend added")
		} else if spec.Ready != b.ready.Load() {
			b.ready.Store(spec.Ready)
			if spec.Ready && !b.healthy.Load() {
				// Its node says it started: checked at once, and up on
				// one pass.
				b.fastRise.Store(true)
				added = true
			}
		}
		ns.list = append(ns.list, b)
		ns.byID[b.ID] = b
		ns.byCookie[b.cookie] = b
	}
	for _, b := range old.list {
		if ns.byID[b.ID] != b {
			p.log.Info().Str("backend", b.ID).Str("addr", b.Addr).Msg("backend removed")
		}
	}
	p.set.Store(ns)
	p.updateRotationLocked()
	if added {
		select {
		case p.kick <- struct{}{}:
		default:
		}
	}
	return nil
}

func (p *Pool) newBackend(spec Backend) *backend {
	b := &backend{
		Backend:  spec,
		cookie:   CookieValue(p.cfg.Secret, spec.ID),
		checkURL: "http://" + spec.Addr + cmp.Or(spec.HealthPath, p.cfg.HealthPath),
		since:    p.clock.Now(),
		why:      "added",
	}
	b.setCookie = p.cfg.CookieName + "=" + b.cookie + "; Path=/; HttpOnly"
	b.healthy.Store(!p.cfg.StartDown)
	b.ready.Store(spec.Ready)
	b.fastRise.Store(spec.Ready && p.cfg.StartDown)
	return b
}

// Backends returns the current backends, in the order given to SetBackends.
func (p *Pool) Backends() []Backend {
	set := p.set.Load()
	out := make([]Backend, len(set.list))
	for i, b := range set.list {
		out[i] = b.Backend
		out[i].Ready = b.ready.Load()
	}
	return out
}

// Drain stops sending new requests to backend id, affinity requests
// included (they move to another backend and get a new cookie). The
// returned channel is closed once no request to it is in flight, at once if
// none is. Draining is kept across SetBackends while the backend is
// unchanged; Resume ends it.
func (p *Pool) Drain(id string) (<-chan struct{}, error) {
	b := p.set.Load().byID[id]
	if b == nil {
		return nil, ErrUnknownBackend
	}
	if !b.draining.Load() {
		p.log.Info().Str("backend", id).Int64("in_flight", b.inflight.Load()).Msg("backend draining")
	}
	return b.drain(), nil
}

// Resume sends requests to backend id again after Drain. The channel of an
// unfinished drain is then never closed: callers waiting on it should also
// watch a deadline of their own.
func (p *Pool) Resume(id string) error {
	b := p.set.Load().byID[id]
	if b == nil {
		return ErrUnknownBackend
	}
	if b.resume() {
		p.log.Info().Str("backend", id).Msg("backend resumed")
	}
	return nil
}

// CheckNow checks backend id once, at once, with the pool's own health
// check, for a caller that knows the backend has just started to answer:
// a node whose gear's new process is ready. A backend that is down and
// passes comes up at once, without waiting for Config.Rise checks, since
// a check made before it listened is what took it down; why is shown on
// the status page. A backend that is up, or that fails, is left as the
// regular checks have it. It reports whether the backend is up.
func (p *Pool) CheckNow(ctx context.Context, id, why string) (bool, error) {
	b := p.set.Load().byID[id]
	if b == nil {
		return false, ErrUnknownBackend
	}
	if b.healthy.Load() {
		return true, nil
	}
	res := p.probe(ctx, b)
	if !res.OK {
		return false, nil
	}
	if b.markUp(res, why) {
		p.log.Info().Str("backend", id).Str("addr", b.Addr).Int("status", res.Status).Str("why", why).Msg("backend up")
		p.updateRotation()
	}
	return true, nil
}

// Sessions returns the number of requests in flight over all backends, an
// open WebSocket counting as one: the load figure for an autoscaler.
func (p *Pool) Sessions() int64 { return p.sessions.Load() }

// eligible reports whether b may get new requests.
func (p *Pool) eligible(b *backend) bool {
	return b.healthy.Load() && !b.draining.Load() && !(b.Local && p.localOut.Load())
}

// markDown takes b down after a failed connection to it.
func (p *Pool) markDown(b *backend, err error) {
	if b.markDown(p.clock.Now()) {
		p.log.Warn().Str("backend", b.ID).Str("addr", b.Addr).Err(err).Msg("backend down")
	}
}

// logProxyError logs a failed request, at most once a second with the
// number of failures left out since the last line.
func (p *Pool) logProxyError(b *backend, code int, err error) {
	now := p.clock.Now().UnixNano()
	next := p.errLogNext.Load()
	if now < next || !p.errLogNext.CompareAndSwap(next, now+int64(time.Second)) {
		p.errLogSkip.Add(1)
		return
	}
	ev := p.log.Warn().Int("status", code).Uint64("not_logged", p.errLogSkip.Swap(0)).Err(err)
	if b != nil {
		ev = ev.Str("backend", b.ID)
	}
	ev.Msg("proxy error")
}

// logWriter passes the few lines that httputil.ReverseProxy logs itself
// (such as a body copy that failed) to the pool's logger.
type logWriter struct{ log zerolog.Logger }

func (w logWriter) Write(b []byte) (int, error) {
	w.log.Debug().Str("detail", strings.TrimSpace(string(b))).Msg("reverse proxy")
	return len(b), nil
}
