package lb

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// FastServer serves a Pool on its own HTTP/1.1 connection handling, for
// less CPU per request than net/http's server and transport (see
// docs/benchmarks.md): one goroutine per client connection reads a
// request, writes it to a kept-alive backend connection, reads the
// response and writes it back, with no hand-off between goroutines and
// no read-ahead. It does what Pool.ServeHTTP does (balancing, affinity,
// retries of requests that reached no backend, X-Forwarded-*, the status
// page, timeouts, drains, MaxConns) and passes upgrades (WebSocket)
// through as a tunnel. Use it instead of an http.Server when the pool is
// the only handler of a listener.
//
// A FastServer made by NewFastRouter serves several pools on one listener
// and picks each request's pool by its Host header, as a router does.
type FastServer struct {
	p        *Pool                   // the one pool, or nil with route
	route    func(host string) *Pool // with NewFastRouter
	notFound string                  // with NewFastRouter: the 404 page
	cfg      Config

	mu      sync.Mutex
	ln      net.Listener
	conns   map[*fastClient]struct{}
	idle    map[string][]*fastBackendConn // by backend address
	closing atomic.Bool
	wg      sync.WaitGroup
}

// NewFastServer returns a server for p.
func NewFastServer(p *Pool) *FastServer {
	return &FastServer{p: p, cfg: p.cfg, conns: make(map[*fastClient]struct{}), idle: make(map[string][]*fastBackendConn)}
}

// NewFastRouter returns a server that sends each request to the pool
// that route returns for its Host header (as the client sent it: any
// case, with a port if it had one); a nil pool answers 404 with
// notFound's page, or a plain one if notFound is empty. cfg's
// ClientTimeout and MaxIdleConns apply to the server; everything else
// comes from each request's pool. route is called from many goroutines
// at once and must not block.
func NewFastRouter(cfg Config, route func(host string) *Pool, notFound string) *FastServer {
	cfg = cfg.withDefaults()
	if notFound == "" {
		notFound = "<html><body><h1>404 Not Found</h1>\nNo application is configured for this host name.\n</body></html>\n"
	}
	return &FastServer{route: route, notFound: notFound, cfg: cfg, conns: make(map[*fastClient]struct{}), idle: make(map[string][]*fastBackendConn)}
}

// Client connection states.
const (
	clientIdle int32 = iota
	clientActive
	clientClosed
)

type fastClient struct {
	s      *FastServer
	c      net.Conn
	br     *bufio.Reader
	bw     *bufio.Writer
	remote string
	p      *Pool // the pool of the request being served
	state  atomic.Int32
	start  time.Time // when the current request began to be read
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
// http.ErrServerClosed then.
func (s *FastServer) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		return http.ErrServerClosed
	}
	s.ln = ln
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
		fc := &fastClient{s: s, c: c, br: bufio.NewReaderSize(c, 4096), bw: bufio.NewWriterSize(c, 4096), remote: c.RemoteAddr().String()}
		s.mu.Lock()
		if s.closing.Load() {
			s.mu.Unlock()
			c.Close()
			return http.ErrServerClosed
		}
		s.conns[fc] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go fc.serve()
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
	if !s.closing.Swap(true) && s.ln != nil {
		s.ln.Close()
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
		s.wg.Done()
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
		req, err := http.ReadRequest(fc.br)
		if err != nil {
			if !errors.Is(err, io.EOF) && !isTimeout(err) {
				fc.writePage(http.StatusBadRequest, true)
			}
			return
		}
		req.RemoteAddr = fc.remote
		keep := fc.handle(req)
		if !keep || !fc.state.CompareAndSwap(clientActive, clientIdle) {
			return
		}
	}
}

