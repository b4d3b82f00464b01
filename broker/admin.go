package broker

import (
	"errors"
	"fmt"
	"net/http"

	"gearbox/broker/api"
	"gearbox/store"
	"gearbox/store/state"
)

// PUT .../applications/{app}: deploy_branch, https_redirect and
// hsts_max_age (the app's owner), or ha_multiplier (admin).
func (b *Broker) updateApp(w http.ResponseWriter, r *http.Request, u *state.User, p params) error {
	a, err := b.app(u, r.PathValue("ns"), r.PathValue("app"))
	if err != nil {
		return err
	}
	_, setBranch := p["deploy_branch"]
	_, setRedirect := p["https_redirect"]
	_, setHSTS := p["hsts_max_age"]
	if setBranch || setRedirect || setHSTS {
		var msgs []string
		if setBranch {
			branch := p.str("deploy_branch")
			if !state.ValidBranch(branch) {
				return badBranch(branch)
			}
			a.DeployBranch = branch
			msgs = append(msgs, fmt.Sprintf("Pushes of branch %s to the git remote of %s are deployed from now on.", branch, a.Name))
		}
		if setRedirect {
			on, err := p.boolean("https_redirect", false)
			if err != nil {
				return err
			}
			a.HTTPSRedirect = on
			if on {
				msgs = append(msgs, fmt.Sprintf("Plain HTTP requests to %s are redirected to HTTPS.", a.Name))
			} else {
				msgs = append(msgs, fmt.Sprintf("%s answers plain HTTP requests.", a.Name))
			}
		}
		if setHSTS {
			age, _, err := p.integer("hsts_max_age")
			if err != nil {
				return err
			}
			if age < 0 || age > 2*365*24*3600 {
				return fieldErr("hsts_max_age", 1, "Invalid hsts_max_age '%d': use seconds from 0 (no HSTS) to 63072000 (two years).", age)
			}
			a.HSTSMaxAge = age
			if age > 0 {
				msgs = append(msgs, fmt.Sprintf("Answers of %s over HTTPS carry Strict-Transport-Security max-age=%d.", a.Name, age))
			} else {
				msgs = append(msgs, fmt.Sprintf("Answers of %s carry no Strict-Transport-Security.", a.Name))
			}
		}
		if err := b.commit(r.Context(), []store.Op{{Bucket: state.BucketApps, Key: state.AppKey(a.Domain, a.Name), Value: a}}, nil); err != nil {
			return err
		}
		b.log.Info().Str("app", a.Name).Str("domain", a.Domain).Str("deploy_branch", a.Branch()).Bool("https_redirect", a.HTTPSRedirect).
			Int("hsts_max_age", a.HSTSMaxAge).Msg("app settings changed")
		v, err := b.currentView(a, false)
		if err != nil {
			return err
		}
		reply(w, http.StatusOK, "application", v, msgs...)
		return nil
	}
	if err := requireAdmin(u); err != nil {
		return err
	}
	m, ok, err := p.integer("ha_multiplier")
	if err != nil {
		return err
	}
	if !ok {
		return fieldErr("ha_multiplier", 1, "Pass ha_multiplier (0: exactly two LB gears; m: every m-th gear is an LB gear).")
	}
	if m < 0 {
		return fieldErr("ha_multiplier", 1, "Invalid ha_multiplier '%d': use 0 or more.", m)
	}
	owner, err := b.owner(a)
	if err != nil {
		return err
	}
	pl, err := b.planFor(owner, a)
	if err != nil {
		return err
	}
	a.HAMultiplier = m
	if err := b.apply(r.Context(), pl); err != nil {
		return err
	}
	b.log.Info().Str("app", a.Name).Str("domain", a.Domain).Int("ha_multiplier", m).Msg("ha multiplier set")
	v, err := b.currentView(a, false)
	if err != nil {
		return err
	}
	reply(w, http.StatusOK, "application", v, fmt.Sprintf("HA multiplier of %s set to %d.", a.Name, m))
	return nil
}

// relocate moves gear g of app a to node target in cv: new ports there,
// and the routing events that drop its endpoints at the old address and
// port, then add them at the new (each event names the endpoint it is
// about). It returns the moved gear; nothing is written.
func relocate(b *Broker, cv *clusterView, a *state.App, g state.Gear, target string) (state.Gear, []state.RoutingEvent, error) {
	old := g
	cv.freePorts(g)
	g.Node = target
	var err error
	if g.Port, err = cv.port(target); err != nil {
		return g, nil, err
	}
	if g.LB {
		if g.LBPort, err = cv.port(target); err != nil {
			return g, nil, err
		}
	}
	cv.adjustLoad(old.Node, -1)
	cv.adjustLoad(target, +1)
	pl := &plan{b: b, cv: cv, app: a}
	var events []state.RoutingEvent
	for _, step := range []struct {
		action string
		gear   *state.Gear
	}{{state.ActionRemovePublicEndpoint, &old}, {state.ActionAddPublicEndpoint, &g}} {
		e := pl.event(step.action)
		pl.fillEndpoint(&e, step.gear, false)
		events = append(events, e)
		if step.gear.LB {
			e := pl.event(step.action)
			pl.fillEndpoint(&e, step.gear, true)
			events = append(events, e)
		}
	}
	return g, events, nil
}

