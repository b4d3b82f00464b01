package store

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
)

func TestStartTwice(t *testing.T) {
	m := startMember(t, "m1", filepath.Join(t.TempDir(), "data"), ips.Next())
	if err := m.st.Start(context.Background()); !errors.Is(err, ErrStarted) {
		t.Errorf("second Start: %v, want ErrStarted", err)
	}
}
