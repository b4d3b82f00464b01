package router

import (
	"context"
	"errors"
	"fmt"

	"gearbox/store"
	"gearbox/store/state"
)

// registration is the router's record as it should be.
func (r *Router) registration() state.Router {
	return state.Router{Name: r.name, Addr: r.cfg.Addr, HTTP: store.Reachable(r.httpAddr, r.cfg.Addr), Since: r.cfg.Now().UTC()}
}

// register writes the router's record.
func (r *Router) register(ctx context.Context) error {
	if _, err := r.st.Put(ctx, state.BucketRouters, r.name, r.registration()); err != nil {
		return fmt.Errorf("register router %s: %w", r.name, err)
	}
	return nil
}

// checkRegistration writes the router's record again if it is missing or
// says something else (it was deleted, or a router of the same name
// elsewhere overwrote it).
func (r *Router) checkRegistration(ctx context.Context) error {
	var have state.Router
	_, err := r.st.Get(state.BucketRouters, r.name, &have)
	want := r.registration()
	if err == nil && have.Addr == want.Addr && have.HTTP == want.HTTP && have.Name == want.Name {
		return nil
	}
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("read router record: %w", err)
	}
	r.log.Info().Str("addr", want.Addr).Str("http", want.HTTP).Msg("router record written again")
	return r.register(ctx)
}

// unregister deletes the router's record and its ha- claims.
func (r *Router) unregister(ctx context.Context) error {
	ops := []store.Op{{Bucket: state.BucketRouters, Key: r.name, Delete: true}}
	mine, err := r.myClaims()
	if err != nil {
		return err
	}
	for key := range mine {
		ops = append(ops, store.Op{Bucket: state.BucketHADNS, Key: key, Delete: true})
	}
	if _, err := r.st.Batch(ctx, ops); err != nil {
		return fmt.Errorf("unregister router %s: %w", r.name, err)
	}
	return nil
}

// myClaims returns this router's ha- claims, by record key.
func (r *Router) myClaims() (map[string]state.HADNS, error) {
	recs, err := r.st.List(state.BucketHADNS)
	if err != nil {
		return nil, fmt.Errorf("list ha- claims: %w", err)
	}
	out := make(map[string]state.HADNS)
	for _, rec := range recs {
		var c state.HADNS
		if rec.Decode(&c) != nil || c.Router != r.name {
			continue
		}
		out[rec.Key] = c
	}
	return out, nil
}

// reconcileClaims makes the router's ha- claims match routes: one for
// each HA app, with its ha- name and the router's address; none for
// other apps.
func (r *Router) reconcileClaims(ctx context.Context, routes []route) error {
	have, err := r.myClaims()
	if err != nil {
		return err
	}
	want := make(map[string]state.HADNS)
	for _, rt := range routes {
		if rt.haHost == "" {
			continue
		}
		want[state.HADNSKey(rt.app, r.name)] = state.HADNS{App: rt.app, Name: rt.haHost, Router: r.name, Addr: r.cfg.Addr}
	}
	var ops []store.Op
	var added, removed []string
	for key, c := range want {
		old, ok := have[key]
		if ok && old.App == c.App && old.Name == c.Name && old.Addr == c.Addr {
			continue
		}
		c.Since = r.cfg.Now().UTC()
		ops = append(ops, store.Op{Bucket: state.BucketHADNS, Key: key, Value: c})
		added = append(added, c.Name)
	}
	for key, c := range have {
		if _, ok := want[key]; !ok {
			ops = append(ops, store.Op{Bucket: state.BucketHADNS, Key: key, Delete: true})
			removed = append(removed, c.Name)
		}
	}
	if len(ops) == 0 {
		return nil
	}
	if _, err := r.st.Batch(ctx, ops); err != nil {
		return fmt.Errorf("write ha- claims: %w", err)
	}
	if len(added) > 0 {
		r.log.Info().Strs("names", added).Msg("ha- names claimed")
	}
	if len(removed) > 0 {
		r.log.Info().Strs("names", removed).Msg("ha- claims removed")
	}
	return nil
}
