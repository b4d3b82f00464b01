package node

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"gearbox/lb"
	"gearbox/node/services"
	"gearbox/store"
)

// Config configures a Supervisor. Store, DataDir, Addr and Domain are
// required; every other zero field takes its default. DefaultConfig spells
// the defaults out and FastConfig is a preset for tests and development.
type Config struct {
	// Store is this member's started store. Required.
	Store *store.Store
	// DataDir is the member's data directory. Gears live in
	// DATA_DIR/gears/ID/{app,data,logs}; the process group of each
	// running gear command is noted in DATA_DIR/run/ID.pid, out of the
	// gear's reach. Required.
	DataDir string
	// Addr is the node's advertised IP: gears bind Addr:Port and are
	// reached there. Required.
	Addr string
	// Domain is the cloud domain that app hostnames end in
	// (APP-NS.DOMAIN). Required.
	Domain string
	// HTTPAddr is where the front listener, which routes requests to
	// gears by Host, listens. DefaultConfig: ":80". Empty: no front
	// listener.
	HTTPAddr string
	// HTTPSAddr is where the front serves HTTPS, with the certificate
	// SNI picks: an alias's own, else TLSCert's (the cloud domain's
	// wildcard; files, with TLSKey). Empty: no HTTPS listener.
	HTTPSAddr       string
	TLSCert, TLSKey string
	// Metrics, if set, is where the node registers the metrics of its LB
	// gears' load balancers (gearbox_lb_*); its own are Collector's.
	Metrics prometheus.Registerer

	// Backoff spaces the restarts of a gear whose process ends on its own.
	// Default 1 s doubling to 30 s, reset after 60 s up.
	Backoff Backoff
	// StopGrace is how long a stopping gear's processes have between
	// SIGTERM and SIGKILL. Default 10 s.
	StopGrace time.Duration
	// ReadyInterval is how often a starting gear's port is probed until it
	// answers. Default 250 ms.
	ReadyInterval time.Duration
	// ResyncInterval is how often every gear is reconciled from the full
	// list of gear records, as a safety net besides watches; each wait is
	// jittered by up to a quarter. Default 30 s.
	ResyncInterval time.Duration
	// SyncWait is how long Start waits for a first anti-entropy round
	// with a peer before it starts the gears of a member that was part
	// of a cluster (awaitClusterState). DefaultConfig's is 10 s; zero:
	// no wait.
	SyncWait time.Duration
	// LogMaxBytes is the size at which a gear's log file is rotated.
	// Default 10 MiB.
	LogMaxBytes int64
	// LogFiles is how many log files a gear keeps, the current one
	// included (gear.log, gear.log.1, ...). Default 3.
	LogFiles int
	// LogPollInterval is how often a log request that follows a gear's
	// log (LogHandler, follow=1) looks for new lines. Default 250 ms.
	LogPollInterval time.Duration

	// ClusterSecret keys the affinity cookies of LB gears' load
	// balancers (lb.Config.Secret), so that every LB gear and router of
	// the cluster agrees on them. Default "": cookie values are stable but
	// anyone can compute the one that names a known gear.
	ClusterSecret string
	// LB is what the load balancers of LB gears start from; Secret,
	// TrustedProxies (this node's Addr and the addresses of the cluster's
	// routers are added, see trust.go), Backends and Logger are
	// set by the node, and the app's env may override the balancing and
	// health check settings (see EnvLBHealthPath and the like).
	// DefaultConfig: lb.DefaultConfig(); FastConfig: lb.FastConfig(). Zero
	// fields take lb's defaults. Its ClientTimeout, TunnelTimeout and
	// MaxClientConns also bound the front listener's clients (see
	// frontLimits in front.go).
	LB lb.Config
	// MaxDeploySize caps, in bytes, a deployment archive that the node
	// fetches, and what it unpacks to (--max-deploy-size). Default
	// DefaultMaxDeploySize (512 MiB).
	MaxDeploySize int64

	// Isolation is how a node that runs as root isolates its gears
	// (--gear-isolation): IsolateAuto (default) the strongest mode that
	// works on the host, found at Start by trying (own uid plus cgroup v2,
	// cgroup v1 or rlimits); IsolateCgroup2, IsolateCgroup1 or
	// IsolateRlimit that mode. Start fails, with an error that wraps
	// ErrCannotIsolate, when the node cannot isolate gears as asked (a
	// node that does not run as root never can); only IsolateNone runs
	// gears unisolated, as the node's own user, for a single-user node.
	Isolation string
	// GearUIDMin and GearUIDMax bound the uids of gears (--gear-uid-range),
	// whose gid is the same number: GearUIDMin is the node's own, for its
	// checks, and each gear gets one of the others, kept as long as the
	// gear stays on the node. Nodes that share a host need ranges apart.
	// Default 40000-59999.
	GearUIDMin, GearUIDMax int
	// Limits are the resource limits of gears by size (state.SizeSmall,
	// ...; --gear-limits). A size missing, or a zero field, takes
	// DefaultLimits' (small's for an unknown size). Memory is rounded down
	// to a multiple of 4 KiB, as the kernel does.
	Limits map[string]Limits

	// DrainTimeout bounds how long the stop of a gear's web process waits
	// for the load balancers of this node to drain it. Default 10 s.
	DrainTimeout time.Duration
	// RemoteDrainDelay is how long the stop of a gear's web process waits,
	// once its status asks for a drain, before it drains locally and
	// stops: the time load balancers on other nodes take to learn of it
	// and finish what they sent. Only for gears of apps with an LB gear
	// on another node. Default 2 s.
	RemoteDrainDelay time.Duration
	// BuildTimeout bounds a deployment's build (--build-timeout); a build
	// that takes longer is stopped and fails. Default 15 min.
	BuildTimeout time.Duration
	// HandoverTimeout bounds how long the only gear of an app waits for a
	// new process started beside its running one to pass its health
	// check (see handover.go); the running one stays if it does not.
	// Default 5 min.
	HandoverTimeout time.Duration

	// Services are the node's cluster services (node/services): gears
	// get its NATS URL and their app's key (see gearEnv), and the node
	// runs their apps' daemons and jobs (see singleton.go). Nil: none.
	Services *services.Server
	// Logger receives the node's logs. Default: disabled.
	Logger zerolog.Logger
	// Now is the clock of status times and uptimes. Default time.Now.
	Now func() time.Time
}

