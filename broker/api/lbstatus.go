package api

import "encoding/json"

// LBStatus is the status of one LB gear's load balancer, as
// GET .../applications/APP/lb-status answers it for each of the app's LB
// gears: the status page that the load balancer serves on its node's
// internal API only, read by the broker for the app's owner.
type LBStatus struct {
	// Gear is the LB gear, as gear_groups shows it (without endpoints).
	Gear Gear `json:"gear"`
	// Status is the load balancer's status as its node serves it: the
	// JSON of package lb's Status (balance, rotation, sessions, request
	// counters, and each backend's state, checks and sessions), passed on
	// as the node wrote it so that its shape is defined once, in lb.
	// Left out when it could not be read.
	Status json.RawMessage `json:"status,omitempty"`
	// Error says why Status could not be read: the node is down, did not
	// answer, or runs no load balancer for the gear (yet).
	Error string `json:"error,omitempty"`
}
