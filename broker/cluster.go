package broker

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"sort"

	"gearbox/store"
	"gearbox/store/state"
)

// clusterView is what a mutation needs to know of the whole cluster:
// nodes for placement and ports, and every gear.
type clusterView struct {
	nodes    []NodeView
	byName   map[string]*state.Node
	alive    map[string]bool
	draining map[string]bool
	removed  map[string]bool // nodes an admin removed
	// evacuation is where each draining node's evacuation stands.
	evacuation map[string]string
	gears      []state.Gear
	ports      map[string]map[int]bool // node -> ports in use
}

func (b *Broker) loadCluster() (*clusterView, error) {
	nodes, err := list[state.Node](b.st, state.BucketNodes)
	if err != nil {
		return nil, err
	}
	admin, err := list[state.NodeAdmin](b.st, state.BucketNodeAdmin)
	if err != nil {
		return nil, err
	}
	gears, err := list[state.Gear](b.st, state.BucketGears)
	if err != nil {
		return nil, err
	}
	apps, err := list[state.App](b.st, state.BucketApps)
	if err != nil {
		return nil, err
	}
	cv := &clusterView{byName: map[string]*state.Node{}, alive: map[string]bool{}, draining: map[string]bool{},
		removed: map[string]bool{}, evacuation: map[string]string{}, gears: gears, ports: map[string]map[int]bool{}}
	for _, m := range b.st.Members() {
		if m.Status == store.StatusAlive && m.HasRole(store.RoleNode) {
			cv.alive[m.Name] = true
		}
	}
	for _, a := range admin {
		cv.draining[a.Name] = a.Draining
		cv.removed[a.Name] = a.Removed
		if a.Draining {
			cv.evacuation[a.Name] = a.Evacuation
		}
	}
	ownerOf := make(map[string]string, len(apps))
	for _, a := range apps {
		ownerOf[state.AppKey(a.Domain, a.Name)] = a.Owner
	}
	load := map[string]int{}
	owners := map[string][]string{} // node -> the owners of its gears
	for _, g := range gears {
		load[g.Node]++
		cv.usePorts(g)
		// A gear whose app is gone counts as someone else's ("").
		if o := ownerOf[g.App]; !slices.Contains(owners[g.Node], o) {
			owners[g.Node] = append(owners[g.Node], o)
		}
	}
	for i := range nodes {
		n := &nodes[i]
		cv.byName[n.Name] = n
		cv.nodes = append(cv.nodes, NodeView{Name: n.Name, Zone: n.Zone, Region: n.Region, MaxGears: n.MaxGears,
			Gears: load[n.Name], Alive: cv.alive[n.Name], Draining: cv.draining[n.Name],
			Isolated: n.Isolates(), Owners: owners[n.Name]})
	}
	sort.Slice(cv.nodes, func(i, j int) bool { return cv.nodes[i].Name < cv.nodes[j].Name })
	return cv, nil
}

// appsByKey maps each app's AppKey to its record.
func (b *Broker) appsByKey() (map[string]*state.App, error) {
	apps, err := list[state.App](b.st, state.BucketApps)
	if err != nil {
		return nil, err
	}
	byKey := make(map[string]*state.App, len(apps))
	for i := range apps {
		byKey[state.AppKey(apps[i].Domain, apps[i].Name)] = &apps[i]
	}
	return byKey, nil
}

func (cv *clusterView) usePorts(g state.Gear) {
	m := cv.ports[g.Node]
	if m == nil {
		m = map[int]bool{}
		cv.ports[g.Node] = m
	}
	if g.Port > 0 {
		m[g.Port] = true
	}
	if g.LBPort > 0 {
		m[g.LBPort] = true
	}
}

func (cv *clusterView) freePorts(g state.Gear) {
	if m := cv.ports[g.Node]; m != nil {
		delete(m, g.Port)
		delete(m, g.LBPort)
	}
}

// port takes a free port of node's range, each as likely as the others.
//
// Gears share their node's address, so a port handed out in order (the
// lowest free one) is known before its gear exists: a gear that binds it
// first would receive the next gear's traffic. Chosen at random, it
// cannot be guessed; and the node checks that the socket on a gear's port
// is the gear's before it routes there (node/portowner.go).
func (cv *clusterView) port(node string) (int, error) {
	lo, hi := state.DefaultPortMin, state.DefaultPortMax
	if n := cv.byName[node]; n != nil && n.PortMin > 0 && n.PortMax >= n.PortMin {
		lo, hi = n.PortMin, n.PortMax
	}
	used := cv.ports[node]
	if used == nil {
		used = map[int]bool{}
		cv.ports[node] = used
	}
	free := hi - lo + 1
	for p := range used {
		if p >= lo && p <= hi {
			free--
		}
	}
	if free <= 0 {
		return 0, fmt.Errorf("node %s has no free port in %d-%d", node, lo, hi)
	}
	k, err := rand.Int(rand.Reader, big.NewInt(int64(free)))
	if err != nil {
		return 0, fmt.Errorf("pick a gear port: %w", err)
	}
	// The k-th free port: one pass over the range, for one new gear.
	n := k.Int64()
	for p := lo; p <= hi; p++ {
		if used[p] {
			continue
		}
		if n == 0 {
			used[p] = true
			return p, nil
		}
		n--
	}
	return 0, fmt.Errorf("node %s has no free port in %d-%d", node, lo, hi)
}

