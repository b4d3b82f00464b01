package store

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
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

// startCluster starts n members on fresh addresses, each joined to all
// started before it. Joining through one member would do, but then
// whether the others hear of the newcomer promptly is up to gossip, which
// retransmits each update only a few times in a small cluster; a member
// that misses them waits for a push-pull exchange (every 15 s with the
// local profile), too long on a loaded machine. The cleanup checks that
// no goroutine outlives the members.
func startCluster(t testing.TB, n int, opts ...memberOpts) []*testMember {
	t.Helper()
	checkNoLeaks(t)
	ms := make([]*testMember, n)
	var addrs []string
	for i := range ms {
		ms[i] = startMember(t, fmt.Sprintf("m%02d", i), filepath.Join(t.TempDir(), "data"), freshIP(), opts...)
		if i > 0 {
			if reached, err := ms[i].st.Join(addrs); reached != len(addrs) {
				t.Fatalf("join m%02d: reached %d of %d members: %v", i, reached, len(addrs), err)
			}
		}
		addrs = append(addrs, ms[i].gossipAddr())
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		var views []string
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
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after 20s waiting for all members alive everywhere: %s", strings.Join(views, "; "))
		}
		time.Sleep(20 * time.Millisecond)
	}
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

// checkNoLeaks notes the goroutines running now and, in cleanup, waits
// until every goroutine started since then that runs store, serf or
// memberlist code has ended: nothing may outlive Close. Call it before
// starting members, so that its cleanup runs after theirs.
func checkNoLeaks(t testing.TB) {
	t.Helper()
	before := storeGoroutines()
	t.Cleanup(func() { waitNoLeaks(t, before) })
}

// waitNoLeaks waits until no store, serf or memberlist goroutine runs
// that is not in before, and fails the test if one still does after 20 s.
func waitNoLeaks(t testing.TB, before map[string]string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var leaked []string
		for id, stack := range storeGoroutines() {
			if _, ok := before[id]; !ok {
				leaked = append(leaked, stack)
			}
		}
		if len(leaked) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%d goroutines outlived Close, for example:\n%s", len(leaked), leaked[0])
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// storeGoroutines returns the stacks, by goroutine id, of the goroutines
// that run or were started by store, serf or memberlist code.
func storeGoroutines() map[string]string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	out := make(map[string]string)
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		stack := string(g)
		if !strings.Contains(stack, "gearbox/store.") && !strings.Contains(stack, "hashicorp/serf") &&
			!strings.Contains(stack, "hashicorp/memberlist") {
			continue
		}
		// "goroutine 42 [select]:"
		id, _, _ := strings.Cut(strings.TrimPrefix(stack, "goroutine "), " ")
		out[id] = stack
	}
	return out
}
