// Package storetest starts in-process store members for tests: a Store on
// its own 127.0.x.y address together with the internal API listener that a
// member serves next to it (anti-entropy pulls and pushes over it), and
// clusters of such members joined to each other.
//
// It is for the tests of the store's users (the roles, internal/...) and
// of the store's external tests (package store_test); the store's internal
// tests cannot import it, since it imports the store.
//
// storetest imports the store (and store/internalapi), internal/testutil
// and the standard library only.
package storetest

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"gearbox/internal/testutil"
	"gearbox/store"
	"gearbox/store/internalapi"
)

// LeakPatterns match the goroutines of a store member: the store's own and
// those of serf and memberlist under it. Cluster checks, with
// testutil.CheckNoLeaks, that none of them outlives the test; a package
// whose tests start members another way can append its own patterns.
var LeakPatterns = []string{"gearbox/store.", "hashicorp/serf", "hashicorp/memberlist"}

// Member is one in-process store member: a started Store and the server of
// its internal API, which serves the store's Handler, plus whatever Handle
// adds, as a member does: over mutual TLS with the key derived from
// Config.ClusterSecret (internalapi.ServerTLS and RequirePeer; an empty
// secret derives a key too). Call it with internalapi.Transport and
// internalapi.URL.
type Member struct {
	// Config is the config the Store was created with; InternalPort is
	// the API listener's port.
	Config store.Config
	Store  *store.Store
	// APIAddr is host:port of the internal API.
	APIAddr string
	// API serves the internal API. Closing it makes the member unreachable
	// over the internal API while it keeps gossiping, as a member whose
	// API listener fails would be.
	API *http.Server

	mu    sync.Mutex
	extra map[string]http.Handler // by path prefix, added by Handle
}

// Start creates and starts a member from cfg, which is typically
// store.LocalConfig adjusted by the test. Its internal API listens on
// cfg.BindAddr and a free port, which becomes cfg.InternalPort. The member
// is closed (see Close) in t.Cleanup.
func Start(t testing.TB, cfg store.Config) *Member {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(cfg.BindAddr, "0"))
	if err != nil {
		t.Fatalf("listen internal api on %s: %v", cfg.BindAddr, err)
	}
	cfg.InternalPort = ln.Addr().(*net.TCPAddr).Port
	st, err := store.New(cfg)
	if err != nil {
		ln.Close()
		t.Fatalf("new member %s: %v", cfg.Name, err)
	}
	if err := st.Start(context.Background()); err != nil {
		ln.Close()
		st.Close()
		t.Fatalf("start member %s: %v", cfg.Name, err)
	}
	m := &Member{Config: cfg, Store: st, APIAddr: ln.Addr().String()}
	// Refused handshakes (tests of the secret) are not worth a log line.
	m.API = &http.Server{Handler: internalapi.RequirePeer(cfg.ClusterSecret, m.handler(st.Handler())), ErrorLog: log.New(io.Discard, "", 0)}
	go m.API.Serve(tls.NewListener(ln, internalapi.ServerTLS(cfg.ClusterSecret)))
	t.Cleanup(m.Close)
	return m
}

// handler serves what Handle added, and the store's API otherwise.
func (m *Member) handler(storeAPI http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.mu.Lock()
		var h http.Handler
		for prefix, eh := range m.extra {
			if strings.HasPrefix(r.URL.Path, prefix) {
				h = eh
				break
			}
		}
		m.mu.Unlock()
		if h == nil {
			h = storeAPI
		}
		h.ServeHTTP(w, r)
	})
}

// Handle serves the internal API paths that start with prefix with h, as a
// member whose roles serve more than the store's part of the internal API
// does (a node serves its gears' logs, for example). Prefixes must not
// overlap. It is safe to call while the member runs.
func (m *Member) Handle(prefix string, h http.Handler) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.extra == nil {
		m.extra = make(map[string]http.Handler)
	}
	m.extra[prefix] = h
}

