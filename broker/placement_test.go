package broker

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"gearbox/store/state"
)

var placementSeed = flag.Uint64("placement.seed", 0, "seed of the random clusters in placement tests (0: pick one)")

// placementRand returns the random source of a property test and logs its
// seed, so that a failure can be replayed with -placement.seed.
func placementRand(t *testing.T) *rand.Rand {
	t.Helper()
	seed := *placementSeed
	if seed == 0 {
		seed = rand.Uint64()
	}
	t.Logf("seed %d (replay with -placement.seed=%d)", seed, seed)
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

// pnode is an alive, empty node in zone of region r1.
func pnode(name, zone string, maxGears int) NodeView {
	return NodeView{Name: name, Zone: zone, Region: "r1", MaxGears: maxGears, Alive: true}
}

// pnodeWith is n changed by f.
func pnodeWith(n NodeView, f func(*NodeView)) NodeView { f(&n); return n }

// pnodeLoaded is n holding gears gears.
func pnodeLoaded(n NodeView, gears int) NodeView { n.Gears = gears; return n }

func TestPlacementRules(t *testing.T) {
	dead := func(n *NodeView) { n.Alive = false }
	draining := func(n *NodeView) { n.Draining = true }
	region := func(r string) func(*NodeView) { return func(n *NodeView) { n.Region = r } }

	tests := []struct {
		name    string
		policy  PlacementPolicy
		nodes   []NodeView
		app     AppPlacement
		lb      bool
		want    string
		wantErr error // ErrNoNodes, or a *MinZonesError compared by value
	}{
		{
			name:  "single node",
			nodes: []NodeView{pnode("n1", "za", 10)},
			want:  "n1",
		},
		{
			name:  "dead node skipped",
			nodes: []NodeView{pnodeWith(pnode("a", "za", 10), dead), pnodeLoaded(pnode("b", "za", 10), 9)},
			want:  "b",
		},
		{
			name:  "draining node skipped",
			nodes: []NodeView{pnodeWith(pnode("a", "za", 10), draining), pnodeLoaded(pnode("b", "za", 10), 9)},
			want:  "b",
		},
		{
			name:  "full node skipped",
			nodes: []NodeView{pnodeLoaded(pnode("a", "za", 10), 10), pnodeLoaded(pnode("b", "za", 100), 99)},
			want:  "b",
		},
		{
			name:  "node without capacity skipped",
			nodes: []NodeView{pnode("a", "za", 0), pnodeLoaded(pnode("b", "za", 10), 9)},
			want:  "b",
		},
		{
			name:  "app region pins the node",
			nodes: []NodeView{pnode("a", "za", 10), pnodeWith(pnodeLoaded(pnode("b", "za", 10), 9), region("r2"))},
			app:   AppPlacement{Region: "r2"},
			want:  "b",
		},
		{
			name:  "no region: any region",
			nodes: []NodeView{pnodeLoaded(pnode("a", "za", 10), 5), pnodeWith(pnode("b", "za", 10), region("r2"))},
			want:  "b",
		},
		{
			name:    "region without nodes",
			nodes:   []NodeView{pnode("a", "za", 10), pnode("b", "zb", 10)},
			app:     AppPlacement{Region: "r9"},
			wantErr: ErrNoNodes,
		},
		{
			name:    "region whose nodes are all full",
			nodes:   []NodeView{pnode("a", "za", 10), pnodeWith(pnodeLoaded(pnode("b", "zb", 10), 10), region("r2"))},
			app:     AppPlacement{Region: "r2"},
			wantErr: ErrNoNodes,
		},
		{
			name:    "only dead and draining nodes",
			nodes:   []NodeView{pnodeWith(pnode("a", "za", 10), dead), pnodeWith(pnode("b", "zb", 10), draining)},
			wantErr: ErrNoNodes,
		},
		{
			name:    "no nodes at all",
			wantErr: ErrNoNodes,
		},
		{
			name:  "web gear may join the LB gear's node",
			nodes: []NodeView{pnode("a", "za", 10), pnode("b", "za", 10)},
			app:   AppPlacement{GearsOn: map[string]int{"a": 1, "b": 2}, LBsOn: map[string]int{"a": 1}},
			want:  "a",
		},
		{
			name:  "LB gear never joins the app's LB gear",
			nodes: []NodeView{pnode("a", "za", 10), pnode("b", "za", 10)},
			app:   AppPlacement{GearsOn: map[string]int{"a": 1, "b": 2}, LBsOn: map[string]int{"a": 1}},
			lb:    true,
			want:  "b",
		},
		{
			name:    "LB gear with every node holding one",
			nodes:   []NodeView{pnode("a", "za", 10), pnode("b", "zb", 10)},
			app:     AppPlacement{GearsOn: map[string]int{"a": 1, "b": 1}, LBsOn: map[string]int{"a": 1, "b": 1}},
			lb:      true,
			wantErr: ErrNoNodes,
		},
		{
			name:   "LB gears may share a node when allowed",
			policy: PlacementPolicy{AllowMultipleLBPerNode: true},
			nodes:  []NodeView{pnode("a", "za", 10), pnode("b", "zb", 10)},
			app:    AppPlacement{GearsOn: map[string]int{"a": 1, "b": 2}, LBsOn: map[string]int{"a": 1}},
			lb:     true,
			want:   "a",
		},
		{
			name: "zone without the app beats an emptier node",
			nodes: []NodeView{
				pnodeLoaded(pnode("a1", "za", 10), 5), pnode("a2", "za", 10),
				pnodeLoaded(pnode("b1", "zb", 10), 9),
			},
			app:  AppPlacement{GearsOn: map[string]int{"a1": 1}},
			want: "b1",
		},
		{
			name: "zone with the fewest of the app's gears",
			nodes: []NodeView{
				pnode("a1", "za", 10), pnode("a2", "za", 10), pnode("a3", "za", 10), pnode("a4", "za", 10),
				pnode("b1", "zb", 10), pnodeLoaded(pnode("b2", "zb", 10), 7),
				pnode("c1", "zc", 10), pnode("c2", "zc", 10), pnode("c3", "zc", 10),
			},
			app:  AppPlacement{GearsOn: map[string]int{"a1": 1, "a2": 1, "a3": 1, "b1": 1, "c1": 1, "c2": 1}},
			want: "b2",
		},
		{
			name: "zone spread before node anti-affinity",
			nodes: []NodeView{
				pnode("a1", "za", 10),
				pnode("b1", "zb", 10), pnode("b2", "zb", 10), pnode("b3", "zb", 10),
			},
			app:  AppPlacement{GearsOn: map[string]int{"a1": 1, "b1": 1, "b2": 1}},
			want: "a1",
		},
		{
			name: "gears on dead and draining nodes count for their zone",
			nodes: []NodeView{
				pnodeWith(pnode("a1", "za", 10), dead), pnodeWith(pnode("a2", "za", 10), draining), pnode("a3", "za", 10),
				pnodeLoaded(pnode("b1", "zb", 10), 8),
			},
			app:  AppPlacement{GearsOn: map[string]int{"a1": 1, "a2": 1, "b1": 1}},
			want: "b1",
		},
		{
			name: "gears on unknown nodes are ignored",
			nodes: []NodeView{
				pnode("a1", "za", 10), pnodeLoaded(pnode("b1", "zb", 10), 1),
			},
			app:  AppPlacement{GearsOn: map[string]int{"gone": 5}},
			want: "a1",
		},
		{
			name: "tied zones: node with fewest of the app's gears",
			nodes: []NodeView{
				pnode("a1", "za", 10), pnode("a2", "za", 10),
				pnode("b1", "zb", 10), pnodeLoaded(pnode("b2", "zb", 10), 9),
			},
			app:  AppPlacement{GearsOn: map[string]int{"a1": 1, "a2": 1, "b1": 2}},
			want: "b2",
		},
		{
			name: "node with the fewest of the app's gears",
			nodes: []NodeView{
				pnode("a", "za", 10), pnodeLoaded(pnode("b", "za", 10), 6), pnode("c", "za", 10),
			},
			app:  AppPlacement{GearsOn: map[string]int{"a": 3, "b": 1, "c": 2}},
			want: "b",
		},
		{
			name:  "least loaded by ratio, not by count",
			nodes: []NodeView{pnodeLoaded(pnode("small", "za", 10), 5), pnodeLoaded(pnode("big", "za", 100), 40)},
			want:  "big",
		},
		{
			name:  "equal ratio: fewest gears",
			nodes: []NodeView{pnodeLoaded(pnode("a", "za", 20), 10), pnodeLoaded(pnode("b", "za", 10), 5)},
			want:  "b",
		},
		{
			// 10/30 and 1/3 are the same load: a float comparison may
			// round them apart, cross-multiplication does not.
			name:  "equal thirds: fewest gears",
			nodes: []NodeView{pnodeLoaded(pnode("a", "za", 30), 10), pnodeLoaded(pnode("b", "za", 3), 1)},
			want:  "b",
		},
		{
			name:  "all equal: lowest name",
			nodes: []NodeView{pnode("n2", "za", 10), pnode("n3", "za", 10), pnode("n1", "za", 10)},
			want:  "n1",
		},
		{
			name:  "nodes without a zone form the zone \"\"",
			nodes: []NodeView{pnode("a", "", 10), pnode("b", "", 10), pnodeLoaded(pnode("c", "za", 10), 9)},
			app:   AppPlacement{GearsOn: map[string]int{"a": 1}},
			want:  "c",
		},
		{
			name:   "min zones met",
			policy: PlacementPolicy{MinZones: 2},
			nodes:  []NodeView{pnode("a", "za", 10), pnode("b", "zb", 10)},
			want:   "a",
		},
		{
			name:   "min zones 0 is 1",
			policy: PlacementPolicy{MinZones: 0},
			nodes:  []NodeView{pnode("a", "za", 10)},
			want:   "a",
		},
		{
			name:   "min zones negative is 1",
			policy: PlacementPolicy{MinZones: -3},
			nodes:  []NodeView{pnode("a", "za", 10)},
			want:   "a",
		},
		{
			name:    "min zones counts candidate zones only",
			policy:  PlacementPolicy{MinZones: 3},
			nodes:   []NodeView{pnode("a", "za", 10), pnode("b", "zb", 10), pnodeWith(pnode("c", "zc", 10), dead), pnodeLoaded(pnode("d", "zd", 10), 10)},
			wantErr: &MinZonesError{Available: 2, Needed: 3},
		},
		{
			name:    "min zones within the region",
			policy:  PlacementPolicy{MinZones: 2},
			nodes:   []NodeView{pnode("a", "za", 10), pnode("b", "zb", 10), pnodeWith(pnode("c", "zc", 10), region("r2"))},
			app:     AppPlacement{Region: "r2"},
			wantErr: &MinZonesError{Available: 1, Needed: 2},
		},
		{
			name:    "min zones: the zone \"\" is one zone",
			policy:  PlacementPolicy{MinZones: 3},
			nodes:   []NodeView{pnode("a", "", 10), pnode("b", "", 10), pnode("c", "za", 10)},
			wantErr: &MinZonesError{Available: 2, Needed: 3},
		},
		{
			name:    "min zones after the LB rule",
			policy:  PlacementPolicy{MinZones: 2},
			nodes:   []NodeView{pnode("a", "za", 10), pnode("b", "zb", 10)},
			app:     AppPlacement{GearsOn: map[string]int{"a": 1}, LBsOn: map[string]int{"a": 1}},
			lb:      true,
			wantErr: &MinZonesError{Available: 1, Needed: 2},
		},
		{
			name:    "no candidate is reported before min zones",
			policy:  PlacementPolicy{MinZones: 3},
			nodes:   []NodeView{pnodeWith(pnode("a", "za", 10), dead)},
			wantErr: ErrNoNodes,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.policy.Place(tt.nodes, tt.app, tt.lb)
			var wantMZ *MinZonesError
			switch {
			case errors.As(tt.wantErr, &wantMZ):
				var mz *MinZonesError
				if !errors.As(err, &mz) || *mz != *wantMZ {
					t.Fatalf("Place = %q, %v; want error %v", got, err, tt.wantErr)
				}
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Place = %q, %v; want error %v", got, err, tt.wantErr)
				}
			default:
				if err != nil || got != tt.want {
					t.Fatalf("Place = %q, %v; want %q", got, err, tt.want)
				}
			}
			if err != nil && got != "" {
				t.Errorf("Place returned node %q with error %v", got, err)
			}
		})
	}
}

