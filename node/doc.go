// Package node is the role that hosts gears.
//
// Register writes the member's node record (address, zone, region,
// capacity, port range) so that brokers can place gears on it. A
// Supervisor then runs the gears placed here: it follows the gear records
// of the replicated store, gives each gear a directory
// (DATA_DIR/gears/ID/{app,data,logs}), starts, stops, restarts and
// destroys it as its record asks, relaunches it with backoff when it
// ends on its own, and reports what it observes in the gear's GearStatus
// record (new, deploying, building, started, stopped, with a reason, and
// its endpoints). A
// gear counts as started only once its port answers.
//
// A gear runs a Program under a Process: a Command (a child process in a
// process group of its own, with the gear's environment, its output in
// the gear's size-rotated log) or, for the static cartridge's welcome
// page, a server inside the node on the gear's port.
//
// A gear whose app has a current deployment runs it (deploy.go): the node
// fetches the archive once from a live member that holds it (internal
// API, cluster secret), checks its sha256 against the deployment's id,
// unpacks it to DATA_DIR/deployments/ID and runs its manifest's build
// once, with its output in DATA_DIR/deployments/ID.build.log. The gear
// then runs the manifest's web command in that directory, or, without
// one, serves its files from inside the node. Meanwhile the gear is
// reported deploying or building and keeps running what it ran; a
// failure is reported as the reason and tried again with backoff. Which
// deployment a gear runs is its gear record's Deployment: the broker's
// roll-out moves one gear at a time, and the gear's status reports the
// deployment its process runs once its health check passes.
//
// Before a gear's web process stops, its status asks every load balancer
// of the cluster to drain it (Draining), and the node waits
// RemoteDrainDelay when the app has an LB gear elsewhere, then drains its
// own. The only gear of an app hands over instead of restarting
// (handover.go): the new process starts beside the old on a spare port and
// takes the traffic once healthy.
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
// A gear's log (DATA_DIR/gears/ID/logs/gear.log, rotated by size) holds
// its processes' output and the node's notes on it, each line stamped
// with the time it was written. LogHandler serves it to brokers on the
// internal API: the last lines, then, when asked, new lines as they come
// (logs.go).
//
// Gears run on Linux: process groups are followed through /proc.
//
// It imports lb, store and store/state, never another role.
package node
