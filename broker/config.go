package broker

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"golang.org/x/crypto/bcrypt"

	"gearbox/lb"
	"gearbox/store"
	"gearbox/store/state"
)

// Config configures a Broker.
type Config struct {
	// Store is this member's replicated store, already started. Required.
	Store *store.Store
	// DataDir is where the generated bootstrap admin password is written.
	// Required.
	DataDir string
	// APIAddr is the REST API's listen address. Default ":7480".
	APIAddr string
	// AdvertiseAddr is the host other brokers reach this API at. Default:
	// this member's advertised gossip address.
	AdvertiseAddr string
	// TLSCert and TLSKey, when both set, serve the API over HTTPS.
	TLSCert, TLSKey string
	// ClusterSecret authenticates calls forwarded between brokers.
	ClusterSecret string
	// Domain is the cloud domain: app hostnames are APP-NS.Domain.
	// Default "example.com".
	Domain string
	// HAPrefix and HASuffix make HA apps' routing-layer hostnames:
	// HAPrefix APP-NS HASuffix .Domain (--ha-dns-prefix,
	// --ha-dns-suffix). Defaults "ha-" and "" (both empty: the defaults).
	HAPrefix, HASuffix string

	// BootstrapAdmin is "user:password" for the first admin on an empty
	// cluster. Empty: a random password is generated, logged once and
	// written to DataDir/bootstrap-admin (mode 0600), for user "admin".
	BootstrapAdmin string
	// Joining says the member was started to join an existing cluster
	// (--join): it creates no bootstrap admin before it has synchronised
	// with a peer. Default false.
	Joining bool

	// AllowHAApplications is the platform switch for make-ha. Default true.
	AllowHAApplications bool
	// DefaultAllowHA is the ha capability of new users. Default false.
	DefaultAllowHA bool
	// DefaultMaxGears is the max_gears of new users. Default 100.
	DefaultMaxGears int
	// DefaultGearSizes are the gear sizes of new users. Default [small].
	DefaultGearSizes []string
	// DefaultHAMultiplier is given to new apps. Default 0.
	DefaultHAMultiplier int
	// GearRatio is the platform's gear-to-LB ratio at which LB gears
	// rotate out (-1 disables). Default 3.
	GearRatio int
	// ZonesMinPerGearGroup fails placement when fewer zones are available.
	// Default 1.
	ZonesMinPerGearGroup int
	// AllowMultipleLBPerNode lets two LB gears of one app share a node.
	// Default false.
	AllowMultipleLBPerNode bool

	// The REST API listener's time-outs and caps (see lb.Limits and
	// listener.go): a client that trickles its body, reads its answer a
	// byte a minute or opens connections by the hundred cannot hold the
	// broker's connections and goroutines. Every time-out is one of
	// inactivity or of a minimum rate, so that deployment uploads,
	// followed logs and followed routing feeds last as long as they move.
	//
	// APIHeaderTimeout bounds the reading of a request's headers (and a
	// TLS handshake). Default 10 s.
	APIHeaderTimeout time.Duration
	// APIBodyTimeout is how long a request body may pass no byte.
	// Default 1 min (the load balancer's client time-out).
	APIBodyTimeout time.Duration
	// APIMinBodyRate, in bytes per second, is the least average rate of a
	// request body once APIBodyTimeout has passed: the first n bytes are
	// due APIBodyTimeout + n/APIMinBodyRate after the request began. -1:
	// none. Default 16 KiB/s (128 kbit/s), at which a MaxDeploySize
	// archive of 512 MiB may take 9 h and a 1 MiB form 2 min.
	APIMinBodyRate int64
	// APIWriteTimeout is how long one write of an answer may wait for the
	// client to take it; a stream that writes nothing for a while is
	// not cut. Default 1 min.
	APIWriteTimeout time.Duration
	// APIIdleTimeout is how long a kept-alive connection may wait for its
	// next request. Default 2 min.
	APIIdleTimeout time.Duration
	// APIMaxConns caps the API's open connections; one more is answered
	// 503 (an envelope; without TLS) and closed at once. Default 1024.
	APIMaxConns int
	// APIMaxConnsPerClient caps the open connections of one client
	// address (an IPv6 /64), so that one client cannot take all of
	// APIMaxConns; over it a connection is refused as over APIMaxConns.
	// A follower broker forwards calls to the leader from its own
	// address: the default HTTPClient opens at most half this many
	// connections to the leader. Default 64; above APIMaxConns, it is
	// APIMaxConns.
	APIMaxConnsPerClient int

	// MaxBodyBytes caps request bodies (413 beyond). Default 1 MiB.
	MaxBodyBytes int64
	// MaxDeploySize caps a deployment archive, compressed and unpacked, in
	// bytes (--max-deploy-size; 413 beyond). Default 512 MiB.
	MaxDeploySize int64
	// KeepDeployments is how many deployments each app keeps for
	// rollback, the current one included (--keep-deployments). Default 3.
	KeepDeployments int
	// RolloutTimeout is how long a roll-out waits for a moved gear to pass
	// its health check on the new deployment (fetch and build included)
	// before it stops (--rollout-timeout). Default 10 min.
	RolloutTimeout time.Duration
	// NodeFailureGrace is how long a node's member must have been gone
	// (failed, left or unknown to gossip) before the leader replaces its
	// gears elsewhere (--node-failure-grace). Default 10 s.
	NodeFailureGrace time.Duration
	// AutoscaleInterval is how often the leader samples the sessions of
	// scalable apps' load balancers (--autoscale-interval). Default 5 s.
	AutoscaleInterval time.Duration
	// lbSessions, set by tests, replaces the reading of a load
	// balancer's sessions for autoscaling.
	lbSessions func(g state.Gear) (int64, bool)
	// LBRise and LBCheckInterval are the load balancers' health check
	// settings that apps do not override (rise checks, one interval
	// apart, bring a gear back): a roll-out waits that long, plus an
	// interval, after a moved gear passes its check. Defaults 3 and 2 s,
	// as the load balancer's.
	LBRise          int
	LBCheckInterval time.Duration
	// FeedGapWait is how long the routing event feed (and webhook
	// delivery) holds back an event whose predecessor is missing from
	// this member's store, counted from the event's commit time, before
	// it skips the missing ones (see feed.go). Default 30 s.
	FeedGapWait time.Duration
	// FeedKeepAlive is how often a followed feed with nothing to say
	// sends an empty line, so that proxies do not close it. Default 15 s.
	FeedKeepAlive time.Duration
	// MaxFeedFollowers is how many followed feeds (follow=1 streams) this
	// broker serves at once; one more is answered 503. Default
	// DefaultMaxFeedFollowers (100).
	MaxFeedFollowers int
	// WebhookTimeout bounds one webhook delivery (connect, send, answer).
	// Default 10 s.
	WebhookTimeout time.Duration
	// WebhookBackoff and WebhookMaxBackoff bound the wait between
	// deliveries of an event a webhook refused: WebhookBackoff after the
	// first failure, doubling up to WebhookMaxBackoff, jittered.
	// Defaults 1 s and 1 min.
	WebhookBackoff, WebhookMaxBackoff time.Duration
	// WebhookClient delivers webhooks. Default: a client with
	// WebhookTimeout that follows no redirects (a 3xx is a failure).
	WebhookClient *http.Client
	// TokenTTL is the default lifetime of API tokens. Default 30 days.
	TokenTTL time.Duration
	// BcryptCost is the cost of password hashes. Default 10.
	BcryptCost int
	// AuthFailureLimit is how many failed HTTP basic-auth logins one
	// client address, and one login, may make per AuthFailureWindow;
	// further attempts are answered 429 with Retry-After, without
	// checking the password (no bcrypt). The budget comes back at one
	// failure every AuthFailureWindow/AuthFailureLimit; successful logins
	// do not count. -1 disables the limit. Default 10 (see authlimit.go).
	AuthFailureLimit int
	// AuthFailureWindow is the window of AuthFailureLimit. Default 1 min.
	AuthFailureWindow time.Duration
	// AuthLimiterEntries caps how many client addresses, and how many
	// logins, the failure limiter remembers (about 150 bytes each); the
	// least recently charged are forgotten first. Default 10000.
	AuthLimiterEntries int
	// MaxTokensPerUser is how many unexpired API tokens a user may hold;
	// creating one more is refused with 409. Default 100.
	MaxTokensPerUser int
	// MaxDomainsPerUser is how many domains a user may own; creating one
	// more is refused with 409. Default 100.
	MaxDomainsPerUser int
	// ACME, with its Directory set, has the leader obtain and renew
	// certificates for the aliases that have none uploaded and whose DNS
	// points at the cluster (acme.go). Default: off.
	ACME ACMEConfig
	// HTTPClient forwards calls to the leader. Default: a client with a
	// 60 s timeout whose transport opens at most APIMaxConnsPerClient/2
	// connections to one broker (more calls wait for one).
	HTTPClient *http.Client
	// GitHook is the command that the apps' repositories run as their
	// pre-receive hook, which must run githook.Run. Default: this
	// program's executable with the argument git-hook.
	GitHook []string
	// Metrics, if set, is where the broker registers its Prometheus
	// metrics (gearbox_broker_*). Default none.
	Metrics prometheus.Registerer
	// Logger receives the broker's logs. Default: disabled.
	Logger zerolog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time

	// bcryptHook, when set, runs before every bcrypt check or hash; tests
	// use it to make hashing slow.
	bcryptHook func()
}

