package node

import (
	"io/fs"
	"syscall"
)

// What the node needs of the system, on Linux (see platform.go).

// checkPlatform reports why a node cannot run on this system: on Linux
// it can.
func checkPlatform() error { return nil }

// Open flags: never through a symbolic link; without blocking on a FIFO.
const (
	oNoFollow = syscall.O_NOFOLLOW
	oNonBlock = syscall.O_NONBLOCK
)

// statOf returns fi's owner and link count.
func statOf(fi fs.FileInfo) (inode, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return inode{}, false
	}
	return inode{mode: fi.Mode(), uid: int(st.Uid), gid: int(st.Gid), nlink: uint64(st.Nlink)}, true
}
