package lb

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/http/httputil"
	"sync"
)

// reqState is the pool's state for one proxied request. It is the request's
// context, so that the ReverseProxy hooks and the transport, which see only
// the outgoing request, find it with one Value lookup.
type reqState struct {
	context.Context
	p *Pool
	attempt
	// body wraps the inbound body until a retry moves it on; nil when the
	// request has no body.
	body *retryBody

	// What the transport did with the current attempt, from GotConn. Set
	// and read by the goroutine that calls RoundTrip.
	conn    *backendConn // connection the attempt got, nil if none
	written int64        // conn's bytes written when the attempt got it
	reused  bool         // conn had served requests before
	sent    bool         // an earlier connection of the attempt was written to
	trace   httptrace.ClientTrace
}

type stateKey struct{}

func (s *reqState) Value(key any) any {
	if key == (stateKey{}) {
		return s
	}
	return s.Context.Value(key)
}

func stateOf(ctx context.Context) *reqState {
	s, _ := ctx.Value(stateKey{}).(*reqState)
	return s
}

// gotConn notes the connection an attempt got. net/http may get a second
// one within one RoundTrip when the first, a reused one, failed; if the
// first was written to, the request may have reached the backend.
func (s *reqState) gotConn(info httptrace.GotConnInfo) {
	if s.conn != nil && s.conn.written.Load() != s.written {
		s.sent = true
	}
	s.conn, _ = info.Conn.(*backendConn)
	s.reused = info.Reused
	if s.conn != nil {
		s.written = s.conn.written.Load()
	}
}

// ServeHTTP proxies r to a backend, or serves the status page at
// Config.StatusPath.
func (p *Pool) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !p.cfg.NoStatus && r.URL.Path == p.cfg.StatusPath {
		p.serveStatus(w, r)
		return
	}
	if !p.admit(r.Context()) {
		servePage(w, http.StatusServiceUnavailable)
		return
	}
	defer p.dismiss()
	st := &reqState{Context: r.Context(), p: p}
	var cookie []byte
	if p.affinity {
		if lines := r.Header["Cookie"]; len(lines) > 0 {
			cookie = []byte(cookieValue(lines, p.cfg.CookieName))
		}
	}
	if !p.choose(&st.attempt, cookie) {
		servePage(w, http.StatusServiceUnavailable)
		return
	}
	defer p.finish(&st.attempt)
	st.trace.GotConn = st.gotConn
	r = r.WithContext(httptrace.WithClientTrace(st, &st.trace))
	if r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0 {
		st.body = &retryBody{rc: r.Body}
		r.Body = st.body
	}
	p.proxy.ServeHTTP(w, r)
}

// rewrite is the ReverseProxy's Rewrite hook: it addresses the request to
// the chosen backend, sets X-Forwarded-* and hides the affinity cookie.
// The Host header passes unchanged unless Config.Host is set.
func (p *Pool) rewrite(pr *httputil.ProxyRequest) {
	st := stateOf(pr.In.Context())
	pr.Out.URL.Scheme = "http"
	pr.Out.URL.Host = st.backend.Addr
	// Append to the client's X-Forwarded-For, as haproxy's forwardfor and
	// nginx do; the app decides how much of it to trust. A pool that
	// requires a proof of its trusted proxies replaces it for the
	// requests without one.
	proof := pr.In.Header[ProofField]
	trusted := p.trustedPeer(pr.In.RemoteAddr, []byte(firstOf(proof)), len(proof) > 0)
	delete(pr.Out.Header, ProofField)
	if prior := pr.In.Header["X-Forwarded-For"]; len(prior) > 0 && (trusted || p.trustProof == nil) {
		pr.Out.Header["X-Forwarded-For"] = prior
	}
	pr.SetXForwarded()
	if p.cfg.SendProof != "" {
		pr.Out.Header[ProofField] = []string{p.cfg.SendProof}
	}
	if trusted {
		for _, k := range []string{"X-Forwarded-Proto", "X-Forwarded-Host"} {
			if v := pr.In.Header.Get(k); v != "" {
				pr.Out.Header.Set(k, v)
			}
		}
	}
	if p.cfg.Host != "" {
		pr.Out.Host = p.cfg.Host
	}
	if p.affinity {
		stripCookie(pr.Out.Header, p.cfg.CookieName)
	}
}