// Defaults of the login failure limiter and of the per-user quotas.
const (
	DefaultAuthFailureLimit   = 10
	DefaultAuthFailureWindow  = time.Minute
	DefaultAuthLimiterEntries = 10000
	DefaultMaxTokensPerUser   = 100
	DefaultMaxDomainsPerUser  = 100
)

// Defaults of the REST API listener's time-outs and caps.
const (
	DefaultAPIHeaderTimeout     = 10 * time.Second
	DefaultAPIBodyTimeout       = time.Minute
	DefaultAPIMinBodyRate       = 16 << 10
	DefaultAPIWriteTimeout      = time.Minute
	DefaultAPIIdleTimeout       = 2 * time.Minute
	DefaultAPIMaxConns          = 1024
	DefaultAPIMaxConnsPerClient = 64
)

// DefaultConfig returns the defaults for a broker on st.
func DefaultConfig(st *store.Store, dataDir string) Config {
	return Config{
		Store:                st,
		DataDir:              dataDir,
		APIAddr:              ":7480",
		Domain:               "example.com",
		HAPrefix:             state.DefaultHADNSPrefix,
		HASuffix:             state.DefaultHADNSSuffix,
		FeedGapWait:          DefaultFeedGapWait,
		FeedKeepAlive:        DefaultFeedKeepAlive,
		MaxFeedFollowers:     DefaultMaxFeedFollowers,
		WebhookTimeout:       DefaultWebhookTimeout,
		WebhookBackoff:       DefaultWebhookBackoff,
		WebhookMaxBackoff:    DefaultWebhookMaxBackoff,
		AllowHAApplications:  true,
		DefaultMaxGears:      100,
		DefaultGearSizes:     []string{state.SizeSmall},
		GearRatio:            DefaultGearRatio,
		ZonesMinPerGearGroup: 1,
		APIHeaderTimeout:     DefaultAPIHeaderTimeout,
		APIBodyTimeout:       DefaultAPIBodyTimeout,
		APIMinBodyRate:       DefaultAPIMinBodyRate,
		APIWriteTimeout:      DefaultAPIWriteTimeout,
		APIIdleTimeout:       DefaultAPIIdleTimeout,
		APIMaxConns:          DefaultAPIMaxConns,
		APIMaxConnsPerClient: DefaultAPIMaxConnsPerClient,
		MaxBodyBytes:         1 << 20,
		MaxDeploySize:        DefaultMaxDeploySize,
		KeepDeployments:      DefaultKeepDeployments,
		TokenTTL:             30 * 24 * time.Hour,
		BcryptCost:           10,
		AuthFailureLimit:     DefaultAuthFailureLimit,
		AuthFailureWindow:    DefaultAuthFailureWindow,
		AuthLimiterEntries:   DefaultAuthLimiterEntries,
		MaxTokensPerUser:     DefaultMaxTokensPerUser,
		MaxDomainsPerUser:    DefaultMaxDomainsPerUser,
		Logger:               zerolog.Nop(),
	}
}

