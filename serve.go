package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	stdlog "log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"

	"gearbox/broker"
	"gearbox/node"
	"gearbox/router"
	"gearbox/store"
)

// serveCommand is `gearbox serve`: run a member. log points at the logger
// the global flags set up before the command runs.
func serveCommand(log *zerolog.Logger) *cli.Command {
	hostname, _ := os.Hostname()
	return &cli.Command{
		Name:      "serve",
		Usage:     "run a gearbox member",
		UsageText: "gearbox serve [flags]",
		Description: "Runs one member of a gearbox cluster: it keeps a replica of the cluster state in\n" +
			"--data-dir, gossips membership and state on --serf-port, and serves the internal\n" +
			"API (member to member, and `gearbox members`) on --internal-port.\n\n" +
			"The first SIGINT or SIGTERM leaves the cluster gracefully within --leave-timeout;\n" +
			"a second one exits at once.",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "role", Value: "all", EnvVars: env("ROLE"),
				Usage: "roles this member runs: a comma list of broker, node, router, or all"},
			&cli.StringFlag{Name: "name", Value: hostname, EnvVars: env("NAME"),
				Usage: "member name, unique in the cluster; the host name by default"},
			&cli.StringFlag{Name: "data-dir", Value: defaultDataDir, EnvVars: env("DATA_DIR"),
				Usage: "directory for the member's state (state.db) and gossip snapshot; created if missing"},
			&cli.StringFlag{Name: "bind", Value: defaultBind, EnvVars: env("BIND"),
				Usage: "IP address the cluster ports (gossip and internal API) listen on"},
			&cli.StringFlag{Name: "advertise", EnvVars: env("ADVERTISE"), DefaultText: "--bind if it is a specific address, else a private address of this host",
				Usage: "IP address other members reach this one at"},
			&cli.IntFlag{Name: "serf-port", Value: defaultSerfPort, EnvVars: env("SERF_PORT"),
				Usage: "gossip port (TCP and UDP)"},
			&cli.IntFlag{Name: "internal-port", Value: defaultInternalPort, EnvVars: env("INTERNAL_PORT"),
				Usage: "internal API port (TCP)"},
			&cli.StringSliceFlag{Name: "join", EnvVars: env("JOIN"),
				Usage: "host[:port] of a member to join (port default 7946); repeat or separate with commas; retried with backoff until one answers"},
			&cli.StringFlag{Name: "encrypt", EnvVars: env("ENCRYPT"),
				Usage: "base64 gossip encryption key of 16, 24 or 32 bytes (make one with: openssl rand -base64 32); the same on every member"},
			&cli.StringFlag{Name: "cluster-secret", EnvVars: env("CLUSTER_SECRET"), DefaultText: "derived from --encrypt",
				Usage: "secret that authenticates the internal API and seals state in gossip; the same on every member"},
			&cli.StringFlag{Name: "domain", Value: defaultDomain, EnvVars: env("DOMAIN"),
				Usage: "cloud domain: app hostnames are APP-NAMESPACE.DOMAIN"},
			&cli.StringFlag{Name: "zone", EnvVars: env("ZONE"),
				Usage: "zone label of this member, used by placement"},
			&cli.StringFlag{Name: "region", EnvVars: env("REGION"),
				Usage: "region label of this member, used by placement"},
			&cli.DurationFlag{Name: "leave-timeout", Value: defaultLeaveTimeout, EnvVars: env("LEAVE_TIMEOUT"),
				Usage: "how long a graceful stop may take to announce the leave and finish internal API calls"},
			&cli.DurationFlag{Name: "anti-entropy-interval", Value: store.DefaultConfig("", "").AntiEntropyInterval,
				EnvVars: env("ANTI_ENTROPY_INTERVAL"),
				Usage:   "how often the member compares its state with a random peer and repairs differences (jittered)"},
		}, roleFlags()...),
		OnUsageError: usageError,
		Action: func(c *cli.Context) error {
			roles, rerr := parseRoleOptions(c)
			if c.NArg() > 0 {
				return fmt.Errorf("serve takes no arguments, got %q; run 'gearbox serve --help' for usage", c.Args().First())
			}
			cfg, err := serveOptions{
				Roles:               c.String("role"),
				Name:                c.String("name"),
				DataDir:             c.String("data-dir"),
				Bind:                c.String("bind"),
				Advertise:           c.String("advertise"),
				SerfPort:            c.Int("serf-port"),
				InternalPort:        c.Int("internal-port"),
				Join:                c.StringSlice("join"),
				Encrypt:             c.String("encrypt"),
				ClusterSecret:       c.String("cluster-secret"),
				Domain:              c.String("domain"),
				Zone:                c.String("zone"),
				Region:              c.String("region"),
				LeaveTimeout:        c.Duration("leave-timeout"),
				AntiEntropyInterval: c.Duration("anti-entropy-interval"),
			}.config()
			if err != nil {
				if rerr != nil {
					return joinErrors([]error{err, rerr})
				}
				return err
			}
			if rerr != nil {
				return rerr
			}
			cfg.Roles = roles
			return serve(cfg, *log, os.Exit)
		},
	}
}