// Backoff is how long a supervised process waits before it is started again
// after ending on its own: Initial after its first end, doubling at each
// further end up to Max; a run that lasted ResetAfter or more starts the
// sequence over.
type Backoff struct {
	// Initial is the first wait. Default 1 s.
	Initial time.Duration
	// Max caps the wait. Default 30 s.
	Max time.Duration
	// ResetAfter is the uptime after which the next wait is Initial again.
	// Default 60 s.
	ResetAfter time.Duration
	// CrashLimit is how many ends (crashes, clean exits, failed launches)
	// within CrashWindow a process may have: past it the process is
	// crashing, and every further wait is CrashWait, until a run lasts
	// ResetAfter. Default 5; negative: no limit.
	CrashLimit int
	// CrashWindow is the span that ends are counted over. Default 10 min.
	CrashWindow time.Duration
	// CrashWait is the wait before each launch of a crashing process.
	// Default 5 min.
	CrashWait time.Duration
}

// Default timings.
const (
	DefaultHTTPAddr       = ":80"
	DefaultStopGrace      = 10 * time.Second
	DefaultReadyInterval  = 250 * time.Millisecond
	DefaultResyncInterval = 30 * time.Second
	DefaultSyncWait       = 10 * time.Second
	DefaultLogMaxBytes    = 10 << 20
	DefaultLogFiles       = 3
	DefaultLogPoll        = 250 * time.Millisecond
	DefaultDrainTimeout   = 10 * time.Second
	DefaultRemoteDrain    = 2 * time.Second
	DefaultHandover       = 5 * time.Minute
	DefaultBuildTimeout   = 15 * time.Minute
)

// The smallest limits a gear may have: a Go program or a shell needs
// about that much to start.
const (
	MinGearMemory = 16 << 20
	MinGearProcs  = 16
)

// DefaultBackoff is 1 s doubling to 30 s, reset after 60 s up; more than
// 5 ends in 10 minutes make a process crashing, tried every 5 minutes.
var DefaultBackoff = Backoff{Initial: time.Second, Max: 30 * time.Second, ResetAfter: 60 * time.Second,
	CrashLimit: 5, CrashWindow: 10 * time.Minute, CrashWait: 5 * time.Minute}

