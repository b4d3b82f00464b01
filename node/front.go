package node

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"html"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"gearbox/lb"
	"gearbox/store/state"
	"gearbox/store/tlscert"
)

// front is the node's front listener: it proxies each request to the gear
// or app its Host names (see buildRoutes), and answers a plain 404 page
// for hosts it does not serve.
type front struct {
	s         *Supervisor
	ln        net.Listener
	tlsLn     net.Listener // the HTTPS listener, if any
	certs     tlscert.Set
	wildcard  *tls.Certificate
	loader    tlscert.Loader // under loadMu
	loadMu    sync.Mutex
	srv       *http.Server
	guard     *lb.ServerGuard // the listener's time-outs and caps
	proxy     *httputil.ReverseProxy
	transport *http.Transport
	// inflight counts the requests in flight to each gear web port
	// ("ip:port" to *atomic.Int64) that the front proxies to directly,
	// so that a handover waits for them before it stops a process.
	inflight sync.Map
}

// inFlight returns the number of requests in flight to addr.
func (f *front) inFlight(addr string) int64 {
	if c, ok := f.inflight.Load(addr); ok {
		return c.(*atomic.Int64).Load()
	}
	return 0
}

type targetKey struct{}

// frontTarget is where the front proxies a request: addr ("ip:port"),
// and, to an LB gear, the proof that it is the front (lb.Proof).
type frontTarget struct {
	addr, proof string
}

func newFront(s *Supervisor) (*front, error) {
	ln, err := net.Listen("tcp", s.cfg.HTTPAddr)
	if err != nil {
		return nil, fmt.Errorf("front listener: %w", err)
	}
	f := &front{s: s, ln: ln}
	if f.wildcard, err = tlscert.LoadFiles(s.cfg.TLSCert, s.cfg.TLSKey); err != nil {
		ln.Close()
		return nil, fmt.Errorf("front listener: %w", err)
	}
	if s.cfg.HTTPSAddr != "" {
		tln, err := net.Listen("tcp", s.cfg.HTTPSAddr)
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("front HTTPS listener: %w", err)
		}
		f.tlsLn = tls.NewListener(tln, f.certs.Config())
		f.loader.Secret = s.cfg.ClusterSecret
	}
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	// Every target is on Addr; connecting from Addr too makes the front
	// come from the address LB gears trust (with its proof, see
	// trust.go) even where the kernel would pick another source, as it
	// does for a secondary loopback address.
	if ip := net.ParseIP(s.cfg.Addr); ip != nil && !ip.IsUnspecified() {
		dialer.LocalAddr = &net.TCPAddr{IP: ip}
	}
	// A gear has the LB config's ServerTimeout (default 1 min) to send its
	// answer's headers, as behind its load balancer; once they came, a
	// slow answer (a stream, a long poll) is not cut.
	f.transport = &http.Transport{
		DialContext:           dialer.DialContext,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
		ResponseHeaderTimeout: cmp.Or(s.cfg.LB.ServerTimeout, lb.DefaultConfig().ServerTimeout),
	}
	f.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			t := pr.In.Context().Value(targetKey{}).(frontTarget)
			pr.SetURL(&url.URL{Scheme: "http", Host: t.addr})
			// The app sees the hostname it was asked for.
			pr.Out.Host = pr.In.Host
			pr.SetXForwarded()
			// A load balancer trusts the X-Forwarded-* of the front only
			// with the front's proof (lb.ProofField), which no one else
			// is given: not the client, not a gear.
			delete(pr.Out.Header, lb.ProofField)
			if t.proof != "" {
				pr.Out.Header[lb.ProofField] = []string{t.proof}
			}
		},
		Transport:    f.transport,
		ErrorLog:     log.New(logWriter{s.log}, "", 0),
		ErrorHandler: f.unavailable,
	}
	f.srv = &http.Server{Handler: f, ErrorLog: log.New(logWriter{s.log}, "", 0)}
	f.guard = lb.GuardServer(f.srv, frontLimits(s.cfg.LB, s.log))
	return f, nil
}

// frontLimits are the front listener's time-outs and caps: those of the
// server of an LB gear's pool (lb.ClientLimits of the node's LB config:
// ClientTimeout, default 1 min, for a body that passes no byte and a
// write the client does not take; TunnelTimeout, default 1 min, for a
// silent WebSocket; MaxClientConns, default 10000, for connections), as
// the front is one more hop on the same path, except for the headers,
// which must come within 10 s, and idle connections, kept 2 min.
//
// There is no cap per client address: the front's clients are the apps'
// users, many of them behind one address (a NAT, a proxy), and the
// cluster's routers, each of which brings all of its users' connections
// from one address.
func frontLimits(cfg lb.Config, lg zerolog.Logger) lb.Limits {
	l := lb.ClientLimits(cfg)
	l.HeaderTimeout, l.IdleTimeout = 10*time.Second, 2*time.Minute
	l.Logger = lg.With().Str("listener", "front").Logger()
	return l
}

