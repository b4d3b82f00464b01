package broker

import (
	"errors"
	"net/http"

	"gearbox/broker/api"
	"gearbox/store"
	"gearbox/store/state"
)

// domain returns namespace ns if u may see it: 404 when it does not
// exist, 403 when it belongs to someone else and u is not an admin.
func (b *Broker) domain(u *state.User, ns string) (*state.Domain, error) {
	var d state.Domain
	if _, err := b.st.Get(state.BucketDomains, ns, &d); errors.Is(err, store.ErrNotFound) {
		return nil, notFound("Domain '%s' not found.", ns)
	} else if err != nil {
		return nil, err
	}
	if d.Owner != u.Login && !u.Admin {
		return nil, forbidden("Domain '%s' belongs to another user.", ns)
	}
	return &d, nil
}

// domainView is domain d as the API shows it.
func (b *Broker) domainView(d *state.Domain) (api.Domain, error) {
	apps, err := b.appsIn(d.Name)
	return api.Domain{Name: d.Name, ID: d.Name, Owner: d.Owner, Applications: len(apps), CreatedAt: d.CreatedAt}, err
}

// GET /broker/rest/domains: the caller's domains (all for admins).
func (b *Broker) listDomains(w http.ResponseWriter, r *http.Request, u *state.User, p params) error {
	ds, err := list[state.Domain](b.st, state.BucketDomains)
	if err != nil {
		return err
	}
	out := []api.Domain{}
	for i := range ds {
		if ds[i].Owner == u.Login || u.Admin {
			v, err := b.domainView(&ds[i])
			if err != nil {
				return err
			}
			out = append(out, v)
		}
	}
	reply(w, http.StatusOK, "domains", out)
	return nil
}

// GET /broker/rest/domains/{ns}
func (b *Broker) showDomain(w http.ResponseWriter, r *http.Request, u *state.User, p params) error {
	d, err := b.domain(u, r.PathValue("ns"))
	if err != nil {
		return err
	}
	v, err := b.domainView(d)
	if err != nil {
		return err
	}
	reply(w, http.StatusOK, "domain", v)
	return nil
}

// POST /broker/rest/domains: name= (or OpenShift's older id=).
func (b *Broker) createDomain(w http.ResponseWriter, r *http.Request, u *state.User, p params) error {
	ns := p.str("name")
	if ns == "" {
		ns = p.str("id")
	}
	if ns == "" {
		return fieldErr("name", 106, "Namespace is required: pass name=NAMESPACE.")
	}
	if !state.DomainNameRE.MatchString(ns) {
		return fieldErr("name", 106, "Invalid namespace '%s': use 1 to 16 lower-case letters and digits, no dashes (app hostnames are APP-NAMESPACE.%s).", ns, b.cfg.Domain)
	}
	if _, err := b.st.GetRecord(state.BucketDomains, ns); err == nil {
		return fieldErr("name", 103, "Namespace '%s' is already in use. Please choose another.", ns)
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	ds, err := list[state.Domain](b.st, state.BucketDomains)
	if err != nil {
		return err
	}
	owned := 0
	for _, d := range ds {
		if d.Owner == u.Login {
			owned++
		}
	}
	if owned >= b.cfg.MaxDomainsPerUser {
		return errorf(http.StatusConflict, 1, "You own %d domains, the most a user may own; delete one first (or ask an administrator to raise the limit).", owned)
	}
	d := state.Domain{Name: ns, Owner: u.Login, CreatedAt: b.cfg.Now()}
	if _, err := b.st.Put(r.Context(), state.BucketDomains, ns, d); err != nil {
		return err
	}
	b.log.Info().Str("domain", ns).Str("owner", u.Login).Msg("domain created")
	v, err := b.domainView(&d)
	if err != nil {
		return err
	}
	reply(w, http.StatusCreated, "domain", v, "Domain '"+ns+"' created.")
	return nil
}

// DELETE /broker/rest/domains/{ns}: refused while it holds apps, unless
// force=true, which deletes them too.
func (b *Broker) deleteDomain(w http.ResponseWriter, r *http.Request, u *state.User, p params) error {
	d, err := b.domain(u, r.PathValue("ns"))
	if err != nil {
		return err
	}
	force, err := p.boolean("force", false)
	if err != nil {
		return err
	}
	apps, err := b.appsIn(d.Name)
	if err != nil {
		return err
	}
	if len(apps) > 0 && !force {
		return errorf(http.StatusUnprocessableEntity, 128, "Domain '%s' contains applications. Delete the applications first or set force to true.", d.Name)
	}
	var ops []store.Op
	var events []state.RoutingEvent
	for i := range apps {
		o, e, err := b.destroyApp(&apps[i])
		if err != nil {
			return err
		}
		ops, events = append(ops, o...), append(events, e...)
	}
	ops = append(ops, store.Op{Bucket: state.BucketDomains, Key: d.Name, Delete: true})
	if err := b.commit(r.Context(), ops, events); err != nil {
		return err
	}
	for i := range apps {
		b.removeBlobs(apps[i].Deployments)
	}
	b.log.Info().Str("domain", d.Name).Int("apps", len(apps)).Msg("domain deleted")
	reply(w, http.StatusOK, "domain", nil, "Domain '"+d.Name+"' deleted.")
	return nil
}
