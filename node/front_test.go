package node

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"gearbox/internal/testutil"
	"gearbox/lb"
	"gearbox/store/state"
)

// dialFront connects to the node's front listener, with a deadline that
// ends a test that would otherwise hang.
func dialFront(t *testing.T, n *testNode) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", n.s.FrontAddr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	return c
}

// TestFrontTrickledBody performs the trickle attack on the front
// listener: the headers announce 1000 bytes of body, one comes, then
// nothing. Whether the request goes to a gear or is answered by the
// front itself (an unknown host), the front answers and closes the
// connection once the LB config's ClientTimeout has passed.
func TestFrontTrickledBody(t *testing.T) {
	const timeout = 300 * time.Millisecond
	n := newTestNode(t, func(c *Config) { c.LB.ClientTimeout = timeout })
	g := n.gear("eeee00000000000000000001", "one", "ns", 1)
	n.put(state.BucketGears, g.ID, g)
	n.waitState(g.ID, state.GearStarted)
	for _, host := range []string{"one-ns.example.test", "nowhere-ns.example.test"} {
		t.Run(host, func(t *testing.T) {
			c := dialFront(t, n)
			start := time.Now()
			io.WriteString(c, "POST / HTTP/1.1\r\nHost: "+host+"\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\nx")
			br := bufio.NewReader(c)
			res, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("no answer: %v", err)
			}
			io.Copy(io.Discard, res.Body)
			if _, err := br.ReadByte(); err == nil {
				t.Fatal("the connection stays open after the answer")
			} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatalf("the front kept the connection open after a %d", res.StatusCode)
			}
			if took := time.Since(start); took < timeout*3/4 || took > timeout+3*time.Second {
				t.Errorf("connection closed after %s (answer %d), want about %s", took, res.StatusCode, timeout)
			}
		})
	}
	// The front still serves.
	if code, body := get(t, "http://"+n.s.FrontAddr()+"/", "one-ns.example.test"); code != 200 {
		t.Errorf("after the attack: %d %.200s", code, body)
	}
}

// TestFrontConnCap holds the LB config's MaxClientConns connections open
// on the front listener: the next one gets a 503 and is closed at once,
// the ones held still serve, and a place freed is taken again.
func TestFrontConnCap(t *testing.T) {
	const max = 2
	n := newTestNode(t, func(c *Config) { c.LB.MaxClientConns = max })
	get := func(t *testing.T, c net.Conn, br *bufio.Reader) {
		t.Helper()
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: nowhere-ns.example.test\r\n\r\n")
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("held connection: %v", err)
		}
		io.Copy(io.Discard, res.Body)
		if res.StatusCode != http.StatusNotFound {
			t.Fatalf("held connection: status %d, want the front's 404", res.StatusCode)
		}
	}
	type held struct {
		c  net.Conn
		br *bufio.Reader
	}
	var conns []held
	for range max {
		c := dialFront(t, n)
		h := held{c, bufio.NewReader(c)}
		get(t, h.c, h.br)
		conns = append(conns, h)
	}
	over := dialFront(t, n)
	start := time.Now()
	b, _ := io.ReadAll(over)
	if !strings.HasPrefix(string(b), "HTTP/1.1 503 ") || !strings.Contains(string(b), "No server is available") {
		t.Errorf("over the cap: %q, want a 503", b)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("over the cap: answered after %s, want at once", took)
	}
	for _, h := range conns {
		get(t, h.c, h.br)
	}
	conns[0].c.Close()
	testutil.WaitFor(t, 5*time.Second, "the closed connection to be let go", func() bool { return n.s.front.guard.Conns() == max-1 })
	c := dialFront(t, n)
	get(t, c, bufio.NewReader(c))
	if n.s.front.guard.Refused() != 1 {
		t.Errorf("%d refused, want 1", n.s.front.guard.Refused())
	}
}

// TestFrontLimits checks that the front takes the LB config's client
// limits, with its own header and idle time-outs and no per-client cap.
func TestFrontLimits(t *testing.T) {
	cfg := lb.DefaultConfig()
	l := frontLimits(cfg, testLogger())
	if l.HeaderTimeout != 10*time.Second || l.IdleTimeout != 2*time.Minute || l.BodyTimeout != time.Minute ||
		l.WriteTimeout != time.Minute || l.TunnelTimeout != time.Minute || l.MaxConns != 10000 || l.MaxConnsPerClient != 0 {
		t.Errorf("frontLimits(lb.DefaultConfig()) = %+v", l)
	}
}

// A gear that does not send its answer's headers within the LB config's
// ServerTimeout gets its request answered 504 by the front, which does
// not hold the client's connection for ever; a gear that answers in time
// is served.
func TestFrontGearAnswerTimeout(t *testing.T) {
	const timeout = time.Second
	n := newTestStore(t)
	n.setup = helperPrograms
	n.s = n.startSupervisor(func(c *Config) { c.LB.ServerTimeout = timeout })
	n.put(state.BucketApps, "ns/one", state.App{ID: "a1", Name: "one", Domain: "ns", State: state.GearStarted,
		Env: map[string]string{"GEARBOX_NODE_TEST_HELPER": "serve"}})
	g := n.gear("eeee00000000000000000003", "one", "ns", 1)
	n.put(state.BucketGears, g.ID, g)
	n.waitState(g.ID, state.GearStarted)
	start := time.Now()
	code, body := get(t, "http://"+n.s.FrontAddr()+"/hang", "one-ns.example.test")
	if took := time.Since(start); code != http.StatusGatewayTimeout || took > timeout+5*time.Second {
		t.Errorf("GET /hang: %d after %s (%.200s), want 504 after about %s", code, took, body, timeout)
	}
	if code, body := get(t, "http://"+n.s.FrontAddr()+"/slow", "one-ns.example.test"); code != 200 {
		t.Errorf("GET /slow: %d %.200s", code, body)
	}
}
