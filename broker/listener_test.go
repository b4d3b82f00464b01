package broker

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"gearbox/broker/api"
	"gearbox/internal/testutil"
)

// TestAPIDefaults checks the documented defaults of the listener's
// time-outs and caps.
func TestAPIDefaults(t *testing.T) {
	m := startMember(t, "cfg", nil, "", "")
	c := DefaultConfig(m.st, t.TempDir())
	if c.APIHeaderTimeout != 10*time.Second || c.APIBodyTimeout != time.Minute || c.APIMinBodyRate != 16<<10 ||
		c.APIWriteTimeout != time.Minute || c.APIIdleTimeout != 2*time.Minute || c.APIMaxConns != 1024 || c.APIMaxConnsPerClient != 64 {
		t.Errorf("defaults: %+v", c)
	}
	z := Config{Store: m.st, DataDir: t.TempDir(), GearRatio: -1}
	if err := z.validate(); err != nil {
		t.Fatal(err)
	}
	if z.APIBodyTimeout != time.Minute || z.APIMaxConnsPerClient != 64 || z.APIMinBodyRate != 16<<10 {
		t.Errorf("zero fields: body timeout %s, per-client cap %d, rate %d", z.APIBodyTimeout, z.APIMaxConnsPerClient, z.APIMinBodyRate)
	}
	small := Config{Store: m.st, DataDir: t.TempDir(), GearRatio: -1, APIMaxConns: 10}
	if err := small.validate(); err != nil || small.APIMaxConnsPerClient != 10 {
		t.Errorf("APIMaxConns 10: per-client cap %d (%v), want 10", small.APIMaxConnsPerClient, err)
	}
	if tr, ok := z.HTTPClient.Transport.(*http.Transport); !ok || tr.MaxConnsPerHost != 32 {
		t.Errorf("forwarding transport: %#v, want at most 32 connections to the leader", z.HTTPClient.Transport)
	}
}

// dialAPI connects to the broker's API from the local address from ("":
// any), with a deadline that ends a test that would otherwise hang.
func dialAPI(t *testing.T, c *testCluster, from string) net.Conn {
	t.Helper()
	d := net.Dialer{}
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	conn, err := d.Dial("tcp", strings.TrimPrefix(c.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	return conn
}

// TestAPITrickledBody performs the attack that a ReadHeaderTimeout alone
// lets through: the headers announce 1000 bytes of body, one comes, then
// nothing. Whether the handler reads the body (a form, a deployment
// archive) or refuses the call before it does, the broker answers and
// closes the connection once APIBodyTimeout has passed.
func TestAPITrickledBody(t *testing.T) {
	const timeout = 300 * time.Millisecond
	c := newCluster(t, clusterOpts{nodes: []nodeSpec{}, cfg: func(cfg *Config) { cfg.APIBodyTimeout = timeout }})
	c.domain(t, admin, "ns")
	c.createAppRecord(t, "ns", "web", adminLogin)
	auth := "Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(adminLogin+":"+adminPassword)) + "\r\n"
	tests := []struct {
		name, head string
		code       int
	}{
		{"form", "POST /broker/rest/domains HTTP/1.1\r\n" + auth + "Content-Type: application/x-www-form-urlencoded\r\n", http.StatusRequestTimeout},
		{"deployment archive", "POST " + appPath("ns", "web", "/deployments") + " HTTP/1.1\r\n" + auth + "Content-Type: application/gzip\r\n", http.StatusRequestTimeout},
		{"refused before the body", "POST /broker/rest/domains HTTP/1.1\r\n", http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn := dialAPI(t, c, "")
			start := time.Now()
			io.WriteString(conn, tt.head+"Host: broker\r\nContent-Length: 1000\r\n\r\nn")
			br := bufio.NewReader(conn)
			res, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("no answer: %v", err)
			}
			var env api.Envelope
			if err := json.NewDecoder(res.Body).Decode(&env); err != nil || res.StatusCode != tt.code || len(env.Messages) != 1 {
				t.Fatalf("answer %d %+v (%v), want %d with a message", res.StatusCode, env, err, tt.code)
			}
			if tt.code == http.StatusRequestTimeout && !strings.Contains(env.Messages[0].Text, "stopped coming") {
				t.Errorf("408 says %q", env.Messages[0].Text)
			}
			if _, err := br.ReadByte(); err == nil {
				t.Fatal("the connection stays open after the answer")
			} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatal("the broker kept the connection open")
			}
			if took := time.Since(start); took < timeout*3/4 || took > timeout+3*time.Second {
				t.Errorf("connection closed after %s, want about %s", took, timeout)
			}
		})
	}
	// The broker still serves.
	c.ok(t, "GET", "/broker/rest/domains", admin, nil, nil)
}

