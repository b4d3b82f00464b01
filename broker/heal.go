package broker

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"time"

	"gearbox/store"
	"gearbox/store/state"
)

// DefaultNodeFailureGrace is the default of Config.NodeFailureGrace.
const DefaultNodeFailureGrace = 10 * time.Second

// Healing. The broker leader watches the node members: a node whose
// member has been gone (failed, left, or unknown to gossip) for
// NodeFailureGrace is reported node_failed, and each of its gears is
// replaced on another node under the placement rules (capacity, region,
// zone spread, never two LB gears of an app on one node, isolation): the
// gear's record moves to the new node with new ports, as `gear move`
// moves it, so the new node starts it on the app's current deployment
// and the routing layers swap its endpoints; a gear_replaced alert says
// where it went. The gear's data directory stays with the lost node: it
// is lost with it. The head gear of an app whose head is lost passes to
// an LB gear on a live node first.
//
// A gear that no node can take stays where it is, the app is reported
// app_degraded with the reason, and the next pass tries again, so that
// healing resumes when a node fits. An HA app whose live LB gears are on
// fewer than two nodes is degraded too; app_recovered follows when
// neither holds.
//
// Two rules keep healing from doing harm. A leader judges a node only
// after leading for the grace itself (a new leader does not take the
// time before it led for a failure), and it replaces nothing while more
// than half of the registered nodes are gone: that is a cluster starting,
// or this leader cut off from most of the cluster by a partition, where
// moving every gear to the few nodes in sight would overload them and,
// once the partition heals, leave the majority's gears destroyed. It
// logs and alerts that it holds.
//
// A node that comes back after its gears were replaced finds their
// records naming another node and destroys its copies (the gear record's
// node is the fence); one back within the grace keeps them. What the
// leader reported (failed nodes, degraded apps, crashing gears) is read
// back from the alert feed by the next leader, so that a change of
// leader neither repeats nor forgets an alert.
//
// A node an admin removed (noderemove.go) has its gears replaced at
// once, without the grace; a lost node's gear that a drain was already
// replacing (evacuate.go) is taken over by that replacement. A gear that
// its node reports crashing (node/process.go's crash limit) is reported
// gear_crashing, once per crash loop.

// healer is the leader's memory between passes. It belongs to healLoop.
type healer struct {
	leading bool
	since   time.Time            // when this member began to lead
	gone    map[string]time.Time // node -> since when it is gone
	failed  map[string]bool      // nodes reported node_failed
	apps    map[string]string    // app key -> the degraded reason reported
	holding bool                 // replacements held (more than half gone)
	// replaced are the gears this leader replaced that have not yet been
	// reported started on their new node.
	replaced map[string]bool
	crashing map[string]bool // gears reported gear_crashing, still crashing
}

// healLoop runs healing passes while this member leads: on changes of
// nodes, gears and apps, on membership changes, and every second for the
// grace.
func (b *Broker) healLoop() {
	w := b.st.Watch(state.BucketNodes, state.BucketNodeAdmin, state.BucketGears, state.BucketApps, state.BucketGearStatus)
	defer w.Close()
	members := b.st.MemberChanges()
	h := &healer{}
	for {
		if b.isLeader() {
			if !h.leading {
				if err := b.startHealing(h); err != nil {
					b.log.Warn().Err(err).Msg("read the alert feed failed")
				}
			}
			if h.leading {
				if err := b.healOnce(b.ctx, h); err != nil && b.ctx.Err() == nil && !errors.Is(err, store.ErrClosed) {
					b.log.Warn().Err(err).Msg("healing pass failed")
				}
				b.mu.Lock()
				err := b.evacuateOnce(b.ctx)
				b.mu.Unlock()
				if err != nil && b.ctx.Err() == nil && !errors.Is(err, store.ErrClosed) {
					b.log.Warn().Err(err).Msg("evacuation pass failed")
				}
				b.healPasses.Add(1)
			}
		} else {
			h.leading = false
		}
		select {
		case <-b.ctx.Done():
			return
		case <-w.C():
			w.Next()
		case <-members:
		case <-time.After(time.Second + rand.N(200*time.Millisecond)):
		}
	}
}

