package broker

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"gearbox/broker/api"
	"gearbox/store"
	"gearbox/store/state"
)

// haHost is HA app a's routing-layer hostname.
func (b *Broker) haHost(a *state.App) string {
	return state.HAHost(a.Name, a.Domain, b.cfg.Domain, b.cfg.HAPrefix, b.cfg.HASuffix)
}

func (b *Broker) appURL(a *state.App) string {
	return "http://" + state.AppHost(a.Name, a.Domain, b.cfg.Domain) + "/"
}

// appView is app a as the API shows it, with its gears when withGears.
func (b *Broker) appView(a *state.App, cv *clusterView, withGears bool) (api.App, error) {
	gears := gearsOf(cv.gears, state.AppKey(a.Domain, a.Name))
	v := api.App{ID: a.ID, Name: a.Name, Domain: a.Domain, Owner: a.Owner, AppURL: b.appURL(a), Framework: a.Cartridge,
		Scalable: a.Scalable, HA: a.HA, GearProfile: a.GearSize, Region: a.Region, State: a.State, GearCount: len(gears),
		ScalesFrom: a.ScalesFrom, ScalesTo: a.ScalesTo, HAMultiplier: a.HAMultiplier, Aliases: a.Aliases, CreatedAt: a.CreatedAt,
		Autoscale: a.Scalable && !a.AutoscaleOff, DeployBranch: a.Branch(),
		HTTPSRedirect: a.HTTPSRedirect, HSTSMaxAge: a.HSTSMaxAge}
	if v.Aliases == nil {
		v.Aliases = []string{}
	}
	if a.HA {
		v.HAURL = "http://" + b.haHost(a) + "/"
	}
	if a.Scalable {
		var lbNodes []string
		s := &api.LBSummary{}
		alive := map[string]bool{}
		for _, g := range gears {
			if g.LB {
				s.Gears++
				lbNodes = append(lbNodes, g.Node)
				s.RotatedOut = s.RotatedOut || g.RotatedOut
				if cv.alive[g.Node] {
					alive[g.Node] = true
				}
			}
		}
		s.Nodes, s.Zones = lbSpread(lbNodes, cv.zoneOf())
		s.ReallyHA = len(alive) >= 2
		v.LB = s
	}
	if withGears {
		statuses, err := b.gearStatuses()
		if err != nil {
			return v, err
		}
		for _, g := range gears {
			v.Gears = append(v.Gears, b.gearView(&g, cv, statuses, true))
		}
	}
	return v, nil
}

// currentView reports app a as committed, reloading the cluster view.
func (b *Broker) currentView(a *state.App, withGears bool) (api.App, error) {
	cv, err := b.loadCluster()
	if err != nil {
		return api.App{}, err
	}
	return b.appView(a, cv, withGears)
}

func (b *Broker) gearStatuses() (map[string]state.GearStatus, error) {
	ss, err := list[state.GearStatus](b.st, state.BucketGearStatus)
	if err != nil {
		return nil, err
	}
	m := make(map[string]state.GearStatus, len(ss))
	for _, s := range ss {
		m[s.ID] = s
	}
	return m, nil
}

// gearView reports a gear: its state as its node last reported it, or
// unknown while its node is not alive, or new before the first report.
func (b *Broker) gearView(g *state.Gear, cv *clusterView, statuses map[string]state.GearStatus, endpoints bool) api.Gear {
	v := api.Gear{ID: g.ID, Node: g.Node, LB: g.LB, Head: g.Head, RotatedOut: g.RotatedOut, State: state.GearNew}
	if n := cv.byName[g.Node]; n != nil {
		v.Zone, v.Region = n.Zone, n.Region
	}
	if g.LB {
		v.Cartridges = []string{state.CartLB, g.Cartridge}
	} else {
		v.Cartridges = []string{g.Cartridge}
	}
	// A status written by another node is stale: the gear moved.
	if s, ok := statuses[g.ID]; ok && s.Node == g.Node {
		v.State, v.Reason, v.LogTail = s.State, s.Reason, s.LogTail
	}
	if !cv.alive[g.Node] {
		v.State, v.Reason = state.GearUnknown, "node "+g.Node+" is not alive"
	}
	if endpoints {
		addr := ""
		if n := cv.byName[g.Node]; n != nil {
			addr = n.Addr
		}
		if g.LB {
			v.Endpoints = append(v.Endpoints, api.Endpoint{CartridgeName: state.CartLB, ExternalAddress: addr, ExternalPort: g.LBPort,
				InternalAddress: addr, InternalPort: g.LBPort, Protocols: []string{"http", "ws"}, Types: []string{"load_balancer"}})
		}
		v.Endpoints = append(v.Endpoints, api.Endpoint{CartridgeName: g.Cartridge, ExternalAddress: addr, ExternalPort: g.Port,
			InternalAddress: addr, InternalPort: g.Port, Protocols: []string{"http", "ws"}, Types: []string{"web_framework"}})
	}
	return v
}

