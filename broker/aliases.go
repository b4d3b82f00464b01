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

// aliasViews are app a's aliases as the API shows them, with st's
// records of their certificates.
func aliasViews(st *store.Store, a *state.App) []api.Alias {
	out := make([]api.Alias, 0, len(a.Aliases))
	for _, h := range a.Aliases {
		v := api.Alias{ID: h}
		var c state.Cert
		if _, err := st.Get(state.BucketCerts, h, &c); err == nil && c.App == state.AppKey(a.Domain, a.Name) {
			v.HasPrivateSSLCertificate, v.Cert = true, certView(&c)
		}
		// ACME's trouble with the alias, unless it has its owner's
		// certificate, which ACME leaves alone.
		var s state.ACMEStatus
		if v.Cert == nil || v.Cert.ACME {
			if _, err := st.Get(state.BucketACME, h, &s); err == nil && s.App == state.AppKey(a.Domain, a.Name) {
				v.ACME = &api.AliasACME{Error: s.Error, Failures: s.Failures, NextTry: s.NextTry}
			}
		}
		out = append(out, v)
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
	reply(w, http.StatusOK, "aliases", aliasViews(b.st, a))
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
	// A certificate may come with it.
	var cert *checkedCert
	if p.str("ssl_certificate") != "" || p.str("private_key") != "" {
		var aerr *apiError
		if cert, aerr = checkCert(p.str("ssl_certificate"), p.str("private_key"), host, b.cfg.Now()); aerr != nil {
			return aerr
		}
	}
	a.Aliases = append(a.Aliases, host)
	events := []state.RoutingEvent{aliasEvent(a, state.ActionAddAlias, host)}
	var ops []store.Op
	view, msg := api.Alias{ID: host}, fmt.Sprintf("Alias %s added to application %s.", host, a.Name)
	if cert != nil {
		certOps, e, err := b.certOps(a, host, cert, false)
		if err != nil {
			return err
		}
		ops, events = certOps, append(events, e)
		view.HasPrivateSSLCertificate, view.Cert = true, certView(&state.Cert{NotAfter: cert.leaf.NotAfter, Fingerprint: fingerprint(cert.leaf)})
		msg += " " + certMessage(host, cert)
	}
	if err := b.commitAlias(r, a, host, ops, events); err != nil {
		return err
	}
	reply(w, http.StatusCreated, "alias", view, msg)
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
	ops, events := certRemoval(b.st, a, host)
	if err := b.commitAlias(r, a, host, ops, append(events, aliasEvent(a, state.ActionRemoveAlias, host))); err != nil {
		return err
	}
	reply(w, http.StatusOK, "alias", nil, fmt.Sprintf("Alias %s removed from application %s.", host, a.Name))
	return nil
}

// commitAlias writes app a, ops and events, about alias host.
func (b *Broker) commitAlias(r *http.Request, a *state.App, host string, ops []store.Op, events []state.RoutingEvent) error {
	ops = append([]store.Op{{Bucket: state.BucketApps, Key: state.AppKey(a.Domain, a.Name), Value: a}}, ops...)
	if err := b.commit(r.Context(), ops, events); err != nil {
		return err
	}
	for _, e := range events {
		b.log.Info().Str("app", a.Name).Str("domain", a.Domain).Str("alias", host).Str("action", e.Action).Msg("alias changed")
	}
	return nil
}

// certRemoval returns the op that deletes the certificate of app a's
// alias host, and its remove_ssl event, if it has one.
func certRemoval(st *store.Store, a *state.App, host string) ([]store.Op, []state.RoutingEvent) {
	var c state.Cert
	if _, err := st.Get(state.BucketCerts, host, &c); err != nil || c.App != state.AppKey(a.Domain, a.Name) {
		return nil, nil
	}
	return []store.Op{{Bucket: state.BucketCerts, Key: host, Delete: true}}, []state.RoutingEvent{aliasEvent(a, state.ActionRemoveSSL, host)}
}

// aliasEvent is app a's add_alias or remove_alias event for host.
func aliasEvent(a *state.App, action, host string) state.RoutingEvent {
	return state.RoutingEvent{Action: action, AppName: a.Name, Namespace: a.Domain, Scalable: a.Scalable, HA: a.HA, Alias: host}
}