// startHealing sets h up for a new leadership: what earlier leaders
// reported is read back from the alert feed.
func (b *Broker) startHealing(h *healer) error {
	alerts, err := list[state.Alert](b.st, state.BucketAlerts)
	if err != nil {
		return err
	}
	*h = healer{leading: true, since: b.cfg.Now(), gone: map[string]time.Time{}, failed: map[string]bool{}, apps: map[string]string{}, replaced: map[string]bool{}, crashing: map[string]bool{}}
	sort.Slice(alerts, func(i, j int) bool { return alerts[i].Seq < alerts[j].Seq })
	for _, a := range alerts {
		key := state.AppKey(a.Namespace, a.AppName)
		switch a.Kind {
		case state.AlertNodeFailed:
			h.failed[a.Node] = true
			// Reported after the grace: it was gone that long before.
			h.gone[a.Node] = a.Time.Add(-b.cfg.NodeFailureGrace)
		case state.AlertNodeRecovered, state.AlertNodeRemoved:
			delete(h.failed, a.Node)
			delete(h.gone, a.Node)
		case state.AlertAppDegraded:
			h.apps[key] = a.Reason
		case state.AlertAppRecovered:
			delete(h.apps, key)
		case state.AlertGearCrashing:
			h.crashing[a.Gear] = true // forgotten at the first pass if it recovered
		}
	}
	return nil
}

// healOnce is one healing pass.
func (b *Broker) healOnce(ctx context.Context, h *healer) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	cv, err := b.loadCluster()
	if err != nil {
		return err
	}
	byKey, err := b.appsByKey()
	if err != nil {
		return err
	}
	now := b.cfg.Now()
	grace := b.cfg.NodeFailureGrace

	// Which nodes are gone, and for how long.
	var lost []string // gone for the grace
	var alerts []state.Alert
	for _, n := range cv.nodes {
		if n.Alive {
			if h.failed[n.Name] {
				alerts = append(alerts, state.Alert{Kind: state.AlertNodeRecovered, Node: n.Name,
					Reason: fmt.Sprintf("node %s is back", n.Name), Action: "it destroys its copies of the gears that were replaced"})
				delete(h.failed, n.Name)
			}
			delete(h.gone, n.Name)
			continue
		}
		since, ok := h.gone[n.Name]
		if !ok {
			since = now
			h.gone[n.Name] = since
		}
		// A new leader counts from its own start.
		if since.Before(h.since) {
			since = h.since
		}
		if now.Sub(since) >= grace {
			lost = append(lost, n.Name)
		}
	}
	for name := range h.gone {
		if cv.byName[name] == nil {
			delete(h.gone, name) // its record went
		}
	}
	hold := 2*len(h.gone) > len(cv.nodes)
	for _, name := range lost {
		if h.failed[name] {
			continue
		}
		h.failed[name] = true
		k := 0
		for _, g := range cv.gears {
			if g.Node == name {
				k++
			}
		}
		action := fmt.Sprintf("replacing its %d gear(s) on other nodes", k)
		if hold {
			action = fmt.Sprintf("holding replacements: %d of %d nodes are gone (a cluster starting, or this broker cut off from most nodes)", len(h.gone), len(cv.nodes))
		}
		alerts = append(alerts, state.Alert{Kind: state.AlertNodeFailed, Node: name,
			Reason: fmt.Sprintf("node %s has been gone for %s or more (member %s)", name, grace.Round(time.Second), b.memberStatus(name)), Action: action})
	}
	if err := b.commitAll(ctx, nil, nil, alerts); err != nil {
		return err
	}
	if hold != h.holding {
		h.holding = hold
		if hold {
			b.log.Warn().Int("gone", len(h.gone)).Int("nodes", len(cv.nodes)).Msg("more than half of the nodes are gone: gear replacements held")
		} else {
			b.log.Info().Msg("most nodes are back: gear replacements resume")
		}
	}

	// Replacements. The gears of a node an admin removed are lost too,
	// at once.
	cantPlace := map[string]string{} // app key -> why a gear of it stays lost
	lostSet := map[string]bool{}
	for _, n := range lost {
		lostSet[n] = true
	}
	for _, g := range cv.gears {
		if cv.byName[g.Node] == nil && cv.removed[g.Node] {
			lostSet[g.Node] = true
		}
	}
	if !hold {
		var todo []state.Gear
		for _, g := range cv.gears {
			if lostSet[g.Node] && byKey[g.App] != nil {
				todo = append(todo, g)
			}
		}
		sort.Slice(todo, func(i, j int) bool {
			if todo[i].App != todo[j].App {
				return todo[i].App < todo[j].App
			}
			return todo[i].Ordinal < todo[j].Ordinal
		})
		for _, g := range todo {
			a := byKey[g.App]
			reason := fmt.Sprintf("node %s is lost", g.Node)
			if cv.removed[g.Node] {
				reason = fmt.Sprintf("node %s was removed", g.Node)
			}
			if done, err := b.takeOverMove(ctx, cv, a, g, reason); err != nil || done {
				if err != nil {
					return err
				}
				continue
			}
			if why, err := b.replaceGear(ctx, cv, a, g, reason); err != nil {
				return err
			} else if why != "" {
				cantPlace[g.App] = why
			} else {
				h.replaced[g.ID] = true
			}
		}
	}

	// Degraded apps: judged only while healing is not held, so that a
	// cluster starting does not report every app.
	if hold {
		return nil
	}
	statuses, err := b.gearStatuses()
	if err != nil {
		return err
	}
	for id := range h.replaced {
		if s, ok := statuses[id]; ok && s.State == state.GearStarted && s.Node == gearNode(cv, id) {
			delete(h.replaced, id)
		} else if gearNode(cv, id) == "" {
			delete(h.replaced, id) // destroyed meanwhile
		}
	}
	alerts = alerts[:0]
	keys := make([]string, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		a := byKey[key]
		why := cantPlace[key]
		if why == "" {
			why = degradedReason(a, gearsOf(cv.gears, key), lostSet, h.replaced)
		}
		switch prev := h.apps[key]; {
		case why != "" && why != prev:
			alerts = append(alerts, state.Alert{Kind: state.AlertAppDegraded, AppName: a.Name, Namespace: a.Domain, Reason: why,
				Action: "healing goes on as soon as a node fits"})
			h.apps[key] = why
		case why == "" && prev != "":
			alerts = append(alerts, state.Alert{Kind: state.AlertAppRecovered, AppName: a.Name, Namespace: a.Domain,
				Reason: fmt.Sprintf("application %s is back to full strength", a.Name), Action: "none needed"})
			delete(h.apps, key)
		}
	}
	for key := range h.apps {
		if byKey[key] == nil {
			delete(h.apps, key) // deleted meanwhile
		}
	}
	alerts = append(alerts, crashAlerts(cv, byKey, statuses, h.crashing)...)
	return b.commitAll(ctx, nil, nil, alerts)
}

