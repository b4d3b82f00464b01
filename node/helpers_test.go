package node

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"gearbox/internal/testutil"
	"gearbox/store"
	"gearbox/store/state"
	"gearbox/store/storetest"
)

// TestMain lets the test binary double as a gear's web process: run with
// GEARBOX_NODE_TEST_HELPER=serve (passed as app env), it serves HTTP on
// $GEARBOX_IP:$PORT.
func TestMain(m *testing.M) {
	switch os.Getenv("GEARBOX_NODE_TEST_HELPER") {
	case "serve":
		helperServe()
		return
	case "crash":
		fmt.Println("helper starting")
		fmt.Println("helper: cannot reach the database")
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// helperServe is the helper web process. "/" answers "helper GEAR PID",
// "/slow" the same after 100 ms, "/hang" never answers,
// "/env" the sorted environment, "/headers" the Host, X-Forwarded-* and
// X-Gearbox-Proxy-Proof headers, "/exit" makes it exit with status 3, "/whoami" what it finds
// itself to be (a probeReport), "/write?path=P" whether it can create the
// file P ("ok" or the error), "/read?path=P" the file P ("ok" and a
// newline, then its content; or the error), "/listen?port=P" listens on port P too and
// answers "squatter" there ("ok" or the error).
func helperServe() {
	addr := net.JoinHostPort(os.Getenv("GEARBOX_IP"), os.Getenv("PORT"))
	fmt.Printf("helper listening on %s\n", addr)
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "helper %s %d\n", os.Getenv("GEARBOX_GEAR_ID"), os.Getpid())
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(100 * time.Millisecond)
		fmt.Fprintf(w, "helper %s %d\n", os.Getenv("GEARBOX_GEAR_ID"), os.Getpid())
	})
	mux.HandleFunc("/hang", func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	})
	mux.HandleFunc("/env", func(w http.ResponseWriter, r *http.Request) {
		env := os.Environ()
		sort.Strings(env)
		fmt.Fprintln(w, strings.Join(env, "\n"))
	})
	mux.HandleFunc("/headers", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "Host=%s\nX-Forwarded-For=%s\nX-Forwarded-Host=%s\nX-Forwarded-Proto=%s\nX-Gearbox-Proxy-Proof=%s\n", r.Host,
			r.Header.Get("X-Forwarded-For"), r.Header.Get("X-Forwarded-Host"), r.Header.Get("X-Forwarded-Proto"),
			r.Header.Get("X-Gearbox-Proxy-Proof"))
	})
	mux.HandleFunc("/whoami", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(probeSelf(nil))
	})
	mux.HandleFunc("/write", func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Query().Get("path")
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			fmt.Fprint(w, err)
			return
		}
		os.Remove(p)
		fmt.Fprint(w, "ok")
	})
	mux.HandleFunc("/read", func(w http.ResponseWriter, r *http.Request) {
		b, err := os.ReadFile(r.URL.Query().Get("path"))
		if err != nil {
			fmt.Fprint(w, err)
			return
		}
		fmt.Fprintf(w, "ok\n%s", b)
	})
	mux.HandleFunc("/listen", func(w http.ResponseWriter, r *http.Request) {
		// A squatter: it serves "squatter" on another port of the node's
		// address, as any gear can try.
		ln, err := net.Listen("tcp", net.JoinHostPort(os.Getenv("GEARBOX_IP"), r.URL.Query().Get("port")))
		if err != nil {
			fmt.Fprint(w, err)
			return
		}
		go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "squatter") }))
		fmt.Fprint(w, "ok")
	})
	mux.HandleFunc("/exit", func(w http.ResponseWriter, r *http.Request) {
		fmt.Println("helper exiting on request")
		os.Exit(3)
	})
	if err := http.ListenAndServe(addr, mux); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// ips hands out the node tests' addresses, 127.0.2.11 and up, one per
// member.
var ips = testutil.NewIPs(2, 11)

