package broker

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"

	"gearbox/store"
	"gearbox/store/state"
)

// DELETE /broker/rest/nodes/{node} (admin): the repair of a node that
// will not return. Its member is forced out of the cluster, its gears are
// replaced on other nodes at once (no grace), and every record it left
// is reaped: its node registration, its router, broker
// and name-server registrations, its routers' ha- claims, its gears'
// status records, and its place among the holders of deployments. The
// nodes' cluster services remove its server from JetStream when they see
// its node record gone (node/services). A node that is alive is refused:
// drain it, stop it, then remove it.
func (b *Broker) removeNode(w http.ResponseWriter, r *http.Request, u *state.User, p params) error {
	if err := requireAdmin(u); err != nil {
		return err
	}
	name := r.PathValue("node")
	ctx := r.Context()
	cv, err := b.loadCluster()
	if err != nil {
		return err
	}
	var mine []state.Gear
	for _, g := range cv.gears {
		if g.Node == name {
			mine = append(mine, g)
		}
	}
	status := b.memberStatus(name)
	if cv.byName[name] == nil && len(mine) == 0 && status == "unknown" {
		return notFound("Node '%s' not found.", name)
	}
	if status == store.StatusAlive {
		return errorf(http.StatusConflict, 1, "Node '%s' is alive: 'node remove' is for a node that will not return. Drain it (gearbox node drain %s), stop it, then remove it.", name, name)
	}
	if err := b.st.RemoveMember(name); err != nil {
		return err
	}
	if err := b.commitAll(ctx, nil, nil, []state.Alert{{Kind: state.AlertNodeRemoved, Node: name,
		Reason: fmt.Sprintf("node %s was removed by %s (member %s)", name, u.Login, status),
		Action: fmt.Sprintf("its records are reaped and its %d gear(s) replaced on other nodes", len(mine))}}); err != nil {
		return err
	}
	b.log.Warn().Str("node", name).Str("by", u.Login).Str("member", status).Int("gears", len(mine)).Msg("node removed")

	// Its gears first, while its record still gives their old address to
	// the events that drop them.
	byKey, err := b.appsByKey()
	if err != nil {
		return err
	}
	sort.Slice(mine, func(i, j int) bool {
		if mine[i].App != mine[j].App {
			return mine[i].App < mine[j].App
		}
		return mine[i].Ordinal < mine[j].Ordinal
	})
	var waiting []string
	for _, g := range mine {
		a := byKey[g.App]
		if a == nil {
			continue
		}
		reason := fmt.Sprintf("node %s was removed", name)
		if done, err := b.takeOverMove(ctx, cv, a, g, reason); err != nil {
			return err
		} else if done {
			continue
		}
		why, err := b.replaceGear(ctx, cv, a, g, reason)
		if err != nil {
			return err
		}
		if why != "" {
			waiting = append(waiting, g.ID)
			// Out of rotation now: healing places it when a node fits.
			if err := b.commit(ctx, nil, dropEvents(b, cv, a, g)); err != nil {
				return err
			}
		}
	}

	ops, err := b.reapNodeRecords(name)
	if err != nil {
		return err
	}
	if err := b.commit(ctx, ops, nil); err != nil {
		return err
	}
	msg := fmt.Sprintf("Node %s removed: %d gear(s) replaced.", name, len(mine)-len(waiting))
	if len(waiting) > 0 {
		msg += fmt.Sprintf(" Gear(s) %s wait for a node that fits (see gearbox alerts).", strings.Join(waiting, ", "))
	}
	reply(w, http.StatusOK, "node", nil, msg)
	return nil
}

// dropEvents are the routing events that take gear g of app a out of
// every router and load balancer.
func dropEvents(b *Broker, cv *clusterView, a *state.App, g state.Gear) []state.RoutingEvent {
	pl := &plan{b: b, cv: cv, app: a}
	e := pl.event(state.ActionRemovePublicEndpoint)
	pl.fillEndpoint(&e, &g, false)
	events := []state.RoutingEvent{e}
	if g.LB {
		e := pl.event(state.ActionRemovePublicEndpoint)
		pl.fillEndpoint(&e, &g, true)
		events = append(events, e)
	}
	return events
}

// reapNodeRecords returns the deletes and updates that erase what member
// name left in the store.
func (b *Broker) reapNodeRecords(name string) ([]store.Op, error) {
	// Its admin record stays, saying it was removed (healing places what
	// could not be placed yet).
	ops := []store.Op{{Bucket: state.BucketNodeAdmin, Key: name, Value: state.NodeAdmin{Name: name, Removed: true}}}
	for _, bucket := range []string{state.BucketNodes, state.BucketRouters, state.BucketNameServers, state.BucketBrokers} {
		if _, err := b.st.GetRecord(bucket, name); err == nil {
			ops = append(ops, store.Op{Bucket: bucket, Key: name, Delete: true})
		} else if !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
	}
	claims, err := b.st.List(state.BucketHADNS)
	if err != nil {
		return nil, err
	}
	for _, r := range claims {
		if !r.Deleted && strings.HasSuffix(r.Key, "/"+name) {
			ops = append(ops, store.Op{Bucket: state.BucketHADNS, Key: r.Key, Delete: true})
		}
	}
	statuses, err := list[state.GearStatus](b.st, state.BucketGearStatus)
	if err != nil {
		return nil, err
	}
	for _, s := range statuses {
		if s.Node == name {
			ops = append(ops, store.Op{Bucket: state.BucketGearStatus, Key: s.ID, Delete: true})
		}
	}
	deps, err := list[state.Deployment](b.st, state.BucketDeployments)
	if err != nil {
		return nil, err
	}
	for _, d := range deps {
		if i := slices.Index(d.Holders, name); i >= 0 {
			d.Holders = slices.Delete(d.Holders, i, i+1)
			ops = append(ops, store.Op{Bucket: state.BucketDeployments, Key: state.DeploymentKey(d.App, d.ID), Value: d})
		}
	}
	return ops, nil
}
