package lb

import "slices"

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
