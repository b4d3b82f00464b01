package store

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"gearbox/internal/testutil"
	"gearbox/store/internalapi"
)

// These are the helpers of the store's internal tests (package store),
// which reach unexported fields and so cannot use store/storetest (it
// imports the store). The external tests (package store_test) use
// storetest.

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

// ips hands out the store tests' addresses, 127.0.0.21 and up; the
// external tests share it (export_test.go).
var ips = testutil.NewIPs(0, 21)

// leakPatterns match the goroutines of the store, serf and memberlist.
var leakPatterns = []string{"gearbox/store.", "hashicorp/serf", "hashicorp/memberlist"}

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
	// Refused handshakes (tests of the secret) are not worth a log line.
	m.srv = &http.Server{Handler: internalapi.RequirePeer(cfg.ClusterSecret, st.Handler()), ErrorLog: log.New(io.Discard, "", 0)}
	go m.srv.Serve(tls.NewListener(ln, internalapi.ServerTLS(cfg.ClusterSecret)))
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

// startCluster starts n members on fresh addresses, each joined to all
// started before it. Joining through one member would do, but then
// whether the others hear of the newcomer promptly is up to gossip, which
// retransmits each update only a few times in a small cluster; a member
// that misses them waits for a push-pull exchange (every 15 s with the
// local profile), too long on a loaded machine. The cleanup checks that
// no goroutine outlives the members.
func startCluster(t testing.TB, n int, opts ...memberOpts) []*testMember {
	t.Helper()
	testutil.CheckNoLeaks(t, leakPatterns...)
	ms := make([]*testMember, n)
	var addrs []string
	for i := range ms {
		ms[i] = startMember(t, fmt.Sprintf("m%02d", i), filepath.Join(t.TempDir(), "data"), ips.Next(), opts...)
		if i > 0 {
			if reached, err := ms[i].st.Join(addrs); reached != len(addrs) {
				t.Fatalf("join m%02d: reached %d of %d members: %v", i, reached, len(addrs), err)
			}
		}
		addrs = append(addrs, ms[i].gossipAddr())
	}
	var views []string
	testutil.WaitFor(t, 20*time.Second, "all members alive everywhere", func() bool {
		views = views[:0]
		ok := true
		for _, m := range ms {
			alive := 0
			var view []string
			for _, mm := range m.st.Members() {
				view = append(view, mm.Name+"="+mm.Status)
				if mm.Status == StatusAlive {
					alive++
				}
			}
			views = append(views, fmt.Sprintf("%s sees %v", m.cfg.Name, view))
			ok = ok && alive == n
		}
		return ok
	}, func() string { return strings.Join(views, "; ") })
	return ms
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

// fakeClock is a wall clock that tests set and advance by hand; pass its
// Now as Config.Now. It is safe for concurrent use.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock(t time.Time) *fakeClock {
	c := &fakeClock{}
	c.Set(t)
	return c
}

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Set(t time.Time)         { c.ns.Store(t.UnixNano()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }
