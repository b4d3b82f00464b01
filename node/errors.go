package node

import "errors"

// Sentinel errors returned by the node. Callers compare with errors.Is.
var (
	// ErrClosed is returned by Start on a closed Supervisor.
	ErrClosed = errors.New("node is closed")
)
