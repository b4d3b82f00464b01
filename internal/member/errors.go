package member

import "errors"

// Sentinel errors returned by a Member. Callers compare with errors.Is.
var (
	// ErrStarted is returned by a second Start: a Member runs once.
	ErrStarted = errors.New("member already started")
	// ErrClosed is returned by Start after Leave, Close or Crash.
	ErrClosed = errors.New("member is closed")
)
