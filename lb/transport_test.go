package lb

import (
	"bufio"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// onlyReader wraps a reader so that net/http sends it chunked, its length
// unknown.
type onlyReader struct{ io.Reader }

func TestRetryRefusedReachesHealthyBackendOnce(t *testing.T) {
	payload := strings.Repeat("payload ", 1000)
	tests := []struct {
		name   string
		method string
		body   func() io.Reader // nil: no body
	}{
		{"POST with body", http.MethodPost, func() io.Reader { return strings.NewReader(payload) }},
		{"PUT chunked body", http.MethodPut, func() io.Reader { return onlyReader{strings.NewReader(payload)} }},
		{"PATCH empty body", http.MethodPatch, nil},
		{"GET", http.MethodGet, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			live := newTestBackend(t, "live")
			cfg := testConfig(newFakeClock())
			cfg.Backends = []Backend{
				{ID: "dead1", Addr: refusedAddr(t)},
				{ID: "dead2", Addr: refusedAddr(t)},
				live.backend(),
			}
			p := newTestPool(t, cfg)
			url, c := front(t, p)
			var body io.Reader
			want := ""
			if tt.body != nil {
				body, want = tt.body(), payload
			}
			// The cookie sends the first attempt to a refusing backend.
			r := send(t, c, tt.method, url+"/upload", gearCookie("", "dead1"), body)
			if r.code != http.StatusOK || r.backend != "live" {
				t.Fatalf("status %d from %q, want 200 from live", r.code, r.backend)
			}
			seen := live.requests()
			if len(seen) != 1 {
				t.Fatalf("live backend saw %d requests, want 1", len(seen))
			}
			if seen[0].method != tt.method || seen[0].body != want {
				t.Errorf("live backend saw %s with a %d-byte body, want %s with %d bytes",
					seen[0].method, len(seen[0].body), tt.method, len(want))
			}
			if r.setCookie != CookieValue(nil, "live") {
				t.Errorf("cookie set to %q, want the live backend's %q", r.setCookie, CookieValue(nil, "live"))
			}
			st := p.Status()
			if st.Retries < 1 || st.Retries > 2 {
				t.Errorf("retries = %d, want 1 or 2", st.Retries)
			}
			if s := statusOf(t, p, "dead1"); s.State != "down" || s.Why != "connection failed" || s.Errors != 1 {
				t.Errorf("dead1 = %s (%s) with %d errors, want down (connection failed) with 1", s.State, s.Why, s.Errors)
			}
			if live.checks.Load() != 0 {
				t.Errorf("no check should have run")
			}
		})
	}
}

func TestRetriesAreLimited(t *testing.T) {
	tests := []struct {
		retries  int
		attempts int
	}{
		{0, 4}, // default 3
		{1, 2},
		{-1, 1},
	}
	for _, tt := range tests {
		t.Run("", func(t *testing.T) {
			cfg := testConfig(newFakeClock())
			cfg.Retries = tt.retries
			for _, id := range []string{"d1", "d2", "d3", "d4", "d5", "d6"} {
				cfg.Backends = append(cfg.Backends, Backend{ID: id, Addr: refusedAddr(t)})
			}
			p := newTestPool(t, cfg)
			url, c := front(t, p)
			r := send(t, c, http.MethodPost, url+"/", "", strings.NewReader("x"))
			if r.code != http.StatusServiceUnavailable || !strings.Contains(r.body, "No server is available") {
				t.Fatalf("status %d %q, want the 503 page", r.code, r.body)
			}
			var errs uint64
			down := 0
			for _, b := range p.Status().Backends {
				errs += b.Errors
				if b.State == "down" {
					down++
				}
			}
			if errs != uint64(tt.attempts) || down != tt.attempts {
				t.Errorf("%d errors and %d backends down, want %d attempts", errs, down, tt.attempts)
			}
			if got := p.Status().Retries; got != uint64(tt.attempts-1) {
				t.Errorf("retries = %d, want %d", got, tt.attempts-1)
			}
		})
	}
}

