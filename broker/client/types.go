package client

import "time"

// Capabilities are what an admin grants a user.
type Capabilities struct {
	HA        bool     `json:"ha"`
	MaxGears  int      `json:"max_gears"`
	GearSizes []string `json:"gear_sizes"`
}

// User is an account.
type User struct {
	Login         string       `json:"login"`
	Admin         bool         `json:"admin"`
	Capabilities  Capabilities `json:"capabilities"`
	ConsumedGears int          `json:"consumed_gears"`
	CreatedAt     time.Time    `json:"created_at"`
}

// Token is a created API token; Token is only set on creation.
type Token struct {
	ID        string    `json:"id"`
	Token     string    `json:"token"`
	Login     string    `json:"login"`
	Note      string    `json:"note"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Domain is a namespace.
type Domain struct {
	Name         string    `json:"name"`
	Owner        string    `json:"owner"`
	Applications int       `json:"application_count"`
	CreatedAt    time.Time `json:"created_at"`
}

// LBSummary says where an app's LB gears are.
type LBSummary struct {
	Gears      int  `json:"gears"`
	Nodes      int  `json:"nodes"`
	Zones      int  `json:"zones"`
	RotatedOut bool `json:"rotated_out"`
	ReallyHA   bool `json:"really_ha"`
}

// Endpoint is one exposed port of a gear.
type Endpoint struct {
	CartridgeName   string   `json:"cartridge_name"`
	ExternalAddress string   `json:"external_address"`
	ExternalPort    int      `json:"external_port"`
	InternalAddress string   `json:"internal_address"`
	InternalPort    int      `json:"internal_port"`
	Protocols       []string `json:"protocols"`
	Types           []string `json:"types"`
}

// Gear is one gear of an app.
type Gear struct {
	ID         string     `json:"id"`
	State      string     `json:"state"`
	Reason     string     `json:"reason"`
	Zone       string     `json:"zone"`
	Region     string     `json:"region"`
	Node       string     `json:"node"`
	LB         bool       `json:"lb"`
	Head       bool       `json:"head"`
	RotatedOut bool       `json:"rotated_out"`
	Cartridges []string   `json:"cartridges"`
	Endpoints  []Endpoint `json:"endpoints"`
}

// App is an application.
type App struct {
	ID           string     `json:"id"`
	Name         string     `json:"name"`
	Domain       string     `json:"domain_id"`
	Owner        string     `json:"owner"`
	AppURL       string     `json:"app_url"`
	HAURL        string     `json:"ha_url"`
	Framework    string     `json:"framework"`
	Scalable     bool       `json:"scalable"`
	HA           bool       `json:"ha"`
	GearProfile  string     `json:"gear_profile"`
	Region       string     `json:"region"`
	State        string     `json:"state"`
	GearCount    int        `json:"gear_count"`
	ScalesFrom   int        `json:"scales_from"`
	ScalesTo     int        `json:"scales_to"`
	HAMultiplier int        `json:"ha_multiplier"`
	Aliases      []string   `json:"aliases"`
	LB           *LBSummary `json:"load_balancers"`
	CreatedAt    time.Time  `json:"creation_time"`
	Gears        []Gear     `json:"gears"`
}

// Cartridge is one cartridge of an app with its scale limits.
type Cartridge struct {
	Name       string `json:"name"`
	Type       string `json:"type"`
	ScalesFrom int    `json:"scales_from"`
	ScalesTo   int    `json:"scales_to"`
	Gears      int    `json:"current_scale"`
}

// GearGroup is a set of gears replicating the same cartridges.
type GearGroup struct {
	ID          string      `json:"id"`
	Name        string      `json:"name"`
	GearProfile string      `json:"gear_profile"`
	Cartridges  []Cartridge `json:"cartridges"`
	ScalesFrom  int         `json:"scales_from"`
	ScalesTo    int         `json:"scales_to"`
	Gears       []Gear      `json:"gears"`
}

// Node is a node member as admins see it.
type Node struct {
	Name     string `json:"name"`
	Addr     string `json:"addr"`
	Zone     string `json:"zone"`
	Region   string `json:"region"`
	Alive    bool   `json:"alive"`
	Draining bool   `json:"draining"`
	Gears    int    `json:"gears"`
	MaxGears int    `json:"max_gears"`
	// Isolation is how the node isolates its gears: uid+cgroup2,
	// uid+cgroup1, uid+rlimit, or none and why, as "none (not root)".
	Isolation string `json:"isolation"`
}

// Deployment is one uploaded build of an app's code.
type Deployment struct {
	ID        string    `json:"id"`
	Size      int64     `json:"size"`
	Current   bool      `json:"current"`
	Holders   []string  `json:"holders"`
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by"`
}

// Rollout is the progress of an app's move to its current deployment.
type Rollout struct {
	Deployment string    `json:"deployment"`
	State      string    `json:"state"` // rolling, done or failed
	Message    string    `json:"message"`
	Gear       string    `json:"gear"` // the gear being moved
	Done       int       `json:"done"`
	Total      int       `json:"total"`
	StartedAt  time.Time `json:"started_at"`
	UpdatedAt  time.Time `json:"updated_at"`
}
