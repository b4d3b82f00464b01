package lb

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"gearbox/lb/internal/h1"
)

// rawBackend answers each request with the bytes that answer returns
// (closing the connection after them if it says so) and records what it
// received.
type rawBackend struct {
	ln     net.Listener
	answer func(r *http.Request, body string) (raw string, close bool)

	mu    sync.Mutex
	seen  []rawSeen
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

type rawSeen struct {
	req  *http.Request
	body string
}

func newRawBackend(t *testing.T, answer func(r *http.Request, body string) (string, bool)) *rawBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rb := &rawBackend{ln: ln, answer: answer, conns: make(map[net.Conn]struct{})}
	rb.wg.Go(rb.accept)
	t.Cleanup(func() {
		ln.Close()
		rb.mu.Lock()
		for c := range rb.conns {
			c.Close()
		}
		rb.mu.Unlock()
		rb.wg.Wait()
	})
	return rb
}

func (rb *rawBackend) accept() {
	for {
		c, err := rb.ln.Accept()
		if err != nil {
			return
		}
		rb.mu.Lock()
		rb.conns[c] = struct{}{}
		rb.mu.Unlock()
		rb.wg.Go(func() { rb.serve(c) })
	}
}

func (rb *rawBackend) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		body, err := io.ReadAll(req.Body)
		if err != nil {
			return
		}
		rb.mu.Lock()
		rb.seen = append(rb.seen, rawSeen{req, string(body)})
		rb.mu.Unlock()
		raw, closeAfter := rb.answer(req, string(body))
		if _, err := io.WriteString(c, raw); err != nil || closeAfter {
			return
		}
	}
}

func (rb *rawBackend) requests() []rawSeen {
	rb.mu.Lock()
	defer rb.mu.Unlock()
	return append([]rawSeen(nil), rb.seen...)
}

// rawClient is a client connection to a FastServer that writes bytes as
// they are given.
type rawClient struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, url string) *rawClient {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return &rawClient{t: t, c: c, br: bufio.NewReader(c)}
}

func (rc *rawClient) send(s string) {
	rc.t.Helper()
	if _, err := io.WriteString(rc.c, s); err != nil {
		rc.t.Fatal(err)
	}
}

// read reads one response to a request of method, body included.
func (rc *rawClient) read(method string) (*http.Response, string) {
	rc.t.Helper()
	res, err := http.ReadResponse(rc.br, &http.Request{Method: method})
	if err != nil {
		rc.t.Fatalf("reading the response: %v", err)
	}
	body, err := io.ReadAll(res.Body)
	if err != nil {
		rc.t.Fatalf("reading the response body: %v", err)
	}
	return res, string(body)
}

// closed checks that the server closed the connection.
func (rc *rawClient) closed() {
	rc.t.Helper()
	if n, err := rc.br.Read(make([]byte, 1)); err != io.EOF {
		rc.t.Errorf("connection not closed: read %d, %v", n, err)
	}
}

// stillOpen checks that the connection serves another request.
func (rc *rawClient) stillOpen() {
	rc.t.Helper()
	rc.send("GET /again HTTP/1.1\r\nHost: app\r\n\r\n")
	if res, _ := rc.read(http.MethodGet); res.StatusCode != http.StatusOK {
		rc.t.Errorf("next request on the connection: %d", res.StatusCode)
	}
}

