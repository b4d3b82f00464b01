package node

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"gearbox/store"
	"gearbox/store/state"
)

// A gear's observed state is reported in its GearStatus record, which
// only the node that runs the gear writes. The record is written when what
// the node observes changes (UpdatedAt is when it last did), and
// rewritten whenever the store holds something else (a lost write, or a
// record another node wrote while the gear was placed there).

// setEndpoints notes the endpoints of spec that statuses report: the web
// port, and on LB gears the load balancer's port, as the broker's API
// shows them.
func (g *gear) setEndpoints(spec *state.Gear) {
	addr := g.s.cfg.Addr
	var eps []state.Endpoint
	if spec.LB {
		eps = append(eps, state.Endpoint{CartridgeName: state.CartLB, ExternalAddress: addr, ExternalPort: spec.LBPort,
			InternalAddress: addr, InternalPort: spec.LBPort, Protocols: []string{"http", "ws"}, Types: []string{"load_balancer"}})
	}
	eps = append(eps, state.Endpoint{CartridgeName: spec.Cartridge, ExternalAddress: addr, ExternalPort: spec.Port,
		InternalAddress: addr, InternalPort: spec.Port, Protocols: []string{"http", "ws"}, Types: []string{"web_framework"}})
	g.statusMu.Lock()
	defer g.statusMu.Unlock()
	g.endpoints = eps
	if g.status.State != "" && !sameEndpoints(g.status.Endpoints, eps) {
		g.status.Endpoints = eps
		g.reported = false
	}
}

// report sets the gear's observed state and reason, and writes the status
// if that changed it.
func (g *gear) report(st, reason string) {
	g.statusMu.Lock()
	defer g.statusMu.Unlock()
	g.reportLocked(st, reason)
}

// reportStarting reports a launch: the state stays new for a new gear, and
// is stopped otherwise until the gear answers.
func (g *gear) reportStarting(reason string) {
	g.statusMu.Lock()
	defer g.statusMu.Unlock()
	if g.handingOver {
		return // the side process serves meanwhile
	}
	st := state.GearStopped
	switch g.status.State {
	case state.GearNew:
		st = state.GearNew
	case state.GearCrashing:
		// Crashing until a run lasts: a launch does not end it.
		st = state.GearCrashing
		reason = g.status.Reason + "; " + reason
	}
	g.reportLocked(st, reason)
}

func (g *gear) reportLocked(st, reason string) {
	g.reason = reason
	next := state.GearStatus{ID: g.id, Node: g.s.name, State: st, Reason: reason, Endpoints: g.endpoints, Deployment: g.running, Restarts: g.restarts, Health: g.health, Draining: g.draining}
	if g.portTaken != nil && st != state.GearStarted {
		next.Reason, next.PortTaken = g.portTaken.Error(), true
	}
	if st == state.GearCrashing {
		next.LogTail = g.logTail
	}
	next.DataCopy, next.FailedDeployment = g.dataCopy, g.failedDeploy
	if sameStatus(g.status, next) && g.reported {
		return
	}
	next.UpdatedAt = g.s.cfg.Now()
	g.status = next
	g.reported = false
	g.writeLocked()
}

// setRunning notes the deployment the gear's web process runs from now
// on; the next report carries it.
func (g *gear) setRunning(id, health string, restarts int) {
	g.statusMu.Lock()
	defer g.statusMu.Unlock()
	g.running, g.health, g.restarts = id, health, restarts
	if id == g.failedDeploy {
		g.failedDeploy = "" // a retry worked
	}
}

// setFailedDeployment notes that the gear cannot run deployment id
// (failed), or, not failed, forgets a failure of any deployment but id:
// the gear is asked to run id now. The next report carries it.
func (g *gear) setFailedDeployment(id string, failed bool) {
	g.statusMu.Lock()
	defer g.statusMu.Unlock()
	if failed {
		g.failedDeploy = id
	} else if g.failedDeploy != id {
		g.failedDeploy = ""
	}
}

// setDraining notes whether the gear's web process is about to stop, and
// reports it.
func (g *gear) setDraining(on bool) {
	g.statusMu.Lock()
	defer g.statusMu.Unlock()
	if g.draining == on || g.status.State == "" {
		g.draining = on
		return
	}
	g.draining = on
	g.reportLocked(g.status.State, g.status.Reason)
}

// setDataCopy notes how far the copy of a replaced gear's data went,
// and reports it.
func (g *gear) setDataCopy(v string) {
	g.statusMu.Lock()
	defer g.statusMu.Unlock()
	if g.dataCopy == v {
		return
	}
	g.dataCopy = v
	if g.status.State != "" {
		g.reportLocked(g.status.State, g.status.Reason)
	}
}

// setHandingOver notes whether the gear's side process serves while its
// own restarts (see handover.go): the gear stays started meanwhile.
func (g *gear) setHandingOver(on bool) {
	g.statusMu.Lock()
	defer g.statusMu.Unlock()
	g.handingOver = on
}

// setWebUp notes whether the web process answers, and reports the gear
// started when it does and its load balancer, if it should run one,
// listens.
func (g *gear) setWebUp(up bool) {
	g.statusMu.Lock()
	defer g.statusMu.Unlock()
	g.webUp = up
	if up {
		// Its readiness probe found the port the gear's own.
		g.clearPortTakenLocked()
		g.s.answering.Store(g.id, true)
	} else {
		g.s.answering.Delete(g.id)
	}
	g.reportUpLocked()
}