// TestNoRetryOnceReached: a backend that reads the request and closes the
// connection without answering may have acted on it. The request is not
// sent elsewhere: the client gets a 502 and the backend saw it once.
func TestNoRetryOnceReached(t *testing.T) {
	tests := []struct {
		name   string
		method string
		body   string
		warm   bool // send a request first, so the failing one reuses a connection
	}{
		{"POST", http.MethodPost, "order=1", false},
		{"GET", http.MethodGet, "", false},
		{"POST on a reused connection", http.MethodPost, "order=1", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			other := newTestBackend(t, "other")
			var got atomic.Int64
			var bodies atomic.Value
			closer := newTestBackend(t, "closer")
			closer.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/warm" {
					io.WriteString(w, "ok")
					return
				}
				got.Add(1)
				b, _ := io.ReadAll(r.Body)
				bodies.Store(string(b))
				conn, _, err := http.NewResponseController(w).Hijack()
				if err != nil {
					t.Error(err)
					return
				}
				conn.Close()
			})
			cfg := testConfig(newFakeClock())
			cfg.Backends = []Backend{closer.backend(), other.backend()}
			p := newTestPool(t, cfg)
			url, c := front(t, p)
			cookie := gearCookie("", "closer")
			if tt.warm {
				if r := get(t, c, url+"/warm", cookie); r.code != http.StatusOK {
					t.Fatalf("warm-up: status %d", r.code)
				}
			}
			var body io.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
			}
			r := send(t, c, tt.method, url+"/act", cookie, body)
			if tt.method == http.MethodGet && !handlerPath {
				// FastServer sends a request that may go twice, without
				// a body, to another backend when the connection broke
				// before the answer.
				if r.code != http.StatusOK || r.backend != "other" || got.Load() != 1 || other.hits.Load() != 1 {
					t.Errorf("GET: status %d from %q, closer saw it %d times, other %d; want it resent once to the other",
						r.code, r.backend, got.Load(), other.hits.Load())
				}
				return
			}
			if r.code != http.StatusBadGateway || !strings.Contains(r.body, "502 Bad Gateway") {
				t.Errorf("status %d %q, want the 502 page", r.code, r.body)
			}
			if n := got.Load(); n != 1 {
				t.Errorf("closing backend saw the request %d times, want 1", n)
			}
			if tt.body != "" && bodies.Load() != tt.body {
				t.Errorf("closing backend read %q, want %q", bodies.Load(), tt.body)
			}
			if n := other.hits.Load(); n != 0 {
				t.Errorf("other backend got %d requests, want none", n)
			}
			if s := statusOf(t, p, "closer"); s.State != "up" || s.Errors != 1 {
				t.Errorf("closer = %s with %d errors, want up (only a failed connect marks down) with 1", s.State, s.Errors)
			}
		})
	}
}

func TestPassiveDownOnRefused(t *testing.T) {
	live := newTestBackend(t, "live")
	cfg := testConfig(newFakeClock())
	cfg.Backends = []Backend{{ID: "dead", Addr: refusedAddr(t)}, live.backend()}
	p := newTestPool(t, cfg)
	url, c := front(t, p)
	if s := statusOf(t, p, "dead"); s.State != "up" {
		t.Fatalf("dead starts %s, want up until proven down", s.State)
	}
	get(t, c, url+"/", gearCookie("", "dead"))
	if s := statusOf(t, p, "dead"); s.State != "down" || s.Checks != 0 {
		t.Fatalf("after a refused connection: %s after %d checks, want down at once", s.State, s.Checks)
	}
	// Down, it gets no more requests, and its cookie is reset.
	for range 5 {
		if r := get(t, c, url+"/", gearCookie("", "dead")); r.backend != "live" || r.setCookie != CookieValue(nil, "live") {
			t.Fatalf("request went to %q with cookie %q, want live and its cookie", r.backend, r.setCookie)
		}
	}
	if got := p.Status().Retries; got != 1 {
		t.Errorf("retries = %d, want 1", got)
	}
}

func TestRetryBody(t *testing.T) {
	t.Run("unread body moves on", func(t *testing.T) {
		b := &retryBody{rc: io.NopCloser(strings.NewReader("abc"))}
		if !b.detach() {
			t.Fatal("detach of an unread body failed")
		}
		if _, err := b.Read(make([]byte, 1)); err != errBodyMoved {
			t.Fatalf("read after detach: %v, want errBodyMoved", err)
		}
		next := &retryBody{rc: b.rc}
		got, _ := io.ReadAll(next)
		if string(got) != "abc" {
			t.Fatalf("next attempt read %q, want abc", got)
		}
	})
	t.Run("read body stays", func(t *testing.T) {
		b := &retryBody{rc: io.NopCloser(bufio.NewReader(strings.NewReader("abc")))}
		b.Read(make([]byte, 1))
		if b.detach() {
			t.Fatal("detach of a read body succeeded")
		}
		if n, err := b.Read(make([]byte, 1)); n != 1 || err != nil {
			t.Fatalf("read after failed detach: %d, %v", n, err)
		}
	})
}

// Kept-alive backend connections that the backend closed (a restart, an
// idle timeout) fail no request: a GET goes again on a new connection, a
// POST is sent only on a connection found open.
func TestClosedKeptAliveConnections(t *testing.T) {
	if handlerPath {
		// net/http's transport learns of a close from a read loop of its
		// own, and may send a POST on the connection before it has.
		t.Skip("FastServer only: ServeHTTP's transport can race a backend's close")
	}
	be := newTestBackend(t, "a")
	be.handle = func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(20 * time.Millisecond) // requests overlap: several connections
		io.WriteString(w, "ok")
	}
	cfg := testConfig(newFakeClock())
	cfg.Backends = []Backend{be.backend()}
	p := newTestPool(t, cfg)
	url, c := front(t, p)
	for round := range 3 {
		for _, method := range []string{http.MethodGet, http.MethodPost} {
			body := func() io.Reader {
				if method == http.MethodPost {
					return strings.NewReader("x")
				}
				return nil
			}
			// Several connections kept alive (requests at once), then
			// closed by the backend.
			var wg sync.WaitGroup
			for range 4 {
				wg.Go(func() {
					if r := send(t, c, method, url+"/", "", body()); r.code != http.StatusOK {
						t.Errorf("round %d: %s before the close: %d", round, method, r.code)
					}
				})
			}
			wg.Wait()
			be.CloseClientConnections()
			for i := range 4 {
				if r := send(t, c, method, url+"/", "", body()); r.code != http.StatusOK {
					t.Fatalf("round %d: %s %d after the backend closed its connections: %d %q", round, method, i, r.code, r.body)
				}
			}
		}
	}
}