func (c *Config) validate() error {
	var errs []error
	if c.Store == nil {
		errs = append(errs, errors.New("Store is required"))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("DataDir is required"))
	}
	if c.APIAddr == "" {
		c.APIAddr = ":7480"
	}
	if c.Domain == "" {
		c.Domain = "example.com"
	}
	c.ACME.withDefaults()
	if c.HAPrefix == "" && c.HASuffix == "" {
		c.HAPrefix, c.HASuffix = state.DefaultHADNSPrefix, state.DefaultHADNSSuffix
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, errors.New("TLSCert and TLSKey must be set together"))
	}
	if c.BootstrapAdmin != "" {
		u, p, ok := strings.Cut(c.BootstrapAdmin, ":")
		if !ok || !state.LoginRE.MatchString(u) || len(p) < 8 {
			errs = append(errs, errors.New("BootstrapAdmin: want user:password with a lower-case login and a password of at least 8 characters"))
		}
	}
	if c.DefaultMaxGears < 0 {
		errs = append(errs, fmt.Errorf("DefaultMaxGears: %d is negative", c.DefaultMaxGears))
	}
	if len(c.DefaultGearSizes) == 0 {
		c.DefaultGearSizes = []string{state.SizeSmall}
	}
	for _, s := range c.DefaultGearSizes {
		if !slices.Contains(state.GearSizes, s) {
			errs = append(errs, fmt.Errorf("DefaultGearSizes: unknown gear size %q (valid: %s)", s, strings.Join(state.GearSizes, ", ")))
		}
	}
	if c.DefaultHAMultiplier < 0 {
		errs = append(errs, fmt.Errorf("DefaultHAMultiplier: %d is negative", c.DefaultHAMultiplier))
	}
	if c.GearRatio == 0 || c.GearRatio < -1 {
		errs = append(errs, fmt.Errorf("GearRatio: %d; want -1 (disabled) or 1 and more", c.GearRatio))
	}
	if c.ZonesMinPerGearGroup < 1 {
		c.ZonesMinPerGearGroup = 1
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = 1 << 20
	}
	if c.MaxDeploySize < 0 {
		errs = append(errs, fmt.Errorf("MaxDeploySize: %d is negative", c.MaxDeploySize))
	} else if c.MaxDeploySize == 0 {
		c.MaxDeploySize = DefaultMaxDeploySize
	}
	if c.KeepDeployments < 0 {
		errs = append(errs, fmt.Errorf("KeepDeployments: %d is negative", c.KeepDeployments))
	} else if c.KeepDeployments == 0 {
		c.KeepDeployments = DefaultKeepDeployments
	}
	if c.RolloutTimeout < 0 {
		errs = append(errs, fmt.Errorf("RolloutTimeout: %s is negative", c.RolloutTimeout))
	} else if c.RolloutTimeout == 0 {
		c.RolloutTimeout = DefaultRolloutTimeout
	}
	if c.NodeFailureGrace < 0 {
		errs = append(errs, fmt.Errorf("NodeFailureGrace: %s is negative", c.NodeFailureGrace))
	} else if c.NodeFailureGrace == 0 {
		c.NodeFailureGrace = DefaultNodeFailureGrace
	}
	if c.AutoscaleInterval < 0 {
		errs = append(errs, fmt.Errorf("AutoscaleInterval: %s is negative", c.AutoscaleInterval))
	} else if c.AutoscaleInterval == 0 {
		c.AutoscaleInterval = DefaultAutoscaleInterval
	}
	if c.LBRise <= 0 {
		c.LBRise = lb.DefaultConfig().Rise
	}
	if c.LBCheckInterval <= 0 {
		c.LBCheckInterval = lb.DefaultConfig().HealthInterval
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"FeedGapWait", &c.FeedGapWait, DefaultFeedGapWait},
		{"FeedKeepAlive", &c.FeedKeepAlive, DefaultFeedKeepAlive},
		{"WebhookTimeout", &c.WebhookTimeout, DefaultWebhookTimeout},
		{"WebhookBackoff", &c.WebhookBackoff, DefaultWebhookBackoff},
		{"WebhookMaxBackoff", &c.WebhookMaxBackoff, DefaultWebhookMaxBackoff},
		{"APIHeaderTimeout", &c.APIHeaderTimeout, DefaultAPIHeaderTimeout},
		{"APIBodyTimeout", &c.APIBodyTimeout, DefaultAPIBodyTimeout},
		{"APIWriteTimeout", &c.APIWriteTimeout, DefaultAPIWriteTimeout},
		{"APIIdleTimeout", &c.APIIdleTimeout, DefaultAPIIdleTimeout},
	} {
		if *d.v < 0 {
			errs = append(errs, fmt.Errorf("%s: %s is negative", d.name, *d.v))
		} else if *d.v == 0 {
			*d.v = d.def
		}
	}
	switch {
	case c.MaxFeedFollowers < 0:
		errs = append(errs, fmt.Errorf("MaxFeedFollowers: %d is negative", c.MaxFeedFollowers))
	case c.MaxFeedFollowers == 0:
		c.MaxFeedFollowers = DefaultMaxFeedFollowers
	}
	if c.WebhookMaxBackoff < c.WebhookBackoff {
		errs = append(errs, fmt.Errorf("WebhookMaxBackoff %s is below WebhookBackoff %s", c.WebhookMaxBackoff, c.WebhookBackoff))
	}
	if c.WebhookClient == nil {
		c.WebhookClient = &http.Client{Timeout: c.WebhookTimeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if c.TokenTTL <= 0 {
		c.TokenTTL = 30 * 24 * time.Hour
	}
	if c.BcryptCost == 0 {
		c.BcryptCost = 10
	}
	if c.BcryptCost < bcrypt.MinCost || c.BcryptCost > bcrypt.MaxCost {
		errs = append(errs, fmt.Errorf("BcryptCost: %d; want %d to %d", c.BcryptCost, bcrypt.MinCost, bcrypt.MaxCost))
	}
	switch {
	case c.AuthFailureLimit < -1:
		errs = append(errs, fmt.Errorf("AuthFailureLimit: %d; want -1 (no limit) or more", c.AuthFailureLimit))
	case c.AuthFailureLimit == 0:
		c.AuthFailureLimit = DefaultAuthFailureLimit
	}
	if c.AuthFailureWindow < 0 {
		errs = append(errs, fmt.Errorf("AuthFailureWindow: %s is negative", c.AuthFailureWindow))
	} else if c.AuthFailureWindow == 0 {
		c.AuthFailureWindow = DefaultAuthFailureWindow
	}
	for _, n := range []struct {
		name string
		v    *int
		def  int
	}{
		{"AuthLimiterEntries", &c.AuthLimiterEntries, DefaultAuthLimiterEntries},
		{"MaxTokensPerUser", &c.MaxTokensPerUser, DefaultMaxTokensPerUser},
		{"MaxDomainsPerUser", &c.MaxDomainsPerUser, DefaultMaxDomainsPerUser},
		{"APIMaxConns", &c.APIMaxConns, DefaultAPIMaxConns},
	} {
		if *n.v < 0 {
			errs = append(errs, fmt.Errorf("%s: %d is negative", n.name, *n.v))
		} else if *n.v == 0 {
			*n.v = n.def
		}
	}
	switch {
	case c.APIMinBodyRate < -1:
		errs = append(errs, fmt.Errorf("APIMinBodyRate: %d; want -1 (none) or more", c.APIMinBodyRate))
	case c.APIMinBodyRate == 0:
		c.APIMinBodyRate = DefaultAPIMinBodyRate
	}
	switch {
	case c.APIMaxConnsPerClient < 0:
		errs = append(errs, fmt.Errorf("APIMaxConnsPerClient: %d is negative", c.APIMaxConnsPerClient))
	case c.APIMaxConnsPerClient == 0:
		c.APIMaxConnsPerClient = DefaultAPIMaxConnsPerClient
	}
	c.APIMaxConnsPerClient = min(c.APIMaxConnsPerClient, c.APIMaxConns)
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: 60 * time.Second, Transport: forwardTransport(c.APIMaxConnsPerClient)}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if len(c.GitHook) == 0 {
		exe, err := os.Executable()
		if err != nil {
			errs = append(errs, fmt.Errorf("GitHook: find this program for the git hook: %w", err))
		}
		c.GitHook = []string{exe, "git-hook"}
	}
	if len(errs) > 0 {
		return fmt.Errorf("broker config: %w", errors.Join(errs...))
	}
	return nil
}
