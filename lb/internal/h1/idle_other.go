//go:build !unix

package h1

import "net"

// IdleAlive reports whether an idle connection is still open. Without a
// non-blocking peek on this system it cannot tell, and takes the
// connection as alive: a request sent on a connection the peer closed then
// fails as it reaches the backend, and a safe one is resent.
func IdleAlive(c net.Conn) bool { return true }
