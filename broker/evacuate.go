package broker

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"gearbox/store"
	"gearbox/store/state"
)

// Evacuation. `gearbox node drain NODE` (unless --no-evacuate) has the
// broker leader move the node's gears off, one at a time, each without a
// moment where the app has one gear fewer serving:
//
//  1. A replacement gear is placed on another node under the placement
//     rules (the same LB role, the same deployment), naming the gear it
//     replaces (Gear.Replaces). Its node copies the old gear's data
//     directory before it starts it (node/datacopy.go).
//  2. Once the replacement is reported as its record asks (started, and
//     so healthy) with its data copied, the old gear is stopped: its node
//     drains it from every load balancer first, and the routing layers
//     take it out. An old head passes the head to the replacement.
//  3. Once the old gear is reported stopped, the replacement's node
//     merges the data directory once more (Replacement.Final).
//  4. Then the old gear is deleted, the replacement forgets it, and a
//     gear_replaced alert says where the gear went; the next gear of the
//     node follows.
//
// A move once begun is carried to its end even if the node is undrained
// meanwhile. During a move the app has one gear more than its scale. A
// gear that no node can take stays, and the node's evacuation status
// says why. The steps are records, so a new leader carries on where the
// last one stopped.

// EvacuationStallAfter is how long a replacement may take to start before
// the node's evacuation status says that it is stalled.
const EvacuationStallAfter = 5 * time.Minute

// evacuateOnce is one pass of evacuation, on the leader, under b.mu.
func (b *Broker) evacuateOnce(ctx context.Context) error {
	cv, err := b.loadCluster()
	if err != nil {
		return err
	}
	byKey, err := b.appsByKey()
	if err != nil {
		return err
	}
	statuses, err := b.gearStatuses()
	if err != nil {
		return err
	}
	admins, err := list[state.NodeAdmin](b.st, state.BucketNodeAdmin)
	if err != nil {
		return err
	}
	notes := map[string]string{} // node -> its evacuation status now

	// Moves under way.
	busy := map[string]bool{}
	for _, r := range cv.gears {
		if r.Replaces == nil {
			continue
		}
		busy[r.Replaces.Node] = true
		note, err := b.stepMove(ctx, cv, byKey, statuses, r)
		if err != nil {
			return err
		}
		if note != "" {
			notes[r.Replaces.Node] = note
		}
	}

	// New moves: one per evacuated node at a time.
	for _, na := range admins {
		if !na.Draining || !na.Evacuate || busy[na.Name] || !cv.alive[na.Name] {
			continue
		}
		var todo []state.Gear
		for _, g := range cv.gears {
			if g.Node == na.Name && byKey[g.App] != nil {
				todo = append(todo, g)
			}
		}
		sort.Slice(todo, func(i, j int) bool {
			if todo[i].App != todo[j].App {
				return todo[i].App < todo[j].App
			}
			return todo[i].Ordinal < todo[j].Ordinal
		})
		if len(todo) == 0 {
			notes[na.Name] = "evacuated"
			continue
		}
		var blocked []string
		for _, o := range todo {
			_, why, err := b.startMove(ctx, cv, byKey[o.App], o, "")
			if err != nil {
				return err
			}
			if why == "" {
				notes[na.Name] = fmt.Sprintf("moving gear %s (%d left)", o.ID, len(todo))
				blocked = nil
				break
			}
			blocked = append(blocked, why)
		}
		if len(blocked) > 0 {
			notes[na.Name] = "blocked: " + strings.Join(blocked, "; ")
		}
	}

	// The evacuation status of each node, as node list shows it.
	var ops []store.Op
	for _, na := range admins {
		want := notes[na.Name]
		if !na.Evacuate && want == "" {
			continue
		}
		if na.Evacuation != want {
			if strings.HasPrefix(want, "blocked") && !strings.HasPrefix(na.Evacuation, "blocked") {
				b.log.Warn().Str("node", na.Name).Msg("evacuation " + want)
			}
			na.Evacuation = want
			ops = append(ops, store.Op{Bucket: state.BucketNodeAdmin, Key: na.Name, Value: na})
		}
	}
	return b.commit(ctx, ops, nil)
}

