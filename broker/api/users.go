package api

import "time"

// Capabilities are what an admin grants a user.
type Capabilities struct {
	// HA: the user may make apps HA.
	HA bool `json:"ha"`
	// MaxGears is how many gears the user's apps may have in all.
	MaxGears int `json:"max_gears"`
	// GearSizes are the gear sizes the user may create.
	GearSizes []string `json:"gear_sizes"`
}

// User is an account, never with its password.
type User struct {
	Login        string       `json:"login"`
	Admin        bool         `json:"admin"`
	Capabilities Capabilities `json:"capabilities"`
	// ConsumedGears counts the gears of the user's apps.
	ConsumedGears int       `json:"consumed_gears"`
	CreatedAt     time.Time `json:"created_at"`
}

// Token is an API token, as POST /broker/rest/user/authorizations
// creates it and GET lists it (without Token).
type Token struct {
	// ID is the token's short public id, for listing and revoking.
	ID string `json:"id"`
	// Token is the secret to send as "Authorization: Bearer TOKEN"; it is
	// only shown in the answer that creates it.
	Token     string    `json:"token,omitempty"`
	Login     string    `json:"login"`
	Note      string    `json:"note,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
	// ExpiresIn is the token's lifetime, in seconds.
	ExpiresIn int `json:"expires_in"`
}
