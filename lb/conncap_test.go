package lb

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"gearbox/internal/testutil"
)

// TestClientConnCap holds MaxClientConns connections open on a
// FastServer, or on the handler path on an http.Server guarded as Server
// guards it: the next one gets a 503 and is closed without its request
// being read, the ones held still serve, and once one of them ends a new
// connection is served again.
func TestClientConnCap(t *testing.T) {
	const max = 3
	be := newTestBackend(t, "a")
	cfg := testConfig(newFakeClock())
	cfg.Backends = []Backend{be.backend()}
	cfg.MaxClientConns = max
	p := newTestPool(t, cfg)
	url, _ := front(t, p)
	addr := strings.TrimPrefix(url, "http://")
	open := func() int {
		if g, ok := guards.Load(p); ok {
			return g.(*ServerGuard).Conns()
		}
		ff, _ := fastServers.Load(p)
		fs := ff.(*fastFront).fs
		fs.mu.Lock()
		defer fs.mu.Unlock()
		return len(fs.conns)
	}

	// request sends a GET on conn and returns the answer's status.
	request := func(t *testing.T, conn net.Conn, br *bufio.Reader) int {
		t.Helper()
		io.WriteString(conn, "GET / HTTP/1.1\r\nHost: app\r\n\r\n")
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res.StatusCode
	}
	dial := func(t *testing.T) (net.Conn, *bufio.Reader) {
		t.Helper()
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		return conn, bufio.NewReader(conn)
	}

	type held struct {
		conn net.Conn
		br   *bufio.Reader
	}
	var conns []held
	for range max {
		conn, br := dial(t)
		if code := request(t, conn, br); code != http.StatusOK {
			t.Fatalf("connection %d: status %d, want 200", len(conns)+1, code)
		}
		conns = append(conns, held{conn, br})
	}
	if n := open(); n != max {
		t.Fatalf("%d connections open, want %d", n, max)
	}

	// The one over the cap is answered at once, before it sends anything.
	over, br := dial(t)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("over the cap: %v", err)
	}
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusServiceUnavailable || !res.Close || !strings.Contains(string(body), "No server is available") {
		t.Fatalf("over the cap: status %d, close %v, %q; want a 503 that closes", res.StatusCode, res.Close, body)
	}
	if _, err := br.ReadByte(); err == nil {
		t.Fatal("over the cap: the connection stays open after the 503")
	}
	over.Close()
	if n := be.hits.Load(); n != max {
		t.Errorf("backend served %d requests, want %d", n, max)
	}

	// The connections held are served still.
	for i, h := range conns {
		if code := request(t, h.conn, h.br); code != http.StatusOK {
			t.Errorf("held connection %d: status %d", i+1, code)
		}
	}

	// One ends: a place is free.
	conns[0].conn.Close()
	testutil.WaitFor(t, 5*time.Second, "the closed connection to be let go", func() bool { return open() == max-1 })
	conn, br := dial(t)
	if code := request(t, conn, br); code != http.StatusOK {
		t.Errorf("after a connection ended: status %d, want 200", code)
	}
}

// TestMaxClientConnsDefault checks the documented default and that a
// negative cap is refused.
func TestMaxClientConnsDefault(t *testing.T) {
	if got := DefaultConfig().MaxClientConns; got != 10000 {
		t.Errorf("DefaultConfig().MaxClientConns = %d, want 10000", got)
	}
	p, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if got := NewFastServer(p).cfg.MaxClientConns; got != 10000 {
		t.Errorf("zero MaxClientConns became %d, want 10000", got)
	}
	if got := NewFastRouter(Config{MaxClientConns: -1}, func(string) *Pool { return nil }, "").cfg.MaxClientConns; got != 10000 {
		t.Errorf("router with MaxClientConns -1: %d, want the default 10000", got)
	}
	if _, err := New(Config{MaxClientConns: -1}); err == nil || !strings.Contains(err.Error(), "MaxClientConns") {
		t.Errorf("New with MaxClientConns -1: %v, want an error naming the field", err)
	}
}