func (f *front) serve() {
	if f.tlsLn != nil {
		f.loadCerts()
		f.s.wg.Go(func() {
			if err := f.srv.Serve(f.tlsLn); err != nil && err != http.ErrServerClosed {
				f.s.log.Error().Err(err).Msg("front HTTPS listener failed")
			}
		})
	}
	if err := f.srv.Serve(f.ln); err != nil && err != http.ErrServerClosed {
		f.s.log.Error().Err(err).Msg("front listener failed")
	}
}

// loadCerts makes the aliases' certificates in the store and the
// wildcard certificate those the HTTPS listener serves.
func (f *front) loadCerts() {
	if f.tlsLn == nil {
		return
	}
	f.loadMu.Lock()
	defer f.loadMu.Unlock()
	aliases, err := f.loader.Load(f.s.st)
	if err != nil {
		f.s.log.Warn().Err(err).Msg("some alias certificates cannot be served")
	}
	f.certs.Update(aliases, f.wildcard)
}

// close stops accepting, lets requests in flight finish for up to grace,
// and closes the rest.
func (f *front) close(grace time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	err := f.srv.Shutdown(ctx)
	if err != nil {
		err = f.srv.Close()
	}
	f.ln.Close()
	if f.tlsLn != nil {
		f.tlsLn.Close()
	}
	f.transport.CloseIdleConnections()
	if err != nil {
		return fmt.Errorf("close front listener: %w", err)
	}
	return nil
}

func (f *front) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.TLS == nil && r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, state.ACMEChallengePath) {
		if answer, ok := tlscert.Challenge(f.s.st, r.Host, strings.TrimPrefix(r.URL.Path, state.ACMEChallengePath)); ok {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			io.WriteString(w, answer)
			return
		}
	}
	rt := f.s.routes.Load()
	target, ok := rt.route(r.Host)
	if pol := rt.httpsOf(r.Host); ok && (pol.redirect || pol.hsts != "") {
		if r.TLS == nil && pol.redirect {
			u := "https://" + canonicalHost(r.Host) + r.URL.RequestURI()
			http.Redirect(w, r, u, http.StatusPermanentRedirect)
			return
		}
		if r.TLS != nil && pol.hsts != "" {
			w.Header().Set("Strict-Transport-Security", pol.hsts)
		}
	}
	gear, handing := rt.gearOf(r.Host), false
	if sides := *f.s.sides.Load(); ok && len(sides) > 0 {
		var side sideProc
		if side, handing = sides[gear]; handing {
			target = net.JoinHostPort(f.s.cfg.Addr, strconv.Itoa(side.port))
		}
	}
	if !ok {
		page(w, http.StatusNotFound, "Not found", fmt.Sprintf("No application is served at %s.", canonicalHost(r.Host)))
		return
	}
	if gear != "" && !handing && f.s.iso.on() {
		// With gears isolated, a gear's port is routed to only once its
		// own process was found listening there: whatever else answers
		// there (another gear squatting it) is not the gear (see
		// portowner.go).
		if _, up := f.s.answering.Load(gear); !up {
			f.unavailable(w, r, errors.New("gear not found listening on its port"))
			return
		}
	}
	if rt.gearOf(r.Host) != "" {
		c, ok := f.inflight.Load(target)
		if !ok {
			c, _ = f.inflight.LoadOrStore(target, new(atomic.Int64))
		}
		n := c.(*atomic.Int64)
		n.Add(1)
		defer n.Add(-1)
	}
	t := frontTarget{addr: target}
	if app := rt.lbAppOf(r.Host); app != "" {
		t.proof = lb.Proof([]byte(f.s.cfg.ClusterSecret), app)
	}
	f.proxy.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), targetKey{}, t)))
}

// unavailable answers a request whose gear did not answer, or 408 one
// whose body stopped coming (frontLimits).
func (f *front) unavailable(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, lb.ErrBodyTimeout) {
		page(w, http.StatusRequestTimeout, "Request timeout", "The request's body stopped coming before it was complete.")
		return
	}
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() && r.Context().Err() == nil {
		f.s.log.Debug().Err(err).Str("host", r.Host).Msg("front: gear did not answer in time")
		page(w, http.StatusGatewayTimeout, "Gateway timeout",
			fmt.Sprintf("The application at %s did not answer in time.", canonicalHost(r.Host)))
		return
	}
	f.s.log.Debug().Err(err).Str("host", r.Host).Msg("front: gear did not answer")
	page(w, http.StatusServiceUnavailable, "Service unavailable",
		fmt.Sprintf("The application at %s is not answering on this node; it may be stopped or starting.", canonicalHost(r.Host)))
}

// page writes a plain HTML page.
func page(w http.ResponseWriter, code int, title, text string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	fmt.Fprintf(w, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>%d %s</title></head>\n<body><h1>%s</h1><p>%s</p></body></html>\n",
		code, html.EscapeString(title), html.EscapeString(title), html.EscapeString(text))
}