// leakPatterns match the goroutines that run node code (tests aside), an
// HTTP server connection or a proxy connection.
var leakPatterns = []string{"gearbox/node.", "net/http.(*conn).serve", "net/http.(*persistConn)"}

func testLogger() zerolog.Logger {
	if os.Getenv("GEARBOX_TEST_LOG") != "" {
		return zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr}).With().Timestamp().Logger()
	}
	return zerolog.Nop()
}

// startStore starts a one-member store named name on ip with data in dir
// (storetest). It is closed in t.Cleanup.
func startStore(t testing.TB, name, dir, ip string) *storetest.Member {
	t.Helper()
	cfg := store.LocalConfig(name, dir, ip)
	cfg.Logger = testLogger().With().Str("member", name).Logger()
	return storetest.Start(t, cfg)
}

// testNode is a store member with the node role.
type testNode struct {
	t   testing.TB
	ip  string
	dir string
	st  *store.Store
	m   *storetest.Member // st's member, serving the internal API
	s   *Supervisor
	// setup, if set, adjusts each Supervisor before it starts.
	setup func(*Supervisor)
}

// newTestNode starts a store on a fresh address and a Supervisor on it
// with FastConfig (adjusted by opts). Goroutine leaks are checked after
// both are closed.
func newTestNode(t testing.TB, opts ...func(*Config)) *testNode {
	t.Helper()
	n := newTestStore(t)
	n.s = n.startSupervisor(opts...)
	return n
}

// newTestStore is newTestNode without the Supervisor.
func newTestStore(t testing.TB) *testNode {
	t.Helper()
	testutil.CheckNoLeaks(t, leakPatterns...)
	n := &testNode{t: t, ip: ips.Next(), dir: searchableTempDir(t)}
	n.m = startStore(t, "node-"+n.ip, filepath.Join(n.dir, "data"), n.ip)
	n.st = n.m.Store
	return n
}