func TestPlacementErrorText(t *testing.T) {
	const noNodes = "No nodes available for the specified gear size/region/zone combination"
	if got := ErrNoNodes.Error(); got != noNodes {
		t.Errorf("ErrNoNodes = %q, want %q", got, noNodes)
	}
	tests := []struct {
		available, needed int
		want              string
	}{
		{0, 1, "Unable to find minimum zones required for application gear group. Available zones:0, Needed min zones:1"},
		{2, 3, "Unable to find minimum zones required for application gear group. Available zones:2, Needed min zones:3"},
		{9, 12, "Unable to find minimum zones required for application gear group. Available zones:9, Needed min zones:12"},
	}
	for _, tt := range tests {
		if got := (&MinZonesError{Available: tt.available, Needed: tt.needed}).Error(); got != tt.want {
			t.Errorf("MinZonesError{%d, %d} = %q, want %q", tt.available, tt.needed, got, tt.want)
		}
	}

	// And as Place returns them.
	p := PlacementPolicy{MinZones: 4}
	_, err := p.Place([]NodeView{pnode("a", "za", 1), pnode("b", "zb", 1), pnode("c", "zb", 1)}, AppPlacement{}, false)
	if want := "Unable to find minimum zones required for application gear group. Available zones:2, Needed min zones:4"; err == nil || err.Error() != want {
		t.Errorf("Place error = %v, want %q", err, want)
	}
	_, err = p.Place([]NodeView{pnodeLoaded(pnode("a", "za", 1), 1)}, AppPlacement{}, false)
	if err == nil || err.Error() != noNodes {
		t.Errorf("Place error = %v, want %q", err, noNodes)
	}
}

