package store

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/rs/zerolog"

	"gearbox/store/internalapi"
)

// Gossip timing profiles, as in memberlist.
const (
	// ProfileLAN is memberlist's LAN timing (probe 1 s, gossip 200 ms):
	// the production default.
	ProfileLAN = "lan"
	// ProfileLocal is memberlist's local timing (probe 1 s, gossip 100 ms,
	// faster suspicion): for members on one host, such as tests and dev.
	ProfileLocal = "local"
)

// Config configures a Store. The zero value is not usable: use
// DefaultConfig or LocalConfig and set Name and DataDir.
type Config struct {
	// Name is this member's unique name in the cluster. Required.
	Name string
	// DataDir holds state.db and serf's snapshot. Required; created if
	// missing.
	DataDir string

	// BindAddr is the address serf listens on. Default "0.0.0.0".
	BindAddr string
	// BindPort is serf's gossip port (UDP and TCP). Default 7946; 0 picks
	// a free port.
	BindPort int
	// AdvertiseAddr is the address other members reach this one at.
	// Default: BindAddr when it is a specific address, else the first
	// private address serf finds.
	AdvertiseAddr string
	// InternalPort is the port of this member's internal API, advertised
	// to peers (the store does not listen on it; the caller serves
	// Handler there). Default 7947.
	InternalPort int

	// Roles, Zone and Region are advertised as serf tags.
	Roles  []string
	Zone   string
	Region string

	// Join lists host[:port] of members to join at Start. Joining is
	// retried with backoff (1 s doubling to 30 s) until it succeeds.
	Join []string

	// EncryptKey, if set, encrypts gossip (serf keyring, 16/24/32 bytes).
	EncryptKey []byte
	// ClusterSecret keys the internal API's mutual TLS (a key derived from
	// it; the secret itself is never sent) and seals gossip payloads.
	// Empty: the cluster is unauthenticated.
	ClusterSecret string

	// Profile is ProfileLAN (default) or ProfileLocal.
	Profile string
	// AntiEntropyInterval is how often the member compares digests with a
	// random alive peer; each wait is jittered by up to a quarter. Default
	// 10 s.
	AntiEntropyInterval time.Duration
	// TombstoneTTL is how long deletes are remembered. A member whose last
	// sync is older than this resynchronises fully, and a gossiped record
	// older than this is refused as a replay. Default 24 h.
	TombstoneTTL time.Duration
	// MaxClockSkew is how far ahead of this member's wall clock a version
	// received from a peer (gossip, anti-entropy pull or push) may be.
	// Records with versions further ahead are refused and logged, and do
	// not advance this member's clock: otherwise one record from the far
	// future could never be overwritten. Members' clocks must agree within
	// it (NTP keeps them within milliseconds). Default 1 minute; must be
	// shorter than TombstoneTTL.
	MaxClockSkew time.Duration
	// GCInterval is how often tombstones older than TombstoneTTL are
	// collected. Default 1 h.
	GCInterval time.Duration
	// UserEventSizeLimit is serf's limit for an event's name and payload;
	// larger records are announced and pulled. Default 512 (serf's
	// default, which fits a UDP gossip packet).
	UserEventSizeLimit int

	// NoSync skips fsync on commit. Default false. Only for tests and
	// benchmarks: a crash can lose acknowledged writes.
	NoSync bool

	// Logger receives the store's logs. Default: disabled.
	Logger zerolog.Logger
	// HTTPClient talks to peers' internal APIs, over mutual TLS: its
	// transport must present the certificate derived from ClusterSecret
	// (internalapi.Transport). Default: a client with a 30 s timeout over
	// internalapi.Transport(ClusterSecret).
	HTTPClient *http.Client
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// DefaultConfig returns production defaults for member name with data in dir.
func DefaultConfig(name, dir string) Config {
	return Config{
		Name:                name,
		DataDir:             dir,
		BindAddr:            "0.0.0.0",
		BindPort:            7946,
		InternalPort:        7947,
		Profile:             ProfileLAN,
		AntiEntropyInterval: 10 * time.Second,
		TombstoneTTL:        24 * time.Hour,
		MaxClockSkew:        time.Minute,
		GCInterval:          time.Hour,
		UserEventSizeLimit:  512,
		Logger:              zerolog.Nop(),
	}
}

// LocalConfig returns fast settings for a member on one host (tests, dev):
// serf on addr:0, local gossip timing, anti-entropy every 500 ms, no fsync.
func LocalConfig(name, dir, addr string) Config {
	c := DefaultConfig(name, dir)
	c.BindAddr = addr
	c.BindPort = 0
	c.Profile = ProfileLocal
	c.AntiEntropyInterval = 500 * time.Millisecond
	c.NoSync = true
	return c
}

func (c *Config) validate() error {
	var errs []error
	if c.Name == "" {
		errs = append(errs, errors.New("Name is required"))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("DataDir is required"))
	}
	if c.BindAddr == "" {
		c.BindAddr = "0.0.0.0"
	}
	if net.ParseIP(c.BindAddr) == nil {
		errs = append(errs, fmt.Errorf("BindAddr %q is not an IP address", c.BindAddr))
	}
	if c.AdvertiseAddr != "" && net.ParseIP(c.AdvertiseAddr) == nil {
		errs = append(errs, fmt.Errorf("AdvertiseAddr %q is not an IP address", c.AdvertiseAddr))
	}
	if c.BindPort < 0 || c.BindPort > 65535 {
		errs = append(errs, fmt.Errorf("BindPort %d out of range", c.BindPort))
	}
	if c.InternalPort <= 0 || c.InternalPort > 65535 {
		errs = append(errs, fmt.Errorf("InternalPort %d out of range", c.InternalPort))
	}
	switch len(c.EncryptKey) {
	case 0, 16, 24, 32:
	default:
		errs = append(errs, fmt.Errorf("EncryptKey is %d bytes, want 16, 24 or 32", len(c.EncryptKey)))
	}
	switch c.Profile {
	case "":
		c.Profile = ProfileLAN
	case ProfileLAN, ProfileLocal:
	default:
		errs = append(errs, fmt.Errorf("Profile %q: want %q or %q", c.Profile, ProfileLAN, ProfileLocal))
	}
	if c.AntiEntropyInterval <= 0 {
		c.AntiEntropyInterval = 10 * time.Second
	}
	if c.TombstoneTTL <= 0 {
		c.TombstoneTTL = 24 * time.Hour
	}
	switch {
	case c.MaxClockSkew < 0:
		errs = append(errs, fmt.Errorf("MaxClockSkew %s is negative", c.MaxClockSkew))
	case c.MaxClockSkew == 0:
		c.MaxClockSkew = time.Minute
	}
	if c.MaxClockSkew >= c.TombstoneTTL {
		errs = append(errs, fmt.Errorf("MaxClockSkew %s must be shorter than TombstoneTTL %s", c.MaxClockSkew, c.TombstoneTTL))
	}
	if c.GCInterval <= 0 {
		c.GCInterval = time.Hour
	}
	if c.UserEventSizeLimit <= 0 {
		c.UserEventSizeLimit = 512
	}
	if c.UserEventSizeLimit > 9*1024 {
		errs = append(errs, fmt.Errorf("UserEventSizeLimit %d exceeds serf's 9 KiB", c.UserEventSizeLimit))
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: 30 * time.Second, Transport: internalapi.Transport(c.ClusterSecret)}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if len(errs) > 0 {
		return fmt.Errorf("store config: %w", errors.Join(errs...))
	}
	return nil
}

func (c *Config) memberlist() *memberlist.Config {
	var m *memberlist.Config
	if c.Profile == ProfileLocal {
		m = memberlist.DefaultLocalConfig()
	} else {
		m = memberlist.DefaultLANConfig()
	}
	m.BindAddr = c.BindAddr
	m.BindPort = c.BindPort
	if c.AdvertiseAddr != "" {
		m.AdvertiseAddr = c.AdvertiseAddr
		m.AdvertisePort = c.BindPort
	}
	return m
}

// internalAddr is the host:port peers use for this member's internal API.
func internalAddr(host string, port int) string {
	return net.JoinHostPort(host, strconv.Itoa(port))
}
