package store

import "errors"

// Sentinel errors returned by the store. Callers compare with errors.Is.
var (
	// ErrNotFound is returned by Get when a key has no live record (it was
	// never written, or its last write was a delete).
	ErrNotFound = errors.New("record not found")

	// ErrForeignFile is returned by Open when the file at the state path is a
	// valid bbolt database that gearbox did not create.
	ErrForeignFile = errors.New("file is not a gearbox state database")

	// ErrLocked is returned by Open when another process holds the state file.
	ErrLocked = errors.New("state database is locked by another process")

	// ErrClosed is returned by operations on a closed store.
	ErrClosed = errors.New("store is closed")

	// ErrStarted is returned by a second Start.
	ErrStarted = errors.New("store already started")

	// ErrUnauthorized is returned by internal API calls that a peer refused
	// because the cluster secret did not match.
	ErrUnauthorized = errors.New("cluster secret rejected by peer")

	// ErrNoPeer is returned by anti-entropy when no alive peer is known.
	ErrNoPeer = errors.New("no alive peer to synchronise with")

	// ErrClockSkew is returned by Clock.Admit for a version whose wall time
	// is further ahead of the local clock than the allowed skew
	// (Config.MaxClockSkew for a Store).
	ErrClockSkew = errors.New("version too far ahead of the local clock")

	// ErrInvalidRecord is returned for a write with an empty bucket or key,
	// or a bucket name that is reserved.
	ErrInvalidRecord = errors.New("invalid record")
)