func TestPlacementLBSpread(t *testing.T) {
	zoneOf := map[string]string{"a1": "za", "a2": "za", "b1": "zb", "c1": "zc", "x": ""}
	tests := []struct {
		name       string
		lbNodes    []string
		nodes, zns int
	}{
		{"none", nil, 0, 0},
		{"one", []string{"a1"}, 1, 1},
		{"two on one node", []string{"a1", "a1"}, 1, 1},
		{"two nodes one zone", []string{"a1", "a2"}, 2, 1},
		{"two zones", []string{"a1", "b1"}, 2, 2},
		{"three zones with repeats", []string{"a1", "b1", "a2", "c1", "b1"}, 4, 3},
		{"unlabelled and unknown nodes share zone \"\"", []string{"x", "gone", "a1"}, 3, 2},
		{"unplaced gears not counted", []string{"", "a1", ""}, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, z := lbSpread(tt.lbNodes, zoneOf)
			if n != tt.nodes || z != tt.zns {
				t.Errorf("lbSpread(%q) = %d nodes, %d zones; want %d, %d", tt.lbNodes, n, z, tt.nodes, tt.zns)
			}
		})
	}
}

// randomPlacementCluster builds a small cluster with every kind of node
// placement must handle (dead, draining, full, no capacity, no zone, other
// regions) and an app with gears and LB gears on some of them, dead nodes
// and nodes missing from the cluster included.
func randomPlacementCluster(r *rand.Rand) ([]NodeView, AppPlacement) {
	zones := 1 + r.IntN(5)
	regions := 1 + r.IntN(3)
	nodes := make([]NodeView, 1+r.IntN(40))
	for i := range nodes {
		n := &nodes[i]
		n.Name = fmt.Sprintf("n%02d", i)
		if z := r.IntN(zones); z > 0 || r.IntN(3) > 0 {
			n.Zone = fmt.Sprintf("z%d", z)
		} // else: no zone label
		n.Region = fmt.Sprintf("r%d", r.IntN(regions))
		n.MaxGears = r.IntN(7)
		n.Gears = r.IntN(n.MaxGears + 1)
		n.Alive = r.IntN(10) < 8
		n.Draining = r.IntN(10) == 0
	}
	r.Shuffle(len(nodes), func(i, j int) { nodes[i], nodes[j] = nodes[j], nodes[i] })

	var app AppPlacement
	switch r.IntN(10) {
	case 0, 1, 2, 3:
	case 4:
		app.Region = "nowhere"
	default:
		app.Region = fmt.Sprintf("r%d", r.IntN(regions))
	}
	app.GearsOn, app.LBsOn = map[string]int{}, map[string]int{}
	for _, n := range nodes {
		if n.Gears > 0 && r.IntN(3) == 0 {
			app.GearsOn[n.Name] = 1 + r.IntN(n.Gears)
			if r.IntN(2) == 0 {
				app.LBsOn[n.Name] = 1 + r.IntN(app.GearsOn[n.Name])
			}
		}
	}
	if r.IntN(5) == 0 {
		app.GearsOn["gone"], app.LBsOn["gone"] = 2, 1
	}
	return nodes, app
}

