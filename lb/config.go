package lb

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// Balancing algorithms for Config.Balance.
const (
	// LeastConn sends a request to the eligible backend with the fewest
	// requests in flight; ties go round robin. haproxy's "balance
	// leastconn", the cartridge's default.
	LeastConn = "leastconn"
	// RoundRobin sends requests to eligible backends in turn.
	RoundRobin = "roundrobin"
)

// Config configures a Pool. Every zero field takes its default, so the zero
// Config is usable; DefaultConfig spells the defaults out and FastConfig is
// a preset for tests and development.
type Config struct {
	// Backends is the initial set of backends. Default none; SetBackends
	// replaces the set at run time.
	Backends []Backend

	// Balance is LeastConn or RoundRobin. Default LeastConn.
	Balance string

	// HealthPath is the path that active checks GET. Default "/" (the
	// cartridge's "option httpchk GET /").
	HealthPath string
	// HealthHost is the Host header of active checks. Default "": the
	// backend's address.
	HealthHost string
	// HealthExpect lists the statuses that pass a check, each a code
	// ("200") or a class ("2xx"). Default 2xx, 3xx and 401, as the
	// cartridge's "http-check expect rstatus 2..|3..|401".
	HealthExpect []string
	// HealthInterval is the time between two rounds of checks. Default 2 s
	// (haproxy's "inter 2000"). Each wait is shortened by a random part of
	// up to a tenth so that LBs started together do not check in step.
	HealthInterval time.Duration
	// HealthTimeout bounds one check, from connect to response headers.
	// Default 2 s.
	HealthTimeout time.Duration
	// Rise is how many checks in a row must pass to bring a down backend
	// up. Default 3.
	Rise int
	// Fall is how many checks in a row must fail to bring an up backend
	// down. Default 2.
	Fall int
	// StartDown makes a backend new to the pool down until Rise checks
	// pass. Default false: a new backend is up until checks or a failed
	// connection prove it down, as in haproxy, so that an app serves as
	// soon as its LB starts; a backend that is not listening yet costs no
	// failed request, since a refused connection is retried elsewhere.
	StartDown bool

	// Retries is how many more times a request that never reached a
	// backend is sent: to another backend after a failed connect, or over
	// a new connection to the same one when a kept-alive connection turned
	// out closed. Default 3 (haproxy's "retries 3" with "option
	// redispatch"); negative: no retry.
	Retries int

	// CookieName is the affinity cookie. Default "GEAR".
	CookieName string
	// NoAffinity turns cookie affinity off. Default false: affinity on.
	NoAffinity bool
	// Secret keys the HMAC that makes cookie values (see CookieValue).
	// Every LB of an app must share it, so that any of them honours a
	// cookie another one set. Default empty: values are still stable, but
	// anyone can compute the one of a known id.
	Secret []byte

	// Host, if set, replaces the Host header of proxied requests (a router
	// sets the app's hostname). Default "": the Host header is passed
	// unchanged.
	Host string
	// TrustedProxies lists the peers (such as routers and node front
	// listeners) whose X-Forwarded-Proto and X-Forwarded-Host are passed
	// on. Default none: both are set from this hop. X-Forwarded-For is
	// always appended to. Pool.SetTrustedProxies replaces the list at run
	// time.
	TrustedProxies []netip.Prefix
	// TrustProof, if set, is what a peer of TrustedProxies must also send
	// in ProofField for its X-Forwarded-* to be passed on (see Proof); a
	// request that lacks it has its X-Forwarded-For replaced rather than
	// appended to, as well. An LB gear sets it, because its trusted
	// addresses are shared with code it must not trust (see
	// trusted.go). Default "": the address alone is trusted.
	TrustProof string
	// SendProof, if set, is sent in ProofField with every proxied request:
	// a router sends the proof of the app whose LB gears it proxies to.
	// Whatever ProofField a client sent is never passed on. Default "".
	SendProof string

	// ConnectTimeout bounds a connection to a backend. Default 10 s
	// (haproxy's "timeout connect"). A timed-out connect counts as a
	// refused one: the backend is marked down and the request retried.
	ConnectTimeout time.Duration
	// ServerTimeout is how long a backend has to send the response headers
	// once the request is written. Default 1 min (haproxy's "timeout
	// server"). Unlike haproxy, a response that has started is not cut
	// when the backend pauses, so long polls and streams work.
	ServerTimeout time.Duration
	// ClientTimeout is how long a client may take to send a request's
	// headers, how long an idle keep-alive client connection is kept, and
	// how long a client may pass no byte of a request body, or take no
	// byte of an answer it is sent. Default 1 min (haproxy's "timeout
	// client"). It is a property of the server that serves the Pool:
	// FastServer and Server apply it; a caller with its own http.Server
	// applies it with GuardServer(srv, ClientLimits(cfg)).
	ClientTimeout time.Duration
	// TunnelTimeout is how long an upgraded connection (a WebSocket) may
	// pass no byte, either way, before both its sides are closed; any
	// byte moves it on, and a write that stays blocked for that long ends
	// the tunnel too. Default 1 min, what the cartridge's client and server
	// timeouts gave a tunnel (haproxy's "timeout tunnel" unset): WebSocket
	// apps that ping (most do, every 20 to 30 s) stay connected, and a
	// silent tunnel does not hold its connections and its MaxConns place
	// for ever. On Pool.ServeHTTP, whose tunnel ReverseProxy runs, the
	// pool keeps the timeout on the backend's side, and the server keeps
	// it on the client's: FastServer and Server do (see Limits), a bare
	// http.Server does not, and a client that stops reading while the
	// backend writes then holds the tunnel.
	TunnelTimeout time.Duration
	// MaxIdleConns is how many idle keep-alive connections are kept per
	// backend. Default 64.
	MaxIdleConns int
	// MaxClientConns caps the client connections a FastServer, or the
	// http.Server that Server returns, holds open at once (haproxy's
	// global "maxconn"), kept-alive and upgraded ones included. Default
	// 10000. A connection over the cap gets a 503 and is closed at once,
	// without its request being read: a flood of connections, or of idle
	// ones, cannot take the process's file descriptors and memory from the
	// connections already served. Unlike MaxConns it counts connections,
	// not requests; a caller that serves the Pool with its own
	// http.Server caps that server's connections with GuardServer.
	MaxClientConns int

	// MaxConns caps the requests proxied at once (haproxy's "maxconn").
	// Default 0: no cap. Over the cap, a request waits in a queue for up
	// to QueueTimeout and then gets a 503. An upgraded connection
	// (WebSocket) holds its place for as long as it is open.
	MaxConns int
	// QueueTimeout is how long a request waits for a place under MaxConns.
	// Default 10 s (haproxy uses "timeout connect" when "timeout queue" is
	// not set).
	QueueTimeout time.Duration

	// RotationTimeout is how long after SetRotation(true) the local
	// backend is rotated out even if no remote backend is up yet. Default
	// 30 s, as the haproxy cartridge waited.
	RotationTimeout time.Duration

	// StatusPath is where ServeHTTP answers with the status page instead of
	// proxying. Default "/lb-status".
	StatusPath string
	// NoStatus turns the status page off (StatusHandler still works).
	// Default false.
	NoStatus bool

	// Metrics, if set, counts the answers a FastServer gives the pool's
	// requests and their durations (NewMetrics). Default none.
	Metrics *Metrics

	// Logger receives the pool's logs, with component=lb. Default:
	// disabled.
	Logger zerolog.Logger
	// Clock tells the time and makes timers. Default: the system clock.
	Clock Clock
}

