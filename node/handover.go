package node

import (
	"context"
	"fmt"
	"maps"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"gearbox/store/state"
)

// An app with one gear has nothing to fall back on while that gear
// restarts on a new deployment, so its node hands over instead: the new
// process starts beside the old one on a spare port ("side" process),
// requests move to it once it passes its health check, the old process is
// drained and stopped, the new deployment starts on the gear's own port,
// and once that one serves, the side process is drained and stopped. The
// gear's port, as the broker gave it, stays its port.

// sideProc is where a gear's side process listens, and the path its
// checks GET.
type sideProc struct {
	port   int
	health string
}

// sideSuffix marks the load balancer backend of a gear's side process.
const sideSuffix = "-side"

// soloGear reports whether spec is its app's only gear.
func (s *Supervisor) soloGear(spec *state.Gear) bool {
	recs, err := s.st.List(state.BucketGears)
	if err != nil {
		return false
	}
	n := 0
	for _, r := range recs {
		var g state.Gear
		if r.Decode(&g) == nil && g.App == spec.App {
			n++
		}
	}
	return n == 1
}

// handoverEnds is how many times the new process of a handover may end
// before it passed its health check: then the handover fails at once,
// without waiting for HandoverTimeout.
const handoverEnds = 3

// handover moves the gear to prog, known by key, while its current
// process keeps serving until the new one does. It returns false if it
// could not start (no spare port): the caller restarts the gear instead.
func (g *gear) handover(d desired, prog Program, key string) bool {
	alt, err := sparePort(g.s.cfg.Addr)
	if err != nil {
		g.log.Warn().Err(err).Msg("no spare port to start the new process beside the running one; restarting instead")
		return false
	}
	side := d
	side.gear.Port = alt
	sideProg, _ := g.programIn(side, g.id+sideSuffix)
	ready, gaveUp := make(chan struct{}), make(chan struct{})
	var once, giveUp sync.Once
	var ends atomic.Int32
	pc := ProcessConfig{
		Program:       sideProg,
		Ready:         g.readyProbe(side, alt, g.portOwner(sideProg, alt)),
		ReadyInterval: g.s.cfg.ReadyInterval,
		Backoff:       g.s.cfg.Backoff,
		StopGrace:     g.s.cfg.StopGrace,
		OnEvent: func(ev ProcessEvent) {
			switch ev.Kind {
			case EventReady:
				once.Do(func() { close(ready) })
			case EventExited, EventLaunchFailed:
				g.log.Warn().Err(ev.Err).Int("port", alt).Msg("new process beside the running one ended")
				if ends.Add(1) >= handoverEnds {
					giveUp.Do(func() { close(gaveUp) })
				}
			}
		},
		Now: g.s.cfg.Now,
	}
	if g.out != nil {
		pc.Output = g.out
	}
	p, err := NewProcess(pc)
	if err != nil {
		g.log.Warn().Err(err).Msg("cannot start the new process beside the running one; restarting instead")
		return false
	}
	g.log.Info().Int("port", alt).Str("deployment", short(d.deployment)).Msg("start new process beside the running one")
	what := "a new process"
	if d.deployment != g.running {
		what = "deployment " + short(d.deployment)
		if d.deployment == "" {
			what = "the welcome page"
		}
	}
	g.reportKeep("", fmt.Sprintf("starting %s beside the running process", what))
	p.Start()
	timer := time.NewTimer(g.s.cfg.HandoverTimeout)
	defer timer.Stop()
	why := ""
	select {
	case <-ready:
	case <-gaveUp:
		why = fmt.Sprintf("ended %d times before it passed its health check", handoverEnds)
	case <-timer.C:
		why = fmt.Sprintf("did not pass its health check within %s", g.s.cfg.HandoverTimeout)
	}
	if why != "" {
		p.Stop()
		g.s.metrics.handoverFails.Add(1)
		g.failedKey = key
		if d.deployment != g.running {
			g.setFailedDeployment(d.deployment, true)
		}
		g.log.Warn().Str("deployment", short(d.deployment)).Str("why", why).Msg("new process failed beside the running one, which stays")
		g.reportKeep("", fmt.Sprintf("%s %s beside the running process, which stays", what, why))
		return true
	}
	// Both answer: new requests go to the new process.
	g.s.setSide(g.id, sideProc{port: alt, health: healthPath(d)})
	g.setHandingOver(true)
	defer g.setHandingOver(false)
	g.s.waitFrontIdle(net.JoinHostPort(g.s.cfg.Addr, strconv.Itoa(d.gear.Port)))
	g.stopProc()
	g.launch(d, prog, key)
	if !waitClosed(g.ready, g.s.cfg.HandoverTimeout) {
		g.log.Warn().Dur("timeout", g.s.cfg.HandoverTimeout).Msg("gear did not answer on its own port after the handover")
	} else {
		g.s.waitServing(g.id, g.s.cfg.HandoverTimeout)
	}
	g.s.clearSide(g.id)
	g.s.waitFrontIdle(net.JoinHostPort(g.s.cfg.Addr, strconv.Itoa(alt)))
	p.Stop()
	g.log.Info().Str("deployment", short(d.deployment)).Msg("handover done")
	return true
}

// waitFrontIdle waits until the front listener has no request in flight
// to addr, or DrainTimeout.
func (s *Supervisor) waitFrontIdle(addr string) {
	if s.front == nil {
		return
	}
	// A request routed just before the switch may not be counted yet.
	time.Sleep(20 * time.Millisecond)
	deadline := time.Now().Add(s.cfg.DrainTimeout)
	for s.front.inFlight(addr) > 0 {
		if time.Now().After(deadline) {
			s.log.Warn().Str("addr", addr).Dur("timeout", s.cfg.DrainTimeout).Msg("requests still in flight; stopping the process anyway")
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitClosed waits until ch is closed or timeout passes.
func waitClosed(ch <-chan struct{}, timeout time.Duration) bool {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-ch:
		return true
	case <-t.C:
		return false
	}
}

// sparePort returns a port free on addr just now, chosen by the system.
func sparePort(addr string) (int, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// setSide sends gear id's requests to its side process on port too: the
// front routes its hostnames there, and the load balancers of this node
// get it as one more backend. It returns once both know.
func (s *Supervisor) setSide(id string, side sideProc) {
	s.lbMu.Lock()
	m := maps.Clone(*s.sides.Load())
	m[id] = side
	s.sides.Store(&m)
	s.lbMu.Unlock()
	s.refreshLBs()
}

// clearSide ends what setSide began: the side backend is drained (its
// requests in flight finish) and removed, and the front routes to the
// gear's own port again.
func (s *Supervisor) clearSide(id string) {
	s.lbMu.Lock()
	m := maps.Clone(*s.sides.Load())
	delete(m, id)
	s.sides.Store(&m)
	s.lbMu.Unlock()
	s.drainBackend(id + sideSuffix)
	s.refreshLBs()
}

// waitServing waits until every load balancer of this node that balances
// over gear id sends it requests, or timeout.
func (s *Supervisor) waitServing(id string, timeout time.Duration) {
	ctx, cancel := context.WithTimeout(s.ctx, timeout)
	defer cancel()
	for {
		ok := true
		s.lbMu.Lock()
		for _, l := range s.lbs {
			for _, b := range l.pool.Status().Backends {
				if b.ID == id && !b.Serving {
					ok = false
				}
			}
		}
		s.lbMu.Unlock()
		if ok {
			return
		}
		select {
		case <-ctx.Done():
			s.log.Warn().Str("gear", id).Msg("load balancers did not take the gear back in time")
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}
