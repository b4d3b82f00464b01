package lb

import "context"

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

// leave gives back a place taken by enter.
func (p *Pool) leave() { <-p.sem }