// handle proxies req and reports whether the connection may serve
// another request.
func (fc *fastClient) handle(req *http.Request) bool {
	s, p := fc.s, fc.s.p
	keep := !req.Close && !s.closing.Load()
	if s.route != nil {
		if p = s.route(req.Host); p == nil {
			return fc.writeNotFound(!keep) && keep && drainBody(req)
		}
	}
	fc.p = p
	if !p.cfg.NoStatus && req.URL.Path == p.cfg.StatusPath {
		rec := &pageRecorder{header: make(http.Header), code: http.StatusOK}
		p.serveStatus(rec, req)
		return fc.writeRecorded(rec, req, keep) && keep && drainBody(req)
	}
	p.requests.Add(1)
	if p.closed.Load() {
		p.noBackend.Add(1)
		return fc.writePage(http.StatusServiceUnavailable, !keep) && keep && drainBody(req)
	}
	if p.sem != nil {
		if !p.enter(context.Background()) {
			return fc.writePage(http.StatusServiceUnavailable, !keep) && keep && drainBody(req)
		}
		defer p.leave()
	}
	p.checkRotationDeadline()
	set := p.set.Load()
	var b, sticky *backend
	if p.affinity {
		if sb := p.stickyBackend(req, set); sb != nil && sb.acquire() {
			b, sticky = sb, sb
		}
	}
	if b == nil {
		b = p.pick(set, nil)
	}
	if b == nil {
		p.noBackend.Add(1)
		p.logProxyError(nil, http.StatusServiceUnavailable, ErrNoBackend)
		return fc.writePage(http.StatusServiceUnavailable, !keep) && keep && drainBody(req)
	}
	p.sessions.Add(1)
	defer func() {
		b.release() // b is the last one tried: retries move the count
		p.sessions.Add(-1)
	}()

	upgrade := isUpgrade(req.Header)
	p.prepareOutbound(req, upgrade)
	if strings.EqualFold(req.Header.Get("Expect"), "100-continue") {
		req.Header.Del("Expect")
		if req.ContentLength != 0 {
			fc.bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
			fc.bw.Flush()
		}
	}
	hasBody := req.ContentLength != 0 && req.Body != nil && req.Body != http.NoBody
	var eb *extendingBody
	if hasBody {
		eb = &extendingBody{r: req.Body, fc: fc}
		req.Body = eb
	}
	var tried []*backend
	var triedBuf [4]*backend
	tried = triedBuf[:0]
	attempts, staleRetried := 0, false
	var bc *fastBackendConn
	var resp *http.Response
	for {
		var reused bool
		var err error
		// A request that may go twice goes again if its kept-alive
		// connection turns out closed; others check it first.
		bc, reused, err = s.backendConn(p, b.Addr, upgrade || staleRetried, hasBody || !replayable(req.Method))
		if err != nil {
			// Nothing was sent: another backend may take it.
			b.errors.Add(1)
			p.markDown(b, err)
			tried = append(tried, b)
			if attempts >= p.cfg.Retries {
				p.logProxyError(b, http.StatusServiceUnavailable, err)
				p.noBackend.Add(1)
				return fc.writePage(http.StatusServiceUnavailable, !keep) && keep && drainBody(req)
			}
			next := b
			if !p.eligible(next) {
				if next = p.pick(set, tried); next == nil {
					p.logProxyError(b, http.StatusServiceUnavailable, err)
					p.noBackend.Add(1)
					return fc.writePage(http.StatusServiceUnavailable, !keep) && keep && drainBody(req)
				}
				b.release()
				b = next
			}
			attempts++
			p.retries.Add(1)
			continue
		}
		bc.setDeadline(p.cfg.ServerTimeout)
		if eb != nil {
			eb.bc, eb.last = bc, time.Now()
		}
		err = p.writeRequest(bc, req, b)
		if err == nil {
			if bc.br.Buffered() == 0 {
				yieldForIO()
			}
			resp, err = http.ReadResponse(bc.br, req)
		}
		if err == nil {
			break
		}
		bc.c.Close()
		// A kept-alive connection the backend had closed: a request
		// without a body that may be sent twice goes again, once, on a
		// new connection.
		if reused && !staleRetried && !hasBody && replayable(req.Method) && bc.br.Buffered() == 0 && !isTimeout(err) {
			// The other idle connections to it are likely closed too (a
			// restart): the retry takes a new one, and they go.
			staleRetried = true
			s.dropIdle(b.Addr)
			continue
		}
		b.errors.Add(1)
		code := http.StatusBadGateway
		if isTimeout(err) {
			code = http.StatusGatewayTimeout
		}
		p.logProxyError(b, code, err)
		fc.writePage(code, true)
		return false
	}
	return fc.relay(req, resp, bc, b, b == sticky, keep)
}