// searchableTempDir returns t.TempDir(), with it and the directory above
// it made searchable by others, so that isolated gears reach their
// directories inside.
func searchableTempDir(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// startSupervisor starts a (new) Supervisor on the node's store and data
// directory; it is closed in t.Cleanup.
func (n *testNode) startSupervisor(opts ...func(*Config)) *Supervisor {
	n.t.Helper()
	cfg := FastConfig(n.st, filepath.Join(n.dir, "data"), n.ip, "example.test")
	cfg.Logger = testLogger().With().Str("member", n.st.Name()).Logger()
	if os.Geteuid() != 0 {
		// Not root: the node cannot isolate gears, and says so unless
		// told to run them unisolated.
		cfg.Isolation = IsolateNone
	}
	for _, o := range opts {
		o(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		n.t.Fatalf("new node: %v", err)
	}
	if n.setup != nil {
		n.setup(s)
	}
	if err := s.Start(context.Background()); err != nil {
		n.t.Fatalf("start node: %v", err)
	}
	n.t.Cleanup(func() { s.Close() })
	return s
}

// gearDir is gear id's directory on the node.
func (n *testNode) gearDir(id string) string { return filepath.Join(n.dir, "data", "gears", id) }

// addr is gear g's web address.
func (n *testNode) addr(g state.Gear) string { return net.JoinHostPort(n.ip, fmt.Sprint(g.Port)) }

// helperPrograms makes gears run the test binary as their web process
// (see TestMain) with the gear's environment; apps must set
// GEARBOX_NODE_TEST_HELPER=serve in their env.
//
// The binary is run as /proc/self/exe: gear uids may not reach the
// directory it lies in.
func helperPrograms(s *Supervisor) {
	s.program = func(d desired, dir string) (Program, string) {
		env := s.gearEnv(d, dir, "")
		return Command{Path: "/proc/self/exe", Env: env, Dir: dir}, strings.Join(env, " ")
	}
}

// freePort returns a TCP port free on ip just now.
func freePort(t testing.TB, ip string) int {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// gear returns a started static gear of app APP in namespace ns on this
// node, with a free port and, as the broker gives new gears, the app's
// current deployment if the app has a record.
func (n *testNode) gear(id, app, ns string, ordinal int) state.Gear {
	var a state.App
	n.st.Get(state.BucketApps, state.AppKey(ns, app), &a)
	return state.Gear{ID: id, App: state.AppKey(ns, app), AppName: app, Domain: ns, Node: n.st.Name(),
		Size: state.SizeSmall, Cartridge: state.CartStatic, State: state.GearStarted, Ordinal: ordinal,
		Port: freePort(n.t, n.ip), Deployment: a.Deployment, CreatedAt: time.Now()}
}

func (n *testNode) put(bucket, key string, v any) {
	n.t.Helper()
	if _, err := n.st.Put(context.Background(), bucket, key, v); err != nil {
		n.t.Fatalf("put %s/%s: %v", bucket, key, err)
	}
}

func (n *testNode) del(bucket, key string) {
	n.t.Helper()
	if _, err := n.st.Delete(context.Background(), bucket, key); err != nil {
		n.t.Fatalf("delete %s/%s: %v", bucket, key, err)
	}
}

// status returns gear id's status record, and false if there is none.
func (n *testNode) status(id string) (state.GearStatus, bool) {
	var s state.GearStatus
	_, err := n.st.Get(state.BucketGearStatus, id, &s)
	return s, err == nil
}

// waitState waits until gear id's status has state st.
func (n *testNode) waitState(id, st string) state.GearStatus {
	n.t.Helper()
	var last state.GearStatus
	testutil.WaitFor(n.t, 15*time.Second, fmt.Sprintf("gear %s %s", id, st), func() bool {
		s, ok := n.status(id)
		last = s
		return ok && s.State == st
	}, func() string { return fmt.Sprintf("last status %+v", last) })
	return last
}

// waitStarted waits until gear id is reported started on deployment dep,
// with no reason pending (no handover or check under way).
func (n *testNode) waitStarted(id, dep string) state.GearStatus {
	n.t.Helper()
	var last state.GearStatus
	testutil.WaitFor(n.t, 15*time.Second, fmt.Sprintf("gear %s started on %s", id, dep), func() bool {
		s, ok := n.status(id)
		last = s
		return ok && s.State == state.GearStarted && s.Deployment == dep && s.Reason == ""
	}, func() string { return fmt.Sprintf("last status %+v", last) })
	return last
}

// statusLog records the states and reasons a gear's status goes through.
type statusLog struct {
	w *store.Watch
	// Owned by the reader.
	seen []state.GearStatus
}

func (n *testNode) watchStatus() *statusLog {
	l := &statusLog{w: n.st.Watch(state.BucketGearStatus)}
	n.t.Cleanup(l.w.Close)
	return l
}

// states returns the states and reasons of gear id seen so far, as
// "state" or "state (reason)".
func (l *statusLog) states(id string) []string {
	for _, r := range l.w.Next() {
		var s state.GearStatus
		if r.Key == id && r.Decode(&s) == nil {
			l.seen = append(l.seen, s)
		}
	}
	var out []string
	for _, s := range l.seen {
		if s.ID != id {
			continue
		}
		if s.Reason != "" {
			out = append(out, s.State+" ("+s.Reason+")")
		} else {
			out = append(out, s.State)
		}
	}
	return out
}

// client makes one request per connection, so that no connection of the
// test outlives the request.
var client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// get fetches url with Host host (if not empty) and returns status and
// body; a failed request fails the test.
func get(t testing.TB, url, host string) (int, string) {
	t.Helper()
	code, body, err := tryGet(url, host)
	if err != nil {
		t.Fatalf("GET %s (Host %s): %v", url, host, err)
	}
	return code, body
}

func tryGet(url, host string) (int, string, error) {
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		return 0, "", err
	}
	if host != "" {
		req.Host = host
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// answers reports whether addr accepts TCP connections.
func answers(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// processGone reports whether pid has ended (a zombie counts as ended).
func processGone(pid int) bool {
	st, _, ok := procStat(pid)
	return !ok || st == "Z"
}
