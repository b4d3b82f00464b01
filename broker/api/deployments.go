package api

import "time"

// Deployment is one uploaded build of an app's code.
type Deployment struct {
	// ID is the sha256 of the archive, in lower-case hex.
	ID string `json:"id"`
	// Size is the archive's, in bytes.
	Size int64 `json:"size"`
	// Current: the app's gears are to run this deployment.
	Current bool `json:"current"`
	// Holders are the members that hold the archive.
	Holders   []string  `json:"holders"`
	CreatedAt time.Time `json:"created_at"`
	// CreatedBy is the login of the uploader.
	CreatedBy string `json:"created_by"`
}

// Rollout is the progress of an app's move to its current deployment: the
// broker moves one gear at a time, and the next once the moved gear runs
// the deployment and passes its health check.
type Rollout struct {
	// App is the app's key, NS/APP.
	App        string `json:"app"`
	Deployment string `json:"deployment"`
	// Restarts is the app's restart count the gears are brought to.
	Restarts int `json:"restarts,omitempty"`
	// State is rolling, done or failed.
	State   string `json:"state"`
	Message string `json:"message,omitempty"`
	// Gear is the gear being moved, since GearSince.
	Gear      string    `json:"gear,omitempty"`
	GearSince time.Time `json:"gear_since"`
	// GearHealthy is when Gear was first seen passing its health check
	// on Deployment.
	GearHealthy time.Time `json:"gear_healthy"`
	// Done counts the gears that run Deployment, of Total.
	Done      int       `json:"done"`
	Total     int       `json:"total"`
	StartedAt time.Time `json:"started_at"`
	UpdatedAt time.Time `json:"updated_at"`
}
