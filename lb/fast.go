package lb

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"gearbox/lb/internal/h1"
)

// FastServer serves a Pool on its own HTTP/1.1 connection handling, for
// less CPU per request than net/http's server and transport (see
// docs/benchmarks.md): one goroutine per client connection reads a
// request, writes it to a kept-alive backend connection, reads the
// response and writes it back, with no hand-off between goroutines and
// no read-ahead. Messages are read by a parser of its own (package
// lb/internal/h1) into buffers that each connection reuses, so that a
// kept-alive request costs no allocation; it refuses ambiguous framing
// that net/http would accept (see h1's parse.go). It does what
// Pool.ServeHTTP does (balancing, affinity, retries of requests that
// reached no backend, X-Forwarded-*, the status page, timeouts, drains,
// MaxConns), by the same decisions (admit, choose, resend, finish), and
// passes upgrades (WebSocket) through as a tunnel, under the rule both
// paths apply (see upgrade.go) and Config.TunnelTimeout; it refuses
// CONNECT. It holds at most Config.MaxClientConns client connections
// open, and answers those over the cap with a 503. Use it instead of an
// http.Server when the pool is the only handler of a listener.
//
// A FastServer made by NewFastRouter serves several pools on one listener
// and picks each request's pool by its Host header, as a router does.
type FastServer struct {
	p        *Pool                   // the one pool, or nil with route
	route    func(host string) *Pool // with NewFastRouter
	notFound string                  // with NewFastRouter: the 404 page
	cfg      Config
	// acme answers ACME HTTP-01 challenges (SetACMEAnswers).
	acme func(host, token string) (string, bool)

	mu      sync.Mutex
	lns     []net.Listener
	conns   map[*fastClient]struct{}
	idle    map[string][]*fastBackendConn // by backend address
	closing atomic.Bool
	wg      sync.WaitGroup

	log           zerolog.Logger
	refused       atomic.Uint64 // connections refused over MaxClientConns
	refuseLogNext atomic.Int64  // Unix nanoseconds before which refusals are not logged
}

// NewFastServer returns a server for p.
func NewFastServer(p *Pool) *FastServer {
	return &FastServer{p: p, cfg: p.cfg, log: p.log, conns: make(map[*fastClient]struct{}), idle: make(map[string][]*fastBackendConn)}
}

// NewFastRouter returns a server that sends each request to the pool
// that route returns for its Host header (as the client sent it: any
// case, with a port if it had one); a nil pool answers 404 with
// notFound's page, or a plain one if notFound is empty. cfg's
// ClientTimeout, MaxIdleConns, MaxClientConns and Logger apply to the
// server, zero or negative values taking their defaults; everything else
// (TunnelTimeout included) comes from each request's pool. route is
// called from many goroutines at once and must not block.
func NewFastRouter(cfg Config, route func(host string) *Pool, notFound string) *FastServer {
	if cfg.MaxClientConns < 0 {
		cfg.MaxClientConns = 0
	}
	cfg = cfg.withDefaults()
	if notFound == "" {
		notFound = "<html><body><h1>404 Not Found</h1>\nNo application is configured for this host name.\n</body></html>\n"
	}
	return &FastServer{route: route, notFound: notFound, cfg: cfg, log: cfg.Logger.With().Str("component", "lb").Logger(),
		conns: make(map[*fastClient]struct{}), idle: make(map[string][]*fastBackendConn)}
}

// SetACMEAnswers has s answer plain-HTTP GET requests for
// /.well-known/acme-challenge/TOKEN (RFC 8555, section 8.3) with what
// answer returns for the request's Host and TOKEN, before any pool's
// rules apply; a request it has no answer for goes to the pool as any
// other (an app may answer challenges of its own). Call it before Serve.
func (s *FastServer) SetACMEAnswers(answer func(host, token string) (string, bool)) {
	s.acme = answer
}

// acmePath is the path prefix of ACME HTTP-01 challenges.
const acmePath = "/.well-known/acme-challenge/"

// Client connection states.
const (
	clientIdle int32 = iota
	clientActive
	clientClosed
)

type fastClient struct {
	s        *FastServer
	c        net.Conn
	br       *bufio.Reader
	bw       *bufio.Writer
	remote   string
	clientIP string // remote's address, "" if it has none
	p        *Pool  // the pool of the request being served
	state    atomic.Int32
	start    time.Time // when the current request began to be read
	lastPost bool      // the last request was a POST
	host     string    // the last request's Host, for NewFastRouter's route

	// The request being served and the backend's response: their heads'
	// buffers are the connection's, reused from one request to the next.
	req      h1.Head
	body     h1.BodyReader // the request's body
	eb       extendingBody
	resp     h1.Head
	respBody h1.BodyReader
	num      [24]byte // formats numbers

	// What prepareOutbound decided for the backend's request.
	upgradeTo []byte // the Upgrade value of an upgrade, else nil
	expect100 bool   // Expect: 100-continue, answered here
	setXFH    bool   // X-Forwarded-Host is set, not passed on
	setXFP    bool   // X-Forwarded-Proto is set, not passed on
	dropXFF   bool   // the client's X-Forwarded-For is not passed on
	tls       bool   // the connection is TLS
	status    int    // the status of the answer written last
}

