package broker

import (
	"fmt"
	"net/http"

	"gearbox/broker/api"
	"gearbox/store/state"
)

// cartridgeViews are app a's cartridges, the web one first, given its
// gears.
func cartridgeViews(a *state.App, gears []state.Gear) []api.Cartridge {
	out := []api.Cartridge{{Name: a.Cartridge, Type: "web_framework", ScalesFrom: a.ScalesFrom, ScalesTo: a.ScalesTo, Scalable: a.Scalable, Gears: len(gears)}}
	if a.Scalable {
		lbs := 0
		for _, g := range gears {
			if g.LB {
				lbs++
			}
		}
		out = append(out, api.Cartridge{Name: state.CartLB, Type: "load_balancer", ScalesFrom: a.LBMin, ScalesTo: a.LBMax, Gears: lbs})
	}
	return out
}

// GET .../applications/{app}/cartridges and .../cartridges/{cart}
func (b *Broker) showCartridges(w http.ResponseWriter, r *http.Request, u *state.User, p params) error {
	a, err := b.app(u, r.PathValue("ns"), r.PathValue("app"))
	if err != nil {
		return err
	}
	cv, err := b.loadCluster()
	if err != nil {
		return err
	}
	carts := cartridgeViews(a, gearsOf(cv.gears, state.AppKey(a.Domain, a.Name)))
	name := r.PathValue("cart")
	if name == "" {
		reply(w, http.StatusOK, "cartridges", carts)
		return nil
	}
	for _, c := range carts {
		if c.Name == name {
			reply(w, http.StatusOK, "cartridge", c)
			return nil
		}
	}
	return notFound("Cartridge '%s' not found in application '%s'.", name, a.Name)
}

// PUT .../applications/{app}/cartridges/{cart}: scales_from, scales_to
// (-1: no maximum). The app scales to fit the new limits.
func (b *Broker) scaleCartridge(w http.ResponseWriter, r *http.Request, u *state.User, p params) error {
	a, err := b.app(u, r.PathValue("ns"), r.PathValue("app"))
	if err != nil {
		return err
	}
	cart := r.PathValue("cart")
	if cart == state.CartLB {
		return errorf(http.StatusUnprocessableEntity, 1, "The cartridge %s cannot be scaled.", cart)
	}
	if cart != a.Cartridge {
		return notFound("Cartridge '%s' not found in application '%s'.", cart, a.Name)
	}
	if !a.Scalable {
		return errorf(http.StatusUnprocessableEntity, 1, "Cannot set scaling limits: application '%s' is not scalable.", a.Name)
	}
	from, fromSet, err := p.integer("scales_from")
	if err != nil {
		return err
	}
	to, toSet, err := p.integer("scales_to")
	if err != nil {
		return err
	}
	if !fromSet && !toSet {
		return fieldErr("scales_from", 1, "Pass scales_from and/or scales_to.")
	}
	if !fromSet {
		from = a.ScalesFrom
	}
	if !toSet {
		to = a.ScalesTo
	}
	owner, err := b.owner(a)
	if err != nil {
		return err
	}
	switch {
	case from < 1:
		return fieldErr("scales_from", 1, "Invalid scales_from '%d': the minimum is 1.", from)
	case to < -1 || to == 0:
		return fieldErr("scales_to", 1, "Invalid scales_to '%d': use -1 for no maximum, or 1 and more.", to)
	case a.HA && to != -1 && to < 2:
		return fieldErr("scales_to", 1, "Cannot set the max gear limit to '%d' if the application is HA (highly available)", to)
	case a.HA && from < 2:
		return fieldErr("scales_from", 1, "Cannot set the min gear limit to '%d' if the application is HA (highly available)", from)
	case to != -1 && to < from:
		return fieldErr("scales_to", 1, "The max gear limit '%d' cannot be less than the min gear limit '%d'.", to, from)
	case to > owner.Capabilities.MaxGears || from > owner.Capabilities.MaxGears:
		return fieldErr("scales_to", 104, "Cannot set the gear limit beyond '%d': user '%s' may have at most %d gears.", owner.Capabilities.MaxGears, owner.Login, owner.Capabilities.MaxGears)
	}
	pl, err := b.planFor(owner, a)
	if err != nil {
		return err
	}
	a.ScalesFrom, a.ScalesTo = from, to
	n := max(len(pl.gears), from)
	if to != -1 {
		n = min(n, to)
	}
	if err := pl.scaleTo(n); err != nil {
		return err
	}
	if err := b.apply(r.Context(), pl); err != nil {
		return err
	}
	b.log.Info().Str("app", a.Name).Str("domain", a.Domain).Int("scales_from", from).Int("scales_to", to).Int("gears", len(pl.gears)).Msg("scale limits set")
	limit := "unlimited"
	if to >= 0 {
		limit = fmt.Sprint(to)
	}
	msg := fmt.Sprintf("Scale range of %s set to %d-%s; the application has %d gears.", cart, from, limit, len(pl.gears))
	reply(w, http.StatusOK, "cartridge", cartridgeViews(a, pl.gears)[0], msg)
	return nil
}

// GET .../applications/{app}/gear_groups[?include=endpoints]
func (b *Broker) gearGroups(w http.ResponseWriter, r *http.Request, u *state.User, p params) error {
	a, err := b.app(u, r.PathValue("ns"), r.PathValue("app"))
	if err != nil {
		return err
	}
	cv, err := b.loadCluster()
	if err != nil {
		return err
	}
	statuses, err := b.gearStatuses()
	if err != nil {
		return err
	}
	gears := gearsOf(cv.gears, state.AppKey(a.Domain, a.Name))
	g := api.GearGroup{ID: a.ID, Name: a.Name, GearProfile: a.GearSize, Cartridges: cartridgeViews(a, gears),
		ScalesFrom: a.ScalesFrom, ScalesTo: a.ScalesTo, Gears: []api.Gear{}}
	withEndpoints := p.str("include") == "endpoints"
	for i := range gears {
		g.Gears = append(g.Gears, b.gearView(&gears[i], cv, statuses, withEndpoints))
	}
	reply(w, http.StatusOK, "gear_groups", []api.GearGroup{g})
	return nil
}
