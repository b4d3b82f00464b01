package lb

import "errors"

// Sentinel errors returned by the Pool. Callers compare with errors.Is.
var (
	// ErrUnknownBackend is returned by Drain, Resume and CheckNow for an id that is
	// not in the pool.
	ErrUnknownBackend = errors.New("unknown backend")

	// ErrNoBackend is the error behind a 503: no backend was eligible for
	// a request (all down, draining or rotated out), or every one tried
	// refused the connection.
	ErrNoBackend = errors.New("no healthy backend")

	// ErrClosed is returned by Start after Close.
	ErrClosed = errors.New("pool is closed")

	// ErrStarted is returned by a second Start.
	ErrStarted = errors.New("pool already started")
)

// ErrBodyTimeout is the error a request body read under Limits fails
// with when the client sent no byte for BodyTimeout, or fell below
// MinBodyRate. It also matches os.ErrDeadlineExceeded.
var ErrBodyTimeout = errors.New("request body timed out")
