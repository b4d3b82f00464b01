package lb

import "net/http"

// attempt is where a request stands among the backends: the backend it is
// being sent to, and those that failed it. Pool.ServeHTTP keeps one in the
// request's state and FastServer on its stack; choose starts it, resend
// moves it on and finish ends it. It holds no pointer into itself, so
// that one on the stack stays there.
type attempt struct {
	// backend is the backend of the current attempt; the request holds one
	// count of its in-flight requests.
	backend *backend
	// sticky is the backend the affinity cookie named, when the request
	// went there first; the cookie is set again unless it ends there.
	sticky *backend
	n      int // attempts after the first
	// The backends not to try again: the first few in triedBuf, so that
	// retries cost no allocation, all of them in more past that.
	ntried   int
	triedBuf [4]*backend
	more     []*backend
}

// leave notes that b is not to be tried again.
func (a *attempt) leave(b *backend) {
	switch {
	case a.more != nil:
		a.more = append(a.more, b)
	case a.ntried < len(a.triedBuf):
		a.triedBuf[a.ntried] = b
		a.ntried++
	default:
		a.more = append(append(make([]*backend, 0, 2*len(a.triedBuf)), a.triedBuf[:]...), b)
	}
}

// tried returns the backends not to try again.
func (a *attempt) tried() []*backend {
	if a.more != nil {
		return a.more
	}
	return a.triedBuf[:a.ntried]
}

// failure is how an attempt at sending a request to its backend failed,
// as far as the retry rule is concerned.
type failure uint8

const (
	// failUnreached: the request reached no backend: connecting failed,
	// or a new connection broke before taking a byte of it. The backend is
	// gone: it is taken down and not tried again for this request.
	failUnreached failure = iota
	// failStale: a kept-alive connection broke before taking a byte of
	// the request. The backend closed it while idle, which says nothing
	// of its health: the request may go to it again, on a new connection.
	failStale
	// failBroken: the connection closed or was reset once the request was
	// sent, or part of it, and before any answer: the backend went down
	// with the request in flight, which only a request that may be sent
	// twice survives.
	failBroken
	// failOther: anything else (a time-out, a malformed answer): the
	// backend had the request and failed it.
	failOther
)

// resend is the pool's one retry rule, which both server paths follow. It
// counts the failure of the attempt at a.backend against that backend and
// decides whether the request goes again: it moves a to the backend to
// send it to and returns true, or returns false when the request must be
// answered with an error.
//
// A request may go again only if resendable: for one that reached no
// backend (failUnreached, failStale), when its body is still untouched;
// for one that reached its backend (failBroken), when it may be sent twice
// (replayable, and no body or upgrade), and then only to another backend.
// Never more than Config.Retries times after the first attempt. The next
// backend is the same one if it may still take requests and was not
// left behind, else one chosen by the balancing algorithm among the
// others.
func (p *Pool) resend(a *attempt, f failure, resendable bool, err error) bool {
	b := a.backend
	b.errors.Add(1)
	switch f {
	case failUnreached:
		p.markDown(b, err)
		a.leave(b)
	case failBroken:
		a.leave(b)
	case failOther:
		return false
	}
	if !resendable || a.n >= p.cfg.Retries {
		return false
	}
	if f == failBroken || !p.eligible(b) {
		next := p.pick(p.set.Load(), a.tried())
		if next == nil {
			return false
		}
		if f == failBroken {
			p.log.Debug().Str("backend", b.ID).Err(err).Msg("request resent: connection broke before the answer")
		}
		b.release()
		a.backend = next
	}
	a.n++
	p.retries.Add(1)
	return true
}

// replayable reports whether a request of method may be sent twice: the
// safe methods of RFC 9110 section 9.2.2 (GET, HEAD, OPTIONS, TRACE).
// It takes the method as bytes, as FastServer reads it, so that no string
// is made of it.
func replayable(method []byte) bool {
	switch string(method) {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return false
}