// placementCandidate is the filter of Place, written out plainly.
func placementCandidate(p PlacementPolicy, n NodeView, app AppPlacement, lb bool) bool {
	return n.Alive && !n.Draining && n.Gears < n.MaxGears &&
		(app.Region == "" || n.Region == app.Region) &&
		(!lb || p.AllowMultipleLBPerNode || app.LBsOn[n.Name] == 0)
}

// placementZoneGears is the app's gears per zone, over all nodes.
func placementZoneGears(nodes []NodeView, app AppPlacement) map[string]int {
	m := map[string]int{}
	for _, n := range nodes {
		m[n.Zone] += app.GearsOn[n.Name]
	}
	return m
}

// referencePlace is the specification of Place as a sort: filter, then
// order candidates by (zone's app gears, node's app gears, load, gears,
// name) with the load as a float, which is exact enough for these small
// integers (equal fractions give equal floats; unequal ones differ).
func referencePlace(p PlacementPolicy, nodes []NodeView, app AppPlacement, lb bool) (string, error) {
	var cands []NodeView
	zoneSet := map[string]bool{}
	for _, n := range nodes {
		if placementCandidate(p, n, app, lb) {
			cands = append(cands, n)
			zoneSet[n.Zone] = true
		}
	}
	if len(cands) == 0 {
		return "", ErrNoNodes
	}
	if need := max(p.MinZones, 1); len(zoneSet) < need {
		return "", &MinZonesError{Available: len(zoneSet), Needed: need}
	}
	zg := placementZoneGears(nodes, app)
	slices.SortFunc(cands, func(a, b NodeView) int {
		return cmp.Or(
			cmp.Compare(zg[a.Zone], zg[b.Zone]),
			cmp.Compare(app.GearsOn[a.Name], app.GearsOn[b.Name]),
			cmp.Compare(float64(a.Gears)/float64(a.MaxGears), float64(b.Gears)/float64(b.MaxGears)),
			cmp.Compare(a.Gears, b.Gears),
			cmp.Compare(a.Name, b.Name),
		)
	})
	return cands[0].Name, nil
}

// placeChecked calls Place and checks every property that holds for a
// single placement in any cluster.
func placeChecked(t *testing.T, p PlacementPolicy, nodes []NodeView, app AppPlacement, lb bool) (string, error) {
	t.Helper()
	got, err := p.Place(nodes, app, lb)
	want, wantErr := referencePlace(p, nodes, app, lb)
	if got != want || fmt.Sprint(err) != fmt.Sprint(wantErr) {
		t.Fatalf("Place(%+v, lb=%v) = %q, %v; the rules give %q, %v\nnodes %+v\napp %+v", p, lb, got, err, want, wantErr, nodes, app)
	}
	if err != nil {
		return got, err
	}

	var chosen NodeView
	for _, n := range nodes {
		if n.Name == got {
			chosen = n
		}
	}
	switch {
	case chosen.Name == "":
		t.Fatalf("Place chose %q, not in the cluster", got)
	case !chosen.Alive:
		t.Fatalf("Place chose dead node %+v", chosen)
	case chosen.Draining:
		t.Fatalf("Place chose draining node %+v", chosen)
	case chosen.Gears >= chosen.MaxGears:
		t.Fatalf("Place chose full node %+v", chosen)
	case app.Region != "" && chosen.Region != app.Region:
		t.Fatalf("Place chose %+v outside region %q", chosen, app.Region)
	case lb && !p.AllowMultipleLBPerNode && app.LBsOn[got] > 0:
		t.Fatalf("Place put a second LB gear on %q (LBsOn %v)", got, app.LBsOn)
	}

	// Zone spread: the chosen zone holds no more of the app's gears than
	// any zone with a candidate; in particular, a zone without the app is
	// chosen whenever one has a candidate.
	zg := placementZoneGears(nodes, app)
	for _, n := range nodes {
		if placementCandidate(p, n, app, lb) && zg[n.Zone] < zg[chosen.Zone] {
			t.Fatalf("Place chose zone %q with %d of the app's gears; zone %q has %d and candidate %q",
				chosen.Zone, zg[chosen.Zone], n.Zone, zg[n.Zone], n.Name)
		}
	}
	// Anti-affinity: no candidate in a zone as good as the chosen one
	// holds fewer of the app's gears than the chosen node.
	for _, n := range nodes {
		if placementCandidate(p, n, app, lb) && zg[n.Zone] == zg[chosen.Zone] && app.GearsOn[n.Name] < app.GearsOn[got] {
			t.Fatalf("Place chose %q holding %d of the app's gears; %q in zone %q (as good as %q) holds %d",
				got, app.GearsOn[got], n.Name, n.Zone, chosen.Zone, app.GearsOn[n.Name])
		}
	}
	return got, nil
}

