package member

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	stdlog "log"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"gearbox/internal/cmdline"
	"gearbox/lb"
	"gearbox/store"
	"gearbox/store/internalapi"
)

// Member is one running gearbox member: its replicated store, its
// internal API and the roles its Config asks for. `gearbox serve` runs one;
// `gearbox dev` runs several in one process.
//
// Create it with New, then Start; stop it with Leave (graceful: the
// cluster is told) or Close (at once, idempotent), or Crash.
type Member struct {
	cfg Config
	log zerolog.Logger // component=member

	st       *store.Store
	internal *internalAPI
	srv      *http.Server
	ln       net.Listener
	served   chan error     // Serve's result: an early one is a listener failure
	roles    []roleStop     // in start order
	wg       sync.WaitGroup // the internal API's Serve, the metrics'

	// metrics is the member's Prometheus registry: every role registers
	// in it; served on --metrics-addr and the internal API.
	metrics    *prometheus.Registry
	metricsSrv *http.Server
	// internalGuard applies the internal API's time-outs and caps.
	internalGuard *lb.ServerGuard

	mu      sync.Mutex
	started bool
	closed  bool
}

// roleStop stops one started role within ctx.
type roleStop struct {
	name string
	stop func(ctx context.Context) error
}

// New validates cfg and opens the member's store. Nothing listens and no
// role runs until Start.
func New(cfg Config, log zerolog.Logger) (*Member, error) {
	sc := cfg.Store
	sc.Logger = log
	cfg.Store = sc
	st, err := store.New(sc)
	if err != nil {
		if errors.Is(err, fs.ErrPermission) {
			return nil, fmt.Errorf("open store: %w (run as a user who may write there, or choose another --data-dir)", err)
		}
		return nil, fmt.Errorf("open store: %w", err)
	}
	reg := newRegistry(sc.Name, sc.Roles)
	reg.MustRegister(st.Collector())
	return &Member{cfg: cfg, log: log.With().Str("component", "member").Logger(), st: st, metrics: reg,
		internal: &internalAPI{store: st.Handler(), metrics: metricsHandler(reg, "")}, served: make(chan error, 1)}, nil
}

// Start serves the internal API, joins the cluster and starts the roles,
// in that order. On error everything started is stopped again and the
// member is closed.
func (m *Member) Start(ctx context.Context) error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return ErrClosed
	}
	if m.started {
		m.mu.Unlock()
		return ErrStarted
	}
	m.started = true
	m.mu.Unlock()

	// Bind the internal API before joining, so that a taken port fails the
	// start instead of leaving a member in the cluster that peers cannot
	// sync with.
	ln, err := net.Listen("tcp", m.cfg.InternalAddr)
	if err != nil {
		m.Close()
		return fmt.Errorf("listen for the internal API on %s (--bind, --internal-port): %w", m.cfg.InternalAddr, err)
	}
	m.ln = ln
	if err := m.st.Start(ctx); err != nil {
		m.Close()
		return fmt.Errorf("start store: %w", err)
	}
	alog := m.cfg.Store.Logger.With().Str("component", "internal-api").Logger()
	// Mutual TLS with the key derived from the cluster secret: a peer
	// without it fails the handshake (internalapi.ServerTLS).
	secret := m.cfg.Store.ClusterSecret
	m.srv = &http.Server{
		Handler:        internalapi.RequirePeer(secret, m.internal),
		ReadTimeout:    cmp.Or(m.cfg.InternalReadTimeout, DefaultInternalReadTimeout),
		MaxHeaderBytes: 64 << 10,
		ErrorLog:       stdlog.New(cmdline.LogWriter{Log: alog, Msg: "internal api error"}, "", 0),
	}
	// Each write must be taken within the write time-out (a whole answer
	// may take longer: a followed log, an archive), and connections are
	// capped, in all and per address, before the TLS handshake.
	m.internalGuard = lb.GuardServer(m.srv, lb.Limits{
		HeaderTimeout:     10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		WriteTimeout:      cmp.Or(m.cfg.InternalWriteTimeout, DefaultInternalWriteTimeout),
		MaxConns:          cmp.Or(m.cfg.InternalMaxConns, DefaultInternalMaxConns),
		MaxConnsPerClient: cmp.Or(m.cfg.InternalMaxConnsPerClient, DefaultInternalMaxConnsPerClient),
		Logger:            alog,
	})
	m.wg.Go(func() { m.served <- m.srv.Serve(tls.NewListener(ln, internalapi.ServerTLS(secret))) })
	alog.Info().Str("addr", ln.Addr().String()).Msg("internal api listening")
	if err := m.startRoles(ctx); err != nil {
		m.Close()
		return fmt.Errorf("start roles: %w", err)
	}
	if err := m.startMetrics(); err != nil {
		m.Close()
		return err
	}
	return nil
}

