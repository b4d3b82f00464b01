package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	stdlog "log"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"gearbox/lb"
	"gearbox/store"
	"gearbox/store/state"
)

// forwardedHeader marks a call a follower broker forwarded to the leader,
// so that a leader that lost its leadership meanwhile does not forward it
// again.
const forwardedHeader = "X-Gearbox-Forwarded-By"

// Broker serves the REST API and applies the platform's rules.
type Broker struct {
	cfg  Config
	st   *store.Store
	log  zerolog.Logger
	auth authCache
	// limits are the failed-login budgets (authlimit.go).
	limits authLimits
	// bcrypts counts bcrypt operations (checks and hashes), for tests.
	bcrypts atomic.Int64

	// mu serialises mutations on the leader: each handler reads the
	// current state, checks its rules and writes one batch.
	mu       sync.Mutex
	seq      uint64 // last routing event sequence written; guarded by mu
	alertSeq uint64 // last alert sequence written; guarded by mu

	ln     net.Listener
	srv    *http.Server
	guard  *lb.ServerGuard // the API's time-outs and caps (listener.go)
	apiURL string

	// logClient reads gears' logs from their nodes.
	logClient *http.Client

	// git is the apps' git remotes (git.go).
	git gitState

	// metrics are the broker's Prometheus metrics; nil without
	// Config.Metrics.
	metrics *brokerMetrics

	// feed wakes routing feed readers (followed feeds, webhook
	// deliverers) when events arrive.
	feed *feedHub
	// alertHub does the same for the alert feed.
	alertHub *feedHub
	// followers counts the followed feeds being served.
	followers atomic.Int64

	// deliverers counts the running webhook deliverers.
	deliverers atomic.Int64

	// rolloutPasses counts the passes of the roll-out loop, for tests.
	rolloutPasses atomic.Int64
	// healPasses counts the healing passes done as leader, for tests.
	healPasses atomic.Int64
	// autoscalePasses counts the autoscaling passes done as leader.
	autoscalePasses atomic.Int64

	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	once    sync.Once
	started atomic.Bool // Start was called
	closed  atomic.Bool // Close or Shutdown was called
}

// New validates cfg.
func New(cfg Config) (*Broker, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	b := &Broker{cfg: cfg, st: cfg.Store, log: cfg.Logger.With().Str("component", "broker").Logger(), logClient: newLogClient(cfg.ClusterSecret),
		feed: newFeedHub(), alertHub: newFeedHub(), limits: newAuthLimits(cfg)}
	var err error
	if b.metrics, err = newBrokerMetrics(b, cfg.Metrics); err != nil {
		return nil, fmt.Errorf("broker: register metrics: %w", err)
	}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	return b, nil
}

// Handler returns the REST API. Every answer is an envelope, also for
// unknown resources (404) and methods (405, with Allow). Paths that are not
// canonical (empty, "." or ".." segments, also when escaped) are refused
// with 400 rather than redirected as http.ServeMux does: a client that
// follows the redirect (a 307 keeps the method) would act on another
// resource than the one it named.
func (b *Broker) Handler() http.Handler {
	mux := http.NewServeMux()
	b.routes(mux)
	return b.metrics.instrument(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !canonicalPath(r.URL.Path) {
			b.fail(w, r, badRequest("The path %q is not canonical: it has empty, '.' or '..' segments.", r.URL.Path))
			return
		}
		if h, pattern := mux.Handler(r); pattern == "" {
			// No route: let the mux say whether the path exists for
			// another method, then answer in an envelope.
			probe := &statusProbe{header: http.Header{}}
			h.ServeHTTP(probe, r)
			if probe.code == http.StatusMethodNotAllowed {
				w.Header().Set("Allow", probe.header.Get("Allow"))
				b.fail(w, r, errorf(http.StatusMethodNotAllowed, 1, "Method %s is not allowed on %s; allowed: %s.", r.Method, r.URL.Path, probe.header.Get("Allow")))
				return
			}
			b.fail(w, r, notFound("No such API resource: %s %s. GET /broker/rest/api lists them.", r.Method, r.URL.Path))
			return
		}
		mux.ServeHTTP(w, r)
	}))
}

