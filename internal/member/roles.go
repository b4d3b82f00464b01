package member

import (
	"context"
	"crypto/x509"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"gearbox/broker"
	"gearbox/internal/cmdline"
	"gearbox/node"
	"gearbox/node/services"
	"gearbox/store"
	"gearbox/store/state"
)

// RoleFlags are the flags of the broker, node and router roles on
// `gearbox serve`.
func RoleFlags() []cli.Flag {
	flags := append(cmdline.SecretFlags("metrics-token", "METRICS_TOKEN", "", "the token scrapers of --metrics-addr must send"),
		cmdline.SecretFlags("bootstrap-admin", "BOOTSTRAP_ADMIN", "broker", "the first admin as user:password, created by the leader on an empty cluster "+
			"(default: admin with a generated password, written to DATA_DIR/bootstrap-admin, mode 0600)")...)
	flags = append(flags, []cli.Flag{
		&cli.StringFlag{Name: "api-addr", Value: ":7480", EnvVars: cmdline.Env("API_ADDR"), Category: "broker",
			Usage: "address the broker's REST API listens on"},
		&cli.StringFlag{Name: "tls-cert", EnvVars: cmdline.Env("TLS_CERT"),
			Usage: "PEM certificate `FILE` of this member's HTTPS listeners (with --tls-key): the broker's REST API, and the " +
				"router's (else the node front's) HTTPS listener on --https-addr, for the apps' names: so a certificate " +
				"for the broker's name and *.DOMAIN; aliases with certificates of their own are served theirs"},
		&cli.StringFlag{Name: "tls-key", EnvVars: cmdline.Env("TLS_KEY"),
			Usage: "PEM private key `FILE` of --tls-cert"},
		&cli.StringFlag{Name: "metrics-addr", EnvVars: cmdline.Env("METRICS_ADDR"),
			Usage: "address to serve Prometheus metrics on, at /metrics (empty: none; they are on the internal API too); " +
				"with --metrics-token-file or GEARBOX_METRICS_TOKEN, scrapers must send that token as a bearer token"},
		&cli.StringFlag{Name: "https-addr", Value: ":443", EnvVars: cmdline.Env("HTTPS_ADDR"),
			Usage: "address of the HTTPS listener for the apps: the router's on a member with the router role, else the " +
				"node front's; it listens when --tls-cert is given or this flag is set (for aliases' own certificates only)"},
		&cli.BoolFlag{Name: "allow-ha-applications", Value: true, EnvVars: cmdline.Env("ALLOW_HA_APPLICATIONS"), Category: "broker",
			Usage: "platform switch: whether apps may be made highly available"},
		&cli.BoolFlag{Name: "default-allow-ha", EnvVars: cmdline.Env("DEFAULT_ALLOW_HA"), Category: "broker",
			Usage: "whether new users may make apps highly available"},
		&cli.IntFlag{Name: "default-max-gears", Value: 100, EnvVars: cmdline.Env("DEFAULT_MAX_GEARS"), Category: "broker",
			Usage: "gears a new user may own over all apps"},
		&cli.StringFlag{Name: "default-gear-sizes", Value: state.SizeSmall, EnvVars: cmdline.Env("DEFAULT_GEAR_SIZES"), Category: "broker",
			Usage: "comma list of gear sizes new users may create (small, medium, large)"},
		&cli.IntFlag{Name: "default-ha-multiplier", Value: 0, EnvVars: cmdline.Env("DEFAULT_HA_MULTIPLIER"), Category: "broker",
			Usage: "HA multiplier of new apps: 0 keeps two LB gears; m makes every m-th gear an LB gear"},
		&cli.IntFlag{Name: "gear-ratio", Value: broker.DefaultGearRatio, EnvVars: cmdline.Env("GEAR_RATIO"), Category: "broker",
			Usage: "gears per LB gear at which LB gears stop serving requests themselves (-1: never); apps override with GEARBOX_LB_GEAR_RATIO"},
		&cli.IntFlag{Name: "zones-min-per-gear-group", Value: 1, EnvVars: cmdline.Env("ZONES_MIN_PER_GEAR_GROUP"), Category: "broker",
			Usage: "placement fails unless this many zones have room for the app's gears"},
		&cli.BoolFlag{Name: "allow-multiple-lb-per-node", EnvVars: cmdline.Env("ALLOW_MULTIPLE_LB_PER_NODE"), Category: "broker",
			Usage: "let two LB gears of one app share a node"},
		&cli.StringFlag{Name: "max-deploy-size", Value: "512MiB", EnvVars: cmdline.Env("MAX_DEPLOY_SIZE"), Category: "broker",
			Usage: "largest deployment archive accepted, compressed or unpacked (bytes, or with KB, MB, GB, KiB, MiB, GiB)"},
		&cli.IntFlag{Name: "keep-deployments", Value: 3, EnvVars: cmdline.Env("KEEP_DEPLOYMENTS"), Category: "broker",
			Usage: "deployments each app keeps for rollback (event=activate)"},
		&cli.DurationFlag{Name: "rollout-timeout", Value: broker.DefaultRolloutTimeout, EnvVars: cmdline.Env("ROLLOUT_TIMEOUT"), Category: "broker",
			Usage: "how long a roll-out waits for one gear to fetch, build and pass its health check on a new deployment before it stops"},
		&cli.DurationFlag{Name: "node-failure-grace", Value: broker.DefaultNodeFailureGrace, EnvVars: cmdline.Env("NODE_FAILURE_GRACE"), Category: "broker",
			Usage: "how long a node must have been gone (failed or left) before its gears are replaced on other nodes; a node back within it keeps its gears"},
		&cli.DurationFlag{Name: "autoscale-interval", Value: broker.DefaultAutoscaleInterval, EnvVars: cmdline.Env("AUTOSCALE_INTERVAL"), Category: "broker",
			Usage: "how often the broker leader samples the sessions of scalable apps' load balancers for autoscaling (an average of the last 10 samples decides)"},
		&cli.StringFlag{Name: "acme-directory", EnvVars: cmdline.Env("ACME_DIRECTORY"), Category: "broker",
			Usage: "ACME directory `URL` of a certificate authority (such as Let's Encrypt's https://acme-v02.api.letsencrypt.org/directory): " +
				"the broker leader then obtains and renews a certificate for every alias that has none uploaded and whose DNS points at the " +
				"routers (HTTP-01, answered by every router on port 80); give every broker the same ACME flags (empty: off)"},
		&cli.StringFlag{Name: "acme-email", EnvVars: cmdline.Env("ACME_EMAIL"), Category: "broker",
			Usage: "contact `ADDRESS` of the cluster's ACME account, for the authority's expiry notices (optional)"},
		&cli.StringFlag{Name: "acme-ca-file", EnvVars: cmdline.Env("ACME_CA_FILE"), Category: "broker",
			Usage: "PEM `FILE` of the CAs to trust for --acme-directory's HTTPS instead of the system's (a private or test authority)"},
		&cli.StringFlag{Name: "acme-resolver", EnvVars: cmdline.Env("ACME_RESOLVER"), Category: "broker",
			Usage: "DNS server `HOST:PORT` asked (recursively) where aliases point before their certificates are ordered (default: the first server of /etc/resolv.conf)"},
		&cli.DurationFlag{Name: "acme-renew-before", Value: broker.DefaultACMERenewBefore, EnvVars: cmdline.Env("ACME_RENEW_BEFORE"), Category: "broker",
			Usage: "how long before its expiry an ACME certificate is renewed"},
		&cli.StringFlag{Name: "ha-dns-prefix", Value: state.DefaultHADNSPrefix, EnvVars: cmdline.Env("HA_DNS_PREFIX"), Category: "routing",
			Usage: "prefix of HA apps' routing-layer hostnames (PREFIX APP-NS SUFFIX .DOMAIN), served by routers; the same on every member"},
		&cli.StringFlag{Name: "ha-dns-suffix", Value: state.DefaultHADNSSuffix, EnvVars: cmdline.Env("HA_DNS_SUFFIX"), Category: "routing",
			Usage: "suffix of HA apps' routing-layer hostnames (PREFIX APP-NS SUFFIX .DOMAIN); the same on every member"},
		&cli.IntFlag{Name: "max-gears", Value: 100, EnvVars: cmdline.Env("MAX_GEARS"), Category: "node",
			Usage: "gears this node hosts at most"},
		&cli.StringFlag{Name: "http-addr", Value: node.DefaultHTTPAddr, EnvVars: cmdline.Env("HTTP_ADDR"), Category: "node",
			Usage: "address of the node's front HTTP listener, which routes app and gear hostnames to this node's gears (empty: none)"},
		&cli.StringFlag{Name: "gear-port-range", Value: fmt.Sprintf("%d-%d", state.DefaultPortMin, state.DefaultPortMax),
			EnvVars: cmdline.Env("GEAR_PORT_RANGE"), Category: "node",
			Usage: "ports the broker gives this node's gears, as LOW-HIGH"},
		&cli.DurationFlag{Name: "build-timeout", Value: node.DefaultBuildTimeout, EnvVars: cmdline.Env("BUILD_TIMEOUT"), Category: "node",
			Usage: "longest a deployment's build: command may run on this node before it is stopped and the deployment fails here"},
		&cli.DurationFlag{Name: "handover-timeout", Value: node.DefaultHandover, EnvVars: cmdline.Env("HANDOVER_TIMEOUT"), Category: "node",
			Usage: "longest the new process of an app's only gear may take to pass its health check beside the running one, which stays if it does not (the deployment fails)"},
		&cli.StringFlag{Name: "gear-isolation", Value: node.IsolateAuto, EnvVars: cmdline.Env("GEAR_ISOLATION"), Category: "node",
			Usage: "how a node isolates gears: auto (the strongest that works: own uid plus cgroup2, cgroup1 or rlimits; a node that is not root, " +
				"or where none works, does not start), cgroup2, cgroup1 or rlimit (that or fail to start), none (gears run as the node's user, " +
				"unlimited: for a single-user node, which brokers give one user's gears only)"},
		&cli.StringFlag{Name: "gear-uid-range", Value: fmt.Sprintf("%d-%d", node.DefaultGearUIDMin, node.DefaultGearUIDMax),
			EnvVars: cmdline.Env("GEAR_UID_RANGE"), Category: "node",
			Usage: "uids of isolated gears, as LOW-HIGH: LOW is the node's own for its checks, each gear gets one of the others " +
				"(nodes sharing a host need ranges apart)"},
		&cli.IntFlag{Name: "nats-port", Value: services.DefaultClientPort, EnvVars: cmdline.Env("NATS_PORT"), Category: "node",
			Usage: "port of the node's NATS server, which its gears reach at GEARBOX_NATS_URL for queues, caches, sessions, " +
				"and which runs their daemons' leases and jobs' schedules; on the node's address (0: no cluster services)"},
		&cli.IntFlag{Name: "nats-cluster-port", Value: services.DefaultClusterPort, EnvVars: cmdline.Env("NATS_CLUSTER_PORT"), Category: "node",
			Usage: "port of the routes between nodes' NATS servers (mutual TLS keyed by the cluster secret), on the node's address"},
		&cli.StringFlag{Name: "gear-limits", Value: formatGearLimits(node.DefaultLimits), EnvVars: cmdline.Env("GEAR_LIMITS"), Category: "node",
			Usage: "memory and processes (threads count) of isolated gears by size, as SIZE=MEMORY/PROCS,...; sizes left out keep their defaults"},
	}...)
	return append(flags, append(routerFlags(), dnsFlags()...)...)
}