func (cv *clusterView) zoneOf() map[string]string {
	z := make(map[string]string, len(cv.byName))
	for name, n := range cv.byName {
		z[name] = n.Zone
	}
	return z
}

// adjustLoad records a gear added to (+1) or removed from (-1) node.
func (cv *clusterView) adjustLoad(node string, d int) {
	for i := range cv.nodes {
		if cv.nodes[i].Name == node {
			cv.nodes[i].Gears += d
		}
	}
}

// appsIn lists the apps of namespace ns.
func (b *Broker) appsIn(ns string) ([]state.App, error) {
	apps, err := list[state.App](b.st, state.BucketApps)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(apps, func(a state.App) bool { return a.Domain != ns }), nil
}

// gearsOf lists app's gears by ordinal.
func gearsOf(all []state.Gear, appKey string) []state.Gear {
	var out []state.Gear
	for _, g := range all {
		if g.App == appKey {
			out = append(out, g)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Ordinal < out[j].Ordinal })
	return out
}

// gearsOwnedBy counts the gears of every app login owns.
func (b *Broker) gearsOwnedBy(login string) (int, error) {
	apps, err := list[state.App](b.st, state.BucketApps)
	if err != nil {
		return 0, err
	}
	owned := map[string]bool{}
	for _, a := range apps {
		if a.Owner == login {
			owned[state.AppKey(a.Domain, a.Name)] = true
		}
	}
	if len(owned) == 0 {
		return 0, nil
	}
	gears, err := list[state.Gear](b.st, state.BucketGears)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, g := range gears {
		if owned[g.App] {
			n++
		}
	}
	return n, nil
}

// commit writes ops and appends events to the routing feed, in one batch.
func (b *Broker) commit(ctx context.Context, ops []store.Op, events []state.RoutingEvent) error {
	return b.commitAll(ctx, ops, events, nil)
}

// commitAll is commit that also appends alerts to the alert feed, in the
// same batch.
func (b *Broker) commitAll(ctx context.Context, ops []store.Op, events []state.RoutingEvent, alerts []state.Alert) error {
	if len(alerts) > 0 {
		seq, err := b.lastAlertSeq()
		if err != nil {
			return err
		}
		now := b.cfg.Now()
		for i := range alerts {
			seq++
			alerts[i].Seq = seq
			alerts[i].Time = now
			ops = append(ops, store.Op{Bucket: state.BucketAlerts, Key: state.EventKey(seq), Value: alerts[i]})
		}
	}
	if len(events) > 0 {
		seq, err := b.lastSeq()
		if err != nil {
			return err
		}
		now := b.cfg.Now()
		for i := range events {
			seq++
			events[i].Seq = seq
			events[i].Time = now
			ops = append(ops, store.Op{Bucket: state.BucketRoutingEvents, Key: state.EventKey(seq), Value: events[i]})
		}
	}
	if len(ops) == 0 {
		return nil
	}
	if _, err := b.st.Batch(ctx, ops); err != nil {
		return err
	}
	b.metrics.committed(events, alerts)
	// Only a written sequence is remembered: a failed batch must not
	// leave a gap in the feed.
	if n := len(events); n > 0 {
		b.seq = events[n-1].Seq
	}
	if n := len(alerts); n > 0 {
		b.alertSeq = alerts[n-1].Seq
		for _, a := range alerts {
			b.log.Warn().Str("alert", a.Kind).Str("app", a.AppName).Str("domain", a.Namespace).Str("node", a.Node).
				Str("gear", a.Gear).Str("action", a.Action).Msg(a.Reason)
		}
	}
	return nil
}

// lastSeq is the newest routing event's sequence number. It is cached and
// checked against the store, so a new leader continues where the last
// one stopped.
func (b *Broker) lastSeq() (uint64, error) { return b.lastIn(state.BucketRoutingEvents, b.seq) }

// lastAlertSeq is lastSeq for the alert feed.
func (b *Broker) lastAlertSeq() (uint64, error) { return b.lastIn(state.BucketAlerts, b.alertSeq) }

// lastIn is the newest sequence of a feed's bucket, given cached, the
// last one this broker wrote.
func (b *Broker) lastIn(bucket string, cached uint64) (uint64, error) {
	if cached > 0 {
		if _, err := b.st.GetRecord(bucket, state.EventKey(cached+1)); errors.Is(err, store.ErrNotFound) {
			return cached, nil
		}
	}
	recs, err := b.st.List(bucket)
	if err != nil {
		return 0, err
	}
	var last uint64
	for _, r := range recs {
		var e struct {
			Seq uint64 `json:"seq"`
		}
		if err := r.Decode(&e); err == nil && e.Seq > last {
			last = e.Seq
		}
	}
	return last, nil
}
