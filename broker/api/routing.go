package api

import "time"

// RoutingEvent is one entry of the routing event feed: OpenShift's
// routing SPI (create_application, delete_application,
// add_public_endpoint, remove_public_endpoint, add_alias, remove_alias,
// ...) and gearbox's additions (enable_ha, disable_ha, gear_start,
// gear_stop, rotate_in, rotate_out). The feed (GET
// /broker/rest/routing/events, followed as NDJSON) and webhook
// deliveries send it.
type RoutingEvent struct {
	// Seq orders the events: each is one more than the one before.
	Seq            uint64    `json:"seq"`
	Action         string    `json:"action"`
	AppName        string    `json:"app_name"`
	Namespace      string    `json:"namespace"`
	Scalable       bool      `json:"scalable,omitempty"`
	HA             bool      `json:"ha,omitempty"`
	GearID         string    `json:"gear_id,omitempty"`
	PublicPortName string    `json:"public_port_name,omitempty"`
	PublicAddress  string    `json:"public_address,omitempty"`
	PublicPort     int       `json:"public_port,omitempty"`
	Protocols      []string  `json:"protocols,omitempty"`
	Types          []string  `json:"types,omitempty"`
	Mappings       []Mapping `json:"mappings,omitempty"`
	Alias          string    `json:"alias,omitempty"`
	// SSL is an add_ssl event's certificate chain (PEM); PrivateKey its
	// key, sealed with the cluster secret (a routing layer of the
	// cluster's own opens it; no one else can).
	SSL        string    `json:"ssl,omitempty"`
	PrivateKey string    `json:"private_key,omitempty"`
	Time       time.Time `json:"time"`
}

// Mapping maps a frontend path to a backend path, as in the routing SPI.
type Mapping struct {
	Frontend string `json:"frontend"`
	Backend  string `json:"backend"`
}

// Webhook is a URL that receives every routing event by POST.
type Webhook struct {
	ID  string `json:"id"`
	URL string `json:"url"`
	// Feed is what it receives: routing (events) or alerts.
	Feed      string    `json:"feed"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
	// After is the sequence of the last event delivered; Pending counts
	// the events the answering broker holds after it: how far delivery
	// is behind.
	After     uint64 `json:"after"`
	Pending   uint64 `json:"pending"`
	LastError string `json:"last_error,omitempty"`
	// Secret signs each delivery (X-Gearbox-Signature); it is only shown
	// in the answer that creates the webhook.
	Secret string `json:"secret,omitempty"`
}

// Route is one app as a routing layer needs it: the names it answers to
// and where its requests go. GET /broker/rest/routing/routes lists them,
// so that an existing router (nginx, HAProxy, an F5) can be configured
// from the current state and then follow the routing events.
type Route struct {
	App       string `json:"app"`
	Namespace string `json:"namespace"`
	// Host is the app's hostname, APP-NS.ZONE: the Host header its gears
	// expect.
	Host string `json:"host"`
	// HAHost is the routing layer's hostname of an HA app (ha-APP-NS.ZONE
	// with the default prefix); left out for others.
	HAHost   string   `json:"ha_host,omitempty"`
	Aliases  []string `json:"aliases"`
	Scalable bool     `json:"scalable"`
	HA       bool     `json:"ha"`
	// Endpoints are where to send the app's requests: the load balancers
	// of its LB gears (types load_balancer) when it is scalable, else its
	// one gear's web port (types web_framework). Never null.
	Endpoints []RouteEndpoint `json:"endpoints"`
}

// RouteEndpoint is one place an app's requests may go.
type RouteEndpoint struct {
	GearID string `json:"gear_id"`
	// Address is the node's address and the port, host:port.
	Address string `json:"address"`
	// State and Reason are the gear's, as gear_groups reports them.
	State  string   `json:"state"`
	Reason string   `json:"reason,omitempty"`
	Head   bool     `json:"head,omitempty"`
	Types  []string `json:"types"`
}

// Alert is one entry of the alert feed (GET /broker/rest/alerts): what
// went wrong in the cluster, and what gearbox did about it.
type Alert struct {
	// Seq orders the alerts: each is one more than the one before.
	Seq uint64 `json:"seq"`
	// Kind is node_failed, node_recovered, node_removed, gear_replaced,
	// gear_crashing, app_degraded, app_recovered, autoscale_up,
	// autoscale_down or autoscale_blocked.
	Kind      string `json:"kind"`
	AppName   string `json:"app_name,omitempty"`
	Namespace string `json:"namespace,omitempty"`
	Node      string `json:"node,omitempty"`
	Gear      string `json:"gear,omitempty"`
	Reason    string `json:"reason"`
	Action    string `json:"action,omitempty"`
	// Log is the end of the gear's log (gear_crashing).
	Log  []string  `json:"log,omitempty"`
	Time time.Time `json:"time"`
}
