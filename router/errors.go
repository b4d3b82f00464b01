package router

import "errors"

// Sentinel errors returned by the Router. Callers compare with errors.Is.
var (
	// ErrClosed is returned by Start after Close.
	ErrClosed = errors.New("router is closed")
	// ErrStarted is returned by a second Start.
	ErrStarted = errors.New("router already started")
)
