package dnsmgr

import "errors"

// Sentinel errors returned by the Server. Callers compare with errors.Is.
var (
	// ErrClosed is returned by Start after Close, or when Close came
	// while Start was running (wrapped).
	ErrClosed = errors.New("dns server is closed")
	// ErrStarted is returned by a second Start.
	ErrStarted = errors.New("dns server already started")
)
