package lb

import (
	"context"
	"flag"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// epoch is the fake clock's start.
var epoch = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// fakeClock is a Clock that moves only when a test advances it. Timers
// fire from Advance (or at once when created already due).
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

var _ Clock = (*fakeClock)(nil)

func newFakeClock() *fakeClock { return &fakeClock{now: epoch} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) NewTimer(d time.Duration) Timer {
	t := &fakeTimer{c: c, ch: make(chan time.Time, 1)}
	c.mu.Lock()
	t.at, t.active = c.now.Add(d), true
	live := c.timers[:0]
	for _, o := range c.timers {
		if o.active {
			live = append(live, o)
		}
	}
	c.timers = append(live, t)
	c.fireLocked()
	c.mu.Unlock()
	return t
}

// Advance moves the clock on by d and fires the timers that are due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.fireLocked()
	c.mu.Unlock()
}

// waiting returns how many timers are set and not yet due.
func (c *fakeClock) waiting() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, t := range c.timers {
		if t.active {
			n++
		}
	}
	return n
}

func (c *fakeClock) fireLocked() {
	for _, t := range c.timers {
		if t.active && !t.at.After(c.now) {
			t.active = false
			select {
			case t.ch <- c.now:
			default:
			}
		}
	}
}

type fakeTimer struct {
	c      *fakeClock
	ch     chan time.Time
	at     time.Time
	active bool
}

func (t *fakeTimer) C() <-chan time.Time { return t.ch }

// Stop and Reset drop a value not yet received, as time.Timer does since
// Go 1.23.
func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := t.active
	t.active = false
	t.drain()
	return was
}

func (t *fakeTimer) Reset(d time.Duration) bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := t.active
	t.drain()
	t.at, t.active = t.c.now.Add(d), true
	t.c.fireLocked()
	return was
}

func (t *fakeTimer) drain() {
	select {
	case <-t.ch:
	default:
	}
}

// testConfig is FastConfig on a fake clock, with checks on /health so that
// app requests and checks are told apart.
func testConfig(clk *fakeClock) Config {
	c := FastConfig()
	c.Clock = clk
	c.HealthPath = "/health"
	return c
}

// newTestPool returns a pool that is closed when the test ends, and checks
// then that every request it counted was also uncounted.
func newTestPool(t testing.TB, cfg Config) *Pool {
	t.Helper()
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Close()
		if n := p.Sessions(); n != 0 {
			t.Errorf("%d sessions left after the test", n)
		}
		for _, b := range p.set.Load().list {
			if n := b.inflight.Load(); n != 0 {
				t.Errorf("backend %s: %d requests in flight after the test", b.ID, n)
			}
		}
	})
	return p
}

// testBackend is an app server that says who it is and records requests.
type testBackend struct {
	*httptest.Server
	id     string
	health atomic.Int32 // status of /health; 200 when zero
	checks atomic.Int64 // requests to /health
	hits   atomic.Int64 // other requests
	// handle, if set, serves the other requests.
	handle func(w http.ResponseWriter, r *http.Request)

	mu   sync.Mutex
	seen []seenRequest
}

type seenRequest struct {
	method string
	host   string
	header http.Header
	body   string
}

func newTestBackend(t testing.TB, id string) *testBackend {
	t.Helper()
	tb := &testBackend{id: id}
	tb.Server = httptest.NewServer(http.HandlerFunc(tb.serve))
	t.Cleanup(tb.Close)
	return tb
}

func (tb *testBackend) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/health" {
		tb.checks.Add(1)
		code := int(tb.health.Load())
		if code == 0 {
			code = http.StatusOK
		}
		w.WriteHeader(code)
		return
	}
	tb.hits.Add(1)
	body, _ := io.ReadAll(r.Body)
	tb.mu.Lock()
	tb.seen = append(tb.seen, seenRequest{r.Method, r.Host, r.Header.Clone(), string(body)})
	tb.mu.Unlock()
	w.Header().Set("X-Backend", tb.id)
	if tb.handle != nil {
		tb.handle(w, r)
		return
	}
	io.WriteString(w, "hello from "+tb.id)
}

func (tb *testBackend) requests() []seenRequest {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return append([]seenRequest(nil), tb.seen...)
}

func (tb *testBackend) backend() Backend {
	return Backend{ID: tb.id, Addr: tb.Listener.Addr().String()}
}

// refusedAddr returns a loopback address where nothing listens: a
// listener was there and is closed, so connections are refused.
func refusedAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// front serves p over HTTP and returns its URL and a keep-alive client that
// does not follow redirects or keep cookies.
func front(t testing.TB, p *Pool) (string, *http.Client) {
	t.Helper()
	var url string
	if handlerPath {
		// Served as Server serves a pool, with its time-outs and caps.
		srv := httptest.NewUnstartedServer(p)
		guards.Store(p, GuardServer(srv.Config, ClientLimits(p.cfg)))
		srv.Start()
		t.Cleanup(srv.Close)
		url = srv.URL
	} else {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ff := &fastFront{fs: NewFastServer(p), served: make(chan struct{})}
		go func() {
			defer close(ff.served)
			ff.fs.Serve(ln)
		}()
		t.Cleanup(func() { ff.fs.Close() })
		fastServers.Store(p, ff)
		url = "http://" + ln.Addr().String()
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 16}
	t.Cleanup(tr.CloseIdleConnections)
	return url, &http.Client{Transport: tr}
}

