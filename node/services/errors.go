package services

import "errors"

// Errors returned by Server.
var (
	// ErrStarted is returned by Start on a Server already started.
	ErrStarted = errors.New("cluster services already started")
	// ErrClosed is returned by Start on a closed Server.
	ErrClosed = errors.New("cluster services closed")
	// ErrNotRunning is returned by calls that need the NATS server while it
	// is not (yet, or any more) running.
	ErrNotRunning = errors.New("cluster services not running")
)
