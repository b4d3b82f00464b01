package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gearbox/store"
	"gearbox/store/state"
)

// Registration is what a node tells the cluster about itself.
type Registration struct {
	// Addr is the address gears on this node bind to and are reached at.
	// Required.
	Addr string
	// Zone and Region label the node for placement.
	Zone, Region string
	// MaxGears is the node's capacity. Default 100.
	MaxGears int
	// PortMin and PortMax bound gear ports. Default 35531-65535.
	PortMin, PortMax int
	// Isolation is how the node isolates gears: its Supervisor's
	// Isolation, once started.
	Isolation string
	// NATS is host:port of the node's NATS cluster listener, when it runs
	// cluster services.
	NATS string
	// HTTP is host:port of the node's front HTTP listener, as other
	// members reach it; empty without one.
	HTTP string
}

// Register writes this member's node record (node-owned: only this member
// writes it), replacing any earlier one.
func Register(ctx context.Context, st *store.Store, r Registration) error {
	if r.Addr == "" {
		return errors.New("node registration: Addr is required")
	}
	if r.MaxGears == 0 {
		r.MaxGears = 100
	}
	if r.PortMin == 0 && r.PortMax == 0 {
		r.PortMin, r.PortMax = state.DefaultPortMin, state.DefaultPortMax
	}
	switch {
	case r.MaxGears < 0:
		return fmt.Errorf("node registration: MaxGears %d is negative", r.MaxGears)
	case r.PortMin < 1 || r.PortMax > 65535 || r.PortMin > r.PortMax:
		return fmt.Errorf("node registration: gear port range %d-%d is not within 1-65535", r.PortMin, r.PortMax)
	}
	n := state.Node{Name: st.Name(), Addr: r.Addr, Zone: r.Zone, Region: r.Region, MaxGears: r.MaxGears,
		PortMin: r.PortMin, PortMax: r.PortMax, Isolation: r.Isolation, NATS: r.NATS, HTTP: r.HTTP}
	var old state.Node
	if _, err := st.Get(state.BucketNodes, st.Name(), &old); err == nil {
		n.Since = old.Since
		// The services say when they joined; a registration keeps it
		// while the address stays.
		n.NATSJoined = old.NATSJoined && old.NATS == n.NATS
		if old == n {
			return nil
		}
	}
	if n.Since.IsZero() {
		n.Since = time.Now()
	}
	if _, err := st.Put(ctx, state.BucketNodes, st.Name(), n); err != nil {
		return fmt.Errorf("register node: %w", err)
	}
	return nil
}
