package store

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// testMember is one in-process member: a Store plus its internal API
// listener, on its own 127.0.0.x address.
type testMember struct {
	t    *testing.T
	cfg  Config
	st   *Store
	srv  *http.Server
	addr string // internal API host:port
}

// memberOpts adjusts a member's config before it starts.
type memberOpts func(*Config)

var ipMu sync.Mutex
var nextIP = 20

// freshIP hands out 127.0.0.x addresses so that tests running one after
// another never reuse a port a previous test's member may still hold.
func freshIP() string {
	ipMu.Lock()
	defer ipMu.Unlock()
	nextIP++
	if nextIP > 250 {
		nextIP = 21
	}
	return fmt.Sprintf("127.0.0.%d", nextIP)
}

func testLogger(t testing.TB) zerolog.Logger {
	if os.Getenv("GEARBOX_TEST_LOG") != "" {
		return zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr}).With().Timestamp().Logger()
	}
	return zerolog.Nop()
}

// startMember creates and starts a member named name with data in dir on
// ip. It is closed in t.Cleanup unless the test closed it.
func startMember(t testing.TB, name, dir, ip string, opts ...memberOpts) *testMember {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatalf("listen internal api: %v", err)
	}
	cfg := LocalConfig(name, dir, ip)
	cfg.InternalPort = ln.Addr().(*net.TCPAddr).Port
	cfg.Logger = testLogger(t).With().Str("member", name).Logger()
	for _, o := range opts {
		o(&cfg)
	}
	st, err := New(cfg)
	if err != nil {
		ln.Close()
		t.Fatalf("new member %s: %v", name, err)
	}
	if err := st.Start(context.Background()); err != nil {
		ln.Close()
		st.Close()
		t.Fatalf("start member %s: %v", name, err)
	}
	m := &testMember{cfg: cfg, st: st, addr: ln.Addr().String()}
	m.srv = &http.Server{Handler: RequireSecret(cfg.ClusterSecret, st.Handler())}
	go m.srv.Serve(ln)
	t.Cleanup(m.stop)
	return m
}

// gossipAddr is host:port of the member's serf listener.
func (m *testMember) gossipAddr() string {
	lm := m.st.serf.LocalMember()
	return fmt.Sprintf("%s:%d", lm.Addr, lm.Port)
}

// stop closes the member without leaving, as a crash would (the data file
// is closed cleanly so the test can reopen it).
func (m *testMember) stop() {
	if m.srv != nil {
		m.srv.Close()
	}
	m.st.Close()
}

// startCluster starts n members on fresh addresses, all joined to the first.
func startCluster(t testing.TB, n int, opts ...memberOpts) []*testMember {
	t.Helper()
	ms := make([]*testMember, n)
	for i := range ms {
		ms[i] = startMember(t, fmt.Sprintf("m%02d", i), filepath.Join(t.TempDir(), "data"), freshIP(), opts...)
		if i > 0 {
			if _, err := ms[i].st.Join([]string{ms[0].gossipAddr()}); err != nil {
				t.Fatalf("join m%02d: %v", i, err)
			}
		}
	}
	waitFor(t, 20*time.Second, "all members alive everywhere", func() bool {
		for _, m := range ms {
			alive := 0
			for _, mm := range m.st.Members() {
				if mm.Status == StatusAlive {
					alive++
				}
			}
			if alive != n {
				return false
			}
		}
		return true
	})
	return ms
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// converged reports whether all stores hold the same digest.
func converged(ms []*testMember) bool {
	d := ms[0].st.Digest()
	for _, m := range ms[1:] {
		if m.st.Digest() != d {
			return false
		}
	}
	return true
}

// sameContents fails the test unless every store dumps the same records.
func sameContents(t testing.TB, ms []*testMember) {
	t.Helper()
	want, err := ms[0].st.Dump()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms[1:] {
		got, err := m.st.Dump()
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("%s holds %d records, %s holds %d", m.cfg.Name, len(got), ms[0].cfg.Name, len(want))
		}
		for i := range got {
			if got[i].Bucket != want[i].Bucket || got[i].Key != want[i].Key || got[i].Version != want[i].Version ||
				got[i].Deleted != want[i].Deleted || string(got[i].Value) != string(want[i].Value) {
				t.Fatalf("%s and %s differ at %d: %+v vs %+v", m.cfg.Name, ms[0].cfg.Name, i, got[i], want[i])
			}
		}
	}
}