// canonicalPath reports whether p is absolute and has no empty, "." or
// ".." segment (a trailing slash is allowed).
func canonicalPath(p string) bool {
	if p == "" || p[0] != '/' {
		return false
	}
	c := path.Clean(p)
	if strings.HasSuffix(p, "/") && c != "/" {
		c += "/"
	}
	return c == p
}

// statusProbe records the status and headers a handler writes and drops
// the body.
type statusProbe struct {
	header http.Header
	code   int
}

func (p *statusProbe) Header() http.Header         { return p.header }
func (p *statusProbe) Write(b []byte) (int, error) { return len(b), nil }
func (p *statusProbe) WriteHeader(code int)        { p.code = code }

// Start listens on APIAddr, registers this broker in the store and starts
// the bootstrap and routing loops. It may be called once: a second call
// returns ErrStarted.
func (b *Broker) Start(ctx context.Context) error {
	if b.closed.Load() {
		return ErrClosed
	}
	if !b.started.CompareAndSwap(false, true) {
		return ErrStarted
	}
	ln, err := net.Listen("tcp", b.cfg.APIAddr)
	if err != nil {
		return fmt.Errorf("listen for REST API on %s: %w", b.cfg.APIAddr, err)
	}
	b.ln = ln
	scheme := "http"
	if b.cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(b.cfg.TLSCert, b.cfg.TLSKey)
		if err != nil {
			ln.Close()
			return fmt.Errorf("load TLS certificate %s: %w", b.cfg.TLSCert, err)
		}
		b.ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
		scheme = "https"
	}
	host := b.cfg.AdvertiseAddr
	if host == "" {
		host = b.st.AdvertiseAddr()
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	b.apiURL = scheme + "://" + net.JoinHostPort(host, port)
	if _, err := b.st.Put(ctx, state.BucketBrokers, b.st.Name(), state.Broker{Name: b.st.Name(), API: b.apiURL, Since: b.cfg.Now()}); err != nil {
		ln.Close()
		return fmt.Errorf("register broker: %w", err)
	}
	routing, alerts := b.routingFeed(), b.alertFeed()
	feedWatch, err := b.startFeed(routing)
	if err != nil {
		ln.Close()
		return fmt.Errorf("read routing events: %w", err)
	}
	alertWatch, err := b.startFeed(alerts)
	if err != nil {
		feedWatch.Close()
		ln.Close()
		return fmt.Errorf("read alerts: %w", err)
	}
	b.srv = &http.Server{
		Handler: b.Handler(),
		// TLS handshake and other connection errors are the client's;
		// they go to the debug log, not to stderr.
		ErrorLog: stdlog.New(debugWriter{b.log}, "", 0),
	}
	// Time-outs and caps (listener.go).
	b.guard = lb.GuardServer(b.srv, b.apiLimits())
	b.wg.Go(func() { b.feedLoop(routing, feedWatch) })
	b.wg.Go(func() { b.feedLoop(alerts, alertWatch) })
	b.wg.Go(b.webhookLoop)
	b.wg.Go(func() {
		if err := b.srv.Serve(b.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			b.log.Error().Err(err).Msg("REST API server stopped")
		}
	})
	b.wg.Go(b.bootstrapLoop)
	b.wg.Go(b.rolloutLoop)
	b.wg.Go(b.healLoop)
	b.wg.Go(b.autoscaleLoop)
	b.wg.Go(b.repoLoop)
	b.wg.Go(b.certLoop)
	b.wg.Go(b.acmeLoop)
	b.log.Info().Str("api", b.apiURL).Msg("broker started")
	return nil
}

// URL is the base URL of this broker's REST API, once started.
func (b *Broker) URL() string { return b.apiURL }

// Close is Shutdown with 5 s for requests in flight to finish.
func (b *Broker) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return b.Shutdown(ctx)
}

// Shutdown stops the API server, letting requests in flight finish until
// ctx ends, and the loops. It is safe to call twice, and with Close; the
// second call returns nil. Its error says that requests were still
// running when ctx ended and were cut.
func (b *Broker) Shutdown(ctx context.Context) error {
	var err error
	b.once.Do(func() {
		b.closed.Store(true)
		b.cancel()
		if b.srv != nil {
			if e := b.srv.Shutdown(ctx); e != nil {
				b.srv.Close()
				err = fmt.Errorf("stop REST API server: %w", e)
			}
		}
		b.wg.Wait()
		if t, ok := b.cfg.HTTPClient.Transport.(*http.Transport); ok {
			t.CloseIdleConnections()
		}
	})
	return err
}