// Store returns the member's replicated store.
func (m *Member) Store() *store.Store { return m.st }

// Failed returns a channel that receives the internal API's error if its
// listener fails while the member runs.
func (m *Member) Failed() <-chan error { return m.served }

// Leave stops the member gracefully within ctx: its roles stop (each given
// what is left of ctx's deadline), the cluster is told that it leaves, the
// internal API drains, and the store closes.
func (m *Member) Leave(ctx context.Context) error {
	if !m.markClosed() {
		return nil
	}
	// Teardown order: stop the roles (no new work), announce the leave
	// while the internal API still answers (peers may be mid-sync with
	// us), then drain the API, then stop gossip and close the state file.
	m.stopRoles(ctx)
	if err := m.st.Leave(ctx); err != nil {
		m.log.Warn().Err(err).Msg("leave not confirmed; stopping anyway")
	}
	if m.metricsSrv != nil {
		m.metricsSrv.Close()
	}
	if m.srv != nil {
		if err := m.srv.Shutdown(ctx); err != nil {
			m.log.Warn().Err(err).Msg("internal api did not drain in time")
			m.srv.Close()
		}
	}
	m.wg.Wait()
	if err := m.st.Close(); err != nil {
		return fmt.Errorf("close store: %w", err)
	}
	return nil
}

// Close stops the member without telling the cluster: its roles stop
// (requests in flight get up to the leave timeout), then its listeners and
// store. It is safe to call more than once.
func (m *Member) Close() error {
	if !m.markClosed() {
		return nil
	}
	ctx, cancel := m.stopContext()
	defer cancel()
	m.stopRoles(ctx)
	m.closeListeners()
	return m.st.Close()
}

// stopContext bounds the stop of roles when no caller gave a deadline.
func (m *Member) stopContext() (context.Context, context.CancelFunc) {
	d := m.cfg.LeaveTimeout
	if d <= 0 {
		d = defaultLeaveTimeout
	}
	return context.WithTimeout(context.Background(), d)
}

// Crash stops the member as a crash would, for `gearbox dev kill`: its
// gossip and internal API go silent first, with no leave, so that peers
// find it failed; then its roles stop.
func (m *Member) Crash() {
	if !m.markClosed() {
		return
	}
	m.closeListeners()
	m.st.Close()
	ctx, cancel := m.stopContext()
	defer cancel()
	m.stopRoles(ctx)
}

// markClosed reports whether this call is the one that closes m.
func (m *Member) markClosed() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return false
	}
	m.closed = true
	return true
}

// closeListeners closes the internal API and waits for its Serve to end.
func (m *Member) closeListeners() {
	if m.metricsSrv != nil {
		m.metricsSrv.Close()
	}
	if m.srv != nil {
		m.srv.Close()
	} else if m.ln != nil {
		m.ln.Close()
	}
	m.wg.Wait()
}

// stopRoles stops the started roles, last started first, each given ctx:
// roles with requests in flight (the broker's API, the router, the node's
// front listener) let them finish until ctx ends, then cut them. Each
// role is waited for before the next, and all of them before the store
// closes, so that a node's gears write their last status; a role that is
// still stopping when ctx ends is logged, and waited for.
func (m *Member) stopRoles(ctx context.Context) {
	for i := len(m.roles) - 1; i >= 0; i-- {
		r := m.roles[i]
		done := make(chan error, 1)
		go func() { done <- r.stop(ctx) }()
		var err error
		select {
		case err = <-done:
		case <-ctx.Done():
			m.log.Warn().Str("role", r.name).Str("fix", "raise --leave-timeout if roles need longer to stop").
				Msg("role still stopping at the leave deadline")
			err = <-done
		}
		if err != nil {
			m.log.Warn().Err(err).Str("role", r.name).Msg("stop role failed")
		}
	}
	m.roles = nil
}
