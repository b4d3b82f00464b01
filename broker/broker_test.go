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

// A closed broker does not start again: nothing would ever close what a
// second start opened.
func TestStartAfterClose(t *testing.T) {
	c := newCluster(t, clusterOpts{nodes: []nodeSpec{}})
	if err := c.b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.b.Start(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Start after Close: %v, want ErrClosed", err)
	}
	if err := c.b.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
