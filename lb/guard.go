package lb

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// Limits are the time-outs and caps of an http.Server whose clients are
// not trusted. net/http bounds the reading of headers and idle keep-alive
// connections, but once a handler runs, a client that sends its headers
// and then trickles its body, or reads its answer a byte a minute, holds a
// connection and a goroutine for as long as it likes, and nothing bounds
// how many connections clients open. GuardServer applies Limits to a
// server; Server applies a Pool's.
//
// Every time-out is one of inactivity, or of a minimum rate, never of a
// whole request: an upload, a download, a followed log or a WebSocket lasts
// as long as it moves. The zero value limits nothing; a zero field leaves
// its limit out.
type Limits struct {
	// HeaderTimeout bounds the reading of a request's headers, and a TLS
	// handshake (http.Server.ReadHeaderTimeout). Zero: the server's own.
	HeaderTimeout time.Duration
	// IdleTimeout is how long a kept-alive connection may wait for its
	// next request (http.Server.IdleTimeout). Zero: the server's own.
	IdleTimeout time.Duration
	// BodyTimeout is how long a request's body may pass no byte: from the
	// handler's start, and from each read of the body that brought bytes,
	// the next must bring one within BodyTimeout, or the read fails with
	// ErrBodyTimeout and the connection is closed once the answer is
	// sent. It also bounds a body the handler leaves unread, which the
	// server reads (up to 256 KiB) before it answers. Zero: none.
	BodyTimeout time.Duration
	// MinBodyRate, in bytes per second, is the least average rate at which
	// a body must arrive once BodyTimeout has passed: the first n bytes
	// of the body are due BodyTimeout + n/MinBodyRate after the handler
	// began (Apache's mod_reqtimeout rule). A client that sends a byte
	// just often enough to beat BodyTimeout is cut all the same. It
	// counts the bytes the handler has read, so a handler that reads its
	// body slower than this is cut too. Zero: none. Needs BodyTimeout.
	MinBodyRate int64
	// WriteTimeout is how long one write of an answer may take: each
	// write (and flush) of the handler, and the last flush after it
	// returns, must be taken by the client within WriteTimeout. A
	// handler that writes nothing for a while (a followed log with no
	// new line, a long computation) is not cut; a client that stops
	// reading is. Zero: none.
	WriteTimeout time.Duration
	// TunnelTimeout closes a connection that a handler took over
	// (http.Hijacker: the tunnel of an upgrade, such as a WebSocket that
	// httputil.ReverseProxy passes on) once it passed no byte, either
	// way, for this long. Zero: none; net/http sets no deadline on such a
	// connection.
	TunnelTimeout time.Duration
	// MaxConns caps the connections open at once, those taken over by a
	// handler included. A connection over the cap is sent Refusal and
	// closed as soon as it is accepted, without its request being read.
	// Zero: no cap.
	MaxConns int
	// MaxConnsPerClient caps the connections of one client address
	// (IPv4) or /64 (IPv6, where one host commonly holds a whole /64),
	// so that one client cannot take all of MaxConns. Over it, a
	// connection is refused as over MaxConns. Zero: no cap.
	MaxConnsPerClient int
	// Refusal is what a connection over a cap is sent before it is
	// closed: a whole HTTP/1.1 answer, written before the request is
	// read. Empty: a plain 503 page. A TLS connection is closed without
	// an answer (it is refused before its handshake).
	Refusal string
	// Logger receives a warning, at most every 10 s, while connections
	// are refused. Default: disabled (the zero Logger).
	Logger zerolog.Logger
}

// Validate reports the negative fields of l, and a MinBodyRate without a
// BodyTimeout, naming them: a component that takes Limits from its
// configuration checks them in its New.
func (l Limits) Validate() error {
	var errs []error
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"HeaderTimeout", l.HeaderTimeout}, {"IdleTimeout", l.IdleTimeout}, {"BodyTimeout", l.BodyTimeout},
		{"WriteTimeout", l.WriteTimeout}, {"TunnelTimeout", l.TunnelTimeout},
	} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s %s is negative", d.name, d.v))
		}
	}
	for _, n := range []struct {
		name string
		v    int64
	}{
		{"MinBodyRate", l.MinBodyRate}, {"MaxConns", int64(l.MaxConns)}, {"MaxConnsPerClient", int64(l.MaxConnsPerClient)},
	} {
		if n.v < 0 {
			errs = append(errs, fmt.Errorf("%s %d is negative", n.name, n.v))
		}
	}
	if l.MinBodyRate > 0 && l.BodyTimeout == 0 {
		errs = append(errs, errors.New("MinBodyRate needs a BodyTimeout"))
	}
	return errors.Join(errs...)
}

