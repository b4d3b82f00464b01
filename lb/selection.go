package lb

import (
	"net/http"
	"slices"
)

// pick chooses an eligible backend that is not in skip, by the pool's
// balancing algorithm, and counts a request against it. It returns nil when
// there is none.
func (p *Pool) pick(set *backendSet, skip []*backend) *backend {
	n := len(set.list)
	if n == 0 {
		return nil
	}
	// A chosen backend can start draining before it is counted; then it is
	// no longer eligible and the next round chooses among the others.
	for range n {
		seq := p.next.Add(1)
		var b *backend
		if p.balance == roundRobin {
			b = p.nextInTurn(set.list, int(seq%uint64(n)), skip)
		} else {
			b = p.leastLoaded(set.list, skip)
		}
		if b == nil {
			return nil
		}
		if b.acquire() {
			b.lastPick.Store(seq)
			return b
		}
	}
	return nil
}

// leastLoaded returns the eligible backend with the fewest requests in
// flight. Ties go to the one picked longest ago, so that backends equally
// loaded take turns, as with haproxy's leastconn.
func (p *Pool) leastLoaded(list []*backend, skip []*backend) *backend {
	var best *backend
	var least int64
	var oldest uint64
	for _, b := range list {
		if !p.eligible(b) || slices.Contains(skip, b) {
			continue
		}
		n, last := b.inflight.Load(), b.lastPick.Load()
		if best == nil || n < least || (n == least && last < oldest) {
			best, least, oldest = b, n, last
		}
	}
	return best
}

// nextInTurn returns the first eligible backend from start on.
func (p *Pool) nextInTurn(list []*backend, start int, skip []*backend) *backend {
	for i := range list {
		b := list[(start+i)%len(list)]
		if p.eligible(b) && !slices.Contains(skip, b) {
			return b
		}
	}
	return nil
}

// pickRising chooses, when no backend may take a request, one that its
// node reports started (Ready) but that is not up yet, not draining and
// not rotated out, and counts a request against it; nil when there is
// none. Trying it beats a certain 503.
func (p *Pool) pickRising(set *backendSet) *backend {
	localOut := p.localOut.Load()
	for _, b := range set.list {
		if b.ready.Load() && !b.healthy.Load() && !b.draining.Load() && !(b.Local && localOut) && b.acquire() {
			return b
		}
	}
	return nil
}

// choose starts a new request's attempt and counts the request as a
// session: its backend is the one its affinity cookie value names, if
// affinity is on and that backend may take requests, else one chosen by
// the balancing algorithm. A rotation whose deadline has passed is
// completed first. It returns false, having counted and logged the
// refusal, when no backend may take the request; the caller answers 503.
// A request that choose started ends with finish.
//
// Both server paths call it: cookie is the value as each reads it, nil
// when the request has none, and is only looked up, never kept.
func (p *Pool) choose(a *attempt, cookie []byte) bool {
	p.checkRotationDeadline()
	set := p.set.Load()
	if p.affinity && len(cookie) > 0 {
		if b := set.byCookie[string(cookie)]; b != nil && p.eligible(b) && b.acquire() {
			a.backend, a.sticky = b, b
		}
	}
	if a.backend == nil {
		a.backend = p.pick(set, nil)
	}
	if a.backend == nil {
		a.backend = p.pickRising(set)
	}
	if a.backend == nil {
		p.noBackend.Add(1)
		p.logProxyError(nil, http.StatusServiceUnavailable, ErrNoBackend)
		return false
	}
	p.sessions.Add(1)
	return true
}

// finish ends a request that choose started: it uncounts it from the
// backend of its last attempt (retries moved the count) and from the
// pool's sessions.
func (p *Pool) finish(a *attempt) {
	a.backend.release()
	p.sessions.Add(-1)
}