// env returns the environment variable that sets a flag: GEARBOX_NAME.
func env(name string) []string { return []string{"GEARBOX_" + name} }

// serve runs a member until the first SIGINT or SIGTERM, then leaves the
// cluster and stops. A second signal while stopping calls exit(1).
func serve(cfg memberConfig, log zerolog.Logger, exit func(int)) error {
	// Listen for signals first, so that one that arrives during start-up
	// is not lost (or fatal) but stops the member as soon as it is up.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)

	mlog := log.With().Str("component", "member").Logger()
	sc := cfg.Store
	sc.Logger = log
	mlog.Info().Str("member", sc.Name).Strs("roles", sc.Roles).Str("data_dir", sc.DataDir).
		Str("bind", sc.BindAddr).Int("serf_port", sc.BindPort).Int("internal_port", sc.InternalPort).
		Str("advertise", sc.AdvertiseAddr).Strs("join", sc.Join).Str("domain", cfg.Domain).
		Str("zone", sc.Zone).Str("region", sc.Region).
		Bool("gossip_encrypted", len(sc.EncryptKey) > 0).Bool("authenticated", cfg.Authenticated).
		Msg("starting member")
	switch {
	case !cfg.Authenticated:
		mlog.Warn().Str("fix", "set --cluster-secret or --encrypt on every member").
			Msg("cluster is unauthenticated: anyone who can reach the gossip and internal ports can read and write state")
	case len(sc.EncryptKey) == 0:
		mlog.Info().Str("fix", "set --encrypt on every member").
			Msg("gossip is not encrypted: membership is visible to anyone who can reach the gossip port; state is sealed with the cluster secret")
	case cfg.SecretDerived:
		mlog.Info().Msg("cluster secret derived from the gossip key")
	}

	m, err := startLocalMember(cfg, log)
	if err != nil {
		return err
	}
	mlog.Info().Str("member", sc.Name).Msg("member ready")

	select {
	case sig := <-sigs:
		mlog.Info().Str("signal", sig.String()).Str("timeout", cfg.LeaveTimeout.String()).Msg("leaving cluster")
	case err := <-m.served:
		// Serve only returns early on a listener failure.
		mlog.Error().Err(err).Msg("internal api stopped")
		m.abort()
		return fmt.Errorf("serve internal API on %s: %w", cfg.InternalAddr, err)
	}

	stop := exitOnSecondSignal(sigs, mlog, exit)
	defer stop()

	ctx, cancel := context.WithTimeout(context.Background(), cfg.LeaveTimeout)
	defer cancel()
	if err := m.leave(ctx); err != nil {
		return err
	}
	mlog.Info().Msg("member stopped")
	return nil
}

// runningMember is a started member: its store, internal API and roles.
type runningMember struct {
	st        *store.Store
	srv       *http.Server
	served    chan error // Serve's result: an early one is a listener failure
	stopRoles func()
	log       zerolog.Logger
}

