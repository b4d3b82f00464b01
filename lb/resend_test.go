package lb

import (
	"bufio"
	"net"
	"net/http"
	"strings"
	"testing"
)

// dyingBackend accepts connections, reads a request head and resets the
// connection without an answer: a backend killed with requests in flight.
func dyingBackend(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				br := bufio.NewReader(c)
				for {
					line, err := br.ReadString('\n')
					if err != nil || line == "\r\n" {
						break
					}
				}
				c.(*net.TCPConn).SetLinger(0)
				c.Close()
			}()
		}
	}()
	return ln.Addr().String()
}

// A GET whose backend connection breaks before the answer goes to another
// backend; a POST, which may not be sent twice, gets 502.
func TestFastServerResendsSafeRequestsOnBrokenConnection(t *testing.T) {
	if handlerPath {
		t.Skip("FastServer only: net/http's transport resends on reused connections alone")
	}
	clk := newFakeClock()
	good := newTestBackend(t, "good")
	cfg := testConfig(clk)
	cfg.Balance = RoundRobin
	cfg.NoAffinity = true
	cfg.Backends = []Backend{{ID: "dying", Addr: dyingBackend(t)}, good.backend()}
	p := newTestPool(t, cfg)
	url, c := front(t, p)
	for i := range 6 {
		r := get(t, c, url+"/", "")
		if r.code != http.StatusOK || r.backend != "good" {
			t.Fatalf("GET %d: %d from %q, want 200 from the good backend", i, r.code, r.backend)
		}
	}
	var bad int
	for range 4 {
		r := send(t, c, "POST", url+"/", "", strings.NewReader("order=1"))
		switch {
		case r.code == http.StatusBadGateway:
			bad++
		case r.code != http.StatusOK:
			t.Fatalf("POST: %d", r.code)
		}
	}
	if bad == 0 {
		t.Errorf("4 POSTs round robin over a dying and a good backend: none got 502, so one was sent twice or never to the dying one")
	}
	if n := len(good.requests()); n != 6+4-bad {
		t.Errorf("the good backend got %d requests, want %d", n, 6+4-bad)
	}
}
