package api

import "time"

// Domain is a user's namespace: app hostnames are APP-NAME.ZONE.
type Domain struct {
	Name string `json:"name"`
	// ID is Name again, under OpenShift's older name for it.
	ID    string `json:"id"`
	Owner string `json:"owner"`
	// Applications counts the domain's apps.
	Applications int       `json:"application_count"`
	CreatedAt    time.Time `json:"created_at"`
}

// App is an application.
type App struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Domain string `json:"domain_id"`
	Owner  string `json:"owner"`
	// AppURL is http://APP-NS.ZONE/.
	AppURL string `json:"app_url"`
	// HAURL is the routing layer's URL of an HA app
	// (http://ha-APP-NS.ZONE/ with the default prefix); left out for
	// others.
	HAURL string `json:"ha_url,omitempty"`
	// Framework is the web cartridge.
	Framework   string `json:"framework"`
	Scalable    bool   `json:"scalable"`
	HA          bool   `json:"ha"`
	GearProfile string `json:"gear_profile"`
	// Region pins the app's gears to one region; left out when unpinned.
	Region string `json:"region,omitempty"`
	// State is started or stopped: what the user asked for.
	State     string `json:"state"`
	GearCount int    `json:"gear_count"`
	// ScalesFrom and ScalesTo are the web gears' scale limits; ScalesTo
	// -1 is no maximum.
	ScalesFrom   int `json:"scales_from"`
	ScalesTo     int `json:"scales_to"`
	HAMultiplier int `json:"ha_multiplier"`
	// Autoscale says whether the broker scales the app by the sessions
	// of its load balancers (scalable apps, unless turned off).
	Autoscale bool `json:"autoscale"`
	// DeployBranch is the branch whose pushes to the app's git remote
	// (/git/NS/APP.git on the broker) are deployed.
	DeployBranch string `json:"deploy_branch"`
	// HTTPSRedirect says whether plain HTTP requests are redirected to
	// HTTPS; HSTSMaxAge is the Strict-Transport-Security max-age of
	// answers over HTTPS, in seconds (0: none).
	HTTPSRedirect bool `json:"https_redirect"`
	HSTSMaxAge    int  `json:"hsts_max_age"`
	// Aliases are the app's own hostnames; never null.
	Aliases []string `json:"aliases"`
	// LB says where a scalable app's LB gears are; nil, and left out, for
	// apps that are not scalable.
	LB        *LBSummary `json:"load_balancers,omitempty"`
	CreatedAt time.Time  `json:"creation_time"`
	// Gears are only listed when asked for (include=gears) and left out
	// otherwise.
	Gears []Gear `json:"gears,omitempty"`
}

// LBSummary says how highly available an app really is: where its LB
// gears are, not only what its settings say.
type LBSummary struct {
	Gears int `json:"gears"`
	// Nodes and Zones count the distinct nodes and zones of the LB gears.
	Nodes int `json:"nodes"`
	Zones int `json:"zones"`
	// RotatedOut: some LB gear is rotated out of serving web requests.
	RotatedOut bool `json:"rotated_out"`
	// ReallyHA: the LB gears are on 2 or more alive nodes.
	ReallyHA bool `json:"really_ha"`
	// Effective, shown for an HA app by GET of the app: losing any one
	// node loses no request now (two or more LB gears started, on two
	// or more nodes, in two or more zones where there are zones, in
	// every alive router's rotation). Pending says what is missing.
	Effective *bool  `json:"ha_effective,omitempty"`
	Pending   string `json:"ha_pending,omitempty"`
}

// Gear is one gear of an app, as app show, gear_groups and the gear
// calls report it.
type Gear struct {
	ID string `json:"id"`
	// State is the gear's observed state (new, started, stopped,
	// unresponsive, ...), or unknown when its node is down.
	State string `json:"state"`
	// Reason says why the gear is in State, when there is something to
	// say.
	Reason string `json:"reason,omitempty"`
	// LogTail is the end of the gear's log while it is crashing.
	LogTail    []string `json:"log_tail,omitempty"`
	Zone       string   `json:"zone"`
	Region     string   `json:"region"`
	Node       string   `json:"node"`
	LB         bool     `json:"lb"`
	Head       bool     `json:"head"`
	RotatedOut bool     `json:"rotated_out"`
	Cartridges []string `json:"cartridges"`
	// Endpoints are only listed when asked for (include=endpoints).
	Endpoints []Endpoint `json:"endpoints,omitempty"`
}

// Endpoint is one exposed port of a gear, as in OpenShift's gear_groups.
type Endpoint struct {
	CartridgeName   string   `json:"cartridge_name"`
	ExternalAddress string   `json:"external_address"`
	ExternalPort    int      `json:"external_port"`
	InternalAddress string   `json:"internal_address"`
	InternalPort    int      `json:"internal_port"`
	Protocols       []string `json:"protocols"`
	Types           []string `json:"types"`
}

// Cartridge is one cartridge of an app with its scale limits.
type Cartridge struct {
	Name string `json:"name"`
	// Type is web_framework or load_balancer.
	Type string `json:"type"`
	// ScalesFrom and ScalesTo are the cartridge's scale limits; ScalesTo
	// -1 is no maximum.
	ScalesFrom int `json:"scales_from"`
	ScalesTo   int `json:"scales_to"`
	// Scalable: the web cartridge of a scalable app may be scaled.
	Scalable bool `json:"supported_scales_to"`
	// Gears counts the gears that run the cartridge.
	Gears int `json:"current_scale"`
}

// GearGroup is a set of gears replicating the same cartridges: an app has
// one.
type GearGroup struct {
	ID          string      `json:"id"`
	Name        string      `json:"name"`
	GearProfile string      `json:"gear_profile"`
	Cartridges  []Cartridge `json:"cartridges"`
	ScalesFrom  int         `json:"scales_from"`
	ScalesTo    int         `json:"scales_to"`
	// Gears is never null.
	Gears []Gear `json:"gears"`
}

// EnvVar is one of an app's environment variables.
type EnvVar struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Alias is one of an app's aliases, shaped like OpenShift's: a hostname
// of the user's own domain that routes to the app.
type Alias struct {
	// ID is the hostname.
	ID string `json:"id"`
	// HasPrivateSSLCertificate says whether the alias has a TLS
	// certificate of its own, which routers and node fronts serve for it.
	HasPrivateSSLCertificate bool `json:"has_private_ssl_certificate"`
	// Cert describes that certificate.
	Cert *AliasCert `json:"certificate,omitempty"`
	// ACME, on a cluster that obtains certificates by ACME, says why the
	// alias has none yet and when it is tried again.
	ACME *AliasACME `json:"acme,omitempty"`
}

// AliasACME is why ACME has not given an alias a certificate yet.
type AliasACME struct {
	Error    string    `json:"error"`
	Failures int       `json:"failures"`
	NextTry  time.Time `json:"next_try"`
}

// AliasCert is an alias's certificate, without its key.
type AliasCert struct {
	NotAfter    time.Time `json:"not_after"`
	Fingerprint string    `json:"fingerprint_sha256"`
	// ACME is set on a certificate obtained by the cluster's ACME
	// certificate authority, which the cluster renews.
	ACME bool `json:"acme,omitempty"`
}