// TestPlacementProperties checks Place against the rules, and the
// single-placement properties, over random clusters.
func TestPlacementProperties(t *testing.T) {
	r := placementRand(t)
	outcomes := map[string]int{}
	for range 1000 {
		nodes, app := randomPlacementCluster(r)
		for _, p := range []PlacementPolicy{
			{},
			{MinZones: 2},
			{MinZones: 1 + r.IntN(5), AllowMultipleLBPerNode: true},
		} {
			for _, lb := range []bool{false, true} {
				_, err := placeChecked(t, p, nodes, app, lb)
				var mz *MinZonesError
				switch {
				case err == nil:
					outcomes["placed"]++
				case errors.Is(err, ErrNoNodes):
					outcomes["no nodes"]++
				case errors.As(err, &mz):
					outcomes["min zones"]++
				}
			}
		}
	}
	t.Logf("outcomes %v", outcomes)
	// The generator must exercise every outcome, or the properties above
	// prove little.
	for _, o := range []string{"placed", "no nodes", "min zones"} {
		if outcomes[o] < 100 {
			t.Errorf("only %d random placements ended %q", outcomes[o], o)
		}
	}
}

// TestPlacementAntiAffinity: outside the zone-balancing trade-off, a gear
// never lands on a node holding the app's gears while a candidate node
// without any exists.
func TestPlacementAntiAffinity(t *testing.T) {
	r := placementRand(t)
	t.Run("one zone", func(t *testing.T) {
		// With a single zone, zone spread is moot: any free candidate wins.
		checked := 0
		for range 500 {
			nodes, app := randomPlacementCluster(r)
			for i := range nodes {
				nodes[i].Zone = "z"
			}
			got, err := placeChecked(t, PlacementPolicy{}, nodes, app, false)
			if err != nil {
				continue
			}
			for _, n := range nodes {
				if placementCandidate(PlacementPolicy{}, n, app, false) && app.GearsOn[n.Name] == 0 {
					checked++
					if app.GearsOn[got] > 0 {
						t.Fatalf("gear placed on %q holding %d of the app's gears while %q holds none", got, app.GearsOn[got], n.Name)
					}
					break
				}
			}
		}
		if checked < 100 {
			t.Errorf("only %d clusters had a free candidate", checked)
		}
	})
	t.Run("sequential, equal zones", func(t *testing.T) {
		// Gears placed one after another, each zone with the same number
		// of nodes: no node holds two of the app's gears until every
		// candidate holds one.
		for range 200 {
			zones, perZone := 1+r.IntN(5), 1+r.IntN(6)
			s := newPlacementSim(r, zones, perZone, 5)
			for range zones * perZone {
				name, err := s.place(t, PlacementPolicy{}, r.IntN(4) == 0)
				if err != nil {
					t.Fatalf("place: %v", err)
				}
				if s.app.GearsOn[name] > 1 {
					t.Fatalf("second gear of the app on %q with %d nodes; gears %v", name, len(s.nodes), s.app.GearsOn)
				}
			}
			if len(s.app.GearsOn) != zones*perZone {
				t.Fatalf("app on %d of %d nodes", len(s.app.GearsOn), zones*perZone)
			}
		}
	})
}

// TestPlacementZoneSpread places k gears one after another in clusters of
// z zones with uneven numbers of nodes and ample capacity: the zones'
// counts of the app's gears differ by at most one, and so do the nodes'
// counts within a zone.
func TestPlacementZoneSpread(t *testing.T) {
	r := placementRand(t)
	for range 300 {
		zones := 2 + r.IntN(5)
		k := r.IntN(60)
		s := newPlacementSim(r, zones, 0, k+1) // 1 to 5 nodes per zone, taking k+1 gears each
		for range k {
			if _, err := s.place(t, PlacementPolicy{MinZones: zones}, false); err != nil {
				t.Fatalf("place: %v", err)
			}
		}
		perZone := map[string]int{}
		perZoneNode := map[string][]int{}
		for _, n := range s.nodes {
			perZone[n.Zone] += s.app.GearsOn[n.Name]
			perZoneNode[n.Zone] = append(perZoneNode[n.Zone], s.app.GearsOn[n.Name])
		}
		counts := slices.Collect(maps.Values(perZone))
		if len(counts) != zones {
			t.Fatalf("%d zones in the cluster, want %d", len(counts), zones)
		}
		if lo, hi := slices.Min(counts), slices.Max(counts); hi-lo > 1 {
			t.Fatalf("%d gears over %d zones: per zone %v", k, zones, perZone)
		}
		for z, c := range perZoneNode {
			if lo, hi := slices.Min(c), slices.Max(c); hi-lo > 1 {
				t.Fatalf("zone %s: app gears per node %v", z, c)
			}
		}
	}
}

