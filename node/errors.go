package node

import "errors"

// Sentinel errors returned by the node. Callers compare with errors.Is.
var (
	// ErrCannotIsolate is wrapped by the error of Start when the node
	// cannot run gears as users of their own (it does not run as root, or
	// no isolation mode works on the host) and the operator did not turn
	// isolation off (IsolateNone). The error says what failed and the fix.
	ErrCannotIsolate = errors.New("gears cannot be isolated on this node")
	// ErrClosed is returned by Start on a closed Supervisor.
	ErrClosed = errors.New("node is closed")
	// ErrHashMismatch is wrapped by the error of a deployment fetch whose
	// archive's sha256 is not the deployment's id.
	ErrHashMismatch = errors.New("deployment archive hash mismatch")
	// ErrNoGearUID is wrapped by the error of a gear that gets no uid of
	// its own: every uid of the node's gear uid range is taken.
	ErrNoGearUID = errors.New("no free gear uid")
	// ErrStarted is returned by a second Start of a Supervisor.
	ErrStarted = errors.New("node already started")
	// ErrUnsupportedOS is wrapped by the error of New on a system other
	// than Linux, with the system's name.
	ErrUnsupportedOS = errors.New("the node role runs on Linux only: gears need Linux process isolation")
)
