package api

// Node is a node member as admins see it (GET /broker/rest/nodes).
type Node struct {
	Name string `json:"name"`
	// Addr is the address the node's gears are reached at.
	Addr     string `json:"addr"`
	Zone     string `json:"zone"`
	Region   string `json:"region"`
	Alive    bool   `json:"alive"`
	Draining bool   `json:"draining"`
	// Gears counts the gears placed on the node, of MaxGears.
	Gears    int `json:"gears"`
	MaxGears int `json:"max_gears"`
	// Isolation is how the node isolates its gears: uid+cgroup2,
	// uid+cgroup1, uid+rlimit, or none and why, as "none (not root)".
	Isolation string `json:"isolation"`
	// Evacuation, on a node drained with evacuation, says where it
	// stands: "moving gear G to N: ...", "blocked: why", "evacuated".
	Evacuation string `json:"evacuation,omitempty"`
}