// extendWrite moves the client's deadline on when the answer comes late:
// the client timeout is a time without progress.
func (fc *fastClient) extendWrite() {
	if now := time.Now(); now.Sub(fc.start) > fc.s.cfg.ClientTimeout/2 {
		fc.start = now
		fc.c.SetDeadline(now.Add(fc.s.cfg.ClientTimeout))
	}
}

type fastBackendConn struct {
	c           net.Conn
	deadlineSet time.Time // when the deadline was last set
	br          *bufio.Reader
	bw          *bufio.Writer
	used        time.Time
}

// setDeadline sets the connection's deadline timeout from now, unless it
// was set less than a second ago.
func (bc *fastBackendConn) setDeadline(timeout time.Duration) {
	if now := time.Now(); now.Sub(bc.deadlineSet) > time.Second {
		bc.deadlineSet = now
		bc.c.SetDeadline(now.Add(timeout))
	}
}

// Serve accepts connections on ln until Shutdown or Close, and returns
// http.ErrServerClosed then. It may serve several listeners at once, each
// with a call of its own: a listener made by tls.NewListener serves HTTPS
// (X-Forwarded-Proto https, and the pools' HTTPS policies apply: see
// Pool.SetHTTPS).
func (s *FastServer) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		return http.ErrServerClosed
	}
	s.lns = append(s.lns, ln)
	s.mu.Unlock()
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.closing.Load() {
				return http.ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				delay = min(max(delay*2, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		s.mu.Lock()
		full := len(s.conns) >= s.cfg.MaxClientConns
		s.mu.Unlock()
		if full {
			s.refuse(c)
			continue
		}
		r, w := h1.SocketIO(c)
		_, isTLS := c.(*tls.Conn)
		fc := &fastClient{s: s, c: c, br: bufio.NewReaderSize(r, 4096), bw: bufio.NewWriterSize(w, 4096), remote: c.RemoteAddr().String(), tls: isTLS}
		if ip, _, err := net.SplitHostPort(fc.remote); err == nil {
			fc.clientIP = ip
		}
		fc.req.Fields = make([]h1.Field, 0, 32)
		fc.resp.Fields = make([]h1.Field, 0, 32)
		s.mu.Lock()
		if s.closing.Load() {
			s.mu.Unlock()
			c.Close()
			return http.ErrServerClosed
		}
		s.conns[fc] = struct{}{}
		// Under mu, so that Close, once it has seen the connections, waits
		// for every one.
		s.wg.Go(fc.serve)
		s.mu.Unlock()
	}
}

// refusedAnswer is what a connection over MaxClientConns gets.
var refusedAnswer = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/html; charset=utf-8\r\n" +
	"Cache-Control: no-cache\r\nX-Content-Type-Options: nosniff\r\nContent-Length: " +
	strconv.Itoa(len(pages[http.StatusServiceUnavailable])) + "\r\nConnection: close\r\n\r\n" +
	pages[http.StatusServiceUnavailable]

// refuse answers a connection over MaxClientConns with a 503 and closes
// it, from the accept loop: the answer is written before the request is
// read, into the new socket's empty send buffer, so it does not wait on
// the client. The sending side is ended first, so that the 503 and the
// end reach the client ahead of the reset that closing a socket with a
// request unread sends.
func (s *FastServer) refuse(c net.Conn) {
	c.SetWriteDeadline(time.Now().Add(time.Second))
	io.WriteString(c, refusedAnswer)
	if tc, ok := c.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
	c.Close()
	s.refused.Add(1)
	if now := time.Now().UnixNano(); now >= s.refuseLogNext.Load() {
		s.refuseLogNext.Store(now + int64(10*time.Second))
		s.log.Warn().Int("max_client_conns", s.cfg.MaxClientConns).Uint64("refused", s.refused.Load()).
			Str("fix", "raise MaxClientConns if the host has file descriptors and memory to spare, or add LB gears").
			Msg("client connections over the cap refused")
	}
}

// Shutdown stops accepting, closes idle client connections, lets requests
// in flight finish, and returns once all connections have ended or ctx
// does (then it closes what is left and returns ctx's error).
func (s *FastServer) Shutdown(ctx context.Context) error {
	s.stopAccepting()
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		s.closeIdleClients()
		select {
		case <-done:
			s.closeIdleBackends()
			return nil
		case <-ctx.Done():
			s.Close()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Close closes the listener and every connection at once.
func (s *FastServer) Close() error {
	s.stopAccepting()
	s.mu.Lock()
	for fc := range s.conns {
		fc.state.Store(clientClosed)
		fc.c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	s.closeIdleBackends()
	return nil
}

func (s *FastServer) stopAccepting() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closing.Swap(true) {
		for _, ln := range s.lns {
			ln.Close()
		}
	}
}

func (s *FastServer) closeIdleClients() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for fc := range s.conns {
		if fc.state.CompareAndSwap(clientIdle, clientClosed) {
			fc.c.Close()
		}
	}
}

func (s *FastServer) closeIdleBackends() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for addr, list := range s.idle {
		for _, bc := range list {
			bc.c.Close()
		}
		delete(s.idle, addr)
	}
}

// serve reads and answers requests until the connection ends.
func (fc *fastClient) serve() {
	s := fc.s
	defer func() {
		fc.c.Close()
		s.mu.Lock()
		delete(s.conns, fc)
		s.mu.Unlock()
	}()
	for {
		if s.closing.Load() {
			return
		}
		// One deadline for reading the request and writing its answer;
		// relay moves it on if the backend took long.
		// The deadline is moved only when a second has passed since it
		// was last set: timeouts are a minute by default, and setting a
		// deadline costs a timer update per request.
		if now := time.Now(); now.Sub(fc.start) > time.Second {
			fc.start = now
			fc.c.SetDeadline(now.Add(s.cfg.ClientTimeout))
		}
		if fc.br.Buffered() == 0 {
			yieldForIO()
		}
		if _, err := fc.br.Peek(1); err != nil {
			return
		}
		if !fc.state.CompareAndSwap(clientIdle, clientActive) {
			return // closed by Shutdown
		}
		if fc.lastPost {
			// Some clients end a POST body with a stray CRLF, which
			// net/http's server tolerates too (RFC 9112 section 2.2).
			p, _ := fc.br.Peek(min(4, fc.br.Buffered()))
			n := 0
			for n < len(p) && (p[n] == '\r' || p[n] == '\n') {
				n++
			}
			fc.br.Discard(n)
		}
		if err := fc.req.ReadRequest(fc.br); err != nil {
			// A malformed request is answered and its connection closed;
			// one that ended or timed out is not answered.
			if he, ok := err.(*h1.Error); ok {
				fc.writePage(he.Status, true)
				fc.lingerClose()
			}
			return
		}
		fc.lastPost = string(fc.req.Method) == http.MethodPost
		fc.body.Reset(fc.br, &fc.req)
		keep := fc.handle()
		if !keep || !fc.state.CompareAndSwap(clientActive, clientIdle) {
			return
		}
	}
}

// lingerClose ends the sending side of a connection whose request was
// refused, and reads what the client still sends for a while, so that
// closing it with data unread does not reset it before the client has
// read the error page.
func (fc *fastClient) lingerClose() {
	tc, ok := fc.c.(*net.TCPConn)
	if !ok {
		return
	}
	tc.CloseWrite()
	tc.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	io.CopyN(io.Discard, fc.br, 256<<10)
}

// handle proxies the request just read and reports whether the
// connection may serve another one.
func (fc *fastClient) handle() bool {
	s, p := fc.s, fc.s.p
	req := &fc.req
	keep := !req.Close && !s.closing.Load()
	if s.acme != nil && !fc.tls && bytes.HasPrefix(req.Path, []byte(acmePath)) && string(req.Method) == http.MethodGet {
		if answer, ok := s.acme(string(req.Host), string(req.Path[len(acmePath):])); ok {
			return fc.writeText(http.StatusOK, answer, !keep) && keep && fc.drainBody()
		}
	}
	if s.route != nil {
		if string(req.Host) != fc.host {
			fc.host = string(req.Host)
		}
		if p = s.route(fc.host); p == nil {
			return fc.writeNotFound(!keep) && keep && fc.drainBody()
		}
	}
	fc.p = p
	if m := p.cfg.Metrics; m != nil {
		start := time.Now()
		fc.status = 0
		defer func() { m.observe(fc.status, time.Since(start)) }()
	}
	if !fc.tls && p.https.Load().redirect {
		return fc.writeRedirect(!keep) && keep && fc.drainBody()
	}
	if !p.cfg.NoStatus && req.PathIs(p.cfg.StatusPath) {
		return fc.serveStatus(keep) && keep && fc.drainBody()
	}
	if !p.admit(context.Background()) {
		return fc.writePage(http.StatusServiceUnavailable, !keep) && keep && fc.drainBody()
	}
	defer p.dismiss()
	var a attempt
	var cookie []byte
	if p.affinity {
		cookie = req.Cookie(p.cfg.CookieName)
	}
	if !p.choose(&a, cookie) {
		return fc.writePage(http.StatusServiceUnavailable, !keep) && keep && fc.drainBody()
	}
	defer p.finish(&a)

	upgrade := req.Upgrade
	fc.prepareOutbound(upgrade)
	if fc.expect100 && req.ContentLength != 0 {
		fc.bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
		fc.bw.Flush()
	}
	hasBody := req.Body != h1.BodyNone
	var eb *extendingBody
	if hasBody {
		fc.eb = extendingBody{r: &fc.body, fc: fc}
		eb = &fc.eb
	}
	isHead := string(req.Method) == http.MethodHead
	safe := !hasBody && replayable(req.Method)
	staleRetried := false
	var bc *fastBackendConn
	for {
		var reused bool
		var err error
		// A request that may go twice goes again if its kept-alive
		// connection turns out closed; others check it first.
		bc, reused, err = s.backendConn(p, a.backend.Addr, upgrade || staleRetried, !safe)
		if err != nil {
			// Nothing was sent: another backend may take it.
			if p.resend(&a, failUnreached, true, err) {
				continue
			}
			p.logProxyError(a.backend, http.StatusServiceUnavailable, err)
			p.noBackend.Add(1)
			return fc.writePage(http.StatusServiceUnavailable, !keep) && keep && fc.drainBody()
		}
		bc.setDeadline(p.cfg.ServerTimeout)
		if eb != nil {
			eb.bc, eb.last = bc, time.Now()
		}
		err = fc.writeRequest(bc)
		if ce, ok := err.(clientBodyError); ok {
			// The client's body was malformed, or did not come: the
			// backend did nothing wrong, but has half a request.
			bc.c.Close()
			switch pe, ok := ce.error.(*h1.Error); {
			case ok:
				fc.writePage(pe.Status, true)
				fc.lingerClose()
			case isTimeout(ce.error):
				fc.writePage(http.StatusRequestTimeout, true)
			}
			return false
		}
		if err == nil {
			if bc.br.Buffered() == 0 {
				yieldForIO()
			}
			err = fc.resp.ReadResponse(bc.br, isHead)
		}
		if err == nil {
			break
		}
		bc.c.Close()
		// A kept-alive connection the backend had closed: a request
		// without a body that may be sent twice goes again, once, on a
		// new connection to the same backend, as http.Transport does for
		// Pool.ServeHTTP. It is no failure of the backend.
		if reused && !staleRetried && safe && bc.br.Buffered() == 0 && !isTimeout(err) {
			// The other idle connections to it are likely closed too (a
			// restart): the retry takes a new one, and they go.
			staleRetried = true
			s.dropIdle(a.backend.Addr)
			continue
		}
		// The backend's connection broke before it answered: a backend
		// going down (a crash, a node killed) with the request in
		// flight. The backend is left to the health checks and to the
		// next connection refused.
		f := failOther
		if connBroken(err) {
			f = failBroken
		}
		if p.resend(&a, f, safe && !upgrade, err) {
			continue
		}
		code := http.StatusBadGateway
		if isTimeout(err) {
			code = http.StatusGatewayTimeout
		}
		p.logProxyError(a.backend, code, err)
		fc.writePage(code, true)
		return false
	}
	return fc.relay(bc, a.backend, a.backend == a.sticky, keep, isHead)
}

// connBroken reports whether err, from writing a request to a backend or
// reading its response head, means the connection closed or was reset
// under it, rather than a timeout or a malformed answer.
func connBroken(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNABORTED)
}

