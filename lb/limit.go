package lb

import "context"

// admit counts a new request and takes a place for it under MaxConns,
// waiting up to QueueTimeout. It returns false when the request is to be
// refused with a 503: the pool is closed, the wait timed out or the
// client went away. An admitted request ends with dismiss.
func (p *Pool) admit(ctx context.Context) bool {
	p.requests.Add(1)
	if p.closed.Load() {
		p.noBackend.Add(1)
		return false
	}
	return p.sem == nil || p.enter(ctx)
}

// dismiss gives back what admit took for a request.
func (p *Pool) dismiss() {
	if p.sem != nil {
		<-p.sem
	}
}

// enter takes a place under MaxConns, waiting up to QueueTimeout. It
// reports false when the wait timed out or the client went away.
func (p *Pool) enter(ctx context.Context) bool {
	select {
	case p.sem <- struct{}{}:
		return true
	default:
	}
	p.queued.Add(1)
	defer p.queued.Add(-1)
	t := p.clock.NewTimer(p.cfg.QueueTimeout)
	defer t.Stop()
	select {
	case p.sem <- struct{}{}:
		return true
	case <-t.C():
		p.queueTimeouts.Add(1)
		return false
	case <-ctx.Done():
		return false
	}
}
