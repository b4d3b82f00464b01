package broker

import (
	"context"
	"errors"
	"net/http"
	"slices"

	"gearbox/store"
	"gearbox/store/state"
)

// plan accumulates the changes one call makes to one app: gears added,
// removed and changed, and the routing events they mean. Nothing is
// written until commit.
type plan struct {
	b       *Broker
	cv      *clusterView
	owner   *state.User
	app     *state.App
	gears   []state.Gear // live gears after the changes, by ordinal
	removed []state.Gear
	dirty   map[string]bool
	events  []state.RoutingEvent
	budget  int // gears the owner may still add
}

func (b *Broker) newPlan(cv *clusterView, owner *state.User, app *state.App) (*plan, error) {
	key := state.AppKey(app.Domain, app.Name)
	p := &plan{b: b, cv: cv, owner: owner, app: app, gears: gearsOf(cv.gears, key), dirty: map[string]bool{}}
	used := 0
	apps, err := list[state.App](b.st, state.BucketApps)
	if err != nil {
		return nil, err
	}
	owned := map[string]bool{}
	for _, a := range apps {
		if a.Owner == owner.Login {
			owned[state.AppKey(a.Domain, a.Name)] = true
		}
	}
	for _, g := range cv.gears {
		if owned[g.App] {
			used++
		}
	}
	p.budget = owner.Capabilities.MaxGears - used
	return p, nil
}

// planFor loads the cluster and starts a plan for app a owned by owner.
func (b *Broker) planFor(owner *state.User, a *state.App) (*plan, error) {
	cv, err := b.loadCluster()
	if err != nil {
		return nil, err
	}
	return b.newPlan(cv, owner, a)
}

// apply finishes pl and commits its writes and routing events.
func (b *Broker) apply(ctx context.Context, pl *plan) error {
	ops, events, err := pl.finish()
	if err != nil {
		return err
	}
	return b.commit(ctx, ops, events)
}

func (p *plan) event(action string) state.RoutingEvent {
	return state.RoutingEvent{Action: action, AppName: p.app.Name, Namespace: p.app.Domain, Scalable: p.app.Scalable, HA: p.app.HA}
}

func (p *plan) lbCount() int {
	n := 0
	for _, g := range p.gears {
		if g.LB {
			n++
		}
	}
	return n
}

// placement describes the app's current spread for the placer.
func (p *plan) placement() AppPlacement {
	ap := AppPlacement{Owner: p.app.Owner, Region: p.app.Region, GearsOn: map[string]int{}, LBsOn: map[string]int{}}
	for _, g := range p.gears {
		ap.GearsOn[g.Node]++
		if g.LB {
			ap.LBsOn[g.Node]++
		}
	}
	return ap
}

func (p *plan) policy() PlacementPolicy {
	return PlacementPolicy{MinZones: p.b.cfg.ZonesMinPerGearGroup, AllowMultipleLBPerNode: p.b.cfg.AllowMultipleLBPerNode}
}

// placementErr turns a placement failure into an API error.
func placementErr(err error) error {
	var mz *MinZonesError
	if errors.Is(err, ErrNoNodes) || errors.As(err, &mz) {
		return errorf(http.StatusUnprocessableEntity, 140, "%s", err.Error())
	}
	return err
}

// addGear places one new gear, an LB gear when the app needs another.
func (p *plan) addGear() error {
	if p.budget <= 0 {
		return errorf(http.StatusUnprocessableEntity, 104, "User '%s' has already reached the gear limit of %d.", p.owner.Login, p.owner.Capabilities.MaxGears)
	}
	lb := p.app.Scalable && p.lbCount() < lbTarget(p.app, len(p.gears)+1)
	node, err := p.policy().Place(p.cv.nodes, p.placement(), lb)
	if err != nil && lb && errors.Is(err, ErrNoNodes) && p.lbCount() >= max(p.app.LBMin, 1) {
		// The minimum is met: an LB gear the multiplier asks for waits
		// for a node without one, and the app still gets its web gear.
		lb = false
		node, err = p.policy().Place(p.cv.nodes, p.placement(), false)
	}
	if err != nil {
		return placementErr(err)
	}
	p.app.NextGear++
	g := state.Gear{ID: randomID(12), App: state.AppKey(p.app.Domain, p.app.Name), AppName: p.app.Name, Domain: p.app.Domain,
		Node: node, Size: p.app.GearSize, Cartridge: p.app.Cartridge, State: p.app.State, Ordinal: p.app.NextGear,
		Deployment: p.app.Deployment, Restarts: p.app.Restarts, CreatedAt: p.b.cfg.Now()}
	if g.Port, err = p.cv.port(node); err != nil {
		return errorf(http.StatusServiceUnavailable, 140, "%s", err.Error())
	}
	p.cv.adjustLoad(node, +1)
	p.gears = append(p.gears, g)
	p.dirty[g.ID] = true
	p.budget--
	if lb {
		if err := p.setLB(len(p.gears)-1, true); err != nil {
			return err
		}
	}
	p.ensureHead()
	return nil
}

