package dnsmgr

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// TCP is served by miekg/dns's server, bounded so that clients that open
// connections and hold them cannot exhaust the server: at most
// Config.MaxTCPConns connections at once (one more is closed as soon as it
// is accepted, rather than left waiting in the backlog, so that its client
// hears at once), Config.TCPTimeout to send the first query and then
// between queries (miekg/dns's ReadTimeout and IdleTimeout), the same to
// send each reply (miekg/dns sets no write deadline: a client that never
// reads would hold its connection for ever), and tcpMaxQueries queries a
// connection.

// TCP defaults.
const (
	// DefaultMaxTCPConns is BIND's default tcp-clients: TCP carries the
	// few answers too large for UDP, clients sent there by the rate
	// limit, and zone transfers.
	DefaultMaxTCPConns = 150
	// DefaultTCPTimeout is Knot's tcp-idle-timeout: RFC 7766 asks for an
	// idle time "on the order of seconds", and a client that has a query
	// sends it at once.
	DefaultTCPTimeout = 10 * time.Second
	// tcpMaxQueries is how many queries one connection may send:
	// miekg/dns's default, set here so that it stays.
	tcpMaxQueries = 128
	// tcpRefusalLogBurst is how many refused connections are logged a
	// minute; the "refused" field of each counts them all.
	tcpRefusalLogBurst = 10
)

// limitListener accepts at most max connections at once, closing those
// above, and gives each a write deadline.
type limitListener struct {
	net.Listener
	max     int64
	timeout time.Duration
	active  atomic.Int64
	refused atomic.Int64
	// onRefuse is called with the refusal count after a connection is
	// closed for being one too many.
	onRefuse func(refused int64)
}

// Accept returns the next connection under the cap; those above it are
// closed, and it waits for another.
func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.active.Add(1) > l.max {
			l.active.Add(-1)
			c.Close()
			n := l.refused.Add(1)
			if l.onRefuse != nil {
				l.onRefuse(n)
			}
			continue
		}
		return &limitConn{Conn: c, l: l}, nil
	}
}

// limitConn is a connection under the cap: it frees its place when
// closed.
type limitConn struct {
	net.Conn
	l    *limitListener
	once sync.Once
}

// Write writes b within the listener's time-out.
func (c *limitConn) Write(b []byte) (int, error) {
	c.Conn.SetWriteDeadline(time.Now().Add(c.l.timeout))
	return c.Conn.Write(b)
}

// Close closes the connection and frees its place, once.
func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.active.Add(-1) })
	return err
}