// RoleOptions are the validated role settings.
type RoleOptions struct {
	Broker           broker.Config // without Store, DataDir, Logger
	MaxGears         int
	HTTPAddr         string
	PortMin, PortMax int
	BuildTimeout     time.Duration
	HandoverTimeout  time.Duration
	// MetricsAddr is where the member serves its Prometheus metrics;
	// MetricsToken, if set, the bearer token scrapers must send.
	MetricsAddr, MetricsToken string
	// HTTPSAddr is where the router, else the node front, serves HTTPS
	// for the apps, with Broker.TLSCert and TLSKey and the aliases'
	// certificates; empty: no HTTPS for the apps.
	HTTPSAddr      string
	Isolation      string
	UIDMin, UIDMax int
	Limits         map[string]node.Limits
	// NATSPort and NATSClusterPort are the node's NATS ports; NATSPort 0
	// runs no cluster services.
	NATSPort, NATSClusterPort int
	// HAPrefix and HASuffix make HA apps' routing-layer hostnames.
	HAPrefix, HASuffix string
	// Router holds the router role's settings (roles_router.go).
	Router routerOptions
	// DNS holds the DNS server's settings (roles_dns.go), run by brokers.
	DNS dnsOptions
}

// RoleOptionsFromArgs returns the role settings that `gearbox serve`
// would get from args (role flags only, such as "--api-addr", ":7480"),
// the other flags at their defaults: for members started in-process, such
// as gearbox dev's.
func RoleOptionsFromArgs(args []string) (RoleOptions, error) {
	set := flag.NewFlagSet("roles", flag.ContinueOnError)
	set.SetOutput(io.Discard)
	for _, f := range RoleFlags() {
		if err := f.Apply(set); err != nil {
			return RoleOptions{}, err
		}
	}
	if err := set.Parse(args); err != nil {
		return RoleOptions{}, err
	}
	return ParseRoleOptions(cli.NewContext(&cli.App{}, set, nil))
}

