package member

import (
	"context"
	"fmt"
	"os"

	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"

	"gearbox/internal/cmdline"
	"gearbox/store"
)

// ServeCommand is `gearbox serve`: run a member. log points at the logger
// the global flags set up before the command runs.
func ServeCommand(log *zerolog.Logger) *cli.Command {
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
			&cli.StringFlag{Name: "role", Value: "all", EnvVars: cmdline.Env("ROLE"),
				Usage: "roles this member runs: a comma list of broker, node, router, or all"},
			&cli.StringFlag{Name: "name", Value: hostname, EnvVars: cmdline.Env("NAME"),
				Usage: "member name, unique in the cluster; the host name by default"},
			&cli.StringFlag{Name: "data-dir", Value: defaultDataDir, EnvVars: cmdline.Env("DATA_DIR"),
				Usage: "directory for the member's state (state.db) and gossip snapshot; created if missing"},
			&cli.StringFlag{Name: "bind", Value: defaultBind, EnvVars: cmdline.Env("BIND"),
				Usage: "IP address the cluster ports (gossip and internal API) listen on; when it is a specific address, also the default host of " +
					"--api-addr, --http-addr, --router-addr and --dns-addr (a listener whose flag is given keeps it)"},
			&cli.StringFlag{Name: "advertise", EnvVars: cmdline.Env("ADVERTISE"), DefaultText: "--bind if it is a specific address, else a private address of this host",
				Usage: "IP address other members reach this one at"},
			&cli.IntFlag{Name: "serf-port", Value: cmdline.DefaultSerfPort, EnvVars: cmdline.Env("SERF_PORT"),
				Usage: "gossip port (TCP and UDP)"},
			&cli.IntFlag{Name: "internal-port", Value: cmdline.DefaultInternalPort, EnvVars: cmdline.Env("INTERNAL_PORT"),
				Usage: "internal API port (TCP)"},
			&cli.StringSliceFlag{Name: "join", EnvVars: cmdline.Env("JOIN"),
				Usage: "host[:port] of a member to join (port default 7946); repeat or separate with commas; retried with backoff until one answers"},
			&cli.StringFlag{Name: "domain", Value: defaultDomain, EnvVars: cmdline.Env("DOMAIN"),
				Usage: "cloud domain: app hostnames are APP-NAMESPACE.DOMAIN"},
			&cli.StringFlag{Name: "zone", EnvVars: cmdline.Env("ZONE"),
				Usage: "zone label of this member, used by placement"},
			&cli.StringFlag{Name: "region", EnvVars: cmdline.Env("REGION"),
				Usage: "region label of this member, used by placement"},
			&cli.DurationFlag{Name: "leave-timeout", Value: defaultLeaveTimeout, EnvVars: cmdline.Env("LEAVE_TIMEOUT"),
				Usage: "how long a graceful stop may take to announce the leave and finish internal API calls"},
			&cli.DurationFlag{Name: "anti-entropy-interval", Value: store.DefaultConfig("", "").AntiEntropyInterval,
				EnvVars: cmdline.Env("ANTI_ENTROPY_INTERVAL"),
				Usage:   "how often the member compares its state with a random peer and repairs differences (jittered)"},
			&cli.DurationFlag{Name: "max-clock-skew", Value: store.DefaultConfig("", "").MaxClockSkew, EnvVars: cmdline.Env("MAX_CLOCK_SKEW"),
				Usage: "how far ahead of this member's clock a record's version may be: records from further in the future are refused " +
					"and logged, so members' clocks (NTP) must agree within it; shorter than the tombstone lifetime (24h)"},
		}, append(append(cmdline.SecretFlags("cluster-secret", "CLUSTER_SECRET", "",
			"the cluster secret, the same on every member: it authenticates the internal API, seals state in gossip and, "+
				"unless a gossip key is given, encrypts gossip (make one with: (umask 077; openssl rand -hex 32 > FILE)); required"),
			cmdline.SecretFlags("encrypt", "ENCRYPT", "",
				"a gossip encryption key of its own, base64 of 16, 24 or 32 bytes, the same on every member (default: derived from the cluster secret; "+
					"with no cluster secret, the secret is derived from this key)")...), RoleFlags()...)...),
		OnUsageError: cmdline.UsageError,
		Action: func(c *cli.Context) error {
			roles, rerr := ParseRoleOptions(c)
			secret, serr := cmdline.Secret(c, "cluster-secret", "CLUSTER_SECRET")
			encrypt, eerr := cmdline.Secret(c, "encrypt", "ENCRYPT")
			if err := cmdline.JoinErrors([]error{serr, eerr}); err != nil {
				return err
			}
			if c.NArg() > 0 {
				return fmt.Errorf("serve takes no arguments, got %q; run 'gearbox serve --help' for usage", c.Args().First())
			}
			if skew := c.Duration("max-clock-skew"); skew <= 0 {
				return fmt.Errorf("--max-clock-skew %s must be positive and shorter than the tombstone lifetime (%s)", skew, store.DefaultConfig("", "").TombstoneTTL)
			}
			cfg, err := Options{
				Roles:               c.String("role"),
				Name:                c.String("name"),
				DataDir:             c.String("data-dir"),
				Bind:                c.String("bind"),
				Advertise:           c.String("advertise"),
				SerfPort:            c.Int("serf-port"),
				InternalPort:        c.Int("internal-port"),
				Join:                c.StringSlice("join"),
				Encrypt:             encrypt,
				ClusterSecret:       secret,
				Domain:              c.String("domain"),
				Zone:                c.String("zone"),
				Region:              c.String("region"),
				LeaveTimeout:        c.Duration("leave-timeout"),
				AntiEntropyInterval: c.Duration("anti-entropy-interval"),
				MaxClockSkew:        c.Duration("max-clock-skew"),
			}.Config()
			if err != nil {
				if rerr != nil {
					return cmdline.JoinErrors([]error{err, rerr})
				}
				return err
			}
			if rerr != nil {
				return rerr
			}
			cfg.Roles = roles
			return Serve(c.Context, cfg, *log)
		},
	}
}

