package broker

import (
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"

	"gearbox/broker/api"
	"gearbox/store"
	"gearbox/store/state"
)

// MaxAliases is how many aliases one app may have.
const MaxAliases = 32

// aliasLabelRE is one label of an alias: letters, digits and dashes, not
// starting or ending with a dash, at most 63 characters.
var aliasLabelRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// aliasViews are app a's aliases as the API shows them.
func aliasViews(a *state.App) []api.Alias {
	out := make([]api.Alias, 0, len(a.Aliases))
	for _, h := range a.Aliases {
		out = append(out, api.Alias{ID: h})
	}
	return out
}

// normalizeAlias lower-cases host and drops one trailing dot.
func normalizeAlias(host string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(host)), ".")
}

// checkAlias says what is wrong with host (normalised) as an alias in
// the cloud domain zone: it must be a DNS name of letters, digits and
// dashes, that does not look like an IP address, outside the zone, whose
// names are the platform's (app, ha- and gear hostnames).
func checkAlias(host, zone string) *apiError {
	if host == "" {
		return fieldErr("id", 1, "Alias is required: pass id=HOSTNAME.")
	}
	if len(host) > 253 {
		return fieldErr("id", 1, "Invalid alias '%s': a DNS name is at most 253 characters.", host)
	}
	labels := strings.Split(host, ".")
	for _, l := range labels {
		if !aliasLabelRE.MatchString(l) {
			return fieldErr("id", 1, "Invalid alias '%s': use a DNS name whose dot-separated labels are 1 to 63 letters, digits and dashes, not starting or ending with a dash.", host)
		}
	}
	if strings.Trim(labels[len(labels)-1], "0123456789") == "" {
		return fieldErr("id", 1, "Invalid alias '%s': a hostname's last label cannot be all digits (an IP address is not an alias).", host)
	}
	zone = normalizeAlias(zone)
	if host == zone || strings.HasSuffix(host, "."+zone) {
		return fieldErr("id", 1, "Invalid alias '%s': names in the cloud domain %s are the platform's (application, ha- and gear hostnames); use a name of your own domain.", host, zone)
	}
	return nil
}

// GET .../applications/{app}/aliases
func (b *Broker) listAliases(w http.ResponseWriter, r *http.Request, u *state.User, p params) error {
	a, err := b.app(u, r.PathValue("ns"), r.PathValue("app"))
	if err != nil {
		return err
	}
	reply(w, http.StatusOK, "aliases", aliasViews(a))
	return nil
}

// POST .../applications/{app}/aliases: id=HOSTNAME (or name=). The
// hostname is unique in the cluster; the app's routing layers (node
// fronts, routers) serve it as they serve the app's own name, once they
// see the add_alias event.
func (b *Broker) addAlias(w http.ResponseWriter, r *http.Request, u *state.User, p params) error {
	a, err := b.app(u, r.PathValue("ns"), r.PathValue("app"))
	if err != nil {
		return err
	}
	raw := p.str("id")
	if raw == "" {
		raw = p.str("name")
	}
	host := normalizeAlias(raw)
	if err := checkAlias(host, b.cfg.Domain); err != nil {
		return err
	}
	apps, err := list[state.App](b.st, state.BucketApps)
	if err != nil {
		return err
	}
	for _, o := range apps {
		if !slices.Contains(o.Aliases, host) {
			continue
		}
		if o.Domain == a.Domain && o.Name == a.Name {
			return errorf(http.StatusConflict, 140, "Application '%s' already has the alias '%s'.", a.Name, host)
		}
		return errorf(http.StatusConflict, 140, "The alias '%s' is already in use by another application; an alias routes to one application only.", host)
	}
	if len(a.Aliases) >= MaxAliases {
		return errorf(http.StatusUnprocessableEntity, 1, "Application '%s' already has %d aliases, the most an application may have.", a.Name, MaxAliases)
	}
	a.Aliases = append(a.Aliases, host)
	if err := b.commitAlias(r, a, state.ActionAddAlias, host); err != nil {
		return err
	}
	reply(w, http.StatusCreated, "alias", api.Alias{ID: host}, fmt.Sprintf("Alias %s added to application %s.", host, a.Name))
	return nil
}

// DELETE .../applications/{app}/aliases/{alias}
func (b *Broker) removeAlias(w http.ResponseWriter, r *http.Request, u *state.User, p params) error {
	a, err := b.app(u, r.PathValue("ns"), r.PathValue("app"))
	if err != nil {
		return err
	}
	host := normalizeAlias(r.PathValue("alias"))
	i := slices.Index(a.Aliases, host)
	if i < 0 {
		return notFound("Application '%s' has no alias '%s'.", a.Name, host)
	}
	a.Aliases = slices.Delete(a.Aliases, i, i+1)
	if err := b.commitAlias(r, a, state.ActionRemoveAlias, host); err != nil {
		return err
	}
	reply(w, http.StatusOK, "alias", nil, fmt.Sprintf("Alias %s removed from application %s.", host, a.Name))
	return nil
}

// commitAlias writes app a and its add_alias or remove_alias event.
func (b *Broker) commitAlias(r *http.Request, a *state.App, action, host string) error {
	e := aliasEvent(a, action, host)
	ops := []store.Op{{Bucket: state.BucketApps, Key: state.AppKey(a.Domain, a.Name), Value: a}}
	if err := b.commit(r.Context(), ops, []state.RoutingEvent{e}); err != nil {
		return err
	}
	b.log.Info().Str("app", a.Name).Str("domain", a.Domain).Str("alias", host).Str("action", action).Msg("alias changed")
	return nil
}

// aliasEvent is app a's add_alias or remove_alias event for host.
func aliasEvent(a *state.App, action, host string) state.RoutingEvent {
	return state.RoutingEvent{Action: action, AppName: a.Name, Namespace: a.Domain, Scalable: a.Scalable, HA: a.HA, Alias: host}
}
