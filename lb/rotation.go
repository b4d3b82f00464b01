package lb

// Rotation states, as Status reports them.
const (
	// RotationIn: the local backend takes requests like any other.
	RotationIn = "in"
	// RotationPending: the local backend was asked out and still takes
	// requests until a remote backend is up or RotationTimeout passes.
	RotationPending = "pending"
	// RotationOut: the local backend takes no request.
	RotationOut = "out"
)

// SetRotation applies the broker's rotation record for this LB gear. With
// out true, the Local backend stops getting requests, affinity requests
// included, but only once at least one remote backend is up, or
// RotationTimeout after the call, as the haproxy cartridge did: an LB gear
// that rotates its web gear out before another gear can serve would fail
// every request. A rotated-out local backend is not health-checked. With
// out false the local backend is back at once, and checked at once.
func (p *Pool) SetRotation(out bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !out {
		wasOut := p.localOut.Load()
		if p.rotOut {
			p.log.Info().Msg("local backend rotated in")
		}
		p.rotOut = false
		p.rotPending.Store(false)
		p.localOut.Store(false)
		if wasOut { // unchecked while out: check it now
			select {
			case p.kick <- struct{}{}:
			default:
			}
		}
		return
	}
	if p.rotOut {
		return
	}
	p.rotOut = true
	p.rotSince = p.clock.Now()
	p.rotDeadline.Store(p.rotSince.Add(p.cfg.RotationTimeout).UnixNano())
	p.updateRotationLocked()
}

// Rotation returns RotationIn, RotationPending or RotationOut.
func (p *Pool) Rotation() string {
	p.checkRotationDeadline()
	switch {
	case p.localOut.Load():
		return RotationOut
	case p.rotPending.Load():
		return RotationPending
	}
	return RotationIn
}

// checkRotationDeadline completes a pending rotation whose deadline has
// passed. It costs one atomic load unless a rotation is pending.
func (p *Pool) checkRotationDeadline() {
	if p.rotPending.Load() && p.clock.Now().UnixNano() >= p.rotDeadline.Load() {
		p.updateRotation()
	}
}

func (p *Pool) updateRotation() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.updateRotationLocked()
}

// updateRotationLocked completes a pending rotation if a remote backend is
// up or the deadline has passed. It runs when rotation is asked, when a
// backend comes up, when the set changes and on every health round.
func (p *Pool) updateRotationLocked() {
	if !p.rotOut || p.localOut.Load() {
		return
	}
	remoteUp := false
	for _, b := range p.set.Load().list {
		if !b.Local && b.healthy.Load() && !b.draining.Load() {
			remoteUp = true
			break
		}
	}
	now := p.clock.Now()
	if !remoteUp && now.UnixNano() < p.rotDeadline.Load() {
		p.rotPending.Store(true)
		return
	}
	p.localOut.Store(true)
	p.rotPending.Store(false)
	p.log.Info().Bool("remote_up", remoteUp).Dur("waited", now.Sub(p.rotSince)).Msg("local backend rotated out")
}