// ParseRoleOptions validates the role flags of c.
func ParseRoleOptions(c *cli.Context) (RoleOptions, error) {
	bc := broker.DefaultConfig(nil, "")
	bc.APIAddr = c.String("api-addr")
	bc.TLSCert, bc.TLSKey = c.String("tls-cert"), c.String("tls-key")
	var errs []error
	var err error
	if bc.BootstrapAdmin, err = cmdline.Secret(c, "bootstrap-admin", "BOOTSTRAP_ADMIN"); err != nil {
		errs = append(errs, err)
	}
	bc.AllowHAApplications = c.Bool("allow-ha-applications")
	bc.DefaultAllowHA = c.Bool("default-allow-ha")
	bc.DefaultMaxGears = c.Int("default-max-gears")
	bc.DefaultHAMultiplier = c.Int("default-ha-multiplier")
	bc.GearRatio = c.Int("gear-ratio")
	bc.ZonesMinPerGearGroup = c.Int("zones-min-per-gear-group")
	bc.AllowMultipleLBPerNode = c.Bool("allow-multiple-lb-per-node")
	bc.DefaultGearSizes = nil
	for _, s := range strings.Split(c.String("default-gear-sizes"), ",") {
		if s = strings.TrimSpace(s); s != "" {
			bc.DefaultGearSizes = append(bc.DefaultGearSizes, s)
		}
	}
	for _, s := range bc.DefaultGearSizes {
		if !slices.Contains(state.GearSizes, s) {
			errs = append(errs, fmt.Errorf("--default-gear-sizes: unknown size %q (valid: %s)", s, strings.Join(state.GearSizes, ", ")))
		}
	}
	if bc.DefaultMaxGears < 0 {
		errs = append(errs, fmt.Errorf("--default-max-gears %d is negative", bc.DefaultMaxGears))
	}
	if bc.DefaultHAMultiplier < 0 {
		errs = append(errs, fmt.Errorf("--default-ha-multiplier %d is negative", bc.DefaultHAMultiplier))
	}
	if bc.GearRatio == 0 || bc.GearRatio < -1 {
		errs = append(errs, fmt.Errorf("--gear-ratio %d: want -1 (never rotate) or 1 and more", bc.GearRatio))
	}
	if bc.ZonesMinPerGearGroup < 1 {
		errs = append(errs, fmt.Errorf("--zones-min-per-gear-group %d: want 1 or more", bc.ZonesMinPerGearGroup))
	}
	if (bc.TLSCert == "") != (bc.TLSKey == "") {
		errs = append(errs, fmt.Errorf("--tls-cert and --tls-key go together"))
	}
	if bc.BootstrapAdmin != "" {
		u, p, ok := strings.Cut(bc.BootstrapAdmin, ":")
		if !ok || !state.LoginRE.MatchString(u) || len(p) < 8 {
			errs = append(errs, fmt.Errorf("--bootstrap-admin: want user:password, a lower-case login and a password of 8 or more characters"))
		}
	}
	max := c.Int("max-gears")
	if max < 0 {
		errs = append(errs, fmt.Errorf("--max-gears %d is negative", max))
	}
	if bc.MaxDeploySize, err = parseSize(c.String("max-deploy-size")); err != nil {
		errs = append(errs, fmt.Errorf("--max-deploy-size: %w", err))
	}
	if bc.KeepDeployments = c.Int("keep-deployments"); bc.KeepDeployments < 1 {
		errs = append(errs, fmt.Errorf("--keep-deployments %d: want 1 or more", bc.KeepDeployments))
	}
	if bc.RolloutTimeout = c.Duration("rollout-timeout"); bc.RolloutTimeout <= 0 {
		errs = append(errs, fmt.Errorf("--rollout-timeout %s: want a positive duration", bc.RolloutTimeout))
	}
	if bc.NodeFailureGrace = c.Duration("node-failure-grace"); bc.NodeFailureGrace <= 0 {
		errs = append(errs, fmt.Errorf("--node-failure-grace %s: want a positive duration", bc.NodeFailureGrace))
	}
	if bc.AutoscaleInterval = c.Duration("autoscale-interval"); bc.AutoscaleInterval <= 0 {
		errs = append(errs, fmt.Errorf("--autoscale-interval %s: want a positive duration", bc.AutoscaleInterval))
	}
	if bc.ACME, err = parseACME(c); err != nil {
		errs = append(errs, err)
	}
	buildTimeout := c.Duration("build-timeout")
	if buildTimeout <= 0 {
		errs = append(errs, fmt.Errorf("--build-timeout %s: want a positive duration", buildTimeout))
	}
	handoverTimeout := c.Duration("handover-timeout")
	if handoverTimeout <= 0 {
		errs = append(errs, fmt.Errorf("--handover-timeout %s: want a positive duration", handoverTimeout))
	}
	lo, hi, err := parsePortRange(c.String("gear-port-range"))
	if err != nil {
		errs = append(errs, err)
	}
	iso := c.String("gear-isolation")
	if !slices.Contains(node.IsolationChoices, iso) {
		errs = append(errs, fmt.Errorf("--gear-isolation %q: want one of %s", iso, strings.Join(node.IsolationChoices, ", ")))
	}
	uidLo, uidHi, err := parseUIDRange(c.String("gear-uid-range"))
	if err != nil {
		errs = append(errs, err)
	}
	limits, err := parseGearLimits(c.String("gear-limits"))
	if err != nil {
		errs = append(errs, err)
	}
	natsPort, natsClusterPort := c.Int("nats-port"), c.Int("nats-cluster-port")
	switch {
	case natsPort < 0 || natsPort > 65535:
		errs = append(errs, fmt.Errorf("--nats-port %d: want a port, or 0 for no cluster services", natsPort))
	case natsPort != 0 && (natsClusterPort < 1 || natsClusterPort > 65535):
		errs = append(errs, fmt.Errorf("--nats-cluster-port %d: want a port within 1-65535", natsClusterPort))
	case natsPort != 0 && natsPort == natsClusterPort:
		errs = append(errs, fmt.Errorf("--nats-port and --nats-cluster-port are both %d", natsPort))
	}
	haPrefix, haSuffix := strings.ToLower(c.String("ha-dns-prefix")), strings.ToLower(c.String("ha-dns-suffix"))
	if !haAffixRE.MatchString(haPrefix) || !haAffixRE.MatchString(haSuffix) || haPrefix == "" && haSuffix == "" {
		errs = append(errs, fmt.Errorf("--ha-dns-prefix %q and --ha-dns-suffix %q: want letters, digits and dashes, at least one of them not empty", haPrefix, haSuffix))
	}
	ro, err := parseRouterOptions(c)
	if err != nil {
		errs = append(errs, err)
	}
	dnsOpts, err := parseDNSOptions(c)
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return RoleOptions{}, cmdline.JoinErrors(errs)
	}
	o := RoleOptions{Router: ro, DNS: dnsOpts, HAPrefix: haPrefix, HASuffix: haSuffix, Broker: bc, MaxGears: max, HTTPAddr: c.String("http-addr"), PortMin: lo, PortMax: hi,
		Isolation: iso, UIDMin: uidLo, UIDMax: uidHi, Limits: limits, BuildTimeout: buildTimeout, HandoverTimeout: handoverTimeout,
		NATSPort: natsPort, NATSClusterPort: natsClusterPort}
	if bc.TLSCert != "" || c.IsSet("https-addr") {
		o.HTTPSAddr = c.String("https-addr")
	}
	o.MetricsAddr = c.String("metrics-addr")
	if o.MetricsToken, err = cmdline.Secret(c, "metrics-token", "METRICS_TOKEN"); err != nil {
		return RoleOptions{}, err
	}
	// Like Nomad's bind_addr: a specific --bind is the default host of
	// every listener whose own flag was not given, so that members on
	// one host with --bind 127.0.0.21, .22, ... do not all take :80.
	// (c has no "bind" flag when the options come from RoleOptionsFromArgs.)
	if bind := c.String("bind"); bind != "" {
		for _, l := range []struct {
			flag string
			addr *string
		}{{"api-addr", &o.Broker.APIAddr}, {"http-addr", &o.HTTPAddr}, {"router-addr", &o.Router.HTTPAddr}, {"dns-addr", &o.DNS.Addr}, {"https-addr", &o.HTTPSAddr}} {
			if !c.IsSet(l.flag) {
				*l.addr = onBind(*l.addr, bind)
			}
		}
	}
	return o, nil
}