// TestAPIConnCaps fills the per-client cap from one address and the total
// cap from another: the connections over a cap are answered 503 with an
// envelope at once and closed, the ones held still serve, and a place
// freed is taken again.
func TestAPIConnCaps(t *testing.T) {
	c := newCluster(t, clusterOpts{nodes: []nodeSpec{}, cfg: func(cfg *Config) { cfg.APIMaxConns, cfg.APIMaxConnsPerClient = 4, 2 }})
	c.client.CloseIdleConnections()
	testutil.WaitFor(t, 5*time.Second, "the test client's connections to close", func() bool { return c.b.guard.Conns() == 0 })

	type conn struct {
		c  net.Conn
		br *bufio.Reader
	}
	get := func(t *testing.T, cn conn) {
		t.Helper()
		io.WriteString(cn.c, "GET /broker/rest/api HTTP/1.1\r\nHost: broker\r\n\r\n")
		res, err := http.ReadResponse(cn.br, nil)
		if err != nil {
			t.Fatalf("held connection: %v", err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("held connection: status %d", res.StatusCode)
		}
	}
	open := func(t *testing.T, from string) conn {
		t.Helper()
		nc := dialAPI(t, c, from)
		cn := conn{nc, bufio.NewReader(nc)}
		get(t, cn)
		return cn
	}
	refused := func(t *testing.T, from string) {
		t.Helper()
		nc := dialAPI(t, c, from)
		start := time.Now()
		res, err := http.ReadResponse(bufio.NewReader(nc), nil)
		if err != nil {
			t.Fatalf("over the cap from %s: %v", from, err)
		}
		var env api.Envelope
		if err := json.NewDecoder(res.Body).Decode(&env); err != nil || res.StatusCode != http.StatusServiceUnavailable ||
			env.Status != "service_unavailable" || len(env.Messages) != 1 || !strings.Contains(env.Messages[0].Text, "too many connections") {
			t.Errorf("over the cap from %s: %d %+v (%v), want a 503 envelope", from, res.StatusCode, env, err)
		}
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("over the cap from %s: answered after %s, want at once", from, took)
		}
	}

	a, b, other := ips.Next(), ips.Next(), ips.Next()
	a1, a2 := open(t, a), open(t, a)
	refused(t, a) // per client
	b1, b2 := open(t, b), open(t, b)
	refused(t, other) // in all
	if n := c.b.guard.Conns(); n != 4 {
		t.Errorf("%d connections counted, want 4", n)
	}
	for _, cn := range []conn{a1, a2, b1, b2} {
		get(t, cn)
	}
	a1.c.Close()
	testutil.WaitFor(t, 5*time.Second, "the closed connection to be let go", func() bool { return c.b.guard.Conns() == 3 })
	get(t, open(t, other))
}

// TestAPIStreamOutlastsWriteTimeout follows the routing feed with a write
// time-out far below the feed's quiet spells: the write time-out bounds a
// write the client does not take, not a stream, so events still come
// after the stream was quiet for several write time-outs.
func TestAPIStreamOutlastsWriteTimeout(t *testing.T) {
	const timeout = 200 * time.Millisecond
	c := newCluster(t, clusterOpts{nodes: []nodeSpec{}, cfg: func(cfg *Config) {
		cfg.APIWriteTimeout, cfg.APIBodyTimeout = timeout, timeout
		cfg.FeedKeepAlive = time.Hour // no keep-alive lines: the stream is quiet
	}})
	c.domain(t, admin, "ns")
	c.createAppRecord(t, "ns", "web", adminLogin)
	c.addAliases(t, "ns", "web", 0, 1)
	s := c.follow(t, c.lastSeq(t)-1)
	wantSeqs(t, "backlog", s.nextN(t, 1), c.lastSeq(t), c.lastSeq(t))
	for i := 1; i <= 2; i++ {
		// The quiet spell is what is tested: nothing to wait for.
		time.Sleep(3 * timeout)
		c.addAliases(t, "ns", "web", i, 1)
		seq := c.lastSeq(t)
		wantSeqs(t, fmt.Sprintf("after quiet spell %d", i), s.nextN(t, 1), seq, seq)
	}
}