// setLB makes gear i an LB gear or a plain web gear.
func (p *plan) setLB(i int, lb bool) error {
	g := &p.gears[i]
	if g.LB == lb {
		return nil
	}
	g.LB = lb
	p.dirty[g.ID] = true
	if lb {
		port, err := p.cv.port(g.Node)
		if err != nil {
			return errorf(http.StatusServiceUnavailable, 140, "%s", err.Error())
		}
		g.LBPort = port
		e := p.event(state.ActionAddPublicEndpoint)
		p.fillEndpoint(&e, g, true)
		p.events = append(p.events, e)
	} else {
		e := p.event(state.ActionRemovePublicEndpoint)
		p.fillEndpoint(&e, g, true)
		p.events = append(p.events, e)
		delete(p.cv.ports[g.Node], g.LBPort)
		g.LBPort = 0
		g.Head = false
		if g.RotatedOut {
			// A web gear always serves: routers that saw it rotate out
			// must hear that it is back.
			g.RotatedOut = false
			e := p.event(state.ActionRotateIn)
			e.GearID = g.ID
			p.events = append(p.events, e)
		}
	}
	return nil
}

// fillEndpoint describes gear g's web (or LB) endpoint in a routing event.
func (p *plan) fillEndpoint(e *state.RoutingEvent, g *state.Gear, lb bool) {
	e.GearID = g.ID
	if n := p.cv.byName[g.Node]; n != nil {
		e.PublicAddress = n.Addr
	}
	e.Protocols = []string{"http", "ws"}
	e.Mappings = []state.Mapping{{Frontend: "", Backend: ""}}
	if lb {
		e.PublicPortName = "GEARBOX_LB_PORT"
		e.PublicPort = g.LBPort
		e.Types = []string{"load_balancer"}
	} else {
		e.PublicPortName = "GEARBOX_WEB_PORT"
		e.PublicPort = g.Port
		e.Types = []string{"web_framework"}
	}
}

// ensureHead keeps exactly one head gear: the current head while it is
// an LB gear, else the oldest LB gear. (The head is the oldest LB gear
// unless healing re-designated it when its node was lost, heal.go.)
func (p *plan) ensureHead() {
	head := -1
	for i := range p.gears {
		if p.gears[i].LB && p.gears[i].Head {
			head = i
			break
		}
	}
	for i := range p.gears {
		if head < 0 && p.gears[i].LB {
			head = i
		}
	}
	for i := range p.gears {
		want := i == head
		if p.gears[i].Head != want {
			p.gears[i].Head = want
			p.dirty[p.gears[i].ID] = true
		}
	}
}

// removeGear removes the newest gear that can go: never the head, and an
// LB gear only while more LB gears remain than the app needs.
func (p *plan) removeGear() error {
	target := lbTarget(p.app, len(p.gears)-1)
	lbs := p.lbCount()
	for i := len(p.gears) - 1; i >= 0; i-- {
		g := p.gears[i]
		if g.Head || (g.LB && lbs-1 < target) {
			continue
		}
		p.gears = append(p.gears[:i], p.gears[i+1:]...)
		p.removed = append(p.removed, g)
		delete(p.dirty, g.ID)
		p.cv.freePorts(g)
		p.cv.adjustLoad(g.Node, -1)
		p.budget++
		e := p.event(state.ActionRemovePublicEndpoint)
		p.fillEndpoint(&e, &g, false)
		p.events = append(p.events, e)
		if g.LB {
			e := p.event(state.ActionRemovePublicEndpoint)
			p.fillEndpoint(&e, &g, true)
			p.events = append(p.events, e)
		}
		return nil
	}
	return errorf(http.StatusUnprocessableEntity, 168, "No gear of application '%s' can be removed without going below its load balancer minimum.", p.app.Name)
}

// rebalanceLBs makes the LB gear count match the app's target: it promotes
// existing web gears (on nodes, then zones, without an LB gear of this
// app first) or demotes the newest LB gears other than the head. When no
// existing gear can be promoted (all of them share nodes with the app's LB
// gears), it adds a new LB gear instead, as long as the app's maximum
// allows, at most as many as were missing.
func (p *plan) rebalanceLBs() error {
	added, missing := 0, lbTarget(p.app, len(p.gears))-p.lbCount()
	for p.lbCount() < lbTarget(p.app, len(p.gears)) {
		if i := p.promotable(); i >= 0 {
			if err := p.setLB(i, true); err != nil {
				return err
			}
			continue
		}
		if p.lbCount() >= max(p.app.LBMin, 1) {
			// Extra LB gears of the multiplier are best effort: they
			// wait for a node without one.
			break
		}
		// The minimum is not met and no gear can become an LB gear:
		// add one where placement finds room.
		if added < missing && (p.app.ScalesTo < 0 || len(p.gears) < p.app.ScalesTo) {
			if err := p.addGear(); err != nil {
				return err
			}
			added++
			continue
		}
		return errorf(http.StatusUnprocessableEntity, 140, "No gear of application '%s' can become a load balancer: every node holding its gears already holds one of its LB gears.", p.app.Name)
	}
	target := lbTarget(p.app, len(p.gears))
	for i := len(p.gears) - 1; i >= 0 && p.lbCount() > target; i-- {
		if p.gears[i].LB && !p.gears[i].Head {
			if err := p.setLB(i, false); err != nil {
				return err
			}
		}
	}
	p.ensureHead()
	return nil
}