// DefaultConfig returns production defaults for a node of st that stores
// gears under dataDir, advertises addr and serves apps of domain.
func DefaultConfig(st *store.Store, dataDir, addr, domain string) Config {
	return Config{
		Store:            st,
		DataDir:          dataDir,
		Addr:             addr,
		Domain:           domain,
		HTTPAddr:         DefaultHTTPAddr,
		Backoff:          DefaultBackoff,
		StopGrace:        DefaultStopGrace,
		ReadyInterval:    DefaultReadyInterval,
		ResyncInterval:   DefaultResyncInterval,
		SyncWait:         DefaultSyncWait,
		LogMaxBytes:      DefaultLogMaxBytes,
		LogFiles:         DefaultLogFiles,
		LogPollInterval:  DefaultLogPoll,
		LB:               lb.DefaultConfig(),
		DrainTimeout:     DefaultDrainTimeout,
		RemoteDrainDelay: DefaultRemoteDrain,
		HandoverTimeout:  DefaultHandover,
		BuildTimeout:     DefaultBuildTimeout,
		MaxDeploySize:    DefaultMaxDeploySize,
		Isolation:        IsolateAuto,
		GearUIDMin:       DefaultGearUIDMin,
		GearUIDMax:       DefaultGearUIDMax,
		Limits:           maps.Clone(DefaultLimits),
		Logger:           zerolog.Nop(),
		Now:              time.Now,
	}
}

// FastConfig returns DefaultConfig with timings for tests and development:
// restarts after 50 ms doubling to 400 ms (reset after 1 s up; more than
// 5 ends in 10 s make a gear crashing, tried every 3 s), a 2 s stop
// grace, readiness probes every 20 ms, the front listener on addr:0, a 2 s
// drain timeout, followed logs polled every 20 ms, and load balancers with
// lb.FastConfig's timings.
func FastConfig(st *store.Store, dataDir, addr, domain string) Config {
	c := DefaultConfig(st, dataDir, addr, domain)
	c.HTTPAddr = net.JoinHostPort(addr, "0")
	c.Backoff = Backoff{Initial: 50 * time.Millisecond, Max: 400 * time.Millisecond, ResetAfter: time.Second,
		CrashLimit: 5, CrashWindow: 10 * time.Second, CrashWait: 3 * time.Second}
	c.StopGrace = 2 * time.Second
	c.ReadyInterval = 20 * time.Millisecond
	c.LogPollInterval = 20 * time.Millisecond
	c.DrainTimeout = 2 * time.Second
	c.LB = lb.FastConfig()
	return c
}