// crashAlerts returns a gear_crashing alert for each gear that its node
// reports crashing and that is not in reported, and updates reported:
// gears no longer crashing leave it, so that a later crash loop is
// reported again.
func crashAlerts(cv *clusterView, byKey map[string]*state.App, statuses map[string]state.GearStatus, reported map[string]bool) []state.Alert {
	var alerts []state.Alert
	now := map[string]bool{}
	for _, g := range cv.gears {
		s, ok := statuses[g.ID]
		a := byKey[g.App]
		if !ok || a == nil || s.State != state.GearCrashing || s.Node != g.Node {
			continue
		}
		now[g.ID] = true
		if reported[g.ID] {
			continue
		}
		reported[g.ID] = true
		alerts = append(alerts, state.Alert{Kind: state.AlertGearCrashing, AppName: a.Name, Namespace: a.Domain, Node: g.Node, Gear: g.ID,
			Reason: "gear " + g.ID + " keeps ending: " + s.Reason, Log: s.LogTail,
			Action: "its node backs off instead of restarting it at once; it is started again after the wait, and as soon as the app is deployed or restarted"})
	}
	for id := range reported {
		if !now[id] {
			delete(reported, id)
		}
	}
	return alerts
}

// replaceGear moves gear g of app a off its lost node and commits it,
// with its routing events and a gear_replaced alert giving reason. When no node can
// take it, it writes nothing and returns why.
func (b *Broker) replaceGear(ctx context.Context, cv *clusterView, a *state.App, g state.Gear, reason string) (string, error) {
	var ops []store.Op
	gears := gearsOf(cv.gears, g.App)
	// The head passes to an LB gear on a live node.
	if g.Head {
		for _, o := range gears {
			if o.LB && o.ID != g.ID && cv.alive[o.Node] {
				o.Head, g.Head = true, false
				ops = append(ops, store.Op{Bucket: state.BucketGears, Key: o.ID, Value: o})
				setGear(cv, o)
				setGear(cv, g)
				b.log.Info().Str("app", a.Name).Str("domain", a.Domain).Str("gear", o.ID).Str("was", g.ID).Msg("head gear re-designated")
				break
			}
		}
	}
	ap := AppPlacement{Owner: a.Owner, Region: a.Region, GearsOn: map[string]int{}, LBsOn: map[string]int{}}
	for _, o := range gears {
		if o.ID == g.ID {
			continue
		}
		ap.GearsOn[o.Node]++
		if o.LB {
			ap.LBsOn[o.Node]++
		}
	}
	policy := PlacementPolicy{MinZones: b.cfg.ZonesMinPerGearGroup, AllowMultipleLBPerNode: b.cfg.AllowMultipleLBPerNode}
	target, err := policy.Place(cv.nodes, ap, g.LB)
	if err != nil {
		if len(ops) > 0 {
			if err := b.commit(ctx, ops, nil); err != nil {
				return "", err
			}
		}
		what := "gear"
		if g.LB {
			what = "LB gear"
		}
		return fmt.Sprintf("%s %s on lost node %s cannot be replaced: %v", what, g.ID, g.Node, err), nil
	}
	from := g.Node
	moved, events, err := relocate(b, cv, a, g, target)
	if err != nil {
		return fmt.Sprintf("gear %s on lost node %s cannot be replaced: %v", g.ID, from, err), nil
	}
	ops = append(ops, store.Op{Bucket: state.BucketGears, Key: moved.ID, Value: moved})
	alert := state.Alert{Kind: state.AlertGearReplaced, AppName: a.Name, Namespace: a.Domain, Node: from, Gear: g.ID,
		Reason: reason, Action: fmt.Sprintf("gear started anew on node %s (its data directory is lost with the node)", target)}
	if err := b.commitAll(ctx, ops, events, []state.Alert{alert}); err != nil {
		return "", err
	}
	setGear(cv, moved)
	return "", nil
}