// Serve runs a member until ctx ends (main cancels it at the first SIGINT
// or SIGTERM, and exits at once at a second), then leaves the cluster
// within cfg.LeaveTimeout and stops.
func Serve(ctx context.Context, cfg Config, log zerolog.Logger) error {
	mlog := log.With().Str("component", "member").Logger()
	sc := cfg.Store
	mlog.Info().Str("member", sc.Name).Strs("roles", sc.Roles).Str("data_dir", sc.DataDir).
		Str("bind", sc.BindAddr).Int("serf_port", sc.BindPort).Int("internal_port", sc.InternalPort).
		Str("advertise", sc.AdvertiseAddr).Strs("join", sc.Join).Str("domain", cfg.Domain).
		Str("zone", sc.Zone).Str("region", sc.Region).
		Bool("gossip_encrypted", len(sc.EncryptKey) > 0).
		Msg("starting member")
	if cfg.SecretDerived {
		mlog.Info().Msg("cluster secret derived from the gossip key")
	}

	m, err := New(cfg, log)
	if err != nil {
		return err
	}
	// A stop asked for during start-up stops the member as soon as it is
	// up: Start does not watch ctx once it returns.
	if err := m.Start(context.WithoutCancel(ctx)); err != nil {
		return err
	}
	mlog.Info().Str("member", sc.Name).Msg("member ready")

	select {
	case <-ctx.Done():
		mlog.Info().Str("reason", context.Cause(ctx).Error()).Str("timeout", cfg.LeaveTimeout.String()).Msg("leaving cluster")
	case err := <-m.Failed():
		// Serve only returns early on a listener failure.
		mlog.Error().Err(err).Msg("internal api stopped")
		m.Close()
		return fmt.Errorf("serve internal API on %s: %w", cfg.InternalAddr, err)
	}

	lctx, cancel := context.WithTimeout(context.Background(), cfg.LeaveTimeout)
	defer cancel()
	if err := m.Leave(lctx); err != nil {
		return err
	}
	mlog.Info().Msg("member stopped")
	return nil
}