func (c *Config) validate() error {
	var errs []error
	if c.Store == nil {
		errs = append(errs, errors.New("Store is required"))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("DataDir is required"))
	}
	if net.ParseIP(c.Addr) == nil {
		errs = append(errs, fmt.Errorf("Addr %q is not an IP address", c.Addr))
	}
	if c.Domain == "" {
		errs = append(errs, errors.New("Domain is required"))
	}
	if c.HTTPAddr != "" {
		if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
			errs = append(errs, fmt.Errorf("HTTPAddr %q: %w", c.HTTPAddr, err))
		}
	}
	if err := c.Backoff.validate(); err != nil {
		errs = append(errs, err)
	}
	c.Backoff = c.Backoff.withDefaults()
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"StopGrace", &c.StopGrace, DefaultStopGrace},
		{"ReadyInterval", &c.ReadyInterval, DefaultReadyInterval},
		{"ResyncInterval", &c.ResyncInterval, DefaultResyncInterval},
		{"DrainTimeout", &c.DrainTimeout, DefaultDrainTimeout},
		{"RemoteDrainDelay", &c.RemoteDrainDelay, DefaultRemoteDrain},
		{"HandoverTimeout", &c.HandoverTimeout, DefaultHandover},
		{"BuildTimeout", &c.BuildTimeout, DefaultBuildTimeout},
		{"LogPollInterval", &c.LogPollInterval, DefaultLogPoll},
	} {
		switch {
		case *d.v < 0:
			errs = append(errs, fmt.Errorf("%s %s is negative", d.name, *d.v))
		case *d.v == 0:
			*d.v = d.def
		}
	}
	switch {
	case c.LogMaxBytes < 0:
		errs = append(errs, fmt.Errorf("LogMaxBytes %d is negative", c.LogMaxBytes))
	case c.LogMaxBytes == 0:
		c.LogMaxBytes = DefaultLogMaxBytes
	}
	switch {
	case c.LogFiles < 0:
		errs = append(errs, fmt.Errorf("LogFiles %d is negative", c.LogFiles))
	case c.LogFiles == 0:
		c.LogFiles = DefaultLogFiles
	}
	switch {
	case c.MaxDeploySize < 0:
		errs = append(errs, fmt.Errorf("MaxDeploySize %d is negative", c.MaxDeploySize))
	case c.MaxDeploySize == 0:
		c.MaxDeploySize = DefaultMaxDeploySize
	}
	if c.Isolation == "" {
		c.Isolation = IsolateAuto
	}
	if !slices.Contains(IsolationChoices, c.Isolation) {
		errs = append(errs, fmt.Errorf("Isolation %q is not one of %s", c.Isolation, strings.Join(IsolationChoices, ", ")))
	}
	if c.GearUIDMin == 0 && c.GearUIDMax == 0 {
		c.GearUIDMin, c.GearUIDMax = DefaultGearUIDMin, DefaultGearUIDMax
	}
	if c.GearUIDMin < 1 || c.GearUIDMax >= 1<<31-1 || c.GearUIDMax <= c.GearUIDMin {
		errs = append(errs, fmt.Errorf("GearUIDMin %d and GearUIDMax %d: want 1 <= GearUIDMin < GearUIDMax < 2147483647", c.GearUIDMin, c.GearUIDMax))
	}
	limits := make(map[string]Limits, len(DefaultLimits))
	for size, l := range c.Limits {
		limits[size] = l
	}
	for size, def := range DefaultLimits {
		l := limits[size]
		if l.Memory == 0 {
			l.Memory = def.Memory
		}
		if l.Procs == 0 {
			l.Procs = def.Procs
		}
		limits[size] = l
	}
	for size, l := range limits {
		if l.Memory < MinGearMemory || l.Procs < MinGearProcs {
			errs = append(errs, fmt.Errorf("Limits[%s] %d bytes and %d processes: want at least %d bytes and %d processes",
				size, l.Memory, l.Procs, MinGearMemory, MinGearProcs))
		}
		l.Memory &^= 4<<10 - 1
		limits[size] = l
	}
	c.Limits = limits
	if c.Now == nil {
		c.Now = time.Now
	}
	if len(errs) > 0 {
		return fmt.Errorf("node config: %w", errors.Join(errs...))
	}
	return nil
}

// validate checks b; zero fields are left for withDefaults.
func (b Backoff) validate() error {
	var errs []error
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"Initial", b.Initial}, {"Max", b.Max}, {"ResetAfter", b.ResetAfter}, {"CrashWindow", b.CrashWindow}, {"CrashWait", b.CrashWait}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("Backoff.%s %s is negative", d.name, d.v))
		}
	}
	if b.Initial > 0 && b.Max > 0 && b.Max < b.Initial {
		errs = append(errs, fmt.Errorf("Backoff.Max %s is below Backoff.Initial %s", b.Max, b.Initial))
	}
	return errors.Join(errs...)
}

// withDefaults fills b's zero fields from DefaultBackoff.
func (b Backoff) withDefaults() Backoff {
	if b.Initial == 0 {
		b.Initial = DefaultBackoff.Initial
	}
	if b.Max == 0 {
		b.Max = max(DefaultBackoff.Max, b.Initial)
	}
	if b.ResetAfter == 0 {
		b.ResetAfter = DefaultBackoff.ResetAfter
	}
	if b.CrashLimit == 0 {
		b.CrashLimit = DefaultBackoff.CrashLimit
	}
	if b.CrashWindow == 0 {
		b.CrashWindow = DefaultBackoff.CrashWindow
	}
	if b.CrashWait == 0 {
		b.CrashWait = max(DefaultBackoff.CrashWait, b.Max)
	}
	return b
}

// Next returns the wait before the next start of a process that ended after
// running for uptime, when the previous wait was prev (0: none yet).
func (b Backoff) Next(prev, uptime time.Duration) time.Duration {
	b = b.withDefaults()
	if prev <= 0 || uptime >= b.ResetAfter {
		return b.Initial
	}
	return min(2*prev, b.Max)
}