// promotable picks the web gear best placed to become an LB gear, or -1.
func (p *plan) promotable() int {
	lbNodes, lbZones := map[string]bool{}, map[string]int{}
	for _, g := range p.gears {
		if g.LB {
			lbNodes[g.Node] = true
			lbZones[p.zone(g.Node)]++
		}
	}
	best := -1
	for i, g := range p.gears {
		if g.LB || (lbNodes[g.Node] && !p.b.cfg.AllowMultipleLBPerNode) {
			continue
		}
		if best < 0 || lbZones[p.zone(g.Node)] < lbZones[p.zone(p.gears[best].Node)] {
			best = i
		}
	}
	return best
}

func (p *plan) zone(node string) string {
	if n := p.cv.byName[node]; n != nil {
		return n.Zone
	}
	return ""
}

// updateRotation applies the gear ratio: LB gears stop serving requests
// themselves once the app has enough gears.
//
// It returns the rotate_in and rotate_out events apart, so that finish can
// order them around the endpoint changes: a routing layer applying events
// in order never has fewer serving gears than before or after.
func (p *plan) updateRotation() (in, out []state.RoutingEvent) {
	rot := rotatedOut(len(p.gears), p.lbCount(), appGearRatio(p.app, p.b.cfg.GearRatio))
	for i := range p.gears {
		g := &p.gears[i]
		want := g.LB && rot
		if g.RotatedOut == want {
			continue
		}
		g.RotatedOut = want
		p.dirty[g.ID] = true
		if want {
			e := p.event(state.ActionRotateOut)
			e.GearID = g.ID
			out = append(out, e)
		} else {
			e := p.event(state.ActionRotateIn)
			e.GearID = g.ID
			in = append(in, e)
		}
	}
	return in, out
}

// scaleTo adds or removes gears until the app has n.
func (p *plan) scaleTo(n int) error {
	for len(p.gears) < n {
		if err := p.addGear(); err != nil {
			return err
		}
	}
	for len(p.gears) > n {
		if err := p.removeGear(); err != nil {
			return err
		}
	}
	return nil
}

// finish rebalances LB gears and rotation, and returns the writes.
func (p *plan) finish() ([]store.Op, []state.RoutingEvent, error) {
	if err := p.rebalanceLBs(); err != nil {
		return nil, nil, err
	}
	rotIn, rotOut := p.updateRotation()
	// Order: gears rotating in first, then the endpoint changes, then new
	// gears' web endpoints, then gears rotating out.
	// App-level events (create_application, enable_ha, disable_ha) stay
	// first: they say what the gear events that follow are about.
	lead := 0
	for lead < len(p.events) && appLevel(p.events[lead].Action) {
		lead++
	}
	p.events = slices.Concat(p.events[:lead], rotIn, p.events[lead:])
	for _, g := range p.gears {
		if p.dirty[g.ID] && g.Ordinal > 0 && isNew(p.cv.gears, g.ID) {
			e := p.event(state.ActionAddPublicEndpoint)
			p.fillEndpoint(&e, &g, false)
			p.events = append(p.events, e)
		}
	}
	p.events = append(p.events, rotOut...)
	ops := []store.Op{{Bucket: state.BucketApps, Key: state.AppKey(p.app.Domain, p.app.Name), Value: p.app}}
	for _, g := range p.gears {
		if p.dirty[g.ID] {
			ops = append(ops, store.Op{Bucket: state.BucketGears, Key: g.ID, Value: g})
		}
	}
	for _, g := range p.removed {
		// The node deletes the gear's status record once it has
		// destroyed the gear: that record is the node's to write.
		ops = append(ops, store.Op{Bucket: state.BucketGears, Key: g.ID, Delete: true})
	}
	return ops, p.events, nil
}

func isNew(existing []state.Gear, id string) bool {
	for _, g := range existing {
		if g.ID == id {
			return false
		}
	}
	return true
}

func appLevel(action string) bool {
	switch action {
	case state.ActionCreateApplication, state.ActionEnableHA, state.ActionDisableHA:
		return true
	}
	return false
}