// ServerGuard is what GuardServer applied to a server: it counts the
// server's connections under Limits' caps.
type ServerGuard struct {
	l       Limits
	refusal string
	log     zerolog.Logger
	// caps says whether connections are counted at all.
	caps bool

	mu    sync.Mutex
	conns map[net.Conn]netip.Addr // open connections, to their client key
	per   map[netip.Addr]int      // open connections by client key

	refused       atomic.Uint64
	refuseLogNext atomic.Int64 // Unix nanoseconds before which refusals are not logged
}

// GuardServer applies l to srv, which must not serve yet: it sets
// ReadHeaderTimeout and IdleTimeout (when l sets them), wraps Handler
// (nil: http.DefaultServeMux) with the body, write and tunnel time-outs,
// and counts connections under the caps from ConnState, calling the
// ConnState that srv had after its own. Negative fields count as zero
// (see Validate).
func GuardServer(srv *http.Server, l Limits) *ServerGuard {
	for _, d := range []*time.Duration{&l.HeaderTimeout, &l.IdleTimeout, &l.BodyTimeout, &l.WriteTimeout, &l.TunnelTimeout} {
		*d = max(*d, 0)
	}
	l.MinBodyRate, l.MaxConns, l.MaxConnsPerClient = max(l.MinBodyRate, 0), max(l.MaxConns, 0), max(l.MaxConnsPerClient, 0)
	if l.BodyTimeout == 0 {
		l.MinBodyRate = 0
	}
	g := &ServerGuard{l: l, refusal: l.Refusal, log: l.Logger, caps: l.MaxConns > 0 || l.MaxConnsPerClient > 0}
	if g.refusal == "" {
		g.refusal = refusedAnswer
	}
	if l.HeaderTimeout > 0 {
		srv.ReadHeaderTimeout = l.HeaderTimeout
	}
	if l.IdleTimeout > 0 {
		srv.IdleTimeout = l.IdleTimeout
	}
	h := srv.Handler
	if h == nil {
		h = http.DefaultServeMux
	}
	srv.Handler = g.handler(h)
	if g.caps {
		g.conns = make(map[net.Conn]netip.Addr)
		g.per = make(map[netip.Addr]int)
		prev := srv.ConnState
		srv.ConnState = func(c net.Conn, s http.ConnState) {
			switch s {
			case http.StateNew:
				g.admit(c)
			case http.StateClosed:
				g.release(c)
			}
			if prev != nil {
				prev(c, s)
			}
		}
	}
	return g
}

// Conns returns the number of connections open (0 without caps: they are
// not counted).
func (g *ServerGuard) Conns() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.conns)
}

// Refused returns the number of connections refused over the caps.
func (g *ServerGuard) Refused() uint64 { return g.refused.Load() }

// clientKey is what MaxConnsPerClient counts by: the IPv4 address, or the
// /64 of an IPv6 one.
func clientKey(a net.Addr) netip.Addr {
	var ip netip.Addr
	if ta, ok := a.(*net.TCPAddr); ok {
		ip, _ = netip.AddrFromSlice(ta.IP)
	} else if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		ip = ap.Addr()
	}
	ip = ip.Unmap()
	if ip.Is6() {
		if p, err := ip.Prefix(64); err == nil {
			ip = p.Addr()
		}
	}
	return ip
}

// admit counts a new connection, or refuses it over a cap. It runs in
// the server's accept loop.
func (g *ServerGuard) admit(c net.Conn) {
	key := clientKey(c.RemoteAddr())
	g.mu.Lock()
	total := g.l.MaxConns > 0 && len(g.conns) >= g.l.MaxConns
	perClient := g.l.MaxConnsPerClient > 0 && g.per[key] >= g.l.MaxConnsPerClient
	if !total && !perClient {
		g.conns[c] = key
		g.per[key]++
	}
	g.mu.Unlock()
	if total || perClient {
		g.refuse(c, key, perClient)
	}
}