// app finds app name in namespace ns for u.
func (b *Broker) app(u *state.User, ns, name string) (*state.App, error) {
	if _, err := b.domain(u, ns); err != nil {
		return nil, err
	}
	var a state.App
	if _, err := b.st.Get(state.BucketApps, state.AppKey(ns, name), &a); errors.Is(err, store.ErrNotFound) {
		return nil, notFound("Application '%s' not found in domain '%s'.", name, ns)
	} else if err != nil {
		return nil, err
	}
	return &a, nil
}

// owner is the user who owns app: capabilities are the owner's, also when
// an admin acts on the app.
func (b *Broker) owner(a *state.App) (*state.User, error) {
	o, err := b.user(a.Owner)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errorf(http.StatusConflict, 1, "The owner '%s' of application '%s' no longer exists.", a.Owner, a.Name)
	}
	return o, err
}

// GET /broker/rest/domains/{ns}/applications
func (b *Broker) listApps(w http.ResponseWriter, r *http.Request, u *state.User, p params) error {
	ns := r.PathValue("ns")
	if _, err := b.domain(u, ns); err != nil {
		return err
	}
	apps, err := b.appsIn(ns)
	if err != nil {
		return err
	}
	cv, err := b.loadCluster()
	if err != nil {
		return err
	}
	out := []api.App{}
	for i := range apps {
		v, err := b.appView(&apps[i], cv, false)
		if err != nil {
			return err
		}
		out = append(out, v)
	}
	reply(w, http.StatusOK, "applications", out)
	return nil
}

// GET /broker/rest/domains/{ns}/applications/{app}[?include=gears]
func (b *Broker) showApp(w http.ResponseWriter, r *http.Request, u *state.User, p params) error {
	a, err := b.app(u, r.PathValue("ns"), r.PathValue("app"))
	if err != nil {
		return err
	}
	cv, err := b.loadCluster()
	if err != nil {
		return err
	}
	v, err := b.appView(a, cv, strings.Contains(p.str("include"), "gears"))
	if err != nil {
		return err
	}
	if a.HA && v.LB != nil {
		ok, why, err := b.haEffective(r.Context(), a, cv)
		if err != nil {
			return err
		}
		v.LB.Effective, v.LB.Pending = &ok, why
	}
	reply(w, http.StatusOK, "application", v)
	return nil
}