// TestFastServerMessages proxies requests and responses written byte by
// byte through FastServer and checks what each side receives.
func TestFastServerMessages(t *testing.T) {
	if handlerPath {
		t.Skip("FastServer's own HTTP/1.1 handling")
	}
	ok := "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
	tests := []struct {
		name   string
		answer string // the backend's answer to every request but /again
		close  bool   // the backend closes the connection after answering
		run    func(t *testing.T, rc *rawClient, rb *rawBackend)
	}{
		{
			name: "hop-by-hop fields stay on their connection",
			answer: "HTTP/1.1 200 OK\r\nConnection: X-Internal\r\nX-Internal: 1\r\nKeep-Alive: timeout=5\r\n" +
				"Proxy-Authenticate: Basic\r\nX-Kept: 1\r\nContent-Length: 2\r\n\r\nok",
			run: func(t *testing.T, rc *rawClient, rb *rawBackend) {
				rc.send("GET / HTTP/1.1\r\nHost: app\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\nKeep-Alive: 5\r\n" +
					"TE: trailers\r\nProxy-Authorization: Basic eA==\r\nProxy-Connection: keep-alive\r\nUpgrade: h2c\r\nX-Kept: 1\r\n\r\n")
				res, _ := rc.read(http.MethodGet)
				h := rb.requests()[0].req.Header
				for _, k := range []string{"Connection", "X-Secret", "Keep-Alive", "Te", "Proxy-Authorization", "Proxy-Connection", "Upgrade"} {
					if v, ok := h[k]; ok {
						t.Errorf("backend got %s: %q", k, v)
					}
				}
				for _, k := range []string{"Connection", "X-Internal", "Keep-Alive", "Proxy-Authenticate"} {
					if v, ok := res.Header[k]; ok {
						t.Errorf("client got %s: %q", k, v)
					}
				}
				if h.Get("X-Kept") != "1" || res.Header.Get("X-Kept") != "1" {
					t.Errorf("X-Kept lost: request %q, response %q", h.Get("X-Kept"), res.Header.Get("X-Kept"))
				}
				rc.stillOpen()
			},
		},
		{
			name:   "X-Forwarded-For adds the client to every line",
			answer: ok,
			run: func(t *testing.T, rc *rawClient, rb *rawBackend) {
				rc.send("GET / HTTP/1.1\r\nHost: app\r\nX-Forwarded-For: 192.0.2.1\r\nX-Forwarded-For: 192.0.2.2\r\n\r\n")
				rc.read(http.MethodGet)
				if got := rb.requests()[0].req.Header["X-Forwarded-For"]; len(got) != 1 || got[0] != "192.0.2.1, 192.0.2.2, 127.0.0.1" {
					t.Errorf("X-Forwarded-For %q", got)
				}
			},
		},
		{
			name:   "body by length",
			answer: ok,
			run: func(t *testing.T, rc *rawClient, rb *rawBackend) {
				rc.send("POST /p HTTP/1.1\r\nHost: app\r\nContent-Length: 5\r\n\r\nhello")
				rc.read(http.MethodPost)
				if r := rb.requests()[0]; r.body != "hello" || r.req.ContentLength != 5 {
					t.Errorf("backend got %q, length %d", r.body, r.req.ContentLength)
				}
				rc.stillOpen()
			},
		},
		{
			name:   "chunked body, extensions and trailer dropped",
			answer: ok,
			run: func(t *testing.T, rc *rawClient, rb *rawBackend) {
				rc.send("POST /p HTTP/1.1\r\nHost: app\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n" +
					"5;a=b\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: 1\r\n\r\n")
				rc.read(http.MethodPost)
				r := rb.requests()[0]
				if r.body != "hello world" || len(r.req.TransferEncoding) != 1 || r.req.Trailer != nil {
					t.Errorf("backend got %q, coding %q, trailer %v", r.body, r.req.TransferEncoding, r.req.Trailer)
				}
				rc.stillOpen()
			},
		},
		{
			name:   "POST without a body says so",
			answer: ok,
			run: func(t *testing.T, rc *rawClient, rb *rawBackend) {
				rc.send("POST /p HTTP/1.1\r\nHost: app\r\n\r\n")
				rc.read(http.MethodPost)
				if got := rb.requests()[0].req.Header.Get("Content-Length"); got != "0" {
					t.Errorf("Content-Length %q, want 0", got)
				}
			},
		},
		{
			name:   "stray CRLF after a POST body",
			answer: ok,
			run: func(t *testing.T, rc *rawClient, rb *rawBackend) {
				rc.send("POST /p HTTP/1.1\r\nHost: app\r\nContent-Length: 2\r\n\r\nhi\r\nGET /q HTTP/1.1\r\nHost: app\r\n\r\n")
				rc.read(http.MethodPost)
				if res, _ := rc.read(http.MethodGet); res.StatusCode != http.StatusOK {
					t.Errorf("second request: %d", res.StatusCode)
				}
			},
		},
		{
			name:   "pipelined requests are answered in order",
			answer: ok,
			run: func(t *testing.T, rc *rawClient, rb *rawBackend) {
				rc.send("GET /1 HTTP/1.1\r\nHost: app\r\n\r\nHEAD /2 HTTP/1.1\r\nHost: app\r\n\r\nGET /3 HTTP/1.1\r\nHost: app\r\n\r\n")
				for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodGet} {
					if res, _ := rc.read(m); res.StatusCode != http.StatusOK {
						t.Errorf("%s: %d", m, res.StatusCode)
					}
				}
				var paths []string
				for _, r := range rb.requests() {
					paths = append(paths, r.req.URL.Path)
				}
				if strings.Join(paths, " ") != "/1 /2 /3" {
					t.Errorf("backend got %v", paths)
				}
			},
		},
		{
			name:   "chunked response to HTTP/1.1",
			answer: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n5\r\nworld\r\n0\r\nX-Sum: 1\r\n\r\n",
			run: func(t *testing.T, rc *rawClient, rb *rawBackend) {
				rc.send("GET / HTTP/1.1\r\nHost: app\r\n\r\n")
				res, body := rc.read(http.MethodGet)
				if body != "helloworld" || len(res.TransferEncoding) != 1 {
					t.Errorf("body %q, coding %q", body, res.TransferEncoding)
				}
				rc.stillOpen()
			},
		},
		{
			name:   "chunked response to HTTP/1.0",
			answer: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
			run: func(t *testing.T, rc *rawClient, rb *rawBackend) {
				rc.send("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
				res, body := rc.read(http.MethodGet)
				if body != "hello" || res.TransferEncoding != nil || !res.Close {
					t.Errorf("body %q, coding %q, close %v", body, res.TransferEncoding, res.Close)
				}
				rc.closed()
			},
		},
		{
			name:   "HTTP/1.0 keep-alive",
			answer: ok,
			run: func(t *testing.T, rc *rawClient, rb *rawBackend) {
				rc.send("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
				res, _ := rc.read(http.MethodGet)
				if res.Header.Get("Connection") != "keep-alive" || res.Close {
					t.Errorf("Connection %q", res.Header.Get("Connection"))
				}
				rc.stillOpen()
			},
		},
		{
			name:   "HTTP/1.0 closes",
			answer: ok,
			run: func(t *testing.T, rc *rawClient, rb *rawBackend) {
				rc.send("GET / HTTP/1.0\r\n\r\n")
				if res, _ := rc.read(http.MethodGet); !res.Close {
					t.Error("no Connection: close")
				}
				rc.closed()
			},
		},
		{
			name:   "Connection: close",
			answer: ok,
			run: func(t *testing.T, rc *rawClient, rb *rawBackend) {
				rc.send("GET / HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n")
				if res, _ := rc.read(http.MethodGet); !res.Close {
					t.Error("no Connection: close")
				}
				rc.closed()
			},
		},
		{
			name:   "HEAD keeps the length and sends no body",
			answer: "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n",
			run: func(t *testing.T, rc *rawClient, rb *rawBackend) {
				rc.send("HEAD / HTTP/1.1\r\nHost: app\r\n\r\n")
				if res, _ := rc.read(http.MethodHead); res.ContentLength != 1000 {
					t.Errorf("Content-Length %d", res.ContentLength)
				}
				rc.stillOpen()
			},
		},
		{
			name:   "204 has no body",
			answer: "HTTP/1.1 204 No Content\r\nX: 1\r\n\r\n",
			run: func(t *testing.T, rc *rawClient, rb *rawBackend) {
				rc.send("DELETE /x HTTP/1.1\r\nHost: app\r\n\r\n")
				if res, _ := rc.read(http.MethodDelete); res.StatusCode != http.StatusNoContent || res.Header.Get("X") != "1" {
					t.Errorf("status %d", res.StatusCode)
				}
				rc.stillOpen()
			},
		},
		{
			name:   "304 has no body",
			answer: "HTTP/1.1 304 Not Modified\r\nETag: \"a\"\r\n\r\n",
			run: func(t *testing.T, rc *rawClient, rb *rawBackend) {
				rc.send("GET / HTTP/1.1\r\nHost: app\r\nIf-None-Match: \"a\"\r\n\r\n")
				if res, _ := rc.read(http.MethodGet); res.StatusCode != http.StatusNotModified {
					t.Errorf("status %d", res.StatusCode)
				}
				rc.stillOpen()
			},
		},
		{
			name:   "informational responses pass",
			answer: "HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n" + ok,
			run: func(t *testing.T, rc *rawClient, rb *rawBackend) {
				rc.send("GET / HTTP/1.1\r\nHost: app\r\n\r\n")
				if res, _ := rc.read(http.MethodGet); res.StatusCode != 103 || res.Header.Get("Link") == "" {
					t.Errorf("first %d %v", res.StatusCode, res.Header)
				}
				if res, body := rc.read(http.MethodGet); res.StatusCode != 200 || body != "ok" {
					t.Errorf("then %d %q", res.StatusCode, body)
				}
				rc.stillOpen()
			},
		},
		{
			name:   "response ended by the backend's close",
			answer: "HTTP/1.1 200 OK\r\n\r\nuntil the end",
			close:  true,
			run: func(t *testing.T, rc *rawClient, rb *rawBackend) {
				rc.send("GET / HTTP/1.1\r\nHost: app\r\n\r\n")
				if _, body := rc.read(http.MethodGet); body != "until the end" {
					t.Errorf("body %q", body)
				}
				rc.stillOpen()
			},
		},
		{
			name:   "Expect: 100-continue",
			answer: ok,
			run: func(t *testing.T, rc *rawClient, rb *rawBackend) {
				rc.send("PUT /p HTTP/1.1\r\nHost: app\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
				if res, _ := rc.read(http.MethodPut); res.StatusCode != http.StatusContinue {
					t.Fatalf("status %d, want 100", res.StatusCode)
				}
				rc.send("hello")
				rc.read(http.MethodPut)
				if r := rb.requests()[0]; r.body != "hello" || r.req.Header.Get("Expect") != "" {
					t.Errorf("backend got %q, Expect %q", r.body, r.req.Header.Get("Expect"))
				}
			},
		},
		{
			name:   "absolute target",
			answer: ok,
			run: func(t *testing.T, rc *rawClient, rb *rawBackend) {
				rc.send("GET http://b.example/x?y HTTP/1.1\r\nHost: a.example\r\n\r\n")
				rc.read(http.MethodGet)
				if r := rb.requests()[0].req; r.Host != "b.example" || r.RequestURI != "http://b.example/x?y" {
					t.Errorf("backend got Host %q, target %q", r.Host, r.RequestURI)
				}
			},
		},
		{
			name:   "malformed response",
			answer: "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxy",
			run: func(t *testing.T, rc *rawClient, rb *rawBackend) {
				rc.send("GET / HTTP/1.1\r\nHost: app\r\n\r\n")
				if res, _ := rc.read(http.MethodGet); res.StatusCode != http.StatusBadGateway {
					t.Errorf("status %d, want 502", res.StatusCode)
				}
			},
		},
		{
			name:   "malformed chunked request body",
			answer: ok,
			run: func(t *testing.T, rc *rawClient, rb *rawBackend) {
				rc.send("POST /p HTTP/1.1\r\nHost: app\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n")
				if res, _ := rc.read(http.MethodPost); res.StatusCode != http.StatusBadRequest {
					t.Errorf("status %d, want 400", res.StatusCode)
				}
				rc.closed()
				if n := len(rb.requests()); n != 0 {
					t.Errorf("backend answered %d requests", n)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rb := newRawBackend(t, func(r *http.Request, body string) (string, bool) {
				if r.URL.Path == "/again" {
					return ok, false
				}
				return tt.answer, tt.close
			})
			cfg := testConfig(newFakeClock())
			cfg.NoAffinity = true
			cfg.Backends = []Backend{{ID: "a", Addr: rb.ln.Addr().String()}}
			p := newTestPool(t, cfg)
			url, _ := front(t, p)
			tt.run(t, dialRaw(t, url), rb)
			if n := statusOf(t, p, "a").Errors; n != 0 && tt.name != "malformed response" {
				t.Errorf("%d backend errors", n)
			}
		})
	}
}

// TestFastServerLargeBodies sends bodies larger than the sockets' buffers
// both ways, so that reads and writes wait for the other side.
func TestFastServerLargeBodies(t *testing.T) {
	be := newTestBackend(t, "a")
	be.handle = func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		w.Write(bytes.Repeat([]byte("0123456789abcdef"), n/16))
	}
	cfg := testConfig(newFakeClock())
	cfg.Backends = []Backend{be.backend()}
	p := newTestPool(t, cfg)
	url, c := front(t, p)
	const size = 8 << 20
	upload := bytes.Repeat([]byte("x"), size)
	for _, tt := range []struct {
		name string
		body io.Reader
	}{
		{"length", bytes.NewReader(upload)},
		{"chunked", onlyReader{bytes.NewReader(upload)}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := send(t, c, http.MethodPost, url+"/?n="+strconv.Itoa(size), "", tt.body)
			if r.code != http.StatusOK || len(r.body) != size || r.body[:16] != "0123456789abcdef" {
				t.Fatalf("status %d, %d bytes back", r.code, len(r.body))
			}
			seen := be.requests()
			if got := seen[len(seen)-1].body; len(got) != size {
				t.Errorf("backend got %d bytes", len(got))
			}
		})
	}
}

// TestFastServerRefuses sends malformed and ambiguous requests, request
// smuggling attempts among them: each is answered with an error and its
// connection closed, and nothing reaches the backend.
func TestFastServerRefuses(t *testing.T) {
	if handlerPath {
		t.Skip("FastServer's own HTTP/1.1 handling")
	}
	tests := []struct {
		name string
		send string
		code int
	}{
		{"Transfer-Encoding and Content-Length", "POST / HTTP/1.1\r\nHost: app\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: app\r\n\r\n", 400},
		{"different Content-Lengths", "POST / HTTP/1.1\r\nHost: app\r\nContent-Length: 0\r\nContent-Length: 44\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: app\r\n\r\n", 400},
		{"chunked not the last coding", "POST / HTTP/1.1\r\nHost: app\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n", 501},
		{"Transfer-Encoding in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", 400},
		{"space before colon", "POST / HTTP/1.1\r\nHost: app\r\nTransfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", 400},
		{"obs-fold", "GET / HTTP/1.1\r\nHost: app\r\nX: 1\r\n Transfer-Encoding: chunked\r\n\r\n", 400},
		{"bare CR", "GET / HTTP/1.1\r\nHost: app\r\nX: 1\rTransfer-Encoding: chunked\r\n\r\n", 400},
		{"NUL in a value", "GET / HTTP/1.1\r\nHost: app\r\nX: \x00\r\n\r\n", 400},
		{"no Host", "GET / HTTP/1.1\r\n\r\n", 400},
		{"two Hosts", "GET / HTTP/1.1\r\nHost: app\r\nHost: other\r\n\r\n", 400},
		{"malformed request line", "GET /\r\n\r\n", 400},
		{"HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505},
		{"CONNECT", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 405},
		{"head too large", "GET / HTTP/1.1\r\nHost: app\r\nCookie: " + strings.Repeat("x", h1.MaxHeadBytes) + "\r\n\r\n", 431},
	}
	rb := newRawBackend(t, func(*http.Request, string) (string, bool) {
		return "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false
	})
	cfg := testConfig(newFakeClock())
	cfg.Backends = []Backend{{ID: "a", Addr: rb.ln.Addr().String()}}
	p := newTestPool(t, cfg)
	url, _ := front(t, p)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := dialRaw(t, url)
			rc.send(tt.send)
			if res, _ := rc.read(http.MethodGet); res.StatusCode != tt.code || !res.Close {
				t.Errorf("status %d (close %v), want %d and close", res.StatusCode, res.Close, tt.code)
			}
			rc.closed()
		})
	}
	if got := rb.requests(); len(got) != 0 {
		t.Errorf("backend got %d requests, the first for %s", len(got), got[0].req.URL)
	}
}