// TestPlacementLBGears places LB gears until Place refuses: one per
// eligible node, never two on a node; with AllowMultipleLBPerNode they
// stack until capacity runs out.
func TestPlacementLBGears(t *testing.T) {
	r := placementRand(t)
	for range 200 {
		s := newPlacementSim(r, 1+r.IntN(4), 0, 1+r.IntN(4))
		s.killSome(r)
		eligible, capacity := 0, 0
		for _, n := range s.nodes {
			if n.Alive && !n.Draining && n.Gears < n.MaxGears {
				eligible++
				capacity += n.MaxGears - n.Gears
			}
		}

		lbs := 0
		for {
			name, err := s.place(t, PlacementPolicy{}, true)
			if errors.Is(err, ErrNoNodes) {
				break
			}
			if err != nil {
				t.Fatalf("place: %v", err)
			}
			lbs++
			if s.app.LBsOn[name] > 1 {
				t.Fatalf("two LB gears on %q", name)
			}
		}
		if lbs != eligible {
			t.Fatalf("placed %d LB gears on %d eligible nodes", lbs, eligible)
		}

		allow := PlacementPolicy{AllowMultipleLBPerNode: true}
		for {
			_, err := s.place(t, allow, true)
			if errors.Is(err, ErrNoNodes) {
				break
			}
			if err != nil {
				t.Fatalf("place: %v", err)
			}
			lbs++
		}
		if lbs != capacity {
			t.Fatalf("placed %d LB gears with stacking allowed, capacity %d", lbs, capacity)
		}
	}
}

// TestPlacementCapacity fills random clusters until Place refuses: no
// node goes over its capacity, and every free slot on an eligible node
// (alive, not draining, in the region) is used.
func TestPlacementCapacity(t *testing.T) {
	r := placementRand(t)
	for range 300 {
		nodes, app := randomPlacementCluster(r)
		idx := map[string]int{}
		for i, n := range nodes {
			idx[n.Name] = i
		}
		free := 0
		for _, n := range nodes {
			if n.Alive && !n.Draining && (app.Region == "" || n.Region == app.Region) {
				free += max(n.MaxGears-n.Gears, 0)
			}
		}
		before := slices.Clone(nodes)

		placed := 0
		for {
			name, err := placeChecked(t, PlacementPolicy{}, nodes, app, false)
			if errors.Is(err, ErrNoNodes) {
				break
			}
			if err != nil {
				t.Fatalf("place: %v", err)
			}
			nodes[idx[name]].Gears++
			app.GearsOn[name]++
			placed++
			if placed > 1000 {
				t.Fatal("placement does not stop")
			}
		}
		if placed != free {
			t.Fatalf("placed %d gears; eligible nodes had %d free", placed, free)
		}
		for i, n := range nodes {
			if n.Gears > n.MaxGears {
				t.Fatalf("node %+v over capacity", n)
			}
			eligible := n.Alive && !n.Draining && (app.Region == "" || n.Region == app.Region)
			if !eligible && n.Gears != before[i].Gears {
				t.Fatalf("ineligible node %+v received %d gears", n, n.Gears-before[i].Gears)
			}
			if eligible && n.Gears != n.MaxGears {
				t.Fatalf("eligible node %+v left with room", n)
			}
		}
	}
}

// TestPlacementRegion: a pinned app lands only in its region, and a region
// without eligible nodes is refused with ErrNoNodes.
func TestPlacementRegion(t *testing.T) {
	r := placementRand(t)
	pinned, refused := 0, 0
	for range 500 {
		nodes, app := randomPlacementCluster(r)
		if app.Region == "" {
			continue
		}
		inRegion := false
		for _, n := range nodes {
			inRegion = inRegion || placementCandidate(PlacementPolicy{}, n, app, false)
		}
		got, err := placeChecked(t, PlacementPolicy{}, nodes, app, false)
		if !inRegion {
			refused++
			if !errors.Is(err, ErrNoNodes) {
				t.Fatalf("region %q without eligible nodes: Place = %q, %v; want ErrNoNodes", app.Region, got, err)
			}
			continue
		}
		pinned++
		if err != nil {
			t.Fatalf("region %q has eligible nodes: %v", app.Region, err)
		}
		for _, n := range nodes {
			if n.Name == got && n.Region != app.Region {
				t.Fatalf("placed in %q, app pinned to %q", n.Region, app.Region)
			}
		}
	}
	if pinned < 50 || refused < 50 {
		t.Errorf("exercised %d pinned placements and %d refusals, want 50 of each", pinned, refused)
	}
}