// startLocalMember opens the member's store, serves its internal API, joins
// the cluster and starts its roles.
func startLocalMember(cfg memberConfig, log zerolog.Logger) (*runningMember, error) {
	sc := cfg.Store
	sc.Logger = log
	st, err := store.New(sc)
	if err != nil {
		if errors.Is(err, fs.ErrPermission) {
			return nil, fmt.Errorf("open store: %w (run as a user who may write there, or choose another --data-dir)", err)
		}
		return nil, fmt.Errorf("open store: %w", err)
	}
	// Bind the internal API before joining, so that a taken port fails the
	// start instead of leaving a member in the cluster that peers cannot sync
	// with.
	ln, err := net.Listen("tcp", cfg.InternalAddr)
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("listen for the internal API on %s (--bind, --internal-port): %w", cfg.InternalAddr, err)
	}
	if err := st.Start(context.Background()); err != nil {
		ln.Close()
		st.Close()
		return nil, fmt.Errorf("start store: %w", err)
	}
	internal := &internalAPI{store: st.Handler()}
	alog := log.With().Str("component", "internal-api").Logger()
	srv := &http.Server{
		Handler:           store.RequireSecret(sc.ClusterSecret, internal),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          stdlog.New(logWriter{log: alog, msg: "internal api error"}, "", 0),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	alog.Info().Str("addr", ln.Addr().String()).Msg("internal api listening")
	stopRoles, err := startRoles(context.Background(), cfg, st, internal, log)
	if err != nil {
		srv.Close()
		st.Close()
		return nil, fmt.Errorf("start roles: %w", err)
	}
	return &runningMember{st: st, srv: srv, served: served, stopRoles: stopRoles,
		log: log.With().Str("component", "member").Logger()}, nil
}

// leave stops the member gracefully within ctx.
func (m *runningMember) leave(ctx context.Context) error {
	// Teardown order: stop the roles (no new work), announce the leave
	// while the internal API still answers (peers may be mid-sync with
	// us), then drain the API, then stop gossip and close the state file.
	m.stopRoles()
	if err := m.st.Leave(ctx); err != nil {
		m.log.Warn().Err(err).Msg("leave not confirmed; stopping anyway")
	}
	if err := m.srv.Shutdown(ctx); err != nil {
		m.log.Warn().Err(err).Msg("internal api did not drain in time")
		m.srv.Close()
	}
	if err := m.st.Close(); err != nil {
		return fmt.Errorf("close store: %w", err)
	}
	return nil
}

// abort stops the member at once, without a leave.
func (m *runningMember) abort() {
	m.stopRoles()
	m.srv.Close()
	m.st.Close()
}

// exitOnSecondSignal watches sigs while the member stops gracefully: a
// signal there means the operator does not want to wait, so it calls
// exit(1) at once. The returned func ends the watch.
func exitOnSecondSignal(sigs <-chan os.Signal, log zerolog.Logger, exit func(int)) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		select {
		case sig := <-sigs:
			log.Warn().Str("signal", sig.String()).Msg("second signal, exiting now")
			exit(1)
		case <-done:
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}

// internalAPI is the member-to-member API: the store's, plus what roles
// mount once they start (a broker's deployment archives, a node's gear
// logs).
type internalAPI struct {
	store    http.Handler
	blobs    atomic.Pointer[http.Handler]
	gearLogs atomic.Pointer[http.Handler]
	// node serves the archives its node keeps, before the broker's.
	node atomic.Pointer[node.Supervisor]
	// routerStatus reports what the member's router routes.
	routerStatus atomic.Pointer[http.Handler]
}

func (a *internalAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case strings.HasPrefix(r.URL.Path, broker.BlobPathPrefix):
		if sup := a.node.Load(); sup != nil && sup.HasBlob(strings.TrimPrefix(r.URL.Path, broker.BlobPathPrefix)) {
			sup.BlobHandler().ServeHTTP(w, r)
			return
		}
		if h := a.blobs.Load(); h != nil {
			(*h).ServeHTTP(w, r)
			return
		}
		http.Error(w, "this member holds no deployment archives", http.StatusNotFound)
	case strings.HasPrefix(r.URL.Path, node.GearLogsPathPrefix):
		if h := a.gearLogs.Load(); h != nil {
			(*h).ServeHTTP(w, r)
			return
		}
		http.Error(w, "this member runs no gears", http.StatusNotFound)
	case r.URL.Path == router.StatusPath:
		if h := a.routerStatus.Load(); h != nil {
			(*h).ServeHTTP(w, r)
			return
		}
		http.Error(w, "this member runs no router", http.StatusNotFound)
	default:
		a.store.ServeHTTP(w, r)
	}
}

// crash stops the member as a crash would, for `gearbox dev kill`: its
// gossip and internal API go silent first, with no leave, so that peers
// find it failed; then its roles stop.
func (m *runningMember) crash() {
	m.srv.Close()
	m.st.Close()
	m.stopRoles()
}