// GET /broker/rest/nodes (admin)
func (b *Broker) listNodes(w http.ResponseWriter, r *http.Request, u *state.User, p params) error {
	if err := requireAdmin(u); err != nil {
		return err
	}
	cv, err := b.loadCluster()
	if err != nil {
		return err
	}
	out := []api.Node{}
	for _, n := range cv.nodes {
		rec := cv.byName[n.Name]
		out = append(out, api.Node{Name: n.Name, Addr: rec.Addr, Zone: n.Zone, Region: n.Region,
			Alive: n.Alive, Draining: n.Draining, Gears: n.Gears, MaxGears: n.MaxGears, Isolation: rec.Isolation, Evacuation: cv.evacuation[n.Name]})
	}
	reply(w, http.StatusOK, "nodes", out)
	return nil
}

// POST /broker/rest/nodes/{node}/events (admin): event=drain|undrain,
// evacuate=bool (default true). A draining node gets no new gears; with
// evacuate its gears are moved off (evacuate.go), else they stay until
// moved.
func (b *Broker) nodeEvent(w http.ResponseWriter, r *http.Request, u *state.User, p params) error {
	if err := requireAdmin(u); err != nil {
		return err
	}
	name := r.PathValue("node")
	if _, err := b.st.GetRecord(state.BucketNodes, name); errors.Is(err, store.ErrNotFound) {
		return notFound("Node '%s' not found.", name)
	} else if err != nil {
		return err
	}
	ev := p.str("event")
	if ev != "drain" && ev != "undrain" {
		return fieldErr("event", 1, "Invalid node event '%s' specified. Valid events are: drain, undrain.", ev)
	}
	evacuate, err := p.boolean("evacuate", true)
	if err != nil {
		return err
	}
	na := state.NodeAdmin{Name: name, Draining: ev == "drain", Evacuate: ev == "drain" && evacuate}
	if _, err := b.st.Put(r.Context(), state.BucketNodeAdmin, name, na); err != nil {
		return err
	}
	b.log.Info().Str("node", name).Str("event", ev).Bool("evacuate", na.Evacuate).Str("by", u.Login).Msg("node event")
	msg := fmt.Sprintf("Node %s: %s done.", name, ev)
	if na.Evacuate {
		n := 0
		if cv, err := b.loadCluster(); err == nil {
			for _, g := range cv.gears {
				if g.Node == name {
					n++
				}
			}
		}
		msg = fmt.Sprintf("Node %s: drain done; its %d gear(s) move to other nodes one at a time ('gearbox node list' shows how far).", name, n)
	}
	reply(w, http.StatusOK, "node", nil, msg)
	return nil
}