// release forgets a connection that closed; it is called once from
// ConnState and, for a connection taken over by a handler, once more when
// the handler closes it, and acts on the first.
func (g *ServerGuard) release(c net.Conn) {
	g.mu.Lock()
	defer g.mu.Unlock()
	key, ok := g.conns[c]
	if !ok {
		return
	}
	delete(g.conns, c)
	if g.per[key]--; g.per[key] <= 0 {
		delete(g.per, key)
	}
}

// refuse answers a connection over a cap and closes it, from the accept
// loop: the answer is written before the request is read, into the new
// socket's empty send buffer, so it does not wait on the client. The
// sending side is ended first, so that the answer and the end reach the
// client ahead of the reset that closing a socket with a request unread
// sends (as FastServer.refuse).
func (g *ServerGuard) refuse(c net.Conn, key netip.Addr, perClient bool) {
	if _, isTLS := c.(*tls.Conn); !isTLS {
		c.SetWriteDeadline(time.Now().Add(time.Second))
		io.WriteString(c, g.refusal)
		if cw, ok := c.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
	}
	c.Close()
	g.refused.Add(1)
	if now := time.Now().UnixNano(); now >= g.refuseLogNext.Load() {
		g.refuseLogNext.Store(now + int64(10*time.Second))
		ev := g.log.Warn().Uint64("refused", g.refused.Load())
		if perClient {
			ev.Int("max_conns_per_client", g.l.MaxConnsPerClient).Str("client", key.String()).
				Str("fix", "if that client is legitimate (a proxy, a NAT of many users), raise the per-client cap").
				Msg("connections of one client over the cap refused")
		} else {
			ev.Int("max_conns", g.l.MaxConns).
				Str("fix", "raise the cap if the host has file descriptors and memory to spare").
				Msg("connections over the cap refused")
		}
	}
}

// handler wraps h with the body, write and tunnel time-outs.
func (g *ServerGuard) handler(h http.Handler) http.Handler {
	l := &g.l
	if l.BodyTimeout == 0 && l.WriteTimeout == 0 && l.TunnelTimeout == 0 && !g.caps {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gw := &guardWriter{ResponseWriter: w, rc: http.NewResponseController(w), g: g}
		if l.BodyTimeout > 0 && r.Body != nil && r.Body != http.NoBody {
			// The body is read from the connection only by this
			// request: net/http reads on (to notice a client that
			// goes) once the body is done, and clears the read
			// deadline then, so a deadline is set only until the end of
			// the body.
			start := time.Now()
			gb := &guardBody{ReadCloser: r.Body, rc: gw.rc, l: l, start: start}
			gb.setDeadline(start.Add(l.BodyTimeout))
			r.Body, gw.body = gb, gb
		}
		h.ServeHTTP(gw, r)
		if !gw.hijacked {
			// net/http flushes what is buffered after the handler
			// returns, and clears the deadline once the answer is out.
			gw.extend()
		}
	})
}

// guardBody is a request body under BodyTimeout and MinBodyRate. Its
// Read is called by one goroutine at a time, as any body's.
type guardBody struct {
	io.ReadCloser
	rc    *http.ResponseController
	l     *Limits
	start time.Time
	n     int64 // bytes read
	done  bool  // the body ended or failed: its deadline is net/http's again
	// pending is the read deadline set last, in Unix nanoseconds, until
	// the body is done (then 0); the writer reads it (see extend).
	pending atomic.Int64
}

// setDeadline sets the connection's read deadline for the body.
func (b *guardBody) setDeadline(dl time.Time) {
	b.pending.Store(dl.UnixNano())
	b.rc.SetReadDeadline(dl)
}

func (b *guardBody) Read(p []byte) (int, error) {
	if b.done {
		return b.ReadCloser.Read(p)
	}
	dl := time.Now().Add(b.l.BodyTimeout)
	if rate := b.l.MinBodyRate; rate > 0 {
		due := b.start.Add(b.l.BodyTimeout + time.Duration(b.n/rate)*time.Second + time.Duration(b.n%rate)*time.Second/time.Duration(rate))
		if due.Before(dl) {
			dl = due
		}
	}
	b.setDeadline(dl)
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	if err != nil {
		b.done = true
		b.pending.Store(0)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			err = &bodyTimeoutError{err}
		}
	}
	return n, err
}

