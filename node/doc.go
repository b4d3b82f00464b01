// Package node is the role that hosts gears. For now it registers the
// member as a node (address, zone, region, capacity, port range) so that
// brokers can place gears on it; running the gears comes next.
//
// It imports store and store/state, never another role.
package node