// relay writes the backend's response back to the client and gives the
// backend connection back if it may serve again.
func (fc *fastClient) relay(bc *fastBackendConn, b *backend, stuck, keep, isHead bool) bool {
	s, p, resp, bw := fc.s, fc.p, &fc.resp, fc.bw
	// Informational answers go to the client as they come.
	for resp.Status < 200 && resp.Status != http.StatusSwitchingProtocols {
		fc.writeStatusLine(resp)
		resp.WriteFields(bw)
		bw.WriteString("\r\n")
		bw.Flush()
		if err := resp.ReadResponse(bc.br, isHead); err != nil {
			bc.c.Close()
			b.errors.Add(1)
			p.logProxyError(b, http.StatusBadGateway, err)
			fc.writePage(http.StatusBadGateway, true)
			return false
		}
	}
	setCookie := p.affinity && !stuck
	if resp.Status == http.StatusSwitchingProtocols {
		// Only to what the client asked for: a gear may not turn a front
		// connection into a pipe of its own.
		if to, _ := resp.First(h1.FieldUpgrade); fc.upgradeTo == nil || !resp.Upgrade || !sameProtocols(fc.upgradeTo, to) {
			bc.c.Close()
			b.errors.Add(1)
			p.logProxyError(b, http.StatusBadGateway, errUpgradeRefused)
			fc.writePage(http.StatusBadGateway, true)
			return false
		}
		fc.writeStatusLine(resp)
		resp.WriteFields(bw)
		if setCookie {
			writeSetCookie(bw, b)
		}
		bw.WriteString("\r\n")
		if err := bw.Flush(); err != nil {
			bc.c.Close()
			return false
		}
		tunnel(fc.c, fc.br, bc.c, bc.br, p.cfg.TunnelTimeout)
		return false
	}
	resp.DropHopByHop()
	chunked := false
	switch {
	case resp.Body == h1.BodyNone:
	case resp.ContentLength >= 0:
	case fc.req.Minor >= 1:
		chunked = true
	default:
		keep = false // the body ends with the connection
	}
	fc.extendWrite()
	fc.writeStatusLine(resp)
	resp.WriteFields(bw)
	if setCookie {
		writeSetCookie(bw, b)
	}
	if fc.tls {
		if hsts := p.https.Load().hsts; hsts != "" {
			bw.WriteString("Strict-Transport-Security: ")
			bw.WriteString(hsts)
			bw.WriteString("\r\n")
		}
	}
	if resp.ContentLength >= 0 && (resp.Body != h1.BodyNone || isHead) {
		bw.WriteString("Content-Length: ")
		bw.Write(strconv.AppendInt(fc.num[:0], resp.ContentLength, 10))
		bw.WriteString("\r\n")
	}
	if chunked {
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	}
	switch {
	case !keep:
		bw.WriteString("Connection: close\r\n")
	case fc.req.Minor == 0:
		bw.WriteString("Connection: keep-alive\r\n")
	}
	bw.WriteString("\r\n")
	var copyErr error
	if resp.Body != h1.BodyNone {
		fc.respBody.Reset(bc.br, resp)
		// Bodies of unknown length (streams) are flushed as they come.
		copyErr = fc.copyBody(bc, chunked, resp.ContentLength < 0)
	}
	flushErr := bw.Flush()
	if copyErr == nil && !resp.Close && bc.br.Buffered() == 0 {
		s.putBackendConn(b.Addr, bc)
	} else {
		bc.c.Close()
	}
	if copyErr != nil {
		var re readErr
		if errors.As(copyErr, &re) {
			b.errors.Add(1)
			p.logProxyError(b, http.StatusBadGateway, copyErr)
		}
		return false
	}
	return flushErr == nil && keep && fc.drainBody()
}