// relay writes resp back to the client and gives the backend connection
// back if it may serve again.
func (fc *fastClient) relay(req *http.Request, resp *http.Response, bc *fastBackendConn, b *backend, stuck, keep bool) bool {
	s, p := fc.s, fc.p
	// Informational answers go to the client as they come.
	for resp.StatusCode >= 100 && resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols {
		fc.bw.WriteString("HTTP/1.1 " + resp.Status + "\r\n")
		writeHeader(fc.bw, resp.Header)
		fc.bw.WriteString("\r\n")
		fc.bw.Flush()
		var err error
		if resp, err = http.ReadResponse(bc.br, req); err != nil {
			bc.c.Close()
			b.errors.Add(1)
			p.logProxyError(b, http.StatusBadGateway, err)
			fc.writePage(http.StatusBadGateway, true)
			return false
		}
	}
	h := resp.Header
	if p.affinity && !stuck {
		h.Add("Set-Cookie", b.setCookie)
		h.Add("Cache-Control", cacheControlSetCookie)
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		fc.writeHead(resp, "")
		if err := fc.bw.Flush(); err != nil {
			bc.c.Close()
			return false
		}
		tunnel(fc.c, fc.br, bc.c, bc.br)
		return false
	}
	removeHopByHop(h)
	delete(h, "Content-Length")
	bodyless := req.Method == http.MethodHead || resp.StatusCode == http.StatusNoContent || resp.StatusCode == http.StatusNotModified
	framing, chunked, closeDelimited := "", false, false
	switch {
	case bodyless:
		if req.Method == http.MethodHead && resp.ContentLength >= 0 {
			framing = "Content-Length: " + strconv.FormatInt(resp.ContentLength, 10) + "\r\n"
		}
	case resp.ContentLength >= 0:
		framing = "Content-Length: " + strconv.FormatInt(resp.ContentLength, 10) + "\r\n"
	case req.ProtoAtLeast(1, 1):
		framing, chunked = "Transfer-Encoding: chunked\r\n", true
	default:
		closeDelimited = true
	}
	if closeDelimited {
		keep = false
	}
	if !keep {
		framing += "Connection: close\r\n"
	}
	fc.extendWrite()
	fc.writeHead(resp, framing)
	var copyErr error
	if !bodyless {
		var w io.Writer = fc.bw
		var cw io.WriteCloser
		if chunked {
			cw = httputil.NewChunkedWriter(fc.bw)
			w = cw
		}
		// Bodies of unknown length (streams) are flushed as they come.
		copyErr = copyBody(w, resp.Body, bc, fc, resp.ContentLength < 0)
		if chunked && copyErr == nil {
			cw.Close()
			fc.bw.WriteString("\r\n")
		}
	}
	resp.Body.Close()
	flushErr := fc.bw.Flush()
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
	return flushErr == nil && keep && drainBody(req)
}