// TestPlacementDeterminism: the same cluster gives the same node, whatever
// the order of the nodes, and Place leaves its arguments as they were.
func TestPlacementDeterminism(t *testing.T) {
	r := placementRand(t)
	for range 300 {
		nodes, app := randomPlacementCluster(r)
		p := PlacementPolicy{MinZones: r.IntN(3), AllowMultipleLBPerNode: r.IntN(2) == 0}
		lb := r.IntN(2) == 0
		nodesBefore := slices.Clone(nodes)
		gearsBefore, lbsBefore := maps.Clone(app.GearsOn), maps.Clone(app.LBsOn)

		want, wantErr := p.Place(nodes, app, lb)
		if !slices.EqualFunc(nodes, nodesBefore, func(a, b NodeView) bool { return reflect.DeepEqual(a, b) }) || !maps.Equal(app.GearsOn, gearsBefore) || !maps.Equal(app.LBsOn, lbsBefore) {
			t.Fatal("Place changed its arguments")
		}
		for range 5 {
			shuffled := slices.Clone(nodes)
			r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
			got, err := p.Place(shuffled, app, lb)
			if got != want || fmt.Sprint(err) != fmt.Sprint(wantErr) {
				t.Fatalf("Place = %q, %v; with the nodes in another order %q, %v", want, wantErr, got, err)
			}
		}
	}
	// Many zones: past the point where zones are looked up in a map.
	var nodes []NodeView
	for i := range 200 {
		nodes = append(nodes, pnodeLoaded(pnode(fmt.Sprintf("n%03d", i), fmt.Sprintf("z%02d", i%40), 10), r.IntN(10)))
	}
	app := AppPlacement{GearsOn: map[string]int{}}
	for range 100 {
		app.GearsOn[nodes[r.IntN(len(nodes))].Name]++
	}
	want, _ := referencePlace(PlacementPolicy{MinZones: 40}, nodes, app, false)
	for range 20 {
		r.Shuffle(len(nodes), func(i, j int) { nodes[i], nodes[j] = nodes[j], nodes[i] })
		got, err := PlacementPolicy{MinZones: 40}.Place(nodes, app, false)
		if err != nil || got != want {
			t.Fatalf("40 zones: Place = %q, %v; want %q", got, err, want)
		}
	}
}

// placementSim is a cluster whose views are updated after each placement, as the
// broker does.
type placementSim struct {
	nodes []NodeView
	idx   map[string]int
	app   AppPlacement
}

// newPlacementSim builds a cluster of zones zones with perZone alive nodes
// each (0: 1 to 5, at random), in shuffled order. Each node already holds
// up to 10 gears of other apps and has room for at least maxGears more.
func newPlacementSim(r *rand.Rand, zones, perZone, maxGears int) *placementSim {
	s := &placementSim{idx: map[string]int{}, app: AppPlacement{GearsOn: map[string]int{}, LBsOn: map[string]int{}}}
	for z := range zones {
		count := perZone
		if count == 0 {
			count = 1 + r.IntN(5)
		}
		for i := range count {
			n := pnode(fmt.Sprintf("z%d-n%d", z, i), fmt.Sprintf("z%d", z), maxGears+10)
			n.Gears = r.IntN(11) // other apps' gears, leaving maxGears free
			s.nodes = append(s.nodes, n)
		}
	}
	r.Shuffle(len(s.nodes), func(i, j int) { s.nodes[i], s.nodes[j] = s.nodes[j], s.nodes[i] })
	for i, n := range s.nodes {
		s.idx[n.Name] = i
	}
	return s
}

// killSome marks some nodes dead or draining.
func (s *placementSim) killSome(r *rand.Rand) {
	for i := range s.nodes {
		switch r.IntN(6) {
		case 0:
			s.nodes[i].Alive = false
		case 1:
			s.nodes[i].Draining = true
		}
	}
}

// place places one gear, checked, and records it in the views.
func (s *placementSim) place(t *testing.T, p PlacementPolicy, lb bool) (string, error) {
	t.Helper()
	name, err := placeChecked(t, p, s.nodes, s.app, lb)
	if err != nil {
		return "", err
	}
	s.nodes[s.idx[name]].Gears++
	s.app.GearsOn[name]++
	if lb {
		s.app.LBsOn[name]++
	}
	return name, nil
}

// BenchmarkPlacement places 10,000 gears over 1,000 nodes in 10 zones,
// updating the views after each placement as the broker does: 10 apps of
// 1,000 gears and 1,000 apps of 10 gears, their first two gears LB gears,
// the apps taking turns. Node names and zones interleave (node i is in
// zone i%10), the worst order for Place's zone lookup.
func BenchmarkPlacement(b *testing.B) {
	const (
		nodeCount = 1000
		zoneCount = 10
		total     = 10_000
	)
	for _, bc := range []struct {
		name        string
		apps, gears int
	}{
		{"10apps-1000gears", 10, 1000},
		{"1000apps-10gears", 1000, 10},
	} {
		b.Run(bc.name, func(b *testing.B) {
			p := PlacementPolicy{MinZones: 3}
			idx := make(map[string]int, nodeCount)
			base := make([]NodeView, nodeCount)
			for i := range base {
				base[i] = NodeView{
					Name:     fmt.Sprintf("node-%04d", i),
					Zone:     fmt.Sprintf("zone-%d", i%zoneCount),
					Region:   "r1",
					MaxGears: 100,
					Alive:    true,
				}
				idx[base[i].Name] = i
			}
			nodes := make([]NodeView, nodeCount)
			apps := make([]AppPlacement, bc.apps)
			rounds := 0
			for b.Loop() {
				b.StopTimer()
				copy(nodes, base)
				for a := range apps {
					apps[a] = AppPlacement{Region: "r1", GearsOn: map[string]int{}, LBsOn: map[string]int{}}
				}
				b.StartTimer()

				for g := range bc.gears {
					lb := g < 2
					for a := range apps {
						app := &apps[a]
						name, err := p.Place(nodes, *app, lb)
						if err != nil {
							b.Fatal(err)
						}
						nodes[idx[name]].Gears++
						app.GearsOn[name]++
						if lb {
							app.LBsOn[name]++
						}
					}
				}
				rounds++
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(rounds*total), "ns/placement")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(rounds)/1e6, "ms/10k-gears")
		})
	}
}

