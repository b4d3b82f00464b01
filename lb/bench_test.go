package lb

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
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

// BenchmarkFastServerAlone measures FastServer by itself: the client and
// the backend are loops over raw connections that allocate nothing, so
// allocs/op and B/op are the balancer's own.
func BenchmarkFastServerAlone(b *testing.B) {
	answer := []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nhello, world\n")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					if skipHead(br) != nil {
						return
					}
					if _, err := c.Write(answer); err != nil {
						return
					}
				}
			}()
		}
	}()
	for _, metrics := range []bool{false, true} {
		b.Run(fmt.Sprintf("metrics=%v", metrics), func(b *testing.B) { benchFastServer(b, ln.Addr().String(), metrics) })
	}
}

// benchFastServer measures a FastServer over two backends at backend,
// counting into Prometheus metrics if metrics (the hot path's cost of
// them).
func benchFastServer(b *testing.B, backend string, metrics bool) {
	cfg := DefaultConfig()
	cfg.Backends = []Backend{{ID: "a", Addr: backend}, {ID: "b", Addr: backend}}
	if metrics {
		responses := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "responses_total", Help: "h"}, []string{"app", "code"})
		duration := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "duration_seconds", Help: "h", Buckets: DurationBuckets}, []string{"app"})
		cfg.Metrics = NewMetrics(responses, duration, "ns/app")
	}
	p, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	fln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	fs := NewFastServer(p)
	go fs.Serve(fln)
	defer fs.Close()

	run := func(b *testing.B, s string) {
		req := []byte(s)
		c, err := net.Dial("tcp", fln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		br := bufio.NewReader(c)
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			if _, err := c.Write(req); err != nil {
				b.Fatal(err)
			}
			n, err := readHeadLength(br)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := br.Discard(n); err != nil {
				b.Fatal(err)
			}
		}
	}
	get := "GET / HTTP/1.1\r\nHost: app-ns.example.com\r\nUser-Agent: bench\r\nAccept: */*\r\n"
	b.Run("get", func(b *testing.B) { run(b, get+"\r\n") })
	b.Run("get-sticky", func(b *testing.B) { run(b, get+"Cookie: a=1; GEAR="+CookieValue(nil, "a")+"\r\n\r\n") })
}

// skipHead reads a request head.
func skipHead(br *bufio.Reader) error {
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(line) <= 2 {
			return nil
		}
	}
}

// readHeadLength reads a response head and returns its Content-Length.
func readHeadLength(br *bufio.Reader) (int, error) {
	n := 0
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return 0, err
		}
		if len(line) <= 2 {
			return n, nil
		}
		if v, ok := bytes.CutPrefix(line, []byte("Content-Length: ")); ok {
			n, _ = strconv.Atoi(string(bytes.TrimSpace(v)))
		}
	}
}
