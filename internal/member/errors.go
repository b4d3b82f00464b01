package member

import "errors"

// ErrStarted is returned by Start on a member that was started or closed
// before: a Member runs once.
var ErrStarted = errors.New("member already started")
