package lb

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync/atomic"
)

// retryTransport is the pool's http.RoundTripper. It sends a request to
// the backend chosen for it and, when nothing of the request was written to
// that backend, sends it to another one, up to Config.Retries times. A
// request that reached a backend is never sent again.
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
		unsent := dialFailed || (st.conn != nil && !st.sent && st.conn.written.Load() == st.written)
		if !unsent {
			return nil, err
		}
		b := st.backend
		b.errors.Add(1)
		// A failed connect, or a new connection that broke before taking
		// a byte, says the backend is gone. A reused connection that broke
		// says only that the backend closed it while idle: try again on the
		// same backend, over a new connection.
		if dialFailed || !st.reused {
			p.markDown(b, err)
			st.tried = append(st.tried, b)
		}
		if st.attempts >= p.cfg.Retries {
			return nil, unreachedError{err}
		}
		var body io.ReadCloser
		if st.body != nil {
			if !st.body.detach() {
				// The transport read from the body before failing: what it
				// read is gone, so the body cannot go to another backend.
				return nil, unreachedError{err}
			}
			st.body = &retryBody{rc: st.body.rc}
			body = st.body
		}
		next := st.backend
		if !p.eligible(next) {
			next = p.pick(p.set.Load(), st.tried)
			if next == nil {
				return nil, unreachedError{err}
			}
			b.release()
			st.backend = next
		}
		st.attempts++
		p.retries.Add(1)
		req = retarget(req, next, body)
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
type backendConn struct {
	net.Conn
	written atomic.Int64
}

func (c *backendConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.written.Add(int64(n))
	return n, err
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
