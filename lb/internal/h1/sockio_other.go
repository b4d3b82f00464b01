//go:build !linux

package h1

import (
	"io"
	"net"
)

// SocketIO returns the reader and writer that a proxy's buffers use on
// c: c itself on this system.
func SocketIO(c net.Conn) (io.Reader, io.Writer) { return c, c }
