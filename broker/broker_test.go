package broker

import (
	"context"
	"errors"
	"testing"
)

func TestStartTwice(t *testing.T) {
	c := newCluster(t, clusterOpts{nodes: []nodeSpec{}})
	if err := c.b.Start(context.Background()); !errors.Is(err, ErrStarted) {
		t.Errorf("second Start: %v, want ErrStarted", err)
	}
	// The first broker still serves.
	c.ok(t, "GET", "/broker/rest/api", nobody, nil, nil)
}
