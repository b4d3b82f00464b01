package broker

import (
	"errors"
	"fmt"
)

// Placement: which node receives an app's next gear. It is a pure function
// of what the broker knows of the nodes and of the app, so that tables and
// properties over random clusters test it without a store or a network.

// ErrNoNodes is returned by Place when no node can take the gear: none is
// alive, not draining, below its capacity, in the app's region and
// isolating gears or hosting only the owner's (and, for an LB gear, free
// of the app's LB gears). The text is OpenShift's, word
// for word, so that its users recognise it; hence the capital letter.
var ErrNoNodes = errors.New("No nodes available for the specified gear size/region/zone combination")

// MinZonesError is returned by Place when the nodes that could take the
// gear span fewer zones than PlacementPolicy.MinZones.
type MinZonesError struct {
	Available int // zones holding at least one candidate node
	Needed    int // the policy's minimum
}

// Error returns OpenShift's text for the refusal, word for word.
func (e *MinZonesError) Error() string {
	return fmt.Sprintf("Unable to find minimum zones required for application gear group. Available zones:%d, Needed min zones:%d",
		e.Available, e.Needed)
}

// NodeView is what placement knows of one node.
type NodeView struct {
	Name, Zone, Region string
	MaxGears           int  // capacity; 0 or less: takes no gears
	Gears              int  // gears of all apps on it now
	Alive              bool // serf member alive with the node role
	Draining           bool // an admin is draining it: it takes no new gears
	// Isolated says that the node runs each gear as a uid of its own
	// (state.Node.Isolates). A node that does not (--gear-isolation
	// none) runs every gear as one user: it takes the gears of one user
	// only, those of the users in Owners.
	Isolated bool
	// Owners are the users (logins) whose apps have gears on the node,
	// each once; Place reads it only for nodes that are not Isolated.
	Owners []string
}

// AppPlacement is what placement knows of the app receiving a gear.
// Nil maps mean the app has no gears (or no LB gears) yet.
type AppPlacement struct {
	Owner   string         // the app owner's login
	Region  string         // "" = any region
	GearsOn map[string]int // node name -> this app's gears there
	LBsOn   map[string]int // node name -> this app's LB gears there
}

// PlacementPolicy is the platform's placement settings. The zero value
// places gears with no zone minimum and at most one LB gear of an app per
// node.
type PlacementPolicy struct {
	// MinZones is how many zones the candidate nodes of a gear must span
	// (--zones-min-per-gear-group). Default 1; 0 or less is treated as 1.
	MinZones int
	// AllowMultipleLBPerNode lets two LB gears of one app share a node
	// (--allow-multiple-lb-per-node). Default false.
	AllowMultipleLBPerNode bool
}

// Place picks the node for one new gear of app (lb: it will be an LB gear).
//
// Candidates are the nodes that are alive, not draining, below MaxGears and
// in app.Region when it is set; for an LB gear, unless
// AllowMultipleLBPerNode, also free of the app's LB gears. A node that
// does not isolate gears (not Isolated) is a candidate only if every gear
// on it belongs to app.Owner (Owners holds no one else): its gears all
// run as one user and could read, signal and squat each other, so it
// serves one user, the first whose gear it takes, until it is empty
// again. With no
// candidate Place returns ErrNoNodes; when the candidates span fewer zones
// than MinZones (a node with no zone label is in the zone ""), a
// *MinZonesError.
//
// Among the candidates it prefers, in order: the zones holding the fewest
// of the app's gears (counted on every node of the zone, dead or draining
// ones included, so a zone whose gears are down is not mistaken for an
// empty one); the nodes holding the fewest of the app's gears; the least
// loaded nodes (Gears/MaxGears); the nodes with the fewest gears; the
// lowest name. With distinct names the order is total, so the result
// depends neither on the order of nodes nor on map iteration.
//
// Zone spread comes before node anti-affinity: when zones have unequal
// numbers of nodes, a gear can land on a node that already holds one of
// the app's gears, in the zone with fewer of them, although a node
// without any exists in a fuller zone. Losing a zone loses every node in
// it, so balancing zones first bounds the worst single failure.
//
// Gears the app has on nodes missing from nodes are not counted. Place
// reads its arguments only; it runs in O(len(nodes)) time.
func (p PlacementPolicy) Place(nodes []NodeView, app AppPlacement, lb bool) (string, error) {
	excludeLB := lb && !p.AllowMultipleLBPerNode && len(app.LBsOn) > 0
	hasGears := len(app.GearsOn) > 0

	// One pass: the app's gears per zone, and each zone's best candidate
	// under the node-level keys. The best node overall is then the best
	// of the zones' bests, ordered by zone first.
	zones := zoneIndex{list: make([]zoneBest, 0, zoneScanMax)}
	for i := range nodes {
		n := &nodes[i]
		z := zones.get(n.Zone)
		appGears := 0
		if hasGears {
			appGears = app.GearsOn[n.Name]
			z.appGears += appGears
		}
		if !n.Alive || n.Draining || n.Gears >= n.MaxGears ||
			(app.Region != "" && n.Region != app.Region) {
			continue
		}
		if excludeLB && app.LBsOn[n.Name] > 0 {
			continue
		}
		if !n.Isolated && hostsOthers(n.Owners, app.Owner) {
			continue
		}
		if z.node == nil || nodeBefore(n, appGears, z.node, z.nodeAppGears) {
			z.node, z.nodeAppGears = n, appGears
		}
	}

	var best *zoneBest
	available := 0
	for i := range zones.list {
		z := &zones.list[i]
		if z.node == nil {
			continue
		}
		available++
		if best == nil || z.appGears < best.appGears ||
			(z.appGears == best.appGears && nodeBefore(z.node, z.nodeAppGears, best.node, best.nodeAppGears)) {
			best = z
		}
	}
	if best == nil {
		return "", ErrNoNodes
	}
	if need := max(p.MinZones, 1); available < need {
		return "", &MinZonesError{Available: available, Needed: need}
	}
	return best.node.Name, nil
}

