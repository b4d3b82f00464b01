//go:build unix

package h1

import (
	"net"
	"syscall"
)

// IdleAlive reports whether an idle connection is still open and has
// sent nothing: a peer that closed it (a restart, an idle time-out) must
// not get a request on it, which it would never answer. It peeks without
// blocking: one system call. A connection that is not a socket is taken
// as alive.
func IdleAlive(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	alive := false
	var buf [1]byte
	err = rc.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		alive = n <= 0 && (err == syscall.EAGAIN || err == syscall.EWOULDBLOCK)
		return true
	})
	return err == nil && alive
}
