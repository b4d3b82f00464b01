package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"gearbox/broker/api"
	"gearbox/store"
	"gearbox/store/internalapi"
	"gearbox/store/state"
)

// Bounds of reading one LB gear's status from its node.
const (
	// lbStatusTimeout bounds the whole read, connection included.
	lbStatusTimeout = 10 * time.Second
	// maxLBStatus caps the status's size: about 400 bytes a backend.
	maxLBStatus = 4 << 20
)

// GET .../applications/{app}/lb-status: the status of the load balancer
// of each of the app's LB gears, in gear order, each read from its node
// over the internal API (internalapi.GearLBStatusPath). Load balancers do
// not serve their status on their own port, since it shows the cluster's
// addresses, ports and gear ids (issue #12): this is how the app's owner,
// or an administrator, reads it. Others get the 404 of any app they do
// not own. A gear whose status cannot be read has an error instead; an
// app that is not scalable has no load balancer (422).
//
// Like other reads, any broker serves it, without b.mu.
func (b *Broker) appLBStatus(w http.ResponseWriter, r *http.Request, u *state.User, p params) error {
	a, err := b.app(u, r.PathValue("ns"), r.PathValue("app"))
	if err != nil {
		return err
	}
	if !a.Scalable {
		return errorf(http.StatusUnprocessableEntity, 1, "Application '%s' is not scalable: it has no load balancer.", a.Name)
	}
	cv, err := b.loadCluster()
	if err != nil {
		return err
	}
	statuses, err := b.gearStatuses()
	if err != nil {
		return err
	}
	members := make(map[string]store.Member)
	for _, m := range b.st.Members() {
		members[m.Name] = m
	}
	var lbs []state.Gear
	for _, g := range gearsOf(cv.gears, state.AppKey(a.Domain, a.Name)) {
		if g.LB {
			lbs = append(lbs, g)
		}
	}
	out := make([]api.LBStatus, len(lbs))
	var wg sync.WaitGroup
	for i := range lbs {
		out[i].Gear = b.gearView(&lbs[i], cv, statuses, false)
		wg.Go(func() {
			st, err := b.readLBStatus(r.Context(), lbs[i], members[lbs[i].Node])
			if err != nil {
				out[i].Error = err.Error()
				return
			}
			out[i].Status = st
		})
	}
	wg.Wait()
	reply(w, http.StatusOK, "lb_status", out)
	return nil
}

// readLBStatus reads LB gear g's status, as JSON, from its node m.
func (b *Broker) readLBStatus(ctx context.Context, g state.Gear, m store.Member) (json.RawMessage, error) {
	if m.Name == "" || m.Status != store.StatusAlive || m.InternalAddr == "" {
		why := "not a member of the cluster"
		if m.Name != "" {
			why = "not alive (" + m.Status + ")"
		}
		return nil, fmt.Errorf("cannot read this load balancer's status: its node %s is %s", g.Node, why)
	}
	ctx, cancel := context.WithTimeout(ctx, lbStatusTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet,
		internalapi.URL(m.InternalAddr, internalapi.GearLBStatusPath(g.ID)+"?format=json"), nil)
	if err != nil {
		return nil, fmt.Errorf("cannot read this load balancer's status: %w", err)
	}
	// The client of nodes' gear endpoints, logs and status alike: no
	// idle connections left behind; ctx bounds the call.
	resp, err := b.logClient.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("cannot read this load balancer's status from node %s: %w", g.Node, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("cannot read this load balancer's status: node %s answered %s: %s", g.Node, resp.Status, strings.TrimSpace(string(msg)))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxLBStatus+1))
	switch {
	case err != nil:
		return nil, fmt.Errorf("cannot read this load balancer's status from node %s: %w", g.Node, err)
	case len(body) > maxLBStatus:
		return nil, fmt.Errorf("cannot read this load balancer's status: node %s sent more than %d bytes", g.Node, maxLBStatus)
	case !json.Valid(body):
		return nil, fmt.Errorf("cannot read this load balancer's status: node %s did not send JSON", g.Node)
	}
	return json.RawMessage(body), nil
}