// startMove places a replacement for gear o of app a (step 1) on node
// target, or where the placement rules say when target is "", and
// returns it; or says why none can be placed.
func (b *Broker) startMove(ctx context.Context, cv *clusterView, a *state.App, o state.Gear, target string) (state.Gear, string, error) {
	if target == "" {
		var why string
		if target, why = b.placeReplacement(cv, a, o); why != "" {
			return state.Gear{}, why, nil
		}
	}
	return b.commitReplacement(ctx, cv, a, o, target)
}

// placeReplacement chooses the node of a replacement for gear o of app a
// by the placement rules, or says why there is none.
func (b *Broker) placeReplacement(cv *clusterView, a *state.App, o state.Gear) (string, string) {
	gears := gearsOf(cv.gears, o.App)
	ap := AppPlacement{Owner: a.Owner, Region: a.Region, GearsOn: map[string]int{}, LBsOn: map[string]int{}}
	for _, g := range gears {
		ap.GearsOn[g.Node]++
		if g.LB && g.ID != o.ID {
			ap.LBsOn[g.Node]++
		}
	}
	policy := PlacementPolicy{MinZones: b.cfg.ZonesMinPerGearGroup, AllowMultipleLBPerNode: b.cfg.AllowMultipleLBPerNode}
	target, err := policy.Place(cv.nodes, ap, o.LB)
	if err != nil {
		return "", fmt.Sprintf("gear %s of %s/%s: %v", o.ID, a.Domain, a.Name, err)
	}
	return target, ""
}

// commitReplacement places a replacement for gear o of app a on node
// target and commits it with its routing events.
func (b *Broker) commitReplacement(ctx context.Context, cv *clusterView, a *state.App, o state.Gear, target string) (state.Gear, string, error) {
	var err error
	a.NextGear++
	r := state.Gear{ID: randomID(12), App: o.App, AppName: o.AppName, Domain: o.Domain, Node: target, Size: o.Size,
		Cartridge: o.Cartridge, LB: o.LB, RotatedOut: o.RotatedOut, State: o.State, Ordinal: a.NextGear, Restarts: o.Restarts,
		Deployment: o.Deployment, CreatedAt: b.cfg.Now(), Replaces: &state.Replacement{Gear: o.ID, Node: o.Node}}
	if r.Port, err = cv.port(target); err != nil {
		return r, fmt.Sprintf("gear %s: %v", o.ID, err), nil
	}
	if r.LB {
		if r.LBPort, err = cv.port(target); err != nil {
			return r, fmt.Sprintf("gear %s: %v", o.ID, err), nil
		}
	}
	cv.adjustLoad(target, +1)
	cv.gears = append(cv.gears, r)
	pl := &plan{b: b, cv: cv, app: a}
	var events []state.RoutingEvent
	for _, lb := range []bool{false, true} {
		if lb && !r.LB {
			continue
		}
		e := pl.event(state.ActionAddPublicEndpoint)
		pl.fillEndpoint(&e, &r, lb)
		events = append(events, e)
	}
	if r.RotatedOut {
		e := pl.event(state.ActionRotateOut)
		e.GearID = r.ID
		events = append(events, e)
	}
	ops := []store.Op{
		{Bucket: state.BucketGears, Key: r.ID, Value: r},
		{Bucket: state.BucketApps, Key: o.App, Value: *a},
	}
	if err := b.commit(ctx, ops, events); err != nil {
		return r, "", err
	}
	b.log.Info().Str("gear", o.ID).Str("from", o.Node).Str("replacement", r.ID).Str("to", target).Str("app", a.Name).Str("domain", a.Domain).Msg("planned move: replacement placed")
	return r, "", nil
}