// notePortTaken notes what a check of the owner of the gear's port found:
// a *portTakenError, or nil when no other uid holds it. Other errors
// (nothing answers yet) change nothing.
func (g *gear) notePortTaken(err error) {
	var pt *portTakenError
	switch {
	case err == nil:
		g.setPortTaken(nil)
	case errors.As(err, &pt):
		g.setPortTaken(pt)
	}
}

// setPortTaken notes that a process of another uid holds the gear's web
// port (nil: none does), and reports it: such a gear is not started, and
// its status asks every load balancer to send it nothing (PortTaken).
func (g *gear) setPortTaken(pt *portTakenError) {
	g.statusMu.Lock()
	defer g.statusMu.Unlock()
	if pt == nil {
		if g.clearPortTakenLocked() && g.status.State != "" {
			g.reportLocked(g.status.State, g.reason)
		}
		return
	}
	if old := g.portTaken; old != nil && *old == *pt {
		return
	}
	g.portTaken = pt
	g.log.Warn().Int("port", pt.port).Int("squatter_uid", pt.uid).Int("gear_uid", pt.want).
		Msg("gear port taken by another user's process: gear not started, no requests routed to it")
	if g.out != nil {
		fmt.Fprintf(g.out, "gearbox: %s\n", pt.Error())
	}
	st := g.status.State
	switch st {
	case "":
		st = state.GearNew
	case state.GearStarted:
		st = state.GearStopped
	}
	g.reportLocked(st, g.reason)
}

// clearPortTakenLocked forgets that the gear's port was taken, and
// reports whether it was.
func (g *gear) clearPortTakenLocked() bool {
	if g.portTaken == nil {
		return false
	}
	g.portTaken = nil
	return true
}

// setLBDown notes why the load balancer that the gear should run does not
// listen ("" if it does or none is wanted), and reports the change if the
// web process answers.
func (g *gear) setLBDown(why string) {
	g.statusMu.Lock()
	defer g.statusMu.Unlock()
	if g.lbDown == why {
		return
	}
	g.lbDown = why
	g.reportUpLocked()
}

// reportUpLocked reports a gear whose web process answers: started, unless
// its load balancer does not listen yet.
func (g *gear) reportUpLocked() {
	if !g.webUp {
		return
	}
	if g.lbDown != "" {
		st := state.GearStopped
		if g.status.State == state.GearNew {
			st = state.GearNew
		}
		g.reportLocked(st, "starting: "+g.lbDown)
		return
	}
	g.reportLocked(state.GearStarted, "")
}

// ensureReported rewrites the status if the store holds another.
func (g *gear) ensureReported() {
	g.statusMu.Lock()
	defer g.statusMu.Unlock()
	if g.status.State == "" {
		return
	}
	if g.reported {
		var cur state.GearStatus
		if _, err := g.s.st.Get(state.BucketGearStatus, g.id, &cur); err == nil && sameStatus(cur, g.status) {
			return
		}
		g.status.UpdatedAt = g.s.cfg.Now()
	}
	g.writeLocked()
}

func (g *gear) writeLocked() {
	if _, err := g.s.st.Put(context.Background(), state.BucketGearStatus, g.id, g.status); err != nil {
		if errors.Is(err, store.ErrClosed) {
			g.log.Debug().Err(err).Str("state", g.status.State).Msg("gear status not written")
		} else {
			g.log.Warn().Err(err).Str("state", g.status.State).Msg("write gear status failed")
		}
		return
	}
	g.reported = true
}

// reassert writes the gear's last status again when the record in the
// store is not this node's: a stale copy of the gear on a node it was
// moved away from wrote over it, or deleted it, as it was destroyed.
func (g *gear) reassert(cur *state.GearStatus) {
	g.statusMu.Lock()
	defer g.statusMu.Unlock()
	if !g.reported || g.status.State == "" {
		return // nothing written yet; the first report will be
	}
	if cur != nil && cur.Node == g.s.name {
		return
	}
	g.log.Info().Msg("gear status written by another node: reported again")
	g.status.UpdatedAt = g.s.cfg.Now()
	g.writeLocked()
}

// sameStatus compares everything but UpdatedAt.
func sameStatus(a, b state.GearStatus) bool {
	return a.ID == b.ID && a.Node == b.Node && a.State == b.State && a.Reason == b.Reason && a.Deployment == b.Deployment && a.Restarts == b.Restarts && a.Health == b.Health && a.Draining == b.Draining &&
		a.PortTaken == b.PortTaken && slices.Equal(a.LogTail, b.LogTail) && a.DataCopy == b.DataCopy && a.FailedDeployment == b.FailedDeployment &&
		sameEndpoints(a.Endpoints, b.Endpoints)
}

func sameEndpoints(a, b []state.Endpoint) bool {
	return slices.EqualFunc(a, b, func(x, y state.Endpoint) bool {
		return x.CartridgeName == y.CartridgeName && x.ExternalAddress == y.ExternalAddress && x.ExternalPort == y.ExternalPort &&
			x.InternalAddress == y.InternalAddress && x.InternalPort == y.InternalPort &&
			slices.Equal(x.Protocols, y.Protocols) && slices.Equal(x.Types, y.Types)
	})
}