// extendingBody is a request body being sent to a backend: a long upload
// moves the client's and the backend's deadlines on as it progresses,
// since both timeouts are times without progress.
type extendingBody struct {
	r    io.ReadCloser
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

func (e *extendingBody) Close() error { return e.r.Close() }

// writeHeader writes h's fields in map order: unlike http.Header.Write it
// does not sort them, which costs allocations on every message. Values
// come from a parsed message (which cannot hold CR or LF) or from the
// proxy itself.
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

// readErr marks an error reading from the backend during a body copy.
type readErr struct{ error }

func (e readErr) Unwrap() error { return e.error }

// copyBufs recycles body copy buffers.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// copyBody copies a response body from the backend to the client,
// refreshing the backend's read deadline (ServerTimeout is a time without
// data) and flushing after each read when stream is set.
func copyBody(w io.Writer, body io.Reader, bc *fastBackendConn, fc *fastClient, stream bool) error {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	timeout := fc.p.cfg.ServerTimeout
	last := time.Now()
	for {
		if bc.br.Buffered() == 0 {
			// The backend's socket is read: the server timeout is a time
			// without data, and the client's deadline moves on with it.
			if now := time.Now(); now.Sub(last) > time.Second {
				last = now
				bc.c.SetReadDeadline(now.Add(timeout))
				fc.extendWrite()
			}
		}
		n, err := body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
			if stream {
				if werr := fc.bw.Flush(); werr != nil {
					return werr
				}
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return readErr{err}
		}
	}
}

// writeHead writes resp's status line and headers, then framing (header
// lines of its own) and the blank line.
func (fc *fastClient) writeHead(resp *http.Response, framing string) {
	bw := fc.bw
	status := resp.Status
	if status == "" {
		status = strconv.Itoa(resp.StatusCode) + " " + http.StatusText(resp.StatusCode)
	}
	bw.WriteString("HTTP/1.1 ")
	bw.WriteString(status)
	bw.WriteString("\r\n")
	writeHeader(bw, resp.Header)
	bw.WriteString(framing)
	bw.WriteString("\r\n")
}

// writePage answers with one of the pool's error pages (400 too), and
// reports whether it was written.
func (fc *fastClient) writePage(code int, close bool) bool {
	body := pages[code]
	if code == http.StatusBadRequest {
		body = "<html><body><h1>400 Bad Request</h1>\nYour browser sent an invalid request.\n</body></html>\n"
	}
	bw := fc.bw
	bw.WriteString("HTTP/1.1 " + strconv.Itoa(code) + " " + http.StatusText(code) + "\r\n")
	bw.WriteString("Content-Type: text/html; charset=utf-8\r\nCache-Control: no-cache\r\nX-Content-Type-Options: nosniff\r\n")
	bw.WriteString("Content-Length: " + strconv.Itoa(len(body)) + "\r\n")
	if close {
		bw.WriteString("Connection: close\r\n")
	}
	bw.WriteString("\r\n")
	bw.WriteString(body)
	fc.extendWrite()
	return bw.Flush() == nil
}

// writeNotFound answers a request for a host the router does not know.
func (fc *fastClient) writeNotFound(close bool) bool {
	body := fc.s.notFound
	bw := fc.bw
	bw.WriteString("HTTP/1.1 404 Not Found\r\n")
	bw.WriteString("Content-Type: text/html; charset=utf-8\r\nCache-Control: no-cache\r\nX-Content-Type-Options: nosniff\r\n")
	bw.WriteString("Content-Length: " + strconv.Itoa(len(body)) + "\r\n")
	if close {
		bw.WriteString("Connection: close\r\n")
	}
	bw.WriteString("\r\n")
	bw.WriteString(body)
	fc.extendWrite()
	return bw.Flush() == nil
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

func (fc *fastClient) writeRecorded(rec *pageRecorder, req *http.Request, keep bool) bool {
	resp := &http.Response{StatusCode: rec.code, Header: rec.header}
	framing := "Content-Length: " + strconv.Itoa(rec.body.Len()) + "\r\n"
	if !keep {
		framing += "Connection: close\r\n"
	}
	fc.writeHead(resp, framing)
	if req.Method != http.MethodHead {
		fc.bw.Write(rec.body.Bytes())
	}
	fc.extendWrite()
	return fc.bw.Flush() == nil
}

// drainBody reads what is left of a request's body so that the next
// request on the connection can be read; false if that failed or was too
// much.
func drainBody(req *http.Request) bool {
	if req.Body == nil || req.Body == http.NoBody {
		return true
	}
	n, err := io.CopyN(io.Discard, req.Body, 256<<10+1)
	return (err == nil || errors.Is(err, io.EOF)) && n <= 256<<10
}

// replayable reports whether a request of method may be sent twice.
func replayable(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return false
}

// backendConn returns a kept-alive connection to addr, or a new one
// (reused false). With fresh (an upgrade, a retry), always a new one. With check, a kept-alive
// connection is first checked for a close by the backend (idleAlive).
func (s *FastServer) backendConn(p *Pool, addr string, fresh, check bool) (*fastBackendConn, bool, error) {
	if !fresh {
		now := time.Now()
		s.mu.Lock()
		list := s.idle[addr]
		for len(list) > 0 {
			bc := list[len(list)-1]
			list = list[:len(list)-1]
			if now.Sub(bc.used) < idleConnTimeout && (!check || idleAlive(bc.c)) {
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
	bc := &fastBackendConn{c: c, br: bufio.NewReaderSize(c, 4096)}
	bc.bw = bufio.NewWriterSize(c, 4096)
	return bc, false, nil
}

// idleAlive reports whether an idle backend connection is still open
// and has sent nothing: a backend that closed it (restart, idle timeout)
// must not get a request on it, which it would never answer. It peeks
// without blocking: one system call.
func idleAlive(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	alive := false
	var buf [1]byte
	err = rc.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		alive = n <= 0 && (err == syscall.EAGAIN || err == syscall.EWOULDBLOCK)
		return true
	})
	return err == nil && alive
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

// hopHeaders are the hop-by-hop headers a proxy does not pass on.
var hopHeaders = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
	"Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// removeHopByHop deletes the hop-by-hop headers of h, those that its
// Connection header names included.
func removeHopByHop(h http.Header) {
	for _, v := range h["Connection"] {
		for _, f := range strings.Split(v, ",") {
			if f = strings.TrimSpace(f); f != "" {
				h.Del(f)
			}
		}
	}
	for _, k := range hopHeaders {
		delete(h, k)
	}
}

// isUpgrade reports whether h asks to switch protocols.
func isUpgrade(h http.Header) bool {
	if h.Get("Upgrade") == "" {
		return false
	}
	for _, v := range h["Connection"] {
		for _, f := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(f), "upgrade") {
				return true
			}
		}
	}
	return false
}

// prepareOutbound turns the client's request into the backend's: hop-by-hop
// headers out (an upgrade keeps its Connection and Upgrade),
// X-Forwarded-*, the affinity cookie hidden, Host set if Config.Host is.
func (p *Pool) prepareOutbound(req *http.Request, upgrade bool) {
	h := req.Header
	var up string
	if upgrade {
		up = h.Get("Upgrade")
	}
	removeHopByHop(h)
	delete(h, "Content-Length")
	if upgrade {
		h["Connection"] = []string{"Upgrade"}
		h["Upgrade"] = []string{up}
	}
	clientIP, _, err := net.SplitHostPort(req.RemoteAddr)
	if err == nil {
		if prior := h["X-Forwarded-For"]; len(prior) > 0 {
			h["X-Forwarded-For"] = []string{strings.Join(prior, ", ") + ", " + clientIP}
		} else {
			h["X-Forwarded-For"] = []string{clientIP}
		}
	}
	trusted := len(p.cfg.TrustedProxies) > 0 && p.trusted(req.RemoteAddr)
	if !trusted || h.Get("X-Forwarded-Host") == "" {
		h["X-Forwarded-Host"] = []string{req.Host}
	}
	if !trusted || h.Get("X-Forwarded-Proto") == "" {
		h["X-Forwarded-Proto"] = []string{"http"}
	}
	if p.cfg.Host != "" {
		req.Host = p.cfg.Host
	}
	if p.affinity {
		stripCookie(h, p.cfg.CookieName)
	}
}

// writeRequest writes req to bc: request line, Host, headers, framing and
// body.
func (p *Pool) writeRequest(bc *fastBackendConn, req *http.Request, b *backend) error {
	bw := bc.bw
	bw.WriteString(req.Method)
	bw.WriteString(" ")
	bw.WriteString(req.RequestURI)
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(req.Host)
	bw.WriteString("\r\n")
	writeHeader(bw, req.Header)
	hasBody := req.Body != nil && req.Body != http.NoBody && req.ContentLength != 0
	switch {
	case req.ContentLength > 0:
		bw.WriteString("Content-Length: " + strconv.FormatInt(req.ContentLength, 10) + "\r\n")
	case hasBody:
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	case req.Method == http.MethodPost || req.Method == http.MethodPut || req.Method == http.MethodPatch:
		bw.WriteString("Content-Length: 0\r\n")
	}
	bw.WriteString("\r\n")
	if hasBody {
		var w io.Writer = bw
		var cw io.WriteCloser
		if req.ContentLength < 0 {
			cw = httputil.NewChunkedWriter(bw)
			w = cw
		}
		bp := copyBufs.Get().(*[]byte)
		_, err := io.CopyBuffer(w, req.Body, *bp)
		copyBufs.Put(bp)
		if err != nil {
			return err
		}
		if cw != nil {
			cw.Close()
			bw.WriteString("\r\n")
		}
	}
	return bw.Flush()
}

// tunnel copies bytes both ways between the client and the backend (an
// upgraded connection) until either side ends, then closes both.
func tunnel(client net.Conn, cbr *bufio.Reader, backend net.Conn, bbr *bufio.Reader) {
	client.SetDeadline(time.Time{})
	backend.SetDeadline(time.Time{})
	done := make(chan struct{}, 2)
	go func() {
		io.Copy(backend, cbr)
		if tc, ok := backend.(*net.TCPConn); ok {
			tc.CloseWrite()
		}
		done <- struct{}{}
	}()
	go func() {
		io.Copy(client, bbr)
		if tc, ok := client.(*net.TCPConn); ok {
			tc.CloseWrite()
		}
		done <- struct{}{}
	}()
	<-done
	// One side ended: the other copy ends once both are closed.
	client.Close()
	backend.Close()
	<-done
}