// stepMove takes the move of replacement r one step further (steps 2 to
// 4) when it may, and returns the evacuation status of the node moved
// from.
func (b *Broker) stepMove(ctx context.Context, cv *clusterView, byKey map[string]*state.App, statuses map[string]state.GearStatus, r state.Gear) (string, error) {
	a := byKey[r.App]
	var o *state.Gear
	for i := range cv.gears {
		if cv.gears[i].ID == r.Replaces.Gear && cv.gears[i].Node == r.Replaces.Node {
			o = &cv.gears[i]
		}
	}
	if a == nil || o == nil {
		// The old gear (or the app) went another way: the move is over.
		r.Replaces = nil
		return "", b.commit(ctx, []store.Op{{Bucket: state.BucketGears, Key: r.ID, Value: r}}, nil)
	}
	rs, ok := statuses[r.ID]
	ready := ok && rs.Node == r.Node && rs.State == r.State && rs.DataCopy != ""
	if !ready {
		if since := b.cfg.Now().Sub(r.CreatedAt); since > EvacuationStallAfter {
			return fmt.Sprintf("moving gear %s to %s: stalled, its replacement %s is not %s after %s (%s)", o.ID, r.Node, r.ID, r.State, since.Round(time.Second), orNone(rs.Reason)), nil
		}
		return fmt.Sprintf("moving gear %s to %s: waiting for replacement %s", o.ID, r.Node, r.ID), nil
	}
	if o.State != state.GearStopped {
		// Step 2: the old gear stops; an old head passes the head on.
		o2 := *o
		o2.State = state.GearStopped
		var ops []store.Op
		if o2.Head {
			o2.Head = false
			head := r
			if !head.LB {
				for _, g := range gearsOf(cv.gears, r.App) {
					if g.LB && g.ID != o.ID {
						head = g
						break
					}
				}
			}
			if head.LB {
				head.Head = true
				ops = append(ops, store.Op{Bucket: state.BucketGears, Key: head.ID, Value: head})
			}
		}
		ops = append(ops, store.Op{Bucket: state.BucketGears, Key: o2.ID, Value: o2})
		e := state.RoutingEvent{Action: state.ActionGearStop, AppName: a.Name, Namespace: a.Domain, Scalable: a.Scalable, HA: a.HA, GearID: o.ID}
		if err := b.commit(ctx, ops, []state.RoutingEvent{e}); err != nil {
			return "", err
		}
		b.log.Info().Str("gear", o.ID).Str("replacement", r.ID).Msg("evacuation: replacement serving; old gear stopping")
		return fmt.Sprintf("moving gear %s to %s: stopping the old gear", o.ID, r.Node), nil
	}
	ost := statuses[o.ID]
	stopped := !cv.alive[o.Node] || (ost.Node == o.Node && ost.State == state.GearStopped)
	if !r.Replaces.Final {
		if !stopped {
			return fmt.Sprintf("moving gear %s to %s: waiting for the old gear to stop", o.ID, r.Node), nil
		}
		// Step 3: the last merge of its data.
		r.Replaces.Final = true
		if err := b.commit(ctx, []store.Op{{Bucket: state.BucketGears, Key: r.ID, Value: r}}, nil); err != nil {
			return "", err
		}
		return fmt.Sprintf("moving gear %s to %s: merging its data", o.ID, r.Node), nil
	}
	if rs.DataCopy != state.DataMerged && !strings.HasPrefix(rs.DataCopy, state.DataCopyFailed) && cv.alive[r.Node] && cv.alive[o.Node] {
		return fmt.Sprintf("moving gear %s to %s: merging its data", o.ID, r.Node), nil
	}
	// Step 4: the old gear goes.
	data := "its data directory carried"
	if rs.DataCopy != state.DataMerged {
		data = "its data directory NOT carried (" + orNone(rs.DataCopy) + ")"
	}
	from := r.Replaces.Node
	r.Replaces = nil
	events := dropEvents(b, cv, a, *o)
	ops := []store.Op{{Bucket: state.BucketGears, Key: o.ID, Delete: true}, {Bucket: state.BucketGears, Key: r.ID, Value: r}}
	reason := fmt.Sprintf("node %s is being drained", from)
	if !cv.draining[from] {
		reason = fmt.Sprintf("gear %s was moved off node %s (gear move)", o.ID, from)
	}
	alert := state.Alert{Kind: state.AlertGearReplaced, AppName: a.Name, Namespace: a.Domain, Node: from, Gear: o.ID,
		Reason: reason, Action: fmt.Sprintf("gear %s replaced it on node %s, %s", r.ID, r.Node, data)}
	if err := b.commitAll(ctx, ops, events, []state.Alert{alert}); err != nil {
		return "", err
	}
	b.log.Info().Str("gear", o.ID).Str("replacement", r.ID).Str("data", data).Msg("evacuation: gear moved")
	return "", nil
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
