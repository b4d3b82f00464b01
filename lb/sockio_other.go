//go:build !linux

package lb

import (
	"io"
	"net"
)

// socketIO returns the reader and writer that FastServer's buffers use on
// c: c itself on this system.
func socketIO(c net.Conn) (io.Reader, io.Writer) { return c, c }
