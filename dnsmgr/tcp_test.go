package dnsmgr

import (
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"github.com/miekg/dns"

	"gearbox/internal/testutil"
	"gearbox/store"
)

// tcpServer starts a server over the fixture with mutate applied.
func tcpServer(t *testing.T, mutate func(*Config)) *Server {
	t.Helper()
	st := startStore(t, "b1", store.RoleBroker)
	in := fixture()
	putInputs(t, st, in)
	return startServer(t, st, func() []store.Member { return in.Members }, mutate)
}

// dialTCP opens a TCP connection to s, closed in t.Cleanup.
func dialTCP(t *testing.T, s *Server) *dns.Conn {
	t.Helper()
	c, err := dns.DialTimeout("tcp", s.Addr(), 2*time.Second)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// ask sends a query on c and returns the error of reading its reply.
func ask(c *dns.Conn) error {
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if err := c.WriteMsg(query("web-dev.apps.example.com.", dns.TypeA)); err != nil {
		return err
	}
	m, err := c.ReadMsg()
	if err == nil && len(m.Answer) != 2 {
		return errors.New("no answer")
	}
	return err
}

// closedByServer waits, up to within, for the server to close c, and
// reports how long that took; it fails the test if c stays open.
func closedByServer(t *testing.T, c *dns.Conn, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	c.SetReadDeadline(start.Add(within))
	_, err := c.Conn.Read(make([]byte, 1))
	if err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("connection still open after %s (read: %v)", time.Since(start), err)
	}
	return time.Since(start)
}

// TestTCPConnCap opens one TCP connection more than the server takes:
// the cap's connections are served, the one above is closed at once, and
// a place freed is taken again.
func TestTCPConnCap(t *testing.T) {
	s := tcpServer(t, func(c *Config) { c.MaxTCPConns = 3; c.TCPTimeout = time.Minute })
	var conns []*dns.Conn
	for i := range 3 {
		c := dialTCP(t, s)
		if err := ask(c); err != nil {
			t.Fatalf("connection %d of 3: %v", i+1, err)
		}
		conns = append(conns, c)
	}
	extra := dialTCP(t, s)
	extra.WriteMsg(query("web-dev.apps.example.com.", dns.TypeA))
	if d := closedByServer(t, extra, 5*time.Second); d > 2*time.Second {
		t.Errorf("connection over the cap closed after %s, want at once", d)
	}
	// The first three are still served.
	for i, c := range conns {
		if err := ask(c); err != nil {
			t.Errorf("connection %d after the refusal: %v", i+1, err)
		}
	}
	conns[0].Close()
	testutil.WaitFor(t, 5*time.Second, "a connection taking the freed place", func() bool {
		c, err := dns.DialTimeout("tcp", s.Addr(), 2*time.Second)
		if err != nil {
			return false
		}
		defer c.Close()
		return ask(c) == nil
	})
}

// TestTCPIdleTimeout opens TCP connections and leaves them idle, one
// before its first query and one after: the server closes both after its
// time-out.
func TestTCPIdleTimeout(t *testing.T) {
	const timeout = 300 * time.Millisecond
	s := tcpServer(t, func(c *Config) { c.TCPTimeout = timeout })
	silent := dialTCP(t, s)
	used := dialTCP(t, s)
	if err := ask(used); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]*dns.Conn{"no query": silent, "idle after a query": used} {
		d := closedByServer(t, c, 5*time.Second)
		t.Logf("%s: closed after %s", name, d)
	}
	// Closing them freed their places: the server serves on.
	if err := ask(dialTCP(t, s)); err != nil {
		t.Errorf("after the time-outs: %v", err)
	}
}

// TestLimitListenerWriteDeadline checks that a reply is written within
// the time-out: a client that never reads cannot hold its connection.
func TestLimitListenerWriteDeadline(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &limitListener{Listener: ln, max: 1, timeout: 100 * time.Millisecond}
	defer l.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	big := make([]byte, 1<<20)
	done := make(chan error, 1)
	go func() {
		for {
			if _, err := c.Write(big); err != nil {
				done <- err
				return
			}
		}
	}()
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("write: %v, want a deadline", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("writing to a client that does not read never ended")
	}
	c.Close()
	c.Close()
	if n := l.active.Load(); n != 0 {
		t.Errorf("%d active after closing twice, want 0", n)
	}
}
