// Package node is the role that hosts gears.
//
// Register writes the member's node record (address, zone, region,
// capacity, port range) so that brokers can place gears on it. A
// Supervisor then runs the gears placed here: it follows the gear records
// of the replicated store, gives each gear a directory
// (DATA_DIR/gears/ID/{app,data,logs}), starts, stops, restarts and
// destroys it as its record asks, relaunches it with backoff when it
// ends on its own, and reports what it observes in the gear's GearStatus
// record (new, started, stopped, with a reason, and its endpoints). A
// gear counts as started only once its port answers.
//
// A gear runs a Program under a Process: a Command (a child process in a
// process group of its own, with the gear's environment, its output in
// the gear's size-rotated log) or, for the static cartridge's welcome
// page, a server inside the node on the gear's port.
//
// An LB gear also runs its app's load balancer (package lb) inside the
// node on its LBPort, balancing over the app's gears on every node; it is
// reported started only once both its web process and its load balancer
// listen. Before a web process stops, the load balancers of this node
// drain it.
//
// Each node also serves a front listener that routes requests by Host:
// APP-NS.DOMAIN to the app's running load balancer here, else to its gear
// here, GEARID-NS.DOMAIN to that gear, anything else to a plain 404 page.
//
// Gears run on Linux: process groups are followed through /proc.
//
// It imports lb, store and store/state, never another role.
package node