// takeOverMove ends the planned move of gear g of app a, whose node is
// lost, when a replacement was already placed for it (evacuate.go): g
// goes, and the replacement stays in its place, its data as far as it
// was copied. It reports whether there was such a replacement.
func (b *Broker) takeOverMove(ctx context.Context, cv *clusterView, a *state.App, g state.Gear, reason string) (bool, error) {
	for _, r := range cv.gears {
		if r.Replaces == nil || r.Replaces.Gear != g.ID || r.Replaces.Node != g.Node {
			continue
		}
		r.Replaces = nil
		if g.Head && r.LB {
			r.Head = true
		}
		ops := []store.Op{{Bucket: state.BucketGears, Key: g.ID, Delete: true}, {Bucket: state.BucketGears, Key: r.ID, Value: r}}
		alert := state.Alert{Kind: state.AlertGearReplaced, AppName: a.Name, Namespace: a.Domain, Node: g.Node, Gear: g.ID,
			Reason: reason, Action: fmt.Sprintf("its replacement %s on node %s, placed for a drain, takes over (data as far as it was copied)", r.ID, r.Node)}
		if err := b.commitAll(ctx, ops, dropEvents(b, cv, a, g), []state.Alert{alert}); err != nil {
			return false, err
		}
		setGear(cv, r)
		cv.gears = slices.DeleteFunc(cv.gears, func(x state.Gear) bool { return x.ID == g.ID })
		return true, nil
	}
	return false, nil
}

// setGear replaces gear g's entry in cv.
func setGear(cv *clusterView, g state.Gear) {
	for i := range cv.gears {
		if cv.gears[i].ID == g.ID {
			cv.gears[i] = g
		}
	}
}

// degradedReason says why app a, with gears gs, is short of what it
// should have, or "": gears on lost nodes, replacements not yet started,
// and then whether an HA app's other LB gears are on fewer than two
// nodes.
func degradedReason(a *state.App, gs []state.Gear, lost, starting map[string]bool) string {
	var why []string
	var down, pending []string
	lbNodes := map[string]bool{}
	for _, g := range gs {
		switch {
		case lost[g.Node]:
			if !slices.Contains(down, g.Node) {
				down = append(down, g.Node)
			}
			continue
		case starting[g.ID]:
			pending = append(pending, g.ID)
		}
		if g.LB {
			lbNodes[g.Node] = true
		}
	}
	if len(down) > 0 {
		sort.Strings(down)
		why = append(why, "gears on lost node(s) "+strings.Join(down, ", "))
	}
	if len(pending) > 0 {
		why = append(why, "replacement gear(s) "+strings.Join(pending, ", ")+" not started yet")
	}
	// (Only with a loss: with --allow-multiple-lb-per-node, or on a one
	// node cluster, an HA app's LB gears share a node by choice.)
	if a.HA && len(lbNodes) < 2 && len(why) > 0 {
		why = append(why, fmt.Sprintf("HA but its LB gears are on %d node(s)", len(lbNodes)))
	}
	return strings.Join(why, "; ")
}

// gearNode is the node of gear id in cv, or "" when it has none.
func gearNode(cv *clusterView, id string) string {
	for _, g := range cv.gears {
		if g.ID == id {
			return g.Node
		}
	}
	return ""
}

// memberStatus is the gossip status of member name: alive, failed, left,
// or unknown when gossip does not know it.
func (b *Broker) memberStatus(name string) string {
	for _, m := range b.st.Members() {
		if m.Name == name {
			return m.Status
		}
	}
	return "unknown"
}