// fastFront is a FastServer that front started.
type fastFront struct {
	fs     *FastServer
	served chan struct{} // closed when Serve returns
}

// fastServers holds the fastFront that front started for each pool.
var fastServers sync.Map

// guards holds, on the handler path, the ServerGuard of the server that
// front started for each pool.
var guards sync.Map

// closeFront closes the server front started for p, if it is a
// FastServer (an httptest server is closed by the test's cleanup).
func closeFront(p *Pool) {
	if ff, ok := fastServers.Load(p); ok {
		ff.(*fastFront).fs.Close()
	}
}

// frontServing reports whether the FastServer front started for p still
// runs Serve. Leak checks ask it because testutil.Goroutines leaves out
// goroutines started by test code, as Serve's is.
func frontServing(p *Pool) bool {
	ff, ok := fastServers.Load(p)
	if !ok {
		return false
	}
	select {
	case <-ff.(*fastFront).served:
		return false
	default:
		return true
	}
}

// handlerPath makes front serve pools with Pool.ServeHTTP under
// net/http's server instead of FastServer; TestMain runs every test both
// ways.
var handlerPath bool

func TestMain(m *testing.M) {
	code := m.Run()
	bench, fuzz := flag.Lookup("test.bench"), flag.Lookup("test.fuzz")
	if code == 0 && (bench == nil || bench.Value.String() == "") && (fuzz == nil || fuzz.Value.String() == "") {
		handlerPath = true
		code = m.Run()
	}
	os.Exit(code)
}

type result struct {
	code      int
	backend   string // X-Backend
	body      string
	setCookie string // value of the affinity cookie set, "" if none
	cacheCtl  []string
	header    http.Header
}

// send does one request through the front and reads the whole answer.
func send(t testing.TB, c *http.Client, method, url, cookie string, body io.Reader) result {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, url, err)
	}
	r := result{
		code:     res.StatusCode,
		backend:  res.Header.Get("X-Backend"),
		body:     string(b),
		cacheCtl: res.Header.Values("Cache-Control"),
		header:   res.Header,
	}
	for _, ck := range res.Cookies() {
		if ck.Name == "GEAR" {
			r.setCookie = ck.Value
		}
	}
	return r
}

func get(t testing.TB, c *http.Client, url, cookie string) result {
	t.Helper()
	return send(t, c, http.MethodGet, url, cookie, nil)
}

// gearCookie is the Cookie header that pins a request to id under secret.
func gearCookie(secret, id string) string { return "GEAR=" + CookieValue([]byte(secret), id) }

// backendByID returns p's state for id.
func backendByID(t testing.TB, p *Pool, id string) *backend {
	t.Helper()
	b := p.set.Load().byID[id]
	if b == nil {
		t.Fatalf("no backend %q", id)
	}
	return b
}

// statusOf returns the status entry of backend id.
func statusOf(t testing.TB, p *Pool, id string) BackendStatus {
	t.Helper()
	for _, b := range p.Status().Backends {
		if b.ID == id {
			return b
		}
	}
	t.Fatalf("no backend %q in status", id)
	return BackendStatus{}
}

// lbGoroutinePatterns match the goroutines that run pool code or that
// net/http runs for backend connections, for testutil's leak checks.
var lbGoroutinePatterns = []string{"gearbox/lb.", "net/http.(*persistConn)"}

// ctx is a context for tests that call checkOnce.
var ctx = context.Background()

// gate holds the requests to /block until it is opened.
type gate struct {
	entered atomic.Int64
	open    chan struct{}
	once    sync.Once
}

// newGate returns a gate that the test opens when it ends, if not before.
// Create it after the servers whose handlers it holds: cleanups run last
// first, and a server's Close waits for its handlers.
func newGate(t testing.TB) *gate {
	g := &gate{open: make(chan struct{})}
	t.Cleanup(g.release)
	return g
}

func (g *gate) release() { g.once.Do(func() { close(g.open) }) }

// hold is a testBackend handler that blocks on /block.
func (g *gate) hold(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/block" {
		g.entered.Add(1)
		<-g.open
	}
	io.WriteString(w, "done")
}

// goGet sends a GET in a goroutine and delivers its status (0 on error).
func goGet(c *http.Client, url, cookie string) <-chan int {
	ch := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if cookie != "" {
			req.Header.Set("Cookie", cookie)
		}
		res, err := c.Do(req)
		if err != nil {
			ch <- 0
			return
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		ch <- res.StatusCode
	}()
	return ch
}

// recv waits for a status from goGet.
func recv(t testing.TB, ch <-chan int) int {
	t.Helper()
	select {
	case code := <-ch:
		return code
	case <-time.After(10 * time.Second):
		t.Fatal("request did not finish")
		return 0
	}
}
