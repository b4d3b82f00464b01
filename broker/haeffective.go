package broker

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"time"

	"gearbox/lb"
	"gearbox/store"
	"gearbox/store/internalapi"
	"gearbox/store/state"
)

// HA is effective, for an HA app, once losing any one node loses no
// request: two or more of its LB gears are started (reported by their
// nodes, alive), on two or more nodes, in two or more zones when the
// cluster's alive nodes span several, and each alive router has two or
// more of them in rotation (serving). `gearbox app enable-ha` waits for
// it, and app show says it (LBSummary.Effective).

// haStatusTimeout bounds the read of one router's status.
const haStatusTimeout = 2 * time.Second

// routerStatus is what HA effectiveness reads of a router's status
// (internalapi.PathRouterStatus): the broker does not import the router
// role (roles never import each other), only its pools' lb.Status.
type routerStatus struct {
	Apps map[string]struct {
		Pool lb.Status `json:"pool"`
	} `json:"apps"`
}

// haEffective reports whether HA app a's high availability holds, and if
// not, why.
func (b *Broker) haEffective(ctx context.Context, a *state.App, cv *clusterView) (bool, string, error) {
	statuses, err := b.gearStatuses()
	if err != nil {
		return false, "", err
	}
	key := state.AppKey(a.Domain, a.Name)
	zoneOf := cv.zoneOf()
	started := map[string]bool{}
	nodes, zones := map[string]bool{}, map[string]bool{}
	for _, g := range gearsOf(cv.gears, key) {
		s, ok := statuses[g.ID]
		if !g.LB || !ok || s.Node != g.Node || s.State != state.GearStarted || !cv.alive[g.Node] {
			continue
		}
		started[g.ID] = true
		nodes[g.Node] = true
		if z := zoneOf[g.Node]; z != "" {
			zones[z] = true
		}
	}
	clusterZones := map[string]bool{}
	for _, n := range cv.nodes {
		if z := zoneOf[n.Name]; n.Alive && z != "" {
			clusterZones[z] = true
		}
	}
	switch {
	case len(started) < 2:
		return false, fmt.Sprintf("%d of its LB gears started", len(started)), nil
	case len(nodes) < 2:
		return false, "its started LB gears are on one node", nil
	case len(clusterZones) >= 2 && len(zones) < 2:
		return false, "its started LB gears are in one zone", nil
	}
	var routers []store.Member
	for _, m := range b.st.Members() {
		if m.Status == store.StatusAlive && m.HasRole(store.RoleRouter) {
			routers = append(routers, m)
		}
	}
	sort.Slice(routers, func(i, j int) bool { return routers[i].Name < routers[j].Name })
	for _, m := range routers {
		n, err := b.routerServing(ctx, m, key, started)
		if err != nil {
			return false, fmt.Sprintf("router %s: %v", m.Name, err), nil
		}
		if n < 2 {
			return false, fmt.Sprintf("router %s has %d of its LB gears in rotation", m.Name, n), nil
		}
	}
	return true, "", nil
}

// routerServing returns how many of the gears in ids router m has in
// rotation for app key.
func (b *Broker) routerServing(ctx context.Context, m store.Member, key string, ids map[string]bool) (int, error) {
	if m.InternalAddr == "" {
		return 0, fmt.Errorf("no internal address")
	}
	ctx, cancel := context.WithTimeout(ctx, haStatusTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, internalapi.URL(m.InternalAddr, internalapi.PathRouterStatus), nil)
	if err != nil {
		return 0, err
	}
	resp, err := b.logClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("status not read: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("status: %s", resp.Status)
	}
	var st routerStatus
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&st); err != nil {
		return 0, fmt.Errorf("status not read: %w", err)
	}
	n := 0
	for _, be := range st.Apps[key].Pool.Backends {
		if be.Serving && ids[be.ID] {
			n++
		}
	}
	return n, nil
}
