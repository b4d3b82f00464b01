// Package state is the cluster's schema: the record types that every role
// reads and writes through the replicated store, their bucket names and
// their keys. It imports only the standard library, so that roles share
// it without importing each other.
//
// Ownership follows the single-writer rule of the store: records marked
// "broker-owned" are written only by the broker leader; "node-owned" ones
// only by the node they describe.
package state

import (
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Buckets of the replicated store.
const (
	BucketUsers         = "users"          // broker-owned, key: login
	BucketTokens        = "tokens"         // broker-owned, key: sha256 hex of the token
	BucketDomains       = "domains"        // broker-owned, key: namespace
	BucketApps          = "apps"           // broker-owned, key: AppKey(ns, app)
	BucketGears         = "gears"          // broker-owned, key: gear id
	BucketGearStatus    = "gear_status"    // node-owned, key: gear id
	BucketNodes         = "nodes"          // node-owned, key: member name
	BucketNodeAdmin     = "node_admin"     // broker-owned, key: member name
	BucketRoutingEvents = "routing_events" // broker-owned, key: EventKey(seq)
	BucketCluster       = "cluster"        // broker-owned, key: fixed names (KeyBootstrap, KeyRoutingSeq)
)

// Keys in BucketCluster.
const (
	KeyBootstrap = "bootstrap" // Bootstrap: set once the first admin exists
)

// Name rules. App hostnames are APP-NS.ZONE, so neither may hold a dash.
var (
	AppNameRE    = regexp.MustCompile(`^[a-z0-9]{1,32}$`)
	DomainNameRE = regexp.MustCompile(`^[a-z0-9]{1,16}$`)
	LoginRE      = regexp.MustCompile(`^[a-z0-9][a-z0-9._@-]{0,63}$`)
)

// Gear sizes.
const (
	SizeSmall  = "small"
	SizeMedium = "medium"
	SizeLarge  = "large"
)

// GearSizes lists the valid gear sizes, smallest first.
var GearSizes = []string{SizeSmall, SizeMedium, SizeLarge}

// Gear states, as the API reports them.
const (
	GearNew       = "new"
	GearBuilding  = "building"
	GearDeploying = "deploying"
	GearStarted   = "started"
	GearStopped   = "stopped"
	GearIdle      = "idle"
	GearUnknown   = "unknown"
	// GearCrashing: the gear's process ended more often than its node's
	// crash limit allows within the crash window; it is relaunched only
	// after a long wait, until a run lasts.
	GearCrashing = "crashing"
)

// Cartridges.
const (
	CartStatic = "static" // built-in welcome page / plain files
	CartLB     = "lb"     // the load-balancer cartridge on LB gears
)

// Capabilities are what an admin grants a user.
type Capabilities struct {
	HA        bool     `json:"ha"`         // may make apps HA
	MaxGears  int      `json:"max_gears"`  // gears over all the user's apps
	GearSizes []string `json:"gear_sizes"` // sizes the user may create
}

// User is an account. Broker-owned.
type User struct {
	Login        string       `json:"login"`
	PasswordHash string       `json:"password_hash"` // bcrypt
	Admin        bool         `json:"admin"`
	Capabilities Capabilities `json:"capabilities"`
	CreatedAt    time.Time    `json:"created_at"`
}

// Token is an API token; the key of its record is the sha256 of the
// secret, which is never stored. Broker-owned.
type Token struct {
	ID        string    `json:"id"` // short public id, for listing and revoking
	Login     string    `json:"login"`
	Note      string    `json:"note,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Bootstrap records that the first admin was created. Broker-owned.
type Bootstrap struct {
	Admin     string    `json:"admin"`
	CreatedAt time.Time `json:"created_at"`
}

// Domain is a user's namespace. Broker-owned.
type Domain struct {
	Name      string    `json:"name"`
	Owner     string    `json:"owner"`
	CreatedAt time.Time `json:"created_at"`
}

// App is an application and its gear group's scaling rules. Broker-owned.
type App struct {
	ID        string            `json:"id"`
	Name      string            `json:"name"`
	Domain    string            `json:"domain"`
	Owner     string            `json:"owner"`
	Cartridge string            `json:"cartridge"`
	Scalable  bool              `json:"scalable"`
	HA        bool              `json:"ha"`
	GearSize  string            `json:"gear_size"`
	Region    string            `json:"region,omitempty"`
	State     string            `json:"state"` // desired: started or stopped
	Env       map[string]string `json:"env,omitempty"`
	Aliases   []string          `json:"aliases,omitempty"`
	// ScalesFrom and ScalesTo bound the web gear count (-1: no maximum).
	ScalesFrom int `json:"scales_from"`
	ScalesTo   int `json:"scales_to"`
	// LBMin and LBMax bound the LB gear count (-1: no maximum): 1/1 for a
	// scalable app, 2/-1 once HA, 0/0 when not scalable.
	LBMin int `json:"lb_min"`
	LBMax int `json:"lb_max"`
	// HAMultiplier makes every m-th gear an LB gear once HA (0: exactly
	// LBMin LB gears).
	HAMultiplier int `json:"ha_multiplier"`
	// PreHA keeps the scale limits from before make-ha, which disable-ha
	// restores.
	PreHA *ScaleLimits `json:"pre_ha,omitempty"`
	// NextGear numbers gears in creation order (the seed's "9th gear").
	NextGear int `json:"next_gear"`
	// Deployment is the id of the deployment the app's gears run (empty:
	// the cartridge's welcome page); Deployments are the ids kept for
	// rollback, newest last, Deployment among them.
	Deployment  string   `json:"deployment,omitempty"`
	Deployments []string `json:"deployments,omitempty"`
	// Restarts is raised by each restart event: the roll-out restarts
	// the app's gears one at a time until each gear's Restarts reaches it.
	Restarts int `json:"restarts,omitempty"`
	// AutoscaleOff turns the autoscaler off for a scalable app (it is on
	// by default).
	AutoscaleOff bool `json:"autoscale_off,omitempty"`
	// DeployBranch is the branch whose pushes to the app's git remote
	// are deployed (empty: DefaultDeployBranch).
	DeployBranch string `json:"deploy_branch,omitempty"`
	// HTTPSRedirect has routers and node fronts answer the app's plain
	// HTTP requests with a redirect to HTTPS; HSTSMaxAge, in seconds,
	// above 0, has them send Strict-Transport-Security over HTTPS.
	HTTPSRedirect bool      `json:"https_redirect,omitempty"`
	HSTSMaxAge    int       `json:"hsts_max_age,omitempty"`
	CreatedAt     time.Time `json:"created_at"`
}

// HSTS is the Strict-Transport-Security value of the app's HTTPS
// answers, "" for none.
func (a App) HSTS() string {
	if a.HSTSMaxAge <= 0 {
		return ""
	}
	return fmt.Sprintf("max-age=%d", a.HSTSMaxAge)
}

// DefaultDeployBranch is the deploy branch of an app that set none.
const DefaultDeployBranch = "main"

// BranchRE is what a deploy branch may be called: a git branch name of
// letters, digits, dots, dashes, underscores and slashes (git's own
// rules, below, refuse the rest).
var BranchRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._/-]{0,99}$`)

// ValidBranch reports whether name can be a deploy branch.
func ValidBranch(name string) bool {
	return BranchRE.MatchString(name) && !strings.Contains(name, "..") && !strings.Contains(name, "//") &&
		!strings.HasSuffix(name, "/") && !strings.HasSuffix(name, ".") && !strings.HasSuffix(name, ".lock") && !strings.Contains(name, "/.")
}

// Branch returns the app's deploy branch.
func (a App) Branch() string {
	if a.DeployBranch == "" {
		return DefaultDeployBranch
	}
	return a.DeployBranch
}

// ScaleLimits is a saved pair of scale limits.
type ScaleLimits struct {
	From int `json:"from"`
	To   int `json:"to"`
}

// Gear is one instance of an app placed on a node. Broker-owned: it is the
// desired state; the node reports what it observes in GearStatus.
type Gear struct {
	ID         string `json:"id"`
	App        string `json:"app"` // AppKey
	AppName    string `json:"app_name"`
	Domain     string `json:"domain"`
	Node       string `json:"node"`
	Size       string `json:"size"`
	Cartridge  string `json:"cartridge"`
	LB         bool   `json:"lb"`          // runs the app's load balancer
	Head       bool   `json:"head"`        // the first LB gear
	RotatedOut bool   `json:"rotated_out"` // its web process receives no requests
	State      string `json:"state"`       // desired: started or stopped
	Ordinal    int    `json:"ordinal"`     // 1 for the app's first gear, ...
	Restarts   int    `json:"restarts"`    // raised by each restart event
	// Port is the web process's port on the node; LBPort, on LB gears, is
	// the load balancer's. Both are given by the broker from the node's
	// port range.
	Port   int `json:"port"`
	LBPort int `json:"lb_port,omitempty"`
	// Deployment is the id of the deployment this gear runs (empty: the
	// cartridge's welcome page). A new gear gets its app's current one;
	// a roll-out moves the others to it one gear at a time.
	Deployment string    `json:"deployment,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
	// Replaces, on a gear started to replace another in a planned move
	// (a drain's evacuation), names that gear: its node copies the
	// other's data directory before it first starts this one, and merges
	// it again once Final is set (the other gear is stopped). Cleared
	// when the other gear is gone.
	Replaces *Replacement `json:"replaces,omitempty"`
}

// Replacement is the gear a gear replaces in a planned move.
type Replacement struct {
	Gear string `json:"gear"`
	Node string `json:"node"`
	// Final asks for the last merge of the data directory: the other
	// gear is stopped.
	Final bool `json:"final,omitempty"`
}

// Data copy states a replacing gear's status reports (GearStatus.DataCopy).
const (
	DataCopied     = "copied" // the first copy is done
	DataMerged     = "merged" // the final merge is done
	DataCopyFailed = "failed" // prefix: "failed: why"; the gear starts without it
)

// Endpoint is one exposed port of a gear, as the routing SPI describes it.
type Endpoint struct {
	CartridgeName   string   `json:"cartridge_name"`
	ExternalAddress string   `json:"external_address"`
	ExternalPort    int      `json:"external_port"`
	InternalAddress string   `json:"internal_address"`
	InternalPort    int      `json:"internal_port"`
	Protocols       []string `json:"protocols"`
	Types           []string `json:"types"`
}

// GearStatus is what a node observes of one of its gears. Node-owned.
type GearStatus struct {
	ID        string     `json:"id"`
	Node      string     `json:"node"`
	State     string     `json:"state"`
	Reason    string     `json:"reason,omitempty"`
	Endpoints []Endpoint `json:"endpoints,omitempty"`
	// Deployment is what the gear's web process runs (empty: the welcome
	// page): with State started, that deployment passed its health check.
	Deployment string `json:"deployment,omitempty"`
	// Restarts is the gear record's Restarts that the running process
	// was started for.
	Restarts int `json:"restarts,omitempty"`
	// Health is the path that checks of the web process GET (the
	// manifest's health: of the deployment it runs); empty for "/".
	Health string `json:"health,omitempty"`
	// Draining asks every load balancer to send the gear no new requests:
	// its node is about to stop its web process.
	Draining bool `json:"draining,omitempty"`
	// PortTaken says that a process that is not the gear's (another
	// uid) listens on the gear's web port: the gear is not started, and
	// no load balancer sends it requests until its node finds the gear's
	// own process there.
	PortTaken bool `json:"port_taken,omitempty"`
	// LogTail is the end of the gear's log when it is crashing.
	LogTail []string `json:"log_tail,omitempty"`
	// DataCopy, on a gear that replaces another (Gear.Replaces), says how
	// far the copy of that gear's data directory went: DataCopied,
	// DataMerged, or "failed: " and why.
	DataCopy string `json:"data_copy,omitempty"`
	// FailedDeployment names a deployment that this gear cannot run: its
	// archive or manifest is broken, its build failed, or its process did
	// not pass its health check beside the running one (the running one
	// stays). Reason says why. A roll-out of that deployment stops at once
	// instead of waiting for its timeout. Cleared once the gear is asked
	// to run another deployment.
	FailedDeployment string    `json:"failed_deployment,omitempty"`
	UpdatedAt        time.Time `json:"updated_at"`
}

// Node is a node member's registration. Node-owned.
type Node struct {
	Name     string `json:"name"`
	Addr     string `json:"addr"` // advertised address gears bind to
	Zone     string `json:"zone,omitempty"`
	Region   string `json:"region,omitempty"`
	MaxGears int    `json:"max_gears"`
	// PortMin and PortMax bound the ports gears get on this node
	// (default 35531-65535).
	PortMin int `json:"port_min"`
	PortMax int `json:"port_max"`
	// Isolation is how the node isolates its gears: uid+cgroup2,
	// uid+cgroup1, uid+rlimit, or "none (turned off)" (see Isolates).
	// Empty: a node from before isolation was reported.
	Isolation string `json:"isolation,omitempty"`
	// NATS is host:port of the node's NATS cluster listener (the cluster
	// services' routes); empty on a node that runs none.
	NATS string `json:"nats,omitempty"`
	// NATSJoined is set once the node's NATS server is current in the
	// cluster's JetStream metadata group; nodes that join an existing
	// cluster wait for the ones before them to be (see node/services).
	NATSJoined bool `json:"nats_joined,omitempty"`
	// HTTP is host:port of the node's front HTTP listener, as reached
	// from other members; empty on a node without one.
	HTTP  string    `json:"http,omitempty"`
	Since time.Time `json:"since"`
}

// Isolates reports whether the node runs gears as uids of their own (its
// Isolation is one of the uid+ modes). A node that does not, or did not
// say, runs every gear as one user: brokers place there the gears of one
// user only.
func (n Node) Isolates() bool { return strings.HasPrefix(n.Isolation, "uid+") }

// NodeAdmin is what admins decide about a node. Broker-owned.
type NodeAdmin struct {
	Name     string `json:"name"`
	Draining bool   `json:"draining"`
	// Evacuate, on a draining node, has the broker leader move its gears
	// off, one at a time, each replacement started before its original
	// stops (gearbox node drain without --no-evacuate).
	Evacuate bool `json:"evacuate,omitempty"`
	// Evacuation is where the evacuation stands, written by the broker
	// leader: "moving gear ...", "blocked: ...", "evacuated".
	Evacuation string `json:"evacuation,omitempty"`
	// Removed says that an admin removed the node (gearbox node remove):
	// the one record of it kept, so that the gears still placed on it
	// are known lost although its node record is gone.
	Removed bool `json:"removed,omitempty"`
}

// Routing event actions: OpenShift's routing SPI, then what it never sent.
const (
	ActionCreateApplication    = "create_application"
	ActionDeleteApplication    = "delete_application"
	ActionAddPublicEndpoint    = "add_public_endpoint"
	ActionRemovePublicEndpoint = "remove_public_endpoint"
	ActionAddAlias             = "add_alias"
	ActionRemoveAlias          = "remove_alias"
	ActionAddSSL               = "add_ssl"
	ActionRemoveSSL            = "remove_ssl"
	ActionEnableHA             = "enable_ha"
	ActionDisableHA            = "disable_ha"
	ActionGearStart            = "gear_start"
	ActionGearStop             = "gear_stop"
	ActionRotateIn             = "rotate_in"
	ActionRotateOut            = "rotate_out"
)

// RoutingEvent is one entry of the durable, ordered routing feed.
// Broker-owned; key EventKey(Seq).
type RoutingEvent struct {
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
	// SSL and PrivateKey are an add_ssl event's certificate chain (PEM)
	// and its private key, sealed with the cluster secret
	// (store.SealSecret, purpose CertKeyPurpose): OpenShift's ssl and
	// private_key, never in the clear.
	SSL        string    `json:"ssl,omitempty"`
	PrivateKey string    `json:"private_key,omitempty"`
	Time       time.Time `json:"time"`
}

// BucketCerts holds the TLS certificates of aliases. Broker-owned; key:
// the alias.
const BucketCerts = "certs"

// CertKeyPurpose is the purpose that aliases' private keys are sealed
// for (store.SealSecret).
const CertKeyPurpose = "alias tls key"

// Cert is an alias's TLS certificate, uploaded by its app's owner, that
// routers and node fronts serve for the alias by SNI. Broker-owned.
type Cert struct {
	Host string `json:"host"` // the alias
	App  string `json:"app"`  // AppKey
	// Chain is the PEM certificate chain, the leaf first.
	Chain string `json:"chain"`
	// Key is the PEM private key sealed with the cluster secret
	// (store.SealSecret, CertKeyPurpose).
	Key      string    `json:"key"`
	NotAfter time.Time `json:"not_after"`
	// Fingerprint is the leaf's SHA-256, hex.
	Fingerprint string `json:"fingerprint"`
	// ExpiryAlerted is set once the alert that it expires soon was
	// raised for this certificate (the Fingerprint it names).
	ExpiryAlerted string    `json:"expiry_alerted,omitempty"`
	UpdatedAt     time.Time `json:"updated_at"`
	// ACME is set on a certificate the broker leader obtained from the
	// cluster's ACME certificate authority, which it renews; an owner's
	// upload replaces it and ends that.
	ACME bool `json:"acme,omitempty"`
}

// BucketACME holds, by alias, the state of each alias whose certificate
// the broker leader has tried and failed to obtain by ACME (ACMEStatus).
// Broker-owned.
const BucketACME = "acme"

// KeyACMEAccount is the key of the cluster's ACME account (ACMEAccount)
// in BucketCluster.
const KeyACMEAccount = "acme_account"

// ACMEAccountPurpose is the purpose that the ACME account's private key
// is sealed for (store.SealSecret).
const ACMEAccountPurpose = "acme account key"

// ACMEAccount is the cluster's account with its ACME certificate
// authority, shared by every broker that leads.
type ACMEAccount struct {
	// Directory is the CA's directory URL that the account is with.
	Directory string `json:"directory"`
	// Key is the account's PEM private key sealed with the cluster secret
	// (store.SealSecret, ACMEAccountPurpose).
	Key string `json:"key"`
	// URI is the account's URL at the CA, once registered.
	URI       string    `json:"uri,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// ACMEStatus is why an alias has no ACME certificate yet, and when the
// leader tries again.
type ACMEStatus struct {
	Host  string `json:"host"`
	App   string `json:"app"` // AppKey
	Error string `json:"error"`
	// Failures counts the tries that failed in a row; the wait before
	// the next try doubles with each.
	Failures int       `json:"failures"`
	LastTry  time.Time `json:"last_try"`
	NextTry  time.Time `json:"next_try"`
}

// BucketACMEChallenges holds the HTTP-01 challenges under way, by token,
// which every router answers at /.well-known/acme-challenge/TOKEN for
// the challenge's host. Broker-owned.
const BucketACMEChallenges = "acme_challenges"

// ACMEChallenge is one HTTP-01 challenge's answer. It is no secret: the
// certificate authority fetches it over plain HTTP.
type ACMEChallenge struct {
	Token string `json:"token"`
	Host  string `json:"host"`
	// KeyAuth is the answer: the token and the account key's thumbprint.
	KeyAuth string    `json:"key_auth"`
	Expires time.Time `json:"expires"`
}

// ACMEChallengePath is the path prefix of HTTP-01 challenges (RFC 8555,
// section 8.3).
const ACMEChallengePath = "/.well-known/acme-challenge/"

// Mapping maps a frontend path to a backend path, as in the routing SPI.
type Mapping struct {
	Frontend string `json:"frontend"`
	Backend  string `json:"backend"`
}

// AppKey is the record key of app name in namespace ns.
func AppKey(ns, name string) string { return ns + "/" + name }

// EventKey is the record key of routing event seq: zero-padded so that
// keys sort in sequence order.
func EventKey(seq uint64) string { return fmt.Sprintf("%020d", seq) }

// AppHost is the app's hostname: APP-NS.ZONE.
func AppHost(app, ns, zone string) string { return app + "-" + ns + "." + zone }

// BucketBrokers holds each broker's registration, written by that broker;
// key: member name.
const BucketBrokers = "brokers"

// Broker is a broker member's registration: where its REST API listens,
// so that other brokers can forward mutating calls to the leader.
type Broker struct {
	Name  string    `json:"name"`
	API   string    `json:"api"` // base URL, e.g. http://10.0.0.5:7480
	Since time.Time `json:"since"`
}

// Default gear port range.
const (
	DefaultPortMin = 35531
	DefaultPortMax = 65535
)

// BucketDeployments holds the deployments kept for each app.
// Broker-owned; key: DeploymentKey(app, id).
const BucketDeployments = "deployments"

// Deployment is an uploaded build of an app's code: a gzip-compressed tar
// archive, content-addressed by its sha256. Broker-owned.
type Deployment struct {
	ID   string `json:"id"`   // sha256 of the archive, lower-case hex
	App  string `json:"app"`  // AppKey
	Size int64  `json:"size"` // of the archive, in bytes
	// Holders are the members that store the archive and serve it on the
	// internal API.
	Holders   []string  `json:"holders"`
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by"` // login
}

// BucketRepos holds, per app, where its git repository stands.
// Broker-owned; key: AppKey.
const BucketRepos = "repos"

// Repo is an app's git repository as of its last accepted push: the
// bundle of all its refs (git bundle, content-addressed by its sha256)
// that every broker fetches from a holder and applies to its own copy,
// so that no broker holds the only one. Broker-owned.
type Repo struct {
	App string `json:"app"` // AppKey
	// Bundle is the sha256 (lower-case hex) of the bundle of every ref.
	Bundle string `json:"bundle"`
	Size   int64  `json:"size"`
	// Refs are the repository's refs and the commits they name.
	Refs map[string]string `json:"refs"`
	// Holders are the brokers that kept the bundle when it was
	// recorded; every broker that has applied it serves it too.
	Holders  []string  `json:"holders"`
	PushedAt time.Time `json:"pushed_at"`
	PushedBy string    `json:"pushed_by"` // login
}

// DeploymentKey is the record key of deployment id of app (an AppKey):
// keyed per app, so that two apps that deploy the same archive each keep
// their own record, and an app's deployments share a key prefix.
func DeploymentKey(app, id string) string { return app + "/" + id }

// BucketRollouts holds the progress of each app's move to its current
// deployment. Broker-owned; key: AppKey.
const BucketRollouts = "rollouts"

// Roll-out states.
const (
	RolloutRolling = "rolling" // gears are being moved, one at a time
	RolloutDone    = "done"    // every gear runs the deployment
	RolloutFailed  = "failed"  // a gear did not pass its health check in time; the roll-out stopped
)

// Rollout is the progress of an app's move to Deployment: the broker
// moves one gear at a time and the next only once the moved gear runs the
// deployment and passes its health check. Broker-owned.
type Rollout struct {
	App        string `json:"app"` // AppKey
	Deployment string `json:"deployment"`
	// Restarts is the app's restart count the gears are brought to.
	Restarts int    `json:"restarts,omitempty"`
	State    string `json:"state"`
	Message  string `json:"message,omitempty"`
	// Gear is the gear being moved, since GearSince.
	Gear      string    `json:"gear,omitempty"`
	GearSince time.Time `json:"gear_since,omitempty"`
	// GearHealthy is when Gear was first seen passing its health check
	// on Deployment; the next gear moves once load balancers have had
	// the time to take it back.
	GearHealthy time.Time `json:"gear_healthy,omitempty"`
	// Done counts the gears that run Deployment, of Total.
	Done      int       `json:"done"`
	Total     int       `json:"total"`
	StartedAt time.Time `json:"started_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// BucketRouters holds each router member's registration, written by that
// router; key: member name.
const BucketRouters = "routers"

// Router is a router member's registration: the address DNS gives out for
// ha- names (when brokers manage them) and where it serves HTTP.
// Router-owned.
type Router struct {
	Name string `json:"name"`
	// Addr is the member's advertised IP: the A or AAAA record of ha-
	// names.
	Addr string `json:"addr"`
	// HTTP is the host:port the router's HTTP listener is bound to.
	HTTP  string    `json:"http"`
	Since time.Time `json:"since"`
}

// BucketNameServers holds the registration of each broker whose DNS
// server is serving, written by that server when it starts and deleted
// when it stops; key: member name. Only the alive members among these are
// given out as the zone's name servers, so that a broker that runs no DNS
// (disabled, or its address could not be bound) is not in the NS set: such
// a broker deletes a record an earlier run of it left by crashing.
const BucketNameServers = "name_servers"

// NameServer is a serving DNS server's registration. Owned by its
// broker's DNS server.
type NameServer struct {
	Name string `json:"name"`
	// Addr is the IP given out for the name server (its NS name's A or
	// AAAA record): the IP the server is bound to, or the member's
	// advertised IP when it listens on all addresses.
	Addr string `json:"addr"`
	// DNS is the host:port the server answers on, UDP and TCP.
	DNS   string    `json:"dns"`
	Since time.Time `json:"since"`
}

// BucketHADNS holds the ha- records that routers create themselves when
// brokers do not manage them (--manage-ha-dns=false): each router adds
// one for every HA app it serves when it sees the app's enable_ha event,
// and removes it on disable_ha or delete_application. Router-owned; key:
// HADNSKey(app, router).
const BucketHADNS = "ha_dns"

// HADNS is one router's claim to serve an HA app's ha- name.
type HADNS struct {
	App    string    `json:"app"`  // AppKey
	Name   string    `json:"name"` // the ha- hostname, lower case, no trailing dot
	Router string    `json:"router"`
	Addr   string    `json:"addr"` // the router's advertised IP
	Since  time.Time `json:"since"`
}

// HADNSKey is the record key of router's ha- record of app (an AppKey).
func HADNSKey(app, router string) string { return app + "/" + router }

// HAHost is an HA app's routing-layer hostname: PREFIX APP-NS SUFFIX .ZONE,
// such as ha-myapp-ns.apps.example.com with prefix "ha-" and no suffix.
func HAHost(app, ns, zone, prefix, suffix string) string {
	return prefix + app + "-" + ns + suffix + "." + zone
}

// Defaults of the ha- hostname's prefix and suffix (OpenShift's
// ha_dns_prefix and ha_dns_suffix).
const (
	DefaultHADNSPrefix = "ha-"
	DefaultHADNSSuffix = ""
)

// BucketWebhooks holds the webhooks that receive routing events.
// Broker-owned; key: Webhook.ID.
const BucketWebhooks = "webhooks"

// Webhook is a URL that receives every routing event by POST (the event
// as JSON), in order, with retries. Broker-owned: the broker leader
// delivers, and records in After how far it got, so that a new leader
// resumes where the old one stopped.
type Webhook struct {
	ID  string `json:"id"`
	URL string `json:"url"`
	// Feed is the feed it receives: "" (routing events) or FeedAlerts.
	Feed      string    `json:"feed,omitempty"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
	// After is the sequence of the last event delivered (or given up
	// on); delivery goes on from After+1.
	After uint64 `json:"after"`
	// LastError is the last failed delivery's error, empty once one
	// succeeds.
	LastError string `json:"last_error,omitempty"`
	// Secret keys the HMAC-SHA256 signature of each delivery's body
	// (header X-Gearbox-Signature: sha256=HEX). The API shows it once,
	// when the webhook is created.
	Secret string `json:"secret"`
}

// BucketAlerts holds the alert feed: what went wrong in the cluster and
// what the broker leader did about it, in sequence order. Broker-owned;
// key EventKey(Seq), a sequence of its own, apart from routing events'.
const BucketAlerts = "alerts"

// Alert kinds.
const (
	AlertNodeFailed    = "node_failed"
	AlertNodeRecovered = "node_recovered"
	AlertNodeRemoved   = "node_removed"
	AlertGearReplaced  = "gear_replaced"
	AlertGearCrashing  = "gear_crashing"
	AlertAppDegraded   = "app_degraded"
	AlertAppRecovered  = "app_recovered"
	AlertAutoscaleUp   = "autoscale_up"
	AlertAutoscaleDown = "autoscale_down"
	AlertAutoscaleHeld = "autoscale_blocked"
	AlertCertExpiring  = "cert_expiring"
)

// Alert is one entry of the alert feed.
type Alert struct {
	Seq  uint64 `json:"seq"`
	Kind string `json:"kind"`
	// AppName and Namespace name the app it is about, if any; Node the
	// node, Gear the gear.
	AppName   string `json:"app_name,omitempty"`
	Namespace string `json:"namespace,omitempty"`
	Node      string `json:"node,omitempty"`
	Gear      string `json:"gear,omitempty"`
	// Reason says what happened; Action what gearbox did about it.
	Reason string `json:"reason"`
	Action string `json:"action,omitempty"`
	// Log is the end of the gear's log, for gear_crashing.
	Log  []string  `json:"log,omitempty"`
	Time time.Time `json:"time"`
}

// Feeds a webhook may receive.
const (
	FeedRouting = "routing"
	FeedAlerts  = "alerts"
)

// FeedName is the feed h receives, by name.
func (h *Webhook) FeedName() string {
	if h.Feed == "" {
		return FeedRouting
	}
	return h.Feed
}

// BucketAutoscale holds the autoscaler's state of each scalable app, so
// that a new broker leader carries on. Broker-owned; key: AppKey.
const BucketAutoscale = "autoscale"

// Autoscale is the autoscaler's memory of one app (broker/autoscale.go).
type Autoscale struct {
	// Gears is the gear count the autoscaler last saw or made: another
	// count means someone else scaled.
	Gears int `json:"gears"`
	// Samples are the latest sessions per gear, oldest first.
	Samples []float64 `json:"samples,omitempty"`
	// Below counts the consecutive samples under the remove threshold.
	Below int `json:"below,omitempty"`
	// LastUp is the autoscaler's last scale-up.
	LastUp time.Time `json:"last_up,omitzero"`
	// LastManual is when another scaled the app, LastManualDown whether
	// down: the autoscaler does not undo it within the cool-down.
	LastManual     time.Time `json:"last_manual,omitzero"`
	LastManualDown bool      `json:"last_manual_down,omitempty"`
	// Blocked says that the app would scale up but is at its maximum
	// (reported once by autoscale_blocked).
	Blocked bool `json:"blocked,omitempty"`
}