// isLeader reports whether this member is the broker leader.
func (b *Broker) isLeader() bool {
	l, ok := b.st.Leader()
	return ok && l.Name == b.st.Name()
}

// forward proxies a mutating call to the leader.
func (b *Broker) forward(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get(forwardedHeader) != "" {
		b.fail(w, r, errorf(http.StatusServiceUnavailable, 1, "The broker leader changed while the request was forwarded; retry."))
		return
	}
	l, ok := b.st.Leader()
	if !ok {
		b.fail(w, r, errorf(http.StatusServiceUnavailable, 1, "No broker leader is alive; the cluster cannot accept changes now."))
		return
	}
	var reg state.Broker
	if _, err := b.st.Get(state.BucketBrokers, l.Name, &reg); err != nil {
		b.fail(w, r, errorf(http.StatusServiceUnavailable, 1, "The broker leader %s has not registered its API yet; retry.", l.Name))
		return
	}
	target, err := url.Parse(reg.API)
	if err != nil {
		b.fail(w, r, fmt.Errorf("leader %s API url %q: %w", l.Name, reg.API, err))
		return
	}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = r.Host
			pr.Out.Header.Set(forwardedHeader, b.st.Name())
			b.setForwardedFor(pr.Out, pr.In)
		},
		Transport: b.cfg.HTTPClient.Transport,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if errors.Is(err, lb.ErrBodyTimeout) {
				b.fail(w, r, bodyError("request body", err))
				return
			}
			b.log.Warn().Err(err).Str("leader", l.Name).Msg("forward to leader failed")
			b.fail(w, r, errorf(http.StatusServiceUnavailable, 1, "The broker leader %s could not be reached; retry.", l.Name))
		},
	}
	proxy.ServeHTTP(w, r)
}

// call is a request handler: u is the authenticated user, p its parameters.
type call func(w http.ResponseWriter, r *http.Request, u *state.User, p params) error

// callMode says how handle serves a call.
type callMode int

const (
	// authed calls need an authenticated user; mutations run under b.mu.
	authed callMode = iota
	// public calls need no authentication.
	public
	// ownLock calls need an authenticated user and take b.mu themselves,
	// so that they can do slow work first (hashing a password).
	ownLock
)

// handle wraps fn: mutations carrying HTTP basic auth from another site's
// page are refused (csrf.go), other mutations are forwarded to the leader
// (and serialised there), then the caller is authenticated and the
// parameters read.
func (b *Broker) handle(fn call, mode callMode) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		mutating := r.Method != http.MethodGet && r.Method != http.MethodHead
		if mutating {
			if err := refuseCrossSite(r); err != nil {
				b.fail(w, r, err)
				return
			}
			if !b.isLeader() {
				b.forward(w, r)
				return
			}
		}
		var u *state.User
		if mode != public {
			var err error
			if u, err = b.authenticate(r); err != nil {
				b.fail(w, r, err)
				return
			}
		}
		p, err := readParams(r, b.cfg.MaxBodyBytes)
		if err != nil {
			b.fail(w, r, err)
			return
		}
		if mutating && mode != ownLock {
			b.mu.Lock()
			defer b.mu.Unlock()
		}
		if err := fn(w, r, u, p); err != nil {
			b.fail(w, r, err)
		}
	}
}

// bootstrapLoop creates the first admin once this member leads a cluster
// that has none.
func (b *Broker) bootstrapLoop() {
	changes := b.st.MemberChanges()
	var lastGC time.Time
	for {
		if b.isLeader() {
			if err := b.bootstrapOnce(b.ctx); err != nil && b.ctx.Err() == nil {
				b.log.Error().Err(err).Msg("bootstrap admin failed")
			}
			if now := b.cfg.Now(); now.Sub(lastGC) >= tokenGCInterval {
				lastGC = now
				if n, err := b.collectTokens(b.ctx); err != nil && b.ctx.Err() == nil {
					b.log.Warn().Err(err).Msg("collect expired tokens failed")
				} else if n > 0 {
					b.log.Info().Int("tokens", n).Msg("expired tokens deleted")
				}
			}
		}
		select {
		case <-b.ctx.Done():
			return
		case <-changes:
		case <-time.After(time.Second + rand.N(500*time.Millisecond)):
		}
	}
}