// DefaultConfig returns the production defaults, spelled out.
func DefaultConfig() Config {
	return Config{
		Balance:         LeastConn,
		HealthPath:      "/",
		HealthExpect:    []string{"2xx", "3xx", "401"},
		HealthInterval:  2 * time.Second,
		HealthTimeout:   2 * time.Second,
		Rise:            3,
		Fall:            2,
		Retries:         3,
		CookieName:      "GEAR",
		ConnectTimeout:  10 * time.Second,
		ServerTimeout:   time.Minute,
		ClientTimeout:   time.Minute,
		TunnelTimeout:   time.Minute,
		MaxIdleConns:    64,
		MaxClientConns:  10000,
		QueueTimeout:    10 * time.Second,
		RotationTimeout: 30 * time.Second,
		StatusPath:      "/lb-status",
		Logger:          zerolog.Nop(),
		Clock:           SystemClock(),
	}
}

// FastConfig returns DefaultConfig with timings for tests and development:
// checks every 100 ms with a 1 s timeout, connect timeout 1 s, queue
// timeout 1 s, rotation timeout 1 s. Rise and Fall keep their defaults.
func FastConfig() Config {
	c := DefaultConfig()
	c.HealthInterval = 100 * time.Millisecond
	c.HealthTimeout = time.Second
	c.ConnectTimeout = time.Second
	c.QueueTimeout = time.Second
	c.RotationTimeout = time.Second
	return c
}