// bodyTimeoutError is a body read cut by BodyTimeout or MinBodyRate: it
// is ErrBodyTimeout, and the deadline error it wraps.
type bodyTimeoutError struct{ err error }

func (e *bodyTimeoutError) Error() string        { return ErrBodyTimeout.Error() + ": " + e.err.Error() }
func (e *bodyTimeoutError) Unwrap() error        { return e.err }
func (e *bodyTimeoutError) Is(target error) bool { return target == ErrBodyTimeout }

// guardWriter is the ResponseWriter under WriteTimeout and
// TunnelTimeout. Unwrap lets http.ResponseController reach the
// server's own; Flush and Hijack are its own, to move the deadline on and
// to watch a connection taken over.
type guardWriter struct {
	http.ResponseWriter
	rc       *http.ResponseController // of the server's ResponseWriter
	g        *ServerGuard
	body     *guardBody // nil without a body or BodyTimeout
	hijacked bool
}

// extend gives the next write WriteTimeout from now; while the body is
// not done, from its read deadline: net/http reads what is left of a
// body (up to 256 KiB) before it writes the first bytes of the answer,
// and that reading is bounded by the body's deadline, not this one.
func (w *guardWriter) extend() {
	d := w.g.l.WriteTimeout
	if d == 0 {
		return
	}
	from := time.Now()
	if w.body != nil {
		if p := w.body.pending.Load(); p > from.UnixNano() {
			from = time.Unix(0, p)
		}
	}
	w.rc.SetWriteDeadline(from.Add(d))
}

func (w *guardWriter) WriteHeader(code int) {
	w.extend()
	w.ResponseWriter.WriteHeader(code)
}

func (w *guardWriter) Write(p []byte) (int, error) {
	w.extend()
	return w.ResponseWriter.Write(p)
}

// FlushError flushes what is buffered to the client.
func (w *guardWriter) FlushError() error {
	w.extend()
	return w.rc.Flush()
}

// Flush is FlushError for callers that ask for an http.Flusher.
func (w *guardWriter) Flush() { w.FlushError() }

// Unwrap returns the server's ResponseWriter, for http.ResponseController.
func (w *guardWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Hijack hands the connection over to the handler: net/http clears its
// deadlines, and from then on it is closed once it passes no byte for
// TunnelTimeout; its place under the caps is given back when the handler
// closes it.
func (w *guardWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := w.rc.Hijack()
	if err != nil {
		return c, brw, err
	}
	w.hijacked = true
	if w.g.l.TunnelTimeout == 0 && !w.g.caps {
		return c, brw, nil
	}
	tc := &tunnelConn{Conn: c, g: w.g, idle: w.g.l.TunnelTimeout}
	if tc.idle > 0 {
		c.SetDeadline(time.Now().Add(tc.idle))
	}
	return tc, brw, nil
}

// tunnelConn is a connection a handler took over: each byte that passes
// moves its deadline on by idle (if not zero), and Close gives its place
// under the caps back.
type tunnelConn struct {
	net.Conn
	g      *ServerGuard
	idle   time.Duration
	closed atomic.Bool
}

func (c *tunnelConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && c.idle > 0 {
		c.Conn.SetDeadline(time.Now().Add(c.idle))
	}
	return n, err
}

func (c *tunnelConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if n > 0 && c.idle > 0 {
		c.Conn.SetDeadline(time.Now().Add(c.idle))
	}
	return n, err
}

// CloseWrite ends the sending side (httputil.ReverseProxy passes a
// half-close on with it); a connection without one ends the copy as
// ReverseProxy ends it for such a connection.
func (c *tunnelConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errNoCloseWrite
}

var errNoCloseWrite = errors.New("connection cannot close its sending side alone")

func (c *tunnelConn) Close() error {
	err := c.Conn.Close()
	if c.closed.CompareAndSwap(false, true) && c.g.caps {
		c.g.release(c.Conn)
	}
	return err
}