// POST /broker/rest/gears/{gear}/move (admin): node=TARGET, force=bool.
// A move that would leave an HA app's LB gears on one node or one zone is
// refused unless forced. The gear is replaced on the target, data and
// all, as a drain's evacuation replaces it: the reply is the replacement.
func (b *Broker) moveGear(w http.ResponseWriter, r *http.Request, u *state.User, p params) error {
	if err := requireAdmin(u); err != nil {
		return err
	}
	id := r.PathValue("gear")
	var g state.Gear
	if _, err := b.st.Get(state.BucketGears, id, &g); errors.Is(err, store.ErrNotFound) {
		return notFound("Gear '%s' not found.", id)
	} else if err != nil {
		return err
	}
	target := p.str("node")
	force, err := p.boolean("force", false)
	if err != nil {
		return err
	}
	cv, err := b.loadCluster()
	if err != nil {
		return err
	}
	tn := cv.byName[target]
	switch {
	case target == "":
		return fieldErr("node", 1, "Pass node=NAME, the node to move the gear to.")
	case tn == nil:
		return notFound("Node '%s' not found.", target)
	case target == g.Node:
		return fieldErr("node", 1, "Gear '%s' is already on node '%s'.", id, target)
	case !cv.alive[target]:
		return fieldErr("node", 1, "Node '%s' is not alive.", target)
	case cv.draining[target]:
		return fieldErr("node", 1, "Node '%s' is draining.", target)
	}
	load := 0
	for _, og := range cv.gears {
		if og.Node == target {
			load++
		}
	}
	if load >= tn.MaxGears {
		return fieldErr("node", 1, "Node '%s' is full (%d of %d gears).", target, load, tn.MaxGears)
	}
	var a state.App
	if _, err := b.st.Get(state.BucketApps, g.App, &a); err != nil {
		return err
	}
	if a.Region != "" && tn.Region != a.Region {
		return fieldErr("node", 1, "Node '%s' is in region '%s'; application '%s' is pinned to region '%s'.", target, tn.Region, a.Name, a.Region)
	}
	// The placement rule of nodes that do not isolate gears (see Place).
	for _, n := range cv.nodes {
		if n.Name == target && !n.Isolated && hostsOthers(n.Owners, a.Owner) && !force {
			return errorf(http.StatusConflict, 1, "Node '%s' does not isolate gears and hosts another user's; pass force=true (gearbox gear move --force) to move gear '%s' there anyway.", target, id)
		}
	}
	if a.HA && g.LB && !force {
		var before, after []string
		for _, og := range gearsOf(cv.gears, g.App) {
			if og.LB {
				before = append(before, og.Node)
				if og.ID == g.ID {
					after = append(after, target)
				} else {
					after = append(after, og.Node)
				}
			}
		}
		nodes, zones := lbSpread(after, cv.zoneOf())
		_, zonesBefore := lbSpread(before, cv.zoneOf())
		if nodes < 2 || (nodes < len(after) && !b.cfg.AllowMultipleLBPerNode) {
			return errorf(http.StatusConflict, 1, "Moving gear '%s' to node '%s' would put LB gears of HA application '%s' on one node; pass force=true (gearbox gear move --force) to move it anyway.", id, target, a.Name)
		}
		if zones < 2 && zonesBefore >= 2 {
			return errorf(http.StatusConflict, 1, "Moving gear '%s' to node '%s' would put all LB gears of HA application '%s' in one zone; pass force=true (gearbox gear move --force) to move it anyway.", id, target, a.Name)
		}
	}
	if g.Replaces != nil {
		return errorf(http.StatusConflict, 1, "Gear '%s' is still replacing gear '%s'; move it once that is done.", id, g.Replaces.Gear)
	}
	for _, og := range cv.gears {
		if og.Replaces != nil && og.Replaces.Gear == id {
			return errorf(http.StatusConflict, 1, "Gear '%s' is already being moved, to node '%s' as gear '%s'.", id, og.Node, og.ID)
		}
	}
	// A planned move: a replacement starts on the target with a copy of
	// the gear's data directory, and the gear stops once it serves
	// (evacuate.go).
	rg, why, err := b.startMove(r.Context(), cv, &a, g, target)
	if err != nil {
		return err
	}
	if why != "" {
		return errorf(http.StatusServiceUnavailable, 140, "%s", why)
	}
	b.log.Info().Str("gear", id).Str("from", g.Node).Str("to", target).Str("replacement", rg.ID).Bool("forced", force).Str("by", u.Login).Msg("gear move started")
	reply(w, http.StatusOK, "gear", b.gearView(&rg, cv, nil, true),
		fmt.Sprintf("Gear %s moves from %s to %s as gear %s: it starts there with a copy of the data directory, and %s stops once it serves ('gearbox alerts' says when the move is done).", id, g.Node, target, rg.ID, id))
	return nil
}

// POST /broker/rest/gears/{gear}/events and
// .../applications/{app}/gears/{gear}/events: event=start|stop for one
// gear, as OpenShift's `control stop` on one gear did. The node takes a
// stopping gear out of its load balancers and drains it first.
func (b *Broker) gearEvent(w http.ResponseWriter, r *http.Request, u *state.User, p params) error {
	id := r.PathValue("gear")
	var g state.Gear
	if _, err := b.st.Get(state.BucketGears, id, &g); errors.Is(err, store.ErrNotFound) {
		return notFound("Gear '%s' not found.", id)
	} else if err != nil {
		return err
	}
	if ns, name := r.PathValue("ns"), r.PathValue("app"); ns != "" && (ns != g.Domain || name != g.AppName) {
		return notFound("Gear '%s' not found in application '%s'.", id, name)
	}
	a, err := b.app(u, g.Domain, g.AppName)
	if err != nil {
		return err
	}
	ev := p.str("event")
	want, action := state.GearStarted, state.ActionGearStart
	switch ev {
	case "start":
	case "stop":
		want, action = state.GearStopped, state.ActionGearStop
	default:
		return fieldErr("event", 126, "Invalid gear event '%s' specified. Valid events are: start, stop.", ev)
	}
	if g.State != want {
		g.State = want
		e := state.RoutingEvent{Action: action, AppName: a.Name, Namespace: a.Domain, Scalable: a.Scalable, HA: a.HA, GearID: g.ID}
		if err := b.commit(r.Context(), []store.Op{{Bucket: state.BucketGears, Key: g.ID, Value: g}}, []state.RoutingEvent{e}); err != nil {
			return err
		}
		b.log.Info().Str("gear", id).Str("app", a.Name).Str("domain", a.Domain).Str("event", ev).Str("by", u.Login).Msg("gear event")
	}
	cv, err := b.loadCluster()
	if err != nil {
		return err
	}
	statuses, err := b.gearStatuses()
	if err != nil {
		return err
	}
	reply(w, http.StatusOK, "gear", b.gearView(&g, cv, statuses, true), fmt.Sprintf("Gear %s: %s requested.", id, ev))
	return nil
}

// badBranch is the error of a deploy branch name that cannot be one.
func badBranch(name string) error {
	return fieldErr("deploy_branch", 1, "Invalid deploy branch '%s': use a git branch name of letters, digits and . _ - / (no '..', no trailing '/' or '.lock').", name)
}