// hostsOthers reports whether owners names a user other than owner.
func hostsOthers(owners []string, owner string) bool {
	for _, o := range owners {
		if o != owner {
			return true
		}
	}
	return false
}

// nodeBefore reports whether candidate a (holding aApp of the app's gears)
// is preferred to candidate b: fewer of the app's gears, then a lower
// Gears/MaxGears, then fewer gears, then the lower name. Loads are
// compared by cross-multiplication, exact where floats could tie or round;
// MaxGears is positive for every candidate.
func nodeBefore(a *NodeView, aApp int, b *NodeView, bApp int) bool {
	if aApp != bApp {
		return aApp < bApp
	}
	if l, r := int64(a.Gears)*int64(b.MaxGears), int64(b.Gears)*int64(a.MaxGears); l != r {
		return l < r
	}
	if a.Gears != b.Gears {
		return a.Gears < b.Gears
	}
	return a.Name < b.Name
}

// zoneBest is what Place accumulates for one zone.
type zoneBest struct {
	name         string
	appGears     int       // the app's gears on all the zone's nodes
	node         *NodeView // the zone's preferred candidate; nil: none
	nodeAppGears int       // the app's gears on node
}

// zoneIndex finds a zone's entry by name. It runs once per node, so it is
// Place's hot path: clusters have a handful of zones, and scanning them
// while rejecting on length and last byte ("us-east-1a", "us-east-1b") is
// several times cheaper than hashing the name; past zoneScanMax zones it
// switches to a map.
type zoneIndex struct {
	list  []zoneBest
	byKey map[string]int
	last  int // index of the previous lookup: nodes often come grouped by zone
}

// zoneScanMax is how many zones zoneIndex scans before it uses a map.
const zoneScanMax = 16

func (x *zoneIndex) get(name string) *zoneBest {
	if x.last < len(x.list) && x.list[x.last].name == name {
		return &x.list[x.last]
	}
	if x.byKey != nil {
		if i, ok := x.byKey[name]; ok {
			x.last = i
			return &x.list[i]
		}
	} else {
		for i := range x.list {
			if z := x.list[i].name; len(z) == len(name) &&
				(len(z) == 0 || z[len(z)-1] == name[len(name)-1]) && z == name {
				x.last = i
				return &x.list[i]
			}
		}
	}
	x.list = append(x.list, zoneBest{name: name})
	x.last = len(x.list) - 1
	if x.byKey != nil {
		x.byKey[name] = x.last
	} else if len(x.list) > zoneScanMax {
		x.byKey = make(map[string]int, 2*len(x.list))
		for i := range x.list {
			x.byKey[x.list[i].name] = i
		}
	}
	return &x.list[x.last]
}

// lbSpread counts the distinct nodes and zones that hold an app's LB
// gears, given the node of each LB gear and each node's zone: the measure
// of whether an HA app really is HA. A node missing from zoneOf, or with no
// zone label, is in the zone "", as in Place. Empty node names (gears not
// placed yet) are not counted.
func lbSpread(lbNodes []string, zoneOf map[string]string) (nodes, zones int) {
	seenNodes := make(map[string]struct{}, len(lbNodes))
	seenZones := make(map[string]struct{}, len(lbNodes))
	for _, n := range lbNodes {
		if n == "" {
			continue
		}
		if _, ok := seenNodes[n]; ok {
			continue
		}
		seenNodes[n] = struct{}{}
		seenZones[zoneOf[n]] = struct{}{}
	}
	return len(seenNodes), len(seenZones)
}