// onBind returns addr (":PORT" or "HOST:PORT") with bind as its host when
// bind is a specific address and addr has no host; else addr unchanged.
func onBind(addr, bind string) string {
	ip := net.ParseIP(bind)
	if ip == nil || ip.IsUnspecified() {
		return addr
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host != "" {
		return addr
	}
	return net.JoinHostPort(bind, port)
}

// haAffixRE matches a valid --ha-dns-prefix or --ha-dns-suffix: it goes
// inside one DNS label.
var haAffixRE = regexp.MustCompile(`^[a-z0-9-]{0,20}$`)

// parseUIDRange reads --gear-uid-range: LOW-HIGH, LOW at least 1000 (the
// host's own users are below) and below HIGH.
func parseUIDRange(s string) (lo, hi int, err error) {
	a, b, ok := strings.Cut(strings.TrimSpace(s), "-")
	lo, err1 := strconv.Atoi(strings.TrimSpace(a))
	hi, err2 := strconv.Atoi(strings.TrimSpace(b))
	if !ok || err1 != nil || err2 != nil || lo < 1000 || hi >= 1<<31-1 || lo >= hi {
		return 0, 0, fmt.Errorf("--gear-uid-range %q: want LOW-HIGH with 1000 <= LOW < HIGH, such as %d-%d", s,
			node.DefaultGearUIDMin, node.DefaultGearUIDMax)
	}
	return lo, hi, nil
}

// parseGearLimits reads --gear-limits: SIZE=MEMORY/PROCS entries, comma
// separated; sizes left out keep node.DefaultLimits.
func parseGearLimits(s string) (map[string]node.Limits, error) {
	out := maps.Clone(node.DefaultLimits)
	for _, e := range strings.Split(s, ",") {
		if e = strings.TrimSpace(e); e == "" {
			continue
		}
		size, v, ok := strings.Cut(e, "=")
		size = strings.TrimSpace(size)
		mem, procs, ok2 := strings.Cut(v, "/")
		m, err1 := parseSize(mem)
		p, err2 := strconv.Atoi(strings.TrimSpace(procs))
		switch {
		case !ok || !ok2 || err1 != nil || err2 != nil:
			return nil, fmt.Errorf("--gear-limits: %q is not SIZE=MEMORY/PROCS, such as small=512MiB/256", e)
		case !slices.Contains(state.GearSizes, size):
			return nil, fmt.Errorf("--gear-limits: unknown size %q (valid: %s)", size, strings.Join(state.GearSizes, ", "))
		case m < node.MinGearMemory || p < node.MinGearProcs:
			return nil, fmt.Errorf("--gear-limits: %s: want at least %dMiB and %d processes", size, node.MinGearMemory>>20, node.MinGearProcs)
		}
		out[size] = node.Limits{Memory: m, Procs: p}
	}
	return out, nil
}

// formatGearLimits writes limits as --gear-limits reads them.
func formatGearLimits(limits map[string]node.Limits) string {
	var parts []string
	for _, size := range state.GearSizes {
		if l, ok := limits[size]; ok {
			parts = append(parts, fmt.Sprintf("%s=%s/%d", size, formatSize(l.Memory), l.Procs))
		}
	}
	return strings.Join(parts, ",")
}

// formatSize writes n bytes in the largest binary unit that divides it.
func formatSize(n int64) string {
	for _, u := range []struct {
		name string
		mult int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n%u.mult == 0 {
			return fmt.Sprintf("%d%s", n/u.mult, u.name)
		}
	}
	return strconv.FormatInt(n, 10)
}

// parsePortRange reads --gear-port-range: LOW-HIGH within 1-65535.
func parsePortRange(s string) (lo, hi int, err error) {
	a, b, ok := strings.Cut(strings.TrimSpace(s), "-")
	lo, err1 := strconv.Atoi(strings.TrimSpace(a))
	hi, err2 := strconv.Atoi(strings.TrimSpace(b))
	if !ok || err1 != nil || err2 != nil || lo < 1 || hi > 65535 || lo > hi {
		return 0, 0, fmt.Errorf("--gear-port-range %q: want LOW-HIGH within 1-65535, such as 35531-65535", s)
	}
	return lo, hi, nil
}

// startRoles starts the roles m's config asks for on its started store,
// node first (its gears come back up while the rest starts), then broker
// and its DNS server, then router. Each started role is added to m.roles.
func (m *Member) startRoles(ctx context.Context) error {
	cfg, st, internal, log, mlog := m.cfg, m.st, m.internal, m.cfg.Store.Logger, m.log
	if moved, err := checkRouterAddr(&cfg); err != nil {
		return err
	} else if moved {
		mlog.Info().Str("router_addr", cfg.Roles.Router.HTTPAddr).Str("http_addr", cfg.Roles.HTTPAddr).
			Msg("router listens beside the node's front listener (set --router-addr to choose)")
	}
	roles := cfg.Store.Roles
	if slices.Contains(roles, store.RoleNode) {
		addr := st.AdvertiseAddr()
		nc := node.DefaultConfig(st, cfg.Store.DataDir, addr, cfg.Domain)
		nc.HTTPAddr = cfg.Roles.HTTPAddr
		nc.ClusterSecret = cfg.Store.ClusterSecret
		nc.MaxDeploySize = cfg.Roles.Broker.MaxDeploySize
		nc.BuildTimeout = cfg.Roles.BuildTimeout
		if !slices.Contains(roles, store.RoleRouter) || cfg.Roles.Router.HTTPAddr == "" {
			nc.HTTPSAddr = cfg.Roles.HTTPSAddr
			nc.TLSCert, nc.TLSKey = cfg.Roles.Broker.TLSCert, cfg.Roles.Broker.TLSKey
		}
		if cfg.Roles.HandoverTimeout > 0 {
			nc.HandoverTimeout = cfg.Roles.HandoverTimeout
		}
		if cfg.Roles.Isolation != "" {
			nc.Isolation = cfg.Roles.Isolation
			nc.GearUIDMin, nc.GearUIDMax = cfg.Roles.UIDMin, cfg.Roles.UIDMax
			nc.Limits = cfg.Roles.Limits
		}
		nc.Logger = log
		nc.Metrics = m.metrics
		svc, err := m.startServices(ctx, addr)
		if err != nil {
			return err
		}
		nc.Services = svc
		natsAddr := ""
		if svc != nil {
			natsAddr = svc.ClusterAddr()
		}
		sup, err := node.New(nc)
		if err != nil {
			return err
		}
		if err := sup.Start(ctx); err != nil {
			return err
		}
		m.metrics.MustRegister(sup.Collector())
		logs := sup.LogHandler()
		internal.gearLogs.Store(&logs)
		internal.node.Store(sup)
		// Gears stop before the store closes, so that their last status
		// is written.
		m.roles = append(m.roles, roleStop{store.RoleNode, func(ctx context.Context) error {
			internal.gearLogs.Store(nil)
			internal.node.Store(nil)
			return sup.Shutdown(ctx)
		}})
		// The record says how gears are isolated, which Start found out.
		if err := node.Register(ctx, st, node.Registration{Addr: addr, Zone: cfg.Store.Zone, Region: cfg.Store.Region,
			MaxGears: cfg.Roles.MaxGears, PortMin: cfg.Roles.PortMin, PortMax: cfg.Roles.PortMax,
			Isolation: sup.Isolation(), NATS: natsAddr, HTTP: frontHTTP(sup.FrontAddr(), addr)}); err != nil {
			return err
		}
		mlog.Info().Str("role", store.RoleNode).Str("addr", addr).Int("max_gears", cfg.Roles.MaxGears).
			Str("front", sup.FrontAddr()).Str("isolation", sup.Isolation()).Msg("role started")
	}
	if slices.Contains(roles, store.RoleBroker) {
		bc := cfg.Roles.Broker
		bc.Store, bc.DataDir, bc.Logger = st, cfg.Store.DataDir, log
		bc.ClusterSecret, bc.Domain = cfg.Store.ClusterSecret, cfg.Domain
		bc.HAPrefix, bc.HASuffix = cfg.Roles.HAPrefix, cfg.Roles.HASuffix
		bc.AdvertiseAddr = cfg.Store.AdvertiseAddr
		bc.Joining = len(cfg.Store.Join) > 0
		bc.Metrics = m.metrics
		b, err := broker.New(bc)
		if err != nil {
			return err
		}
		if err := b.Start(ctx); err != nil {
			return err
		}
		blobs, bundles := b.BlobHandler(), b.BundleHandler()
		internal.blobs.Store(&blobs)
		internal.bundles.Store(&bundles)
		m.roles = append(m.roles, roleStop{store.RoleBroker, func(ctx context.Context) error {
			internal.blobs.Store(nil)
			internal.bundles.Store(nil)
			return b.Shutdown(ctx)
		}})
		if err := m.startDNS(ctx, cfg); err != nil {
			return err
		}
	}
	if slices.Contains(roles, store.RoleRouter) {
		if err := m.startRouter(ctx, cfg); err != nil {
			return err
		}
	}
	return nil
}

// startServices starts the node's cluster services (node/services) on
// addr, the node's address, unless --nats-port is 0 (then it returns
// nil). They stop after the node role, whose gears' daemons use them.
func (m *Member) startServices(ctx context.Context, addr string) (*services.Server, error) {
	cfg := m.cfg
	if cfg.Roles.NATSPort == 0 {
		return nil, nil
	}
	sc := services.DefaultConfig(m.st, filepath.Join(cfg.Store.DataDir, "nats"), addr, cfg.Store.ClusterSecret)
	sc.ClientPort, sc.ClusterPort = cfg.Roles.NATSPort, cfg.Roles.NATSClusterPort
	sc.Logger = cfg.Store.Logger
	svc, err := services.New(sc)
	if err != nil {
		return nil, err
	}
	if err := svc.Start(ctx); err != nil {
		return nil, err
	}
	m.metrics.MustRegister(svc.Collector())
	m.roles = append(m.roles, roleStop{"services", func(context.Context) error { return svc.Close() }})
	m.log.Info().Str("nats", svc.ClientURL()).Str("nats_cluster", svc.ClusterAddr()).Msg("cluster services starting")
	return svc, nil
}

// parseSize reads a byte count: a whole number with an optional unit
// (B, KB, MB, GB in powers of 1000; KiB, MiB, GiB in powers of 1024).
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := len(t)
	for i > 0 && (t[i-1] < '0' || t[i-1] > '9') {
		i--
	}
	n, err := strconv.ParseInt(strings.TrimSpace(t[:i]), 10, 64)
	mult := map[string]int64{"": 1, "b": 1, "kb": 1e3, "mb": 1e6, "gb": 1e9, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30}[strings.ToLower(strings.TrimSpace(t[i:]))]
	if err != nil || n <= 0 || mult == 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("%q is not a size such as 512MiB or 1000000", s)
	}
	return n * mult, nil
}