// modifyResponse refuses a 101 that the client did not ask for, gives an
// accepted one the tunnel's idle timeout, sets the affinity cookie when
// the request did not come with a valid one for the backend that answered
// (haproxy's "insert"), and then keeps shared caches from storing the
// response ("nocache"). It runs for 101 Switching Protocols too, so
// WebSockets get the cookie.
func (p *Pool) modifyResponse(res *http.Response) error {
	st := stateOf(res.Request.Context())
	if res.StatusCode == http.StatusSwitchingProtocols {
		if err := p.checkSwitch(st, res); err != nil {
			return err
		}
	}
	if !p.affinity || st == nil || st.backend == st.sticky {
		return nil
	}
	res.Header.Add("Set-Cookie", st.backend.setCookie)
	res.Header.Add("Cache-Control", cacheControlSetCookie)
	return nil
}

// checkSwitch applies the rule of upgrade.go to a 101. The outgoing
// request carries Connection: Upgrade and Upgrade only if the client
// asked to upgrade (ReverseProxy sets them again after dropping
// hop-by-hop fields). A refused 101's backend connection is closed here:
// ReverseProxy does not close it when it refuses a switch itself, and
// http.Transport keeps a 101 without Upgrade for another request.
func (p *Pool) checkSwitch(st *reqState, res *http.Response) error {
	asked := res.Request.Header.Get("Upgrade")
	if !hasToken(res.Request.Header["Connection"], "upgrade") || !hasToken(res.Header["Connection"], "upgrade") ||
		!sameProtocols(asked, res.Header.Get("Upgrade")) {
		if st != nil && st.conn != nil {
			st.conn.Close()
		}
		return errUpgradeRefused
	}
	if st != nil && st.conn != nil {
		st.conn.startTunnel(p.cfg.TunnelTimeout)
	}
	return nil
}

// hasToken reports whether the comma-separated lists of values name
// token, without regard to case.
func hasToken(values []string, token string) bool {
	for _, v := range values {
		for rest := v; ; {
			t, r, ok := nextToken(rest)
			if !ok {
				break
			}
			if equalFold(t, token) {
				return true
			}
			rest = r
		}
	}
	return false
}

// proxyError is the ReverseProxy's ErrorHandler: 503 when no backend could
// be reached, 504 when the backend did not answer in time, 408 when the
// client's body stopped coming (Limits.BodyTimeout), 502 otherwise.
func (p *Pool) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	st := stateOf(r.Context())
	code := http.StatusBadGateway
	switch {
	case errors.Is(err, ErrBodyTimeout):
		// The client's fault, not the backend's: it counts against
		// neither.
		servePage(w, http.StatusRequestTimeout)
		return
	case errors.Is(err, ErrNoBackend):
		// Already counted against each backend tried.
		p.noBackend.Add(1)
		p.logProxyError(st.backend, http.StatusServiceUnavailable, err)
		servePage(w, http.StatusServiceUnavailable)
		return
	case r.Context().Err() != nil:
		// The client went away (or the server is shutting down): nobody
		// reads the answer, and the backend did nothing wrong.
		w.WriteHeader(code)
		return
	case isTimeout(err):
		code = http.StatusGatewayTimeout
	}
	if st != nil {
		st.backend.errors.Add(1)
		p.logProxyError(st.backend, code, err)
	}
	servePage(w, code)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// Error pages, short and plain like haproxy's.
var pages = map[int]string{
	http.StatusRequestTimeout:     "<html><body><h1>408 Request Timeout</h1>\nYour browser didn't send a complete request in time.\n</body></html>\n",
	http.StatusBadGateway:         "<html><body><h1>502 Bad Gateway</h1>\nThe server returned an invalid or incomplete response.\n</body></html>\n",
	http.StatusServiceUnavailable: "<html><body><h1>503 Service Unavailable</h1>\nNo server is available to handle this request.\n</body></html>\n",
	http.StatusGatewayTimeout:     "<html><body><h1>504 Gateway Timeout</h1>\nThe server didn't respond in time.\n</body></html>\n",
}

func servePage(w http.ResponseWriter, code int) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	io.WriteString(w, pages[code])
}

// bufferPool recycles the buffers that copy response bodies.
type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte {
	if v, ok := b.p.Get().(*[]byte); ok {
		return *v
	}
	return make([]byte, 32<<10)
}

func (b *bufferPool) Put(buf []byte) { b.p.Put(&buf) }

// firstOf returns the first of vs, or "".
func firstOf(vs []string) string {
	if len(vs) == 0 {
		return ""
	}
	return vs[0]
}
