package lb

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkProxy measures the proxy path with a small response from an
// httptest backend over kept-alive connections. Allocations are counted
// process-wide, so they include the backend's and the client's: "direct"
// is the same request without the pool, the baseline to subtract.
func BenchmarkProxy(b *testing.B) {
	body := []byte("hello, world\n")
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write(body)
	}))
	defer backend.Close()
	cfg := DefaultConfig()
	cfg.Backends = []Backend{
		{ID: "a", Addr: backend.Listener.Addr().String()},
		{ID: "b", Addr: backend.Listener.Addr().String()},
	}
	p, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	front := httptest.NewServer(p)
	defer front.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	fs := NewFastServer(p)
	go fs.Serve(ln)
	defer fs.Close()
	fastURL := "http://" + ln.Addr().String()

	run := func(b *testing.B, url, cookie string) {
		tr := &http.Transport{MaxIdleConnsPerHost: 64}
		defer tr.CloseIdleConnections()
		c := &http.Client{Transport: tr}
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if cookie != "" {
			req.Header.Set("Cookie", cookie)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			res, err := c.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusOK {
				b.Fatalf("status %d", res.StatusCode)
			}
		}
	}
	b.Run("direct", func(b *testing.B) { run(b, backend.URL+"/", "") })
	b.Run("pool", func(b *testing.B) { run(b, front.URL+"/", "") })
	b.Run("pool-sticky", func(b *testing.B) { run(b, front.URL+"/", "a=1; GEAR="+CookieValue(nil, "a")) })
	b.Run("fast", func(b *testing.B) { run(b, fastURL+"/", "") })
	b.Run("fast-sticky", func(b *testing.B) { run(b, fastURL+"/", "a=1; GEAR="+CookieValue(nil, "a")) })
	b.Run("handler", func(b *testing.B) {
		// The pool's handler alone, without the front server and client.
		req := httptest.NewRequest(http.MethodGet, "http://app-ns.example.com/", nil)
		b.ReportAllocs()
		for b.Loop() {
			w := discardWriter{h: http.Header{}}
			p.ServeHTTP(&w, req)
			if w.code != http.StatusOK {
				b.Fatalf("status %d", w.code)
			}
		}
	})
}

type discardWriter struct {
	h    http.Header
	code int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(code int)        { w.code = code }
