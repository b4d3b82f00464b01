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
// API, cluster secret), checks its sha256 against the deployment's id and
// keeps it as DATA_DIR/deployments/ID.tar.gz (shared by every app that
// uploads the same archive, and served to other members). It unpacks it
// for each app apart, to DATA_DIR/deployments/apps/NS+NAME/ID, and runs
// its manifest's build there once per app, with that app's env and its
// output in ID.build.log beside the tree. The gear
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
// listen. Before a web process stops, every load balancer that balances
// over it drains it (see below).
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
// A node that runs as root isolates its gears (isolation.go). Each gear
// gets a uid of its own from Config.GearUIDMin+1..GearUIDMax (gid the same
// number, no supplementary groups, no_new_privs), noted in its directory
// and kept while the gear stays on the node. The gear may enter its
// directory but not change it; app (its HOME) and data are its own; logs,
// which the node writes, are the node's alone. DATA_DIR, gears and
// deployments (and the directories under it) are searchable but not
// listable by gears. Builds run as the uid of the app's gear that asked
// for the deployment first, and the built tree
// is then root's, read-only for the app's gears. Memory and processes are
// limited by gear size (Config.Limits): with a cgroup per run under the
// node's own cgroup, v2 if its memory and pids controllers can be used,
// else v1's; else with RLIMIT_DATA per process (RLIMIT_AS would stop Go,
// Node.js and Java programs, which reserve far more address space than
// they use) and RLIMIT_NPROC per uid. Cgroups also end what left a run's
// process group; with rlimits that outlives the run, until the gear is
// destroyed. The node finds its mode at Start by starting a probe as a
// gear would be started and checking what it finds, logs it (loudly when
// weaker than a uid and a cgroup per gear), and Supervisor.Isolation
// reports it for the node's record: uid+cgroup2, uid+cgroup1, uid+rlimit,
// or "none (turned off)". Config.Isolation asks for a mode, and Start
// fails without it; with IsolateAuto Start fails when no mode works (or
// the node is not root), saying why and the fix: gears run unisolated
// only when IsolateNone is asked for. Before it reports a gear started
// and routes to it, the node checks that the socket on the gear's port is
// the gear's uid's (portowner.go). Confined processes start through a launcher
// (launch.go) that joins the cgroups, sets the limits and drops
// privileges before the gear's program runs. The welcome page and static
// files are served from inside the node and need none of this.
//
// Gears run on Linux: process groups are followed through /proc. The
// package builds on other systems, where New refuses to make a node
// (platform.go).
//
// It imports lb, store, store/internalapi, store/state and its own
// sub-packages (node/schedule: when a job's ticks are due), never another
// role.
package node
