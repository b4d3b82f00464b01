package broker

import "errors"

// Sentinel errors returned by the Broker. Callers compare with errors.Is.
var (
	// ErrStarted is returned by a second Start.
	ErrStarted = errors.New("broker already started")
	// ErrClosed is returned by Start after Close or Shutdown.
	ErrClosed = errors.New("broker is closed")
)