// writeStatusLine writes resp's status line as HTTP/1.1.
func (fc *fastClient) writeStatusLine(resp *h1.Head) {
	fc.status = resp.Status
	fc.bw.WriteString("HTTP/1.1 ")
	fc.bw.Write(resp.Reason)
	fc.bw.WriteString("\r\n")
}

// writeSetCookie writes the affinity cookie of b, and keeps shared caches
// from storing it (haproxy's "insert" and "nocache").
func writeSetCookie(bw *bufio.Writer, b *backend) {
	bw.WriteString("Set-Cookie: ")
	bw.WriteString(b.setCookie)
	bw.WriteString("\r\nCache-Control: " + cacheControlSetCookie + "\r\n")
}

// extendingBody is a request body being sent to a backend: a long upload
// moves the client's and the backend's deadlines on as it progresses,
// since both timeouts are times without progress.
type extendingBody struct {
	r    io.Reader
	fc   *fastClient
	bc   *fastBackendConn
	last time.Time
}

func (e *extendingBody) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if now := time.Now(); now.Sub(e.last) > time.Second {
		e.last = now
		e.fc.extendWrite()
		if e.bc != nil {
			e.bc.c.SetDeadline(now.Add(e.fc.p.cfg.ServerTimeout))
		}
	}
	return n, err
}