// POST /broker/rest/domains/{ns}/applications: name, cartridge, scale,
// ha, gear_size (gear_profile), region.
func (b *Broker) createApp(w http.ResponseWriter, r *http.Request, u *state.User, p params) error {
	ns := r.PathValue("ns")
	d, err := b.domain(u, ns)
	if err != nil {
		return err
	}
	name := p.str("name")
	if !state.AppNameRE.MatchString(name) {
		return fieldErr("name", 105, "Invalid application name '%s': use 1 to 32 lower-case letters and digits, no dashes (the hostname is APP-NAMESPACE.%s).", name, b.cfg.Domain)
	}
	if _, err := b.st.GetRecord(state.BucketApps, state.AppKey(ns, name)); err == nil {
		return fieldErr("name", 100, "An application with name '%s' already exists in domain '%s'.", name, ns)
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	owner, err := b.user(d.Owner)
	if err != nil {
		return err
	}
	cart := p.str("cartridge")
	if cart == "" {
		cart = state.CartStatic
	}
	if cart != state.CartStatic {
		return fieldErr("cartridge", 109, "Invalid cartridge '%s'; available: %s.", cart, state.CartStatic)
	}
	size := p.str("gear_size")
	if size == "" {
		size = p.str("gear_profile")
	}
	if size == "" {
		size = state.SizeSmall
	}
	if !slices.Contains(state.GearSizes, size) {
		return fieldErr("gear_size", 134, "Invalid gear size '%s'; valid sizes: %s.", size, strings.Join(state.GearSizes, ", "))
	}
	if !slices.Contains(owner.Capabilities.GearSizes, size) {
		return fieldErr("gear_size", 134, "User '%s' may not create '%s' gears; allowed sizes: %s.", owner.Login, size, strings.Join(owner.Capabilities.GearSizes, ", "))
	}
	scale, err := p.boolean("scale", false)
	if err != nil {
		return err
	}
	ha, err := p.boolean("ha", false)
	if err != nil {
		return err
	}
	scale = scale || ha
	region := p.str("region")
	if region != "" && !regionExists(b, region) {
		return fieldErr("region", 1, "Region '%s' has no nodes.", region)
	}
	branch := p.str("deploy_branch")
	if branch != "" && !state.ValidBranch(branch) {
		return badBranch(branch)
	}
	a := &state.App{DeployBranch: branch, ID: randomID(12), Name: name, Domain: ns, Owner: d.Owner, Cartridge: cart, Scalable: scale,
		GearSize: size, Region: region, State: state.GearStarted, ScalesFrom: 1, ScalesTo: 1,
		HAMultiplier: b.cfg.DefaultHAMultiplier, CreatedAt: b.cfg.Now()}
	if scale {
		a.ScalesTo, a.LBMin, a.LBMax = -1, 1, 1
	}
	if ha {
		if err := b.checkMakeHA(u, owner, a); err != nil {
			return err
		}
	}
	pl, err := b.planFor(owner, a)
	if err != nil {
		return err
	}
	e := pl.event(state.ActionCreateApplication)
	pl.events = append(pl.events, e)
	if err := pl.addGear(); err != nil {
		return err
	}
	if ha {
		makeHA(a)
		pl.events = append(pl.events, pl.event(state.ActionEnableHA))
		if err := pl.scaleTo(max(len(pl.gears), a.ScalesFrom)); err != nil {
			return err
		}
	}
	if err := b.apply(r.Context(), pl); err != nil {
		return err
	}
	b.log.Info().Str("app", name).Str("domain", ns).Bool("scalable", scale).Bool("ha", ha).Int("gears", len(pl.gears)).Msg("application created")
	v, err := b.currentView(a, true)
	if err != nil {
		return err
	}
	reply(w, http.StatusCreated, "application", v, fmt.Sprintf("Application %s was created.", name))
	return nil
}

func regionExists(b *Broker, region string) bool {
	nodes, err := list[state.Node](b.st, state.BucketNodes)
	if err != nil {
		return false
	}
	for _, n := range nodes {
		if n.Region == region {
			return true
		}
	}
	return false
}

// DELETE /broker/rest/domains/{ns}/applications/{app}
func (b *Broker) deleteApp(w http.ResponseWriter, r *http.Request, u *state.User, p params) error {
	a, err := b.app(u, r.PathValue("ns"), r.PathValue("app"))
	if err != nil {
		return err
	}
	ops, events, err := b.destroyApp(a)
	if err != nil {
		return err
	}
	if err := b.commit(r.Context(), ops, events); err != nil {
		return err
	}
	b.removeBlobs(a.Deployments)
	b.log.Info().Str("app", a.Name).Str("domain", a.Domain).Msg("application deleted")
	reply(w, http.StatusOK, "application", nil, fmt.Sprintf("Application %s is deleted.", a.Name))
	return nil
}

// destroyApp returns the writes that delete app and its gears.
func (b *Broker) destroyApp(a *state.App) ([]store.Op, []state.RoutingEvent, error) {
	gears, err := list[state.Gear](b.st, state.BucketGears)
	if err != nil {
		return nil, nil, err
	}
	ops := []store.Op{{Bucket: state.BucketApps, Key: state.AppKey(a.Domain, a.Name), Delete: true}}
	appKey := state.AppKey(a.Domain, a.Name)
	for _, g := range gearsOf(gears, appKey) {
		ops = append(ops, store.Op{Bucket: state.BucketGears, Key: g.ID, Delete: true})
	}
	for _, id := range a.Deployments {
		ops = append(ops, store.Op{Bucket: state.BucketDeployments, Key: state.DeploymentKey(appKey, id), Delete: true})
	}
	if _, err := b.st.GetRecord(state.BucketRollouts, appKey); err == nil {
		ops = append(ops, store.Op{Bucket: state.BucketRollouts, Key: appKey, Delete: true})
	}
	// So does its git repository: every broker removes its copy once the
	// app's record is gone (git.go).
	if _, err := b.st.GetRecord(state.BucketRepos, appKey); err == nil {
		ops = append(ops, store.Op{Bucket: state.BucketRepos, Key: appKey, Delete: true})
	}
	// The aliases go with the app. A remove_alias event for each comes
	// first, so that a routing layer that tracks aliases by their own
	// events, and not by the app's, lets go of them too (OpenShift's
	// routing daemons disagreed on whether delete_application implies
	// it); to one that drops everything of the app on delete_application
	// they are harmless.
	var events []state.RoutingEvent
	for _, h := range a.Aliases {
		certOps, certEvents := certRemoval(b.st, a, h)
		ops, events = append(ops, certOps...), append(events, certEvents...)
		events = append(events, aliasEvent(a, state.ActionRemoveAlias, h))
	}
	events = append(events, state.RoutingEvent{Action: state.ActionDeleteApplication, AppName: a.Name, Namespace: a.Domain, Scalable: a.Scalable, HA: a.HA})
	return ops, events, nil
}

// validEvents are the application events, in the order errors list them.
var validEvents = []string{"start", "stop", "restart", "scale-up", "scale-down", "make-ha", "enable-ha", "disable-ha", "activate",
	"enable-autoscale", "disable-autoscale"}

// POST /broker/rest/domains/{ns}/applications/{app}/events: event=...
func (b *Broker) appEvent(w http.ResponseWriter, r *http.Request, u *state.User, p params) error {
	a, err := b.app(u, r.PathValue("ns"), r.PathValue("app"))
	if err != nil {
		return err
	}
	ev := p.str("event")
	if !slices.Contains(validEvents, ev) {
		return fieldErr("event", 126, "Invalid application event '%s' specified. Valid events are: %s.", ev, strings.Join(validEvents, ", "))
	}
	owner, err := b.owner(a)
	if err != nil {
		return err
	}
	pl, err := b.planFor(owner, a)
	if err != nil {
		return err
	}
	var msg string
	switch ev {
	case "start", "stop", "restart":
		msg, err = pl.control(ev)
	case "scale-up":
		if !a.Scalable {
			return errorf(http.StatusUnprocessableEntity, 255, "Cannot scale a non-scalable application.")
		}
		if a.ScalesTo >= 0 && len(pl.gears) >= a.ScalesTo {
			return errorf(http.StatusUnprocessableEntity, 168, "Cannot scale up beyond maximum gear limit of '%d'.", a.ScalesTo)
		}
		err = pl.addGear()
		msg = fmt.Sprintf("Application %s has scaled up to %d gears.", a.Name, len(pl.gears))
	case "scale-down":
		if !a.Scalable {
			return errorf(http.StatusUnprocessableEntity, 255, "Cannot scale a non-scalable application.")
		}
		if len(pl.gears) <= a.ScalesFrom {
			return errorf(http.StatusUnprocessableEntity, 168, "Cannot scale down below gear limit of '%d'.", a.ScalesFrom)
		}
		err = pl.removeGear()
		msg = fmt.Sprintf("Application %s has scaled down to %d gears.", a.Name, len(pl.gears))
	case "make-ha", "enable-ha":
		if err := b.checkMakeHA(u, owner, a); err != nil {
			return err
		}
		makeHA(a)
		pl.events = append(pl.events, pl.event(state.ActionEnableHA))
		err = pl.scaleTo(max(len(pl.gears), a.ScalesFrom))
		msg = fmt.Sprintf("Application %s is now ha", a.Name)
	case "activate":
		msg, err = b.activateDeployment(a, p.str("deployment_id"))
	case "enable-autoscale", "disable-autoscale":
		if !a.Scalable {
			return errorf(http.StatusUnprocessableEntity, 255, "Application '%s' is not scalable: only scalable applications autoscale.", a.Name)
		}
		a.AutoscaleOff = ev == "disable-autoscale"
		msg = fmt.Sprintf("Autoscaling of %s is on: it scales between %d and %s gears by the sessions of its load balancers.", a.Name, a.ScalesFrom, limitText(a.ScalesTo))
		if a.AutoscaleOff {
			msg = fmt.Sprintf("Autoscaling of %s is off: it keeps its %d gears until scaled by hand.", a.Name, len(pl.gears))
		}
	case "disable-ha":
		if !a.HA {
			return errorf(http.StatusUnprocessableEntity, 1, "Application '%s' is not highly available.", a.Name)
		}
		disableHA(a)
		pl.events = append(pl.events, pl.event(state.ActionDisableHA))
		msg = fmt.Sprintf("Application %s is no longer ha", a.Name)
	}
	if err != nil {
		return err
	}
	if err := b.apply(r.Context(), pl); err != nil {
		return err
	}
	b.log.Info().Str("app", a.Name).Str("domain", a.Domain).Str("event", ev).Int("gears", len(pl.gears)).Msg("application event")
	v, err := b.currentView(a, true)
	if err != nil {
		return err
	}
	reply(w, http.StatusOK, "application", v, msg)
	return nil
}

// control applies start, stop or restart to every gear of the app.
func (pl *plan) control(ev string) (string, error) {
	a := pl.app
	switch ev {
	case "start", "stop":
		want := state.GearStarted
		action := state.ActionGearStart
		if ev == "stop" {
			want, action = state.GearStopped, state.ActionGearStop
		}
		a.State = want
		for i := range pl.gears {
			if pl.gears[i].State != want {
				pl.gears[i].State = want
				pl.dirty[pl.gears[i].ID] = true
				e := pl.event(action)
				e.GearID = pl.gears[i].ID
				pl.events = append(pl.events, e)
			}
		}
		if ev == "stop" {
			return fmt.Sprintf("Application %s has stopped", a.Name), nil
		}
		return fmt.Sprintf("Application %s has started", a.Name), nil
	default:
		// The roll-out restarts the gears one at a time, each once the
		// one before passes its health check.
		for _, g := range pl.gears {
			a.Restarts = max(a.Restarts, g.Restarts)
		}
		a.Restarts++
		return fmt.Sprintf("Application %s has restarted", a.Name), nil
	}
}

// checkMakeHA applies OpenShift's refusals of make-ha.
func (b *Broker) checkMakeHA(caller, owner *state.User, a *state.App) error {
	switch {
	case !b.cfg.AllowHAApplications:
		return errorf(http.StatusUnprocessableEntity, 1, "High availability is disabled on this platform (--allow-ha-applications=false).")
	case !owner.Capabilities.HA && !caller.Admin:
		return forbidden("User '%s' is not allowed to make applications highly available; an administrator can grant the 'ha' capability.", owner.Login)
	case !a.Scalable:
		return errorf(http.StatusUnprocessableEntity, 1, "Application '%s' is not scalable; only scalable applications can be made highly available.", a.Name)
	case a.HA:
		return errorf(http.StatusUnprocessableEntity, 1, "Application '%s' is already highly available.", a.Name)
	}
	return nil
}

// makeHA raises the LB minimum to 2 with no maximum, and the gear group's
// minimum to 2, remembering the limits to restore on disable-ha.
func makeHA(a *state.App) {
	a.PreHA = &state.ScaleLimits{From: a.ScalesFrom, To: a.ScalesTo}
	a.HA = true
	a.LBMin, a.LBMax = 2, -1
	a.ScalesFrom = max(a.ScalesFrom, 2)
	if a.ScalesTo >= 0 && a.ScalesTo < 2 {
		a.ScalesTo = 2
	}
}

// disableHA returns the LB minimum to 1 and the scale limits to what they
// were before make-ha, so that the app can go back to one LB gear.
func disableHA(a *state.App) {
	a.HA = false
	a.LBMin, a.LBMax = 1, 1
	if a.PreHA != nil {
		a.ScalesFrom, a.ScalesTo = a.PreHA.From, a.PreHA.To
	} else {
		a.ScalesFrom = 1
	}
	a.PreHA = nil
}

// limitText is a scale limit for people: the number, or "unlimited".
func limitText(n int) string {
	if n < 0 {
		return "unlimited"
	}
	return strconv.Itoa(n)
}