// A node that does not isolate gears runs them all as one user: it takes
// the gears of one user only, whoever came first, and any node again once
// it is empty.
func TestPlacementIsolation(t *testing.T) {
	isolated := func(n *NodeView) { n.Isolated = true }
	owners := func(o ...string) func(*NodeView) { return func(n *NodeView) { n.Owners = o } }
	both := func(fs ...func(*NodeView)) func(*NodeView) {
		return func(n *NodeView) {
			for _, f := range fs {
				f(n)
			}
		}
	}
	tests := []struct {
		name    string
		nodes   []NodeView
		owner   string
		want    string
		wantErr error
	}{
		{"empty unisolated node takes anyone",
			[]NodeView{pnode("a", "za", 10)}, "alice", "a", nil},
		{"unisolated node of the owner's gears only",
			[]NodeView{pnodeWith(pnodeLoaded(pnode("a", "za", 10), 3), owners("alice"))}, "alice", "a", nil},
		{"unisolated node with another user's gear refused",
			[]NodeView{pnodeWith(pnodeLoaded(pnode("a", "za", 10), 1), owners("bob"))}, "alice", "", ErrNoNodes},
		{"unisolated node shared by the owner and another refused",
			[]NodeView{pnodeWith(pnodeLoaded(pnode("a", "za", 10), 2), owners("alice", "bob"))}, "alice", "", ErrNoNodes},
		{"gear of an app that is gone counts as another user's",
			[]NodeView{pnodeWith(pnodeLoaded(pnode("a", "za", 10), 1), owners(""))}, "alice", "", ErrNoNodes},
		{"isolated node takes every user",
			[]NodeView{pnodeWith(pnodeLoaded(pnode("a", "za", 10), 2), both(isolated, owners("bob", "carol")))}, "alice", "a", nil},
		{"other user's unisolated node passed over for a fuller isolated one",
			[]NodeView{pnodeWith(pnodeLoaded(pnode("a", "za", 10), 1), owners("bob")),
				pnodeWith(pnodeLoaded(pnode("b", "za", 10), 9), both(isolated, owners("bob")))}, "alice", "b", nil},
		{"other user's unisolated node passed over for an empty one",
			[]NodeView{pnodeWith(pnodeLoaded(pnode("a", "za", 10), 1), owners("bob")), pnodeLoaded(pnode("b", "za", 10), 0)},
			"alice", "b", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := PlacementPolicy{}.Place(tc.nodes, AppPlacement{Owner: tc.owner}, false)
			if got != tc.want || !errors.Is(err, tc.wantErr) {
				t.Errorf("Place = %q, %v; want %q, %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

// Gear ports are drawn at random from the node's range, never one in use:
// a gear cannot tell which port the next gear of its node gets, and bind
// it first.
func TestGearPortRandom(t *testing.T) {
	const lo, hi = 40000, 40999
	cv := &clusterView{byName: map[string]*state.Node{"n": {Name: "n", PortMin: lo, PortMax: hi}},
		ports: map[string]map[int]bool{"n": {lo: true, lo + 1: true, 50000: true}}}
	seen := map[int]bool{}
	inOrder := 0
	prev := 0
	for range 100 {
		p, err := cv.port("n")
		if err != nil {
			t.Fatal(err)
		}
		if p < lo || p > hi || seen[p] || p == lo || p == lo+1 {
			t.Fatalf("port %d: outside %d-%d, or in use", p, lo, hi)
		}
		if p == prev+1 {
			inOrder++
		}
		seen[p], prev = true, p
	}
	// Lowest-free-first would hand out 40002, 40003, ... in order.
	if inOrder > 5 {
		t.Errorf("%d of 100 ports followed the previous one: ports are predictable", inOrder)
	}
	// The last free ports are found too, then none.
	small := &clusterView{byName: map[string]*state.Node{"n": {Name: "n", PortMin: 1000, PortMax: 1002}},
		ports: map[string]map[int]bool{"n": {1001: true}}}
	got := map[int]bool{}
	for range 2 {
		p, err := small.port("n")
		if err != nil {
			t.Fatal(err)
		}
		got[p] = true
	}
	if !got[1000] || !got[1002] {
		t.Errorf("ports %v, want 1000 and 1002", got)
	}
	if p, err := small.port("n"); err == nil {
		t.Errorf("full range gave port %d", p)
	}
}