// bootstrapOnce creates the first admin when the cluster has none. A
// member that has peers waits until it has synchronised with one, so that
// a fresh broker joining an existing cluster never creates a second admin.
func (b *Broker) bootstrapOnce(ctx context.Context) error {
	if _, err := b.st.GetRecord(state.BucketCluster, state.KeyBootstrap); err == nil {
		return nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	alone := true
	for _, m := range b.st.Members() {
		if m.Name != b.st.Name() && m.Status == store.StatusAlive {
			alone = false
		}
	}
	// A member started to join others may look alone until the join
	// lands: it waits for its first sync, or it would overwrite the
	// cluster's admin with its own.
	if (!alone || b.cfg.Joining) && b.st.LastSync().IsZero() {
		return nil
	}
	login, password, generated := "admin", "", false
	if b.cfg.BootstrapAdmin != "" {
		login, password, _ = strings.Cut(b.cfg.BootstrapAdmin, ":")
	} else {
		password = randomID(12)
		generated = true
	}
	hash, err := b.hashPassword(password)
	if err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.cfg.Now()
	u := state.User{Login: login, PasswordHash: hash, Admin: true, CreatedAt: now,
		Capabilities: state.Capabilities{HA: true, MaxGears: max(b.cfg.DefaultMaxGears, 100), GearSizes: append([]string(nil), state.GearSizes...)}}
	if generated {
		path := filepath.Join(b.cfg.DataDir, "bootstrap-admin")
		if err := writeSecretFile(path, []byte(login+":"+password+"\n")); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
		// The password goes to the file only: logs are collected, shipped
		// and read by more people than the operator.
		b.log.Warn().Str("login", login).Str("file", path).Str("fix", "read the password there, change it, and delete the file").
			Msg("created bootstrap admin with a generated password")
	} else {
		b.log.Info().Str("login", login).Msg("created bootstrap admin")
	}
	_, err = b.st.Batch(ctx, []store.Op{
		{Bucket: state.BucketUsers, Key: login, Value: u},
		{Bucket: state.BucketCluster, Key: state.KeyBootstrap, Value: state.Bootstrap{Admin: login, CreatedAt: now}},
	})
	return err
}

// writeSecretFile writes data to path, readable by its owner only. An
// existing file is truncated and its mode reset too: os.WriteFile keeps the
// mode of a file that exists, which could be world-readable.
func writeSecretFile(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// user reads a user record.
func (b *Broker) user(login string) (*state.User, error) {
	var u state.User
	if _, err := b.st.Get(state.BucketUsers, login, &u); err != nil {
		return nil, err
	}
	return &u, nil
}

// list decodes every live record of bucket into a T.
func list[T any](st *store.Store, bucket string) ([]T, error) {
	recs, err := st.List(bucket)
	if err != nil {
		return nil, err
	}
	out := make([]T, 0, len(recs))
	for _, r := range recs {
		var v T
		if err := r.Decode(&v); err != nil {
			return nil, fmt.Errorf("decode %s/%s: %w", bucket, r.Key, err)
		}
		out = append(out, v)
	}
	return out, nil
}

func itoa(n int) string { return strconv.Itoa(n) }

// tokenGCInterval is how often the leader deletes expired API tokens.
const tokenGCInterval = 10 * time.Minute

// collectTokens deletes expired API tokens and returns how many.
func (b *Broker) collectTokens(ctx context.Context) (int, error) {
	recs, err := b.st.List(state.BucketTokens)
	if err != nil {
		return 0, err
	}
	now := b.cfg.Now()
	var ops []store.Op
	for _, r := range recs {
		var t state.Token
		if err := r.Decode(&t); err != nil {
			continue
		}
		if !t.ExpiresAt.IsZero() && now.After(t.ExpiresAt) {
			ops = append(ops, store.Op{Bucket: state.BucketTokens, Key: r.Key, Delete: true})
		}
	}
	if len(ops) == 0 {
		return 0, nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	_, err = b.st.Batch(ctx, ops)
	return len(ops), err
}

// debugWriter logs each line written to it at debug level.
type debugWriter struct{ log zerolog.Logger }

func (w debugWriter) Write(p []byte) (int, error) {
	w.log.Debug().Msg(strings.TrimSpace(string(p)))
	return len(p), nil
}