// writeHeader writes h's fields in map order: unlike http.Header.Write it
// does not sort them, which costs allocations on every message. Values
// come from the proxy itself (the status page).
func writeHeader(bw *bufio.Writer, h http.Header) {
	for k, vs := range h {
		for _, v := range vs {
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
}

// yieldForIO lets the other goroutines run before one reads a socket
// whose data cannot have arrived yet (a request just written to a
// backend): under load, by the time it runs again the answer is often
// there, and the read takes it at once instead of failing with EAGAIN
// and parking, which costs a system call and a wake-up. Idle, it returns
// at once.
func yieldForIO() { runtime.Gosched() }

// clientBodyError is an error reading the client's request body.
type clientBodyError struct{ error }

// readErr marks an error reading from the backend during a body copy.
type readErr struct{ error }

func (e readErr) Unwrap() error { return e.error }

// copyBufs recycles body copy buffers.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// copyBody copies the response body from the backend to the client,
// chunked if asked, refreshing the backend's read deadline (ServerTimeout
// is a time without data) and flushing after each read when stream is
// set. A body of known length that the backend's reader holds already is
// written straight from its buffer.
func (fc *fastClient) copyBody(bc *fastBackendConn, chunked, stream bool) error {
	body := &fc.respBody
	var bp *[]byte
	defer func() {
		if bp != nil {
			copyBufs.Put(bp)
		}
	}()
	timeout := fc.p.cfg.ServerTimeout
	last := time.Now()
	for !body.Done() {
		if p := body.Buffered(); len(p) > 0 {
			if err := fc.writeBodyPart(p, chunked, stream); err != nil {
				return err
			}
			body.Skip(len(p))
			continue
		}
		if bc.br.Buffered() == 0 {
			// The backend's socket is read: the server timeout is a time
			// without data, and the client's deadline moves on with it.
			if now := time.Now(); now.Sub(last) > time.Second {
				last = now
				bc.c.SetReadDeadline(now.Add(timeout))
				fc.extendWrite()
			}
		}
		if bp == nil {
			bp = copyBufs.Get().(*[]byte)
		}
		n, err := body.Read(*bp)
		if n > 0 {
			if werr := fc.writeBodyPart((*bp)[:n], chunked, stream); werr != nil {
				return werr
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return readErr{err}
		}
	}
	if chunked {
		fc.bw.WriteString("0\r\n\r\n")
	}
	return nil
}

// writeBodyPart writes p to the client, as a chunk if chunked, and
// flushes if stream.
func (fc *fastClient) writeBodyPart(p []byte, chunked, stream bool) error {
	bw := fc.bw
	if chunked {
		bw.Write(strconv.AppendUint(fc.num[:0], uint64(len(p)), 16))
		bw.WriteString("\r\n")
	}
	if _, err := bw.Write(p); err != nil {
		return err
	}
	if chunked {
		bw.WriteString("\r\n")
	}
	if stream {
		return bw.Flush()
	}
	return nil
}

// writePage answers with an error page, and reports whether it was
// written.
func (fc *fastClient) writePage(code int, close bool) bool {
	body, ok := pages[code]
	if !ok {
		body = "<html><body><h1>" + strconv.Itoa(code) + " " + http.StatusText(code) + "</h1>\n" + fastPages[code] + "\n</body></html>\n"
	}
	return fc.writeHTML(code, "", body, close)
}

// writeHTML answers with an HTML page of status code, and a Location of
// location if it is not empty.
func (fc *fastClient) writeHTML(code int, location, body string, close bool) bool {
	return fc.writeBody(code, location, "text/html; charset=utf-8", body, close)
}

// writeText answers with a plain-text body of status code.
func (fc *fastClient) writeText(code int, body string, close bool) bool {
	return fc.writeBody(code, "", "text/plain; charset=utf-8", body, close)
}

// writeBody answers with body of status code and content type ctype, and
// a Location of location if it is not empty.
func (fc *fastClient) writeBody(code int, location, ctype, body string, close bool) bool {
	bw := fc.bw
	fc.status = code
	bw.WriteString("HTTP/1.1 " + strconv.Itoa(code) + " " + http.StatusText(code) + "\r\n")
	if location != "" {
		bw.WriteString("Location: " + location + "\r\n")
	}
	bw.WriteString("Content-Type: " + ctype + "\r\nCache-Control: no-cache\r\nX-Content-Type-Options: nosniff\r\n")
	bw.WriteString("Content-Length: " + strconv.Itoa(len(body)) + "\r\n")
	if close {
		bw.WriteString("Connection: close\r\n")
	}
	bw.WriteString("\r\n")
	bw.WriteString(body)
	fc.extendWrite()
	return bw.Flush() == nil
}

// fastPages explain the statuses of malformed requests.
var fastPages = map[int]string{
	http.StatusBadRequest:                  "Your browser sent an invalid request.",
	http.StatusMethodNotAllowed:            "The method is not allowed here.",
	http.StatusRequestHeaderFieldsTooLarge: "The request's header fields are too large.",
	http.StatusNotImplemented:              "The request's transfer encoding is not supported.",
	http.StatusHTTPVersionNotSupported:     "Only HTTP/1.0 and HTTP/1.1 are served here.",
}

// writeRedirect answers a plain HTTP request for a pool served over
// HTTPS only (Pool.SetHTTPS) with a permanent redirect to the same host
// and target over HTTPS (308: the method and body are kept).
func (fc *fastClient) writeRedirect(close bool) bool {
	req := &fc.req
	target := string(req.Target)
	if req.Path == nil {
		target = "/" // an absolute target: its host is the Host
	}
	host, _, err := net.SplitHostPort(string(req.Host))
	if err != nil {
		host = string(req.Host)
	}
	return fc.writeHTML(http.StatusPermanentRedirect, "https://"+host+target,
		"<html><body><h1>308 Permanent Redirect</h1>\nThis site is served over HTTPS.\n</body></html>\n", close)
}

// writeNotFound answers a request for a host the router does not know.
func (fc *fastClient) writeNotFound(close bool) bool {
	return fc.writeHTML(http.StatusNotFound, "", fc.s.notFound, close)
}

// pageRecorder is the http.ResponseWriter the status page writes to.
type pageRecorder struct {
	header http.Header
	code   int
	body   bytes.Buffer
	wrote  bool
}

func (r *pageRecorder) Header() http.Header { return r.header }
func (r *pageRecorder) WriteHeader(code int) {
	if !r.wrote {
		r.code, r.wrote = code, true
	}
}
func (r *pageRecorder) Write(b []byte) (int, error) {
	r.wrote = true
	return r.body.Write(b)
}

// serveStatus answers with the pool's status page.
func (fc *fastClient) serveStatus(keep bool) bool {
	req := &fc.req
	u := req.Abs
	if u == nil {
		var err error
		if u, err = url.ParseRequestURI(string(req.Target)); err != nil {
			fc.writePage(http.StatusBadRequest, true)
			return false
		}
	}
	r := &http.Request{Method: string(req.Method), URL: u, Host: string(req.Host), Header: http.Header{}, RemoteAddr: fc.remote}
	rec := &pageRecorder{header: make(http.Header), code: http.StatusOK}
	fc.p.serveStatus(rec, r)
	bw := fc.bw
	fc.status = rec.code
	bw.WriteString("HTTP/1.1 " + strconv.Itoa(rec.code) + " " + http.StatusText(rec.code) + "\r\n")
	writeHeader(bw, rec.header)
	bw.WriteString("Content-Length: " + strconv.Itoa(rec.body.Len()) + "\r\n")
	if !keep {
		bw.WriteString("Connection: close\r\n")
	}
	bw.WriteString("\r\n")
	if r.Method != http.MethodHead {
		bw.Write(rec.body.Bytes())
	}
	fc.extendWrite()
	return bw.Flush() == nil
}

// drainBody reads what is left of the request's body so that the next
// request on the connection can be read; false if that failed or was too
// much.
func (fc *fastClient) drainBody() bool {
	if fc.body.Done() {
		return true
	}
	var buf [4096]byte
	const limit = 256 << 10
	for n := 0; n <= limit; {
		k, err := fc.body.Read(buf[:min(len(buf), limit+1-n)])
		n += k
		if err == io.EOF {
			return n <= limit
		}
		if err != nil {
			return false
		}
	}
	return false
}

// backendConn returns a kept-alive connection to addr, or a new one
// (reused false). With fresh (an upgrade, a retry), always a new one. With check, a kept-alive
// connection is first checked for a close by the backend (h1.IdleAlive).
func (s *FastServer) backendConn(p *Pool, addr string, fresh, check bool) (*fastBackendConn, bool, error) {
	if !fresh {
		now := time.Now()
		s.mu.Lock()
		list := s.idle[addr]
		for len(list) > 0 {
			bc := list[len(list)-1]
			list = list[:len(list)-1]
			if now.Sub(bc.used) < idleConnTimeout && (!check || h1.IdleAlive(bc.c)) {
				s.idle[addr] = list
				s.mu.Unlock()
				return bc, true, nil
			}
			bc.c.Close()
		}
		s.idle[addr] = list
		s.mu.Unlock()
	}
	c, err := p.dialer.Dial("tcp", addr)
	if err != nil {
		return nil, false, err
	}
	r, w := h1.SocketIO(c)
	bc := &fastBackendConn{c: c, br: bufio.NewReaderSize(r, 4096), bw: bufio.NewWriterSize(w, 4096)}
	return bc, false, nil
}

// dropIdle closes the idle connections to addr.
func (s *FastServer) dropIdle(addr string) {
	s.mu.Lock()
	list := s.idle[addr]
	delete(s.idle, addr)
	s.mu.Unlock()
	for _, bc := range list {
		bc.c.Close()
	}
}

// putBackendConn keeps bc for the next request to addr, up to
// MaxIdleConns.
func (s *FastServer) putBackendConn(addr string, bc *fastBackendConn) {
	bc.used = time.Now()
	// Its deadline stays: the next request sets it anew unless it was set
	// less than a second ago, and idleAlive finds a connection whose
	// deadline passed while idle unusable, which only costs a new one.
	s.mu.Lock()
	if !s.closing.Load() && len(s.idle[addr]) < s.cfg.MaxIdleConns {
		s.idle[addr] = append(s.idle[addr], bc)
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	bc.c.Close()
}

// prepareOutbound decides what the backend's request carries: hop-by-hop
// fields out (an upgrade keeps its Connection and Upgrade), Expect:
// 100-continue answered here, X-Forwarded-*, the affinity cookie hidden,
// Host set if Config.Host is. writeRequest writes it.
func (fc *fastClient) prepareOutbound(upgrade bool) {
	req, p := &fc.req, fc.p
	fc.upgradeTo = nil
	if upgrade {
		fc.upgradeTo, _ = req.First(h1.FieldUpgrade)
	}
	req.DropHopByHop()
	fc.expect100 = false
	if v, ok := req.First(h1.FieldExpect); ok && h1.EqualFold(v, "100-continue") {
		fc.expect100 = true
		for i := range req.Fields {
			if f := &req.Fields[i]; f.Kind == h1.FieldExpect {
				f.Drop = true
			}
		}
	}
	// Append to the client's X-Forwarded-For, as haproxy's forwardfor and
	// nginx do; -Host and -Proto are the client's only from a trusted
	// proxy. A pool that requires a proof of its trusted proxies replaces
	// the X-Forwarded-For of the requests without one.
	trusted := false
	if len(p.cfg.TrustedProxies) > 0 {
		proof, has := req.First(h1.FieldProxyProof)
		trusted = p.trustedPeer(fc.remote, proof, has)
	}
	fc.dropXFF = !trusted && p.trustProof != nil
	v, _ := req.First(h1.FieldXForwardedHost)
	fc.setXFH = !trusted || len(v) == 0
	v, _ = req.First(h1.FieldXForwardedProto)
	fc.setXFP = !trusted || len(v) == 0
}

// writeRequest writes the request being served to bc, as prepareOutbound
// decided: request line, Host, fields, framing and body.
func (fc *fastClient) writeRequest(bc *fastBackendConn) error {
	req, p, bw := &fc.req, fc.p, bc.bw
	bw.Write(req.Method)
	bw.WriteByte(' ')
	bw.Write(req.Target)
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	if p.cfg.Host != "" {
		bw.WriteString(p.cfg.Host)
	} else {
		bw.Write(req.Host)
	}
	bw.WriteString("\r\n")
	setXFF := fc.clientIP != ""
	for i := range req.Fields {
		f := &req.Fields[i]
		if f.Drop {
			continue
		}
		switch f.Kind {
		case h1.FieldHost, h1.FieldContentLength:
			continue
		case h1.FieldXForwardedFor:
			if setXFF || fc.dropXFF {
				continue
			}
		case h1.FieldProxyProof:
			continue
		case h1.FieldXForwardedHost:
			if fc.setXFH {
				continue
			}
		case h1.FieldXForwardedProto:
			if fc.setXFP {
				continue
			}
		case h1.FieldCookie:
			if p.affinity {
				h1.WriteCookieWithout(bw, f.Value, p.cfg.CookieName)
				continue
			}
		}
		h1.WriteField(bw, f.Name, f.Value)
	}
	if fc.upgradeTo != nil {
		bw.WriteString("Connection: Upgrade\r\nUpgrade: ")
		bw.Write(fc.upgradeTo)
		bw.WriteString("\r\n")
	}
	if setXFF {
		bw.WriteString("X-Forwarded-For: ")
		for i := range req.Fields {
			if f := &req.Fields[i]; f.Kind == h1.FieldXForwardedFor && !f.Drop && !fc.dropXFF {
				bw.Write(f.Value)
				bw.WriteString(", ")
			}
		}
		bw.WriteString(fc.clientIP)
		bw.WriteString("\r\n")
	}
	if fc.setXFH {
		bw.WriteString("X-Forwarded-Host: ")
		bw.Write(req.Host)
		bw.WriteString("\r\n")
	}
	if fc.setXFP {
		if fc.tls {
			bw.WriteString("X-Forwarded-Proto: https\r\n")
		} else {
			bw.WriteString("X-Forwarded-Proto: http\r\n")
		}
	}
	if p.cfg.SendProof != "" {
		bw.WriteString(ProofField + ": ")
		bw.WriteString(p.cfg.SendProof)
		bw.WriteString("\r\n")
	}
	switch {
	case req.Body == h1.BodyLength:
		bw.WriteString("Content-Length: ")
		bw.Write(strconv.AppendInt(fc.num[:0], req.ContentLength, 10))
		bw.WriteString("\r\n")
	case req.Body == h1.BodyChunked:
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	default:
		switch string(req.Method) {
		case http.MethodPost, http.MethodPut, http.MethodPatch:
			bw.WriteString("Content-Length: 0\r\n")
		}
	}
	bw.WriteString("\r\n")
	if req.Body != h1.BodyNone {
		bp := copyBufs.Get().(*[]byte)
		defer copyBufs.Put(bp)
		buf := *bp
		for {
			n, err := fc.eb.Read(buf)
			if err != nil && err != io.EOF {
				return clientBodyError{err}
			}
			if n > 0 {
				if req.Body == h1.BodyChunked {
					bw.Write(strconv.AppendUint(fc.num[:0], uint64(n), 16))
					bw.WriteString("\r\n")
				}
				bw.Write(buf[:n])
				if req.Body == h1.BodyChunked {
					bw.WriteString("\r\n")
				}
			}
			if err == io.EOF {
				break
			}
		}
		if req.Body == h1.BodyChunked {
			bw.WriteString("0\r\n\r\n")
		}
	}
	return bw.Flush()
}

// tunnel copies bytes both ways between the client and the backend (an
// upgraded connection) until either side ends, or until no byte has
// passed either way for idle, then closes both.
//
// The bytes go through the connections' own read buffers, which the
// tunnel's request no longer needs, so that a tunnel costs no memory
// beyond them: an open WebSocket may last for hours, and thousands may be
// open. splice(2), which io.Copy would use between the two sockets, is
// given up for that, and because a splice does not tell the idle timer
// that bytes passed; WebSocket messages are small.
func tunnel(client net.Conn, cbr *bufio.Reader, backend net.Conn, bbr *bufio.Reader, idle time.Duration) {
	t := &tunnelState{idle: idle}
	t.touch()
	done := make(chan struct{}, 2)
	go func() {
		t.pass(backend, client, cbr)
		done <- struct{}{}
	}()
	go func() {
		t.pass(client, backend, bbr)
		done <- struct{}{}
	}()
	<-done
	// One side ended: the other copy ends once both are closed.
	client.Close()
	backend.Close()
	<-done
}

// tunnelState is what a tunnel's two copies share: when a byte last
// passed, either way.
type tunnelState struct {
	idle time.Duration
	last atomic.Int64 // Unix nanoseconds
}

func (t *tunnelState) touch() { t.last.Store(time.Now().UnixNano()) }

// deadline is when the tunnel times out if no byte passes until then.
func (t *tunnelState) deadline() time.Time { return time.Unix(0, t.last.Load()).Add(t.idle) }

// pass copies src to dst through src's reader br, what it holds already
// first, until src ends or fails, a write to dst fails or stays blocked
// for the idle timeout, or the tunnel has been idle for it; then it ends
// dst's sending side.
func (t *tunnelState) pass(dst, src net.Conn, br *bufio.Reader) {
	for {
		if br.Buffered() == 0 {
			src.SetReadDeadline(t.deadline())
			if _, err := br.Peek(1); err != nil {
				// A read that timed out while bytes passed the other way
				// waits again, until the tunnel's new deadline.
				if isTimeout(err) && time.Now().Before(t.deadline()) {
					continue
				}
				break
			}
			t.touch()
		}
		p, _ := br.Peek(br.Buffered())
		dst.SetWriteDeadline(time.Now().Add(t.idle))
		if _, err := dst.Write(p); err != nil {
			break
		}
		br.Discard(len(p))
		t.touch()
	}
	if tc, ok := dst.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
}