// withDefaults fills the zero fields of c with their defaults.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Balance == "" {
		c.Balance = d.Balance
	}
	if c.HealthPath == "" {
		c.HealthPath = d.HealthPath
	}
	if len(c.HealthExpect) == 0 {
		c.HealthExpect = d.HealthExpect
	}
	if c.HealthInterval == 0 {
		c.HealthInterval = d.HealthInterval
	}
	if c.HealthTimeout == 0 {
		c.HealthTimeout = d.HealthTimeout
	}
	if c.Rise == 0 {
		c.Rise = d.Rise
	}
	if c.Fall == 0 {
		c.Fall = d.Fall
	}
	if c.Retries == 0 {
		c.Retries = d.Retries
	} else if c.Retries < 0 {
		c.Retries = 0
	}
	if c.CookieName == "" {
		c.CookieName = d.CookieName
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = d.ConnectTimeout
	}
	if c.ServerTimeout == 0 {
		c.ServerTimeout = d.ServerTimeout
	}
	if c.ClientTimeout == 0 {
		c.ClientTimeout = d.ClientTimeout
	}
	if c.TunnelTimeout == 0 {
		c.TunnelTimeout = d.TunnelTimeout
	}
	if c.MaxIdleConns == 0 {
		c.MaxIdleConns = d.MaxIdleConns
	}
	if c.MaxClientConns == 0 {
		c.MaxClientConns = d.MaxClientConns
	}
	if c.QueueTimeout == 0 {
		c.QueueTimeout = d.QueueTimeout
	}
	if c.RotationTimeout == 0 {
		c.RotationTimeout = d.RotationTimeout
	}
	if c.StatusPath == "" {
		c.StatusPath = d.StatusPath
	}
	if c.Clock == nil {
		c.Clock = d.Clock
	}
	return c
}

// validate checks c, whose defaults are filled, and returns the matcher of
// its HealthExpect.
func (c *Config) validate() (statusMatcher, error) {
	var errs []error
	switch c.Balance {
	case LeastConn, RoundRobin:
	default:
		errs = append(errs, fmt.Errorf("Balance %q: want %q or %q", c.Balance, LeastConn, RoundRobin))
	}
	if !strings.HasPrefix(c.HealthPath, "/") {
		errs = append(errs, fmt.Errorf("HealthPath %q does not start with /", c.HealthPath))
	}
	m, err := parseExpect(c.HealthExpect)
	if err != nil {
		errs = append(errs, fmt.Errorf("HealthExpect: %w", err))
	}
	for name, d := range map[string]time.Duration{
		"HealthInterval": c.HealthInterval, "HealthTimeout": c.HealthTimeout,
		"ConnectTimeout": c.ConnectTimeout, "ServerTimeout": c.ServerTimeout,
		"ClientTimeout": c.ClientTimeout, "TunnelTimeout": c.TunnelTimeout,
		"QueueTimeout":    c.QueueTimeout,
		"RotationTimeout": c.RotationTimeout,
	} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("%s %s is negative", name, d))
		}
	}
	if c.Rise < 0 {
		errs = append(errs, fmt.Errorf("Rise %d is negative", c.Rise))
	}
	if c.Fall < 0 {
		errs = append(errs, fmt.Errorf("Fall %d is negative", c.Fall))
	}
	if c.MaxConns < 0 {
		errs = append(errs, fmt.Errorf("MaxConns %d is negative", c.MaxConns))
	}
	if c.MaxIdleConns < 0 {
		errs = append(errs, fmt.Errorf("MaxIdleConns %d is negative", c.MaxIdleConns))
	}
	if c.MaxClientConns < 0 {
		errs = append(errs, fmt.Errorf("MaxClientConns %d is negative", c.MaxClientConns))
	}
	if (&http.Cookie{Name: c.CookieName, Value: "x"}).Valid() != nil {
		errs = append(errs, fmt.Errorf("CookieName %q is not a valid cookie name", c.CookieName))
	}
	if !strings.HasPrefix(c.StatusPath, "/") {
		errs = append(errs, fmt.Errorf("StatusPath %q does not start with /", c.StatusPath))
	}
	if err := checkBackends(c.Backends); err != nil {
		errs = append(errs, fmt.Errorf("Backends: %w", err))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("lb config: %w", errors.Join(errs...))
	}
	return m, nil
}

// statusMatcher reports whether a health check's status passes.
type statusMatcher func(code int) bool

// parseExpect turns HealthExpect entries ("200", "2xx") into a matcher.
func parseExpect(list []string) (statusMatcher, error) {
	var codes [6][100]bool // codes[class][rest], classes 1 to 5
	for _, s := range list {
		s = strings.ToLower(strings.TrimSpace(s))
		if len(s) != 3 || s[0] < '1' || s[0] > '5' {
			return nil, fmt.Errorf("%q is not a status code or class like 200 or 2xx", s)
		}
		class := int(s[0] - '0')
		if s[1:] == "xx" {
			for i := range codes[class] {
				codes[class][i] = true
			}
			continue
		}
		rest, err := strconv.Atoi(s[1:])
		if err != nil || rest < 0 || s[1] == '+' || s[1] == '-' {
			return nil, fmt.Errorf("%q is not a status code or class like 200 or 2xx", s)
		}
		codes[class][rest] = true
	}
	return func(code int) bool {
		if code < 100 || code > 599 {
			return false
		}
		return codes[code/100][code%100]
	}, nil
}