// Close stops the member without leaving the cluster, as a crash would:
// the internal API server, then the Store (whose data file is closed
// cleanly, so that a test may start a member on it again). It is safe to
// call more than once.
func (m *Member) Close() {
	m.API.Close()
	m.Store.Close()
}

// GossipAddr is host:port of the member's serf listener, to join.
func (m *Member) GossipAddr() string {
	for _, mm := range m.Store.Members() {
		if mm.Name == m.Config.Name {
			return net.JoinHostPort(mm.Addr, strconv.Itoa(mm.Port))
		}
	}
	return ""
}

// Join joins m to peers and fails the test unless it reached all of them.
func (m *Member) Join(t testing.TB, peers ...*Member) {
	t.Helper()
	addrs := make([]string, len(peers))
	for i, p := range peers {
		addrs[i] = p.GossipAddr()
	}
	if reached, err := m.Store.Join(addrs); reached != len(addrs) {
		t.Fatalf("join %s: reached %d of %d members: %v", m.Config.Name, reached, len(addrs), err)
	}
}

// Cluster starts n members named m00, m01, ... on addresses from ips,
// each with its own data directory, adjusted by adjust, and each joined to
// all started before it; it returns once every member sees all of them
// alive (within 20 s). Joining through one member would do, but then
// whether the others hear of the newcomer promptly is up to gossip, which
// retransmits each update only a few times in a small cluster; a member
// that misses them waits for a push-pull exchange (every 15 s with the
// local profile), too long on a loaded machine.
//
// The test's cleanup checks that no goroutine matching LeakPatterns
// outlives the members.
func Cluster(t testing.TB, ips *testutil.IPs, n int, adjust ...func(*store.Config)) []*Member {
	t.Helper()
	testutil.CheckNoLeaks(t, LeakPatterns...)
	ms := make([]*Member, n)
	for i := range ms {
		name := fmt.Sprintf("m%02d", i)
		cfg := store.LocalConfig(name, filepath.Join(t.TempDir(), "data"), ips.Next())
		for _, a := range adjust {
			a(&cfg)
		}
		ms[i] = Start(t, cfg)
		if i > 0 {
			ms[i].Join(t, ms[:i]...)
		}
	}
	var views []string
	testutil.WaitFor(t, 20*time.Second, "all members alive everywhere", func() bool {
		views = views[:0]
		ok := true
		for _, m := range ms {
			alive := 0
			var view []string
			for _, mm := range m.Store.Members() {
				view = append(view, mm.Name+"="+mm.Status)
				if mm.Status == store.StatusAlive {
					alive++
				}
			}
			views = append(views, fmt.Sprintf("%s sees %v", m.Config.Name, view))
			ok = ok && alive == n
		}
		return ok
	}, func() string { return strings.Join(views, "; ") })
	return ms
}

// Converged reports whether all members' stores hold the same digest.
func Converged(ms []*Member) bool {
	d := ms[0].Store.Digest()
	for _, m := range ms[1:] {
		if m.Store.Digest() != d {
			return false
		}
	}
	return true
}

// SameContents fails the test unless every member's store dumps the same
// records, tombstones included.
func SameContents(t testing.TB, ms []*Member) {
	t.Helper()
	want, err := ms[0].Store.Dump()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms[1:] {
		got, err := m.Store.Dump()
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("%s holds %d records, %s holds %d", m.Config.Name, len(got), ms[0].Config.Name, len(want))
		}
		for i := range got {
			if got[i].Bucket != want[i].Bucket || got[i].Key != want[i].Key || got[i].Version != want[i].Version ||
				got[i].Deleted != want[i].Deleted || string(got[i].Value) != string(want[i].Value) {
				t.Fatalf("%s and %s differ at %d: %+v vs %+v", m.Config.Name, ms[0].Config.Name, i, got[i], want[i])
			}
		}
	}
}
