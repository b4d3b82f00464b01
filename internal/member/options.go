package member

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"gearbox/internal/cmdline"
	"gearbox/store"
)

// Defaults of `gearbox serve`, as in DESIGN.md.
const (
	defaultDataDir = "/var/lib/gearbox"
	defaultBind    = "0.0.0.0"

	defaultDomain       = "example.com"
	defaultLeaveTimeout = 10 * time.Second
)

// allRoles lists the roles a member can run, in the order they are
// advertised. --role all means all of them.
var allRoles = []string{store.RoleBroker, store.RoleNode, store.RoleRouter}

// Options are the flags of `gearbox serve`, as given.
type Options struct {
	Roles               string
	Name                string
	DataDir             string
	Bind                string
	Advertise           string
	SerfPort            int
	InternalPort        int
	Join                []string
	Encrypt             string
	ClusterSecret       string
	Domain              string
	Zone                string
	Region              string
	LeaveTimeout        time.Duration
	AntiEntropyInterval time.Duration
	// MaxClockSkew is how far ahead of this member's clock a record's
	// version may be (store.Config.MaxClockSkew); 0: the store's default.
	MaxClockSkew time.Duration
}

// Config is a validated Options: what serve runs with.
type Config struct {
	Store        store.Config
	InternalAddr string // host:port the internal API listens on
	Domain       string
	LeaveTimeout time.Duration
	// InternalReadTimeout bounds how long a peer may take to send one
	// request to the internal API, body included, so that a trickled
	// request cannot hold a connection forever. Zero means
	// DefaultInternalReadTimeout.
	InternalReadTimeout time.Duration
	// InternalWriteTimeout is how long one write of an internal API answer
	// may take (a peer that stops reading is cut; a followed log that has
	// nothing to say is not). Zero means DefaultInternalWriteTimeout.
	InternalWriteTimeout time.Duration
	// InternalMaxConns and InternalMaxConnsPerClient cap the internal
	// API's connections, in all and from one address: one over a cap is
	// closed when accepted, before its TLS handshake. Zero means
	// DefaultInternalMaxConns, DefaultInternalMaxConnsPerClient.
	InternalMaxConns, InternalMaxConnsPerClient int
	// SecretDerived is true when the cluster secret came from --encrypt.
	SecretDerived bool
	// Roles holds the settings of the broker and node roles.
	Roles RoleOptions
}

// DefaultInternalReadTimeout is the default Config.InternalReadTimeout:
// requests between members are small (the largest, a batch of records,
// is read well within it on any working network).
const DefaultInternalReadTimeout = time.Minute

// Defaults of the internal API's write time-out and connection caps.
// Members on one host (gearbox dev, tests) all call from one address, so
// the per-client cap is a generous share of the total.
const (
	DefaultInternalWriteTimeout      = time.Minute
	DefaultInternalMaxConns          = 4096
	DefaultInternalMaxConnsPerClient = 1024
)

