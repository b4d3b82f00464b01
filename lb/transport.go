package lb

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// retryTransport is the pool's http.RoundTripper. It sends a request to
// the backend chosen for it and, when nothing of the request was written to
// that backend, asks the pool's retry rule (resend) where to send it next.
// A request that reached a backend is left to net/http, which resends it
// only over a kept-alive connection that had been closed.
type retryTransport Pool

func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	p := (*Pool)(t)
	st := stateOf(req.Context())
	if st == nil {
		return p.transport.RoundTrip(req)
	}
	for {
		st.conn, st.sent = nil, false
		res, err := p.transport.RoundTrip(req)
		if err == nil {
			return res, nil
		}
		if req.Context().Err() != nil {
			return nil, err
		}
		var de *dialError
		dialFailed := errors.As(err, &de)
		if !dialFailed && (st.conn == nil || st.sent || st.conn.written.Load() != st.written) {
			// The request may have reached the backend: net/http has
			// resent it already if it could.
			return nil, err
		}
		// A failed connect, or a new connection that broke before taking
		// a byte, says the backend is gone. A reused connection that broke
		// says only that the backend closed it while idle.
		f := failUnreached
		if !dialFailed && st.reused {
			f = failStale
		}
		// The body goes to the next attempt only if the transport did not
		// read from it before failing: what it read is gone.
		untouched := st.body == nil || st.body.detach()
		if !p.resend(&st.attempt, f, untouched, err) {
			return nil, unreachedError{err}
		}
		var body io.ReadCloser
		if st.body != nil {
			st.body = &retryBody{rc: st.body.rc}
			body = st.body
		}
		req = retarget(req, st.backend, body)
	}
}

// retarget returns a copy of req addressed to b, with body if not nil.
func retarget(req *http.Request, b *backend, body io.ReadCloser) *http.Request {
	r := req.WithContext(req.Context())
	u := *req.URL
	u.Host = b.Addr
	r.URL = &u
	if body != nil {
		r.Body = body
	}
	return r
}

// unreachedError is a request that reached no backend; it maps to a 503.
type unreachedError struct{ err error }

func (e unreachedError) Error() string        { return "no backend reached: " + e.err.Error() }
func (e unreachedError) Unwrap() error        { return e.err }
func (e unreachedError) Is(target error) bool { return target == ErrNoBackend }

// dialError is a failed connection to a backend: nothing was sent.
type dialError struct{ err error }

func (e *dialError) Error() string { return e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

// dial connects to a backend, counting the bytes written to the connection
// so that a failed attempt can tell whether any of it left.
func (p *Pool) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := p.dialer.DialContext(ctx, network, addr)
	if err != nil {
		return nil, &dialError{err}
	}
	return &backendConn{Conn: c}, nil
}

// backendConn is a connection to a backend that counts bytes written.
// Once it carries a tunnel (an accepted 101), every byte that passes
// either way moves its deadline on by the tunnel's idle timeout, so that
// the tunnel's copies, which ReverseProxy runs without deadlines, end
// when nothing passed for that long.
type backendConn struct {
	net.Conn
	written atomic.Int64
	idle    atomic.Int64 // the tunnel's idle timeout, 0 before a 101
}

func (c *backendConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		c.extend()
	}
	return n, err
}

func (c *backendConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.written.Add(int64(n))
	if n > 0 {
		c.extend()
	}
	return n, err
}

// startTunnel gives the connection, which just carried a 101, the idle
// timeout d.
func (c *backendConn) startTunnel(d time.Duration) {
	c.idle.Store(int64(d))
	c.Conn.SetDeadline(time.Now().Add(d))
}

// extend moves a tunnel's deadline on.
func (c *backendConn) extend() {
	if d := c.idle.Load(); d > 0 {
		c.Conn.SetDeadline(time.Now().Add(time.Duration(d)))
	}
}

// errBodyMoved is what an abandoned attempt gets if it reads the body
// after a retry took it over.
var errBodyMoved = errors.New("request body moved to another attempt")

// retryBody wraps the inbound request body for one attempt. The transport
// reads it, and closes it when it is done or fails; closing does not close
// the inbound body, which the next attempt may still need and the server
// closes after the handler. An attempt that failed before reading hands
// the body on with detach.
type retryBody struct {
	rc    io.ReadCloser
	state atomic.Int32 // bodyUnread, bodyRead or bodyDetached
}

const (
	bodyUnread int32 = iota
	bodyRead
	bodyDetached
)

func (b *retryBody) Read(p []byte) (int, error) {
	if b.state.Load() != bodyRead && !b.state.CompareAndSwap(bodyUnread, bodyRead) {
		return 0, errBodyMoved
	}
	return b.rc.Read(p)
}

func (b *retryBody) Close() error { return nil }

// detach ends this attempt's use of the body and reports whether the body
// is untouched. Once it returns true, no Read of this wrapper reaches the
// inbound body.
func (b *retryBody) detach() bool {
	return b.state.CompareAndSwap(bodyUnread, bodyDetached)
}