// frontHTTP is where other members reach the node front bound to bound
// ("" without one).
func frontHTTP(bound, addr string) string {
	if bound == "" {
		return ""
	}
	return store.Reachable(bound, addr)
}

// parseACME reads the --acme-* flags.
func parseACME(c *cli.Context) (broker.ACMEConfig, error) {
	a := broker.ACMEConfig{Directory: c.String("acme-directory"), Email: c.String("acme-email"),
		Resolver: c.String("acme-resolver"), RenewBefore: c.Duration("acme-renew-before")}
	if a.Directory == "" {
		return a, nil
	}
	if u, err := url.Parse(a.Directory); err != nil || u.Scheme != "https" || u.Host == "" {
		return a, fmt.Errorf("--acme-directory %q: want the https URL of an ACME directory", a.Directory)
	}
	if a.RenewBefore <= 0 {
		return a, fmt.Errorf("--acme-renew-before %s: want a positive duration", a.RenewBefore)
	}
	if a.Resolver != "" {
		if _, _, err := net.SplitHostPort(a.Resolver); err != nil {
			return a, fmt.Errorf("--acme-resolver %q: want HOST:PORT", a.Resolver)
		}
	}
	if f := c.String("acme-ca-file"); f != "" {
		pem, err := os.ReadFile(f)
		if err != nil {
			return a, fmt.Errorf("--acme-ca-file: %w", err)
		}
		a.Roots = x509.NewCertPool()
		if !a.Roots.AppendCertsFromPEM(pem) {
			return a, fmt.Errorf("--acme-ca-file %s holds no PEM certificate", f)
		}
	}
	return a, nil
}