// Config validates o and turns it into a member configuration. Every error
// names the flag at fault; all of them are reported at once, on one line.
func (o Options) Config() (Config, error) {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	roles, err := parseRoles(o.Roles)
	if err != nil {
		errs = append(errs, err)
	}
	if strings.TrimSpace(o.Name) == "" {
		fail("--name is required (the host name could not be read)")
	} else if strings.ContainsAny(o.Name, " \t\r\n,") {
		fail("--name %q must not contain spaces or commas", o.Name)
	}
	if o.DataDir == "" {
		fail("--data-dir is required")
	}
	if net.ParseIP(o.Bind) == nil {
		fail("--bind %q is not an IP address", o.Bind)
	}
	if o.Advertise != "" && net.ParseIP(o.Advertise) == nil {
		fail("--advertise %q is not an IP address", o.Advertise)
	}
	if err := validPort("--serf-port", o.SerfPort); err != nil {
		errs = append(errs, err)
	}
	if err := validPort("--internal-port", o.InternalPort); err != nil {
		errs = append(errs, err)
	}
	if o.SerfPort == o.InternalPort {
		fail("--serf-port and --internal-port are both %d; they must differ", o.SerfPort)
	}
	join, err := parseJoin(o.Join)
	if err != nil {
		errs = append(errs, err)
	}
	var key []byte
	if o.Encrypt != "" {
		if key, err = store.DecodeKey(o.Encrypt); err != nil {
			fail("--encrypt: %w", err)
		}
	}
	var secret string
	var derived bool
	if o.Encrypt == "" || key != nil { // a bad key is reported once, above
		if secret, derived, err = cmdline.ClusterSecret(o.ClusterSecret, o.Encrypt); err != nil {
			errs = append(errs, err)
		}
	}
	if secret == "" && (o.Encrypt == "" || key != nil) {
		fail("no cluster secret: every member needs the same one; make it once with '(umask 077; openssl rand -hex 32 > /etc/gearbox/cluster-secret)', " +
			"copy it to every member, and give --cluster-secret-file /etc/gearbox/cluster-secret (or set GEARBOX_CLUSTER_SECRET)")
	}
	if key == nil && secret != "" {
		// One secret is all an operator manages: gossip is encrypted with
		// a key derived from it.
		key = store.DeriveGossipKey(secret)
	}
	if err := validDomain(o.Domain); err != nil {
		errs = append(errs, err)
	}
	if o.LeaveTimeout <= 0 {
		fail("--leave-timeout %s must be positive", o.LeaveTimeout)
	}
	if o.AntiEntropyInterval <= 0 {
		fail("--anti-entropy-interval %s must be positive", o.AntiEntropyInterval)
	}
	// Zero is the store's default (for members made in code); the flag
	// itself is never zero (serve refuses it).
	if ttl := store.DefaultConfig("", "").TombstoneTTL; o.MaxClockSkew < 0 || o.MaxClockSkew >= ttl {
		fail("--max-clock-skew %s must be positive and shorter than the tombstone lifetime (%s)", o.MaxClockSkew, ttl)
	}
	if len(errs) > 0 {
		return Config{}, cmdline.JoinErrors(errs)
	}

	sc := store.DefaultConfig(o.Name, o.DataDir)
	sc.BindAddr = o.Bind
	sc.BindPort = o.SerfPort
	sc.AdvertiseAddr = o.Advertise
	sc.InternalPort = o.InternalPort
	sc.Roles = roles
	sc.Zone = o.Zone
	sc.Region = o.Region
	sc.Join = join
	sc.EncryptKey = key
	sc.ClusterSecret = secret
	sc.AntiEntropyInterval = o.AntiEntropyInterval
	if o.MaxClockSkew > 0 {
		sc.MaxClockSkew = o.MaxClockSkew
	}
	return Config{
		Store:         sc,
		InternalAddr:  net.JoinHostPort(o.Bind, strconv.Itoa(o.InternalPort)),
		Domain:        strings.ToLower(strings.TrimSuffix(o.Domain, ".")),
		LeaveTimeout:  o.LeaveTimeout,
		SecretDerived: derived,
	}, nil
}

// parseRoles parses --role: a comma list of broker, node and router, or
// all. It returns the roles without duplicates, in the order of allRoles.
func parseRoles(s string) ([]string, error) {
	want := make(map[string]bool)
	for _, r := range strings.Split(s, ",") {
		r = strings.ToLower(strings.TrimSpace(r))
		switch r {
		case "":
			continue
		case "all":
			for _, a := range allRoles {
				want[a] = true
			}
		case store.RoleBroker, store.RoleNode, store.RoleRouter:
			want[r] = true
		default:
			return nil, fmt.Errorf("--role: unknown role %q: want a comma list of broker, node, router, or all", r)
		}
	}
	if len(want) == 0 {
		return nil, errors.New("--role is empty: want a comma list of broker, node, router, or all")
	}
	var roles []string
	for _, r := range allRoles {
		if want[r] {
			roles = append(roles, r)
		}
	}
	return roles, nil
}

// validPort checks that port is a usable TCP/UDP port; flag names the flag
// it came from.
func validPort(flag string, port int) error {
	if port < 1 || port > 65535 {
		return fmt.Errorf("%s %d is out of range: want 1-65535", flag, port)
	}
	return nil
}

// parseJoin checks the --join addresses and gives those without a port
// the default gossip port, 7946 (not this member's --serf-port: the
// address names another member).
func parseJoin(addrs []string) ([]string, error) {
	var out []string
	for _, a := range addrs {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		hp, err := cmdline.WithDefaultPort(a, cmdline.DefaultSerfPort)
		if err != nil {
			return nil, fmt.Errorf("--join %q: %w", a, err)
		}
		out = append(out, hp)
	}
	return out, nil
}

// validDomain checks --domain: a DNS name whose labels are letters, digits
// and hyphens.
func validDomain(d string) error {
	d = strings.TrimSuffix(d, ".")
	if d == "" {
		return errors.New("--domain is required")
	}
	if len(d) > 253 {
		return fmt.Errorf("--domain %q is longer than 253 characters", d)
	}
	for _, label := range strings.Split(d, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("--domain %q is not a DNS name", d)
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return fmt.Errorf("--domain %q is not a DNS name", d)
			}
		}
	}
	return nil
}
