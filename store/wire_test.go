package store

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"gearbox/internal/testutil"
)

// recordingRelay is a TCP proxy that forwards each connection it accepts
// to target and records every byte that crosses it, both ways.
type recordingRelay struct {
	ln net.Listener
	wg sync.WaitGroup

	mu     sync.Mutex
	target string
	conns  int
	bytes  bytes.Buffer
	closed bool
	open   []net.Conn
}

func startRelay(t *testing.T, ip string) *recordingRelay {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	r := &recordingRelay{ln: ln}
	r.wg.Go(r.accept)
	t.Cleanup(r.close)
	return r
}

func (r *recordingRelay) port() int { return r.ln.Addr().(*net.TCPAddr).Port }

func (r *recordingRelay) setTarget(addr string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.target = addr
}

func (r *recordingRelay) accept() {
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		r.mu.Lock()
		target := r.target
		r.conns++
		r.mu.Unlock()
		u, err := net.Dial("tcp", target)
		if err != nil {
			c.Close()
			continue
		}
		if !r.track(c, u) {
			return
		}
		r.wg.Go(func() { r.pipe(u, c) })
		r.wg.Go(func() { r.pipe(c, u) })
	}
}

// track remembers c and u for close; false if the relay is closed.
func (r *recordingRelay) track(c, u net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		c.Close()
		u.Close()
		return false
	}
	r.open = append(r.open, c, u)
	return true
}

// pipe copies from src to dst, recording what passes, and closes both
// when src ends.
func (r *recordingRelay) pipe(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			r.mu.Lock()
			r.bytes.Write(buf[:n])
			r.mu.Unlock()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// recorded returns the connections accepted and a copy of the bytes seen.
func (r *recordingRelay) recorded() (int, []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.conns, bytes.Clone(r.bytes.Bytes())
}

func (r *recordingRelay) close() {
	r.mu.Lock()
	r.closed = true
	open := r.open
	r.mu.Unlock()
	r.ln.Close()
	for _, c := range open {
		c.Close()
	}
	r.wg.Wait()
}

// TestSecretNeverCrossesTheWire runs two members whose internal APIs are
// reached only through recording relays (each advertises its relay's port),
// lets them catch up with each other by anti-entropy (in both directions)
// and pull a record too large for a gossip event, and checks that the
// bytes that crossed carry neither the cluster secret nor any record's
// value: the internal API is encrypted, and authenticated without sending
// the secret.
func TestSecretNeverCrossesTheWire(t *testing.T) {
	ctx := context.Background()
	const secret = "wire-test-cluster-secret-4f1d9c"
	testutil.CheckNoLeaks(t, leakPatterns...)
	ipA, ipB := ips.Next(), ips.Next()
	relayA, relayB := startRelay(t, ipA), startRelay(t, ipB)
	opts := func(relay *recordingRelay) []memberOpts {
		return []memberOpts{withSecret(secret), func(c *Config) {
			c.InternalPort = relay.port() // peers call it, and reach the member through the relay
			c.AntiEntropyInterval = 100 * time.Millisecond
			c.UserEventSizeLimit = 512
		}}
	}
	a := startMember(t, "a", filepath.Join(t.TempDir(), "a"), ipA, opts(relayA)...)
	relayA.setTarget(a.addr)
	b := startMember(t, "b", filepath.Join(t.TempDir(), "b"), ipB, opts(relayB)...)
	relayB.setTarget(b.addr)

	// Written before the members know each other: only anti-entropy can
	// carry them across, a's to b by a pull through relayA or a push
	// through relayB, and b's the other way.
	var values []string
	put := func(m *testMember, key, value string) {
		t.Helper()
		if _, err := m.st.Put(ctx, "apps", key, value); err != nil {
			t.Fatal(err)
		}
		values = append(values, value)
	}
	for i := range 20 {
		put(a, fmt.Sprintf("from-a-%02d", i), fmt.Sprintf("plaintext-of-a-%02d", i))
		put(b, fmt.Sprintf("from-b-%02d", i), fmt.Sprintf("plaintext-of-b-%02d", i))
	}
	if n, err := b.st.Join([]string{a.gossipAddr()}); n != 1 {
		t.Fatalf("join: %v", err)
	}
	ms := []*testMember{a, b}
	testutil.WaitFor(t, 20*time.Second, "anti-entropy to converge the members", func() bool { return converged(ms) && a.st.Len() == 40 })

	// Too large for a gossip event: announced, then pulled from a over
	// the internal API, through relayA.
	big := "plaintext-big-" + strings.Repeat("x", 2048)
	put(a, "big", big)
	testutil.WaitFor(t, 20*time.Second, "b to pull the large record", func() bool {
		var got string
		_, err := b.st.Get("apps", "big", &got)
		return err == nil && got == big
	})
	// And more rounds both ways, each a new connection or a reused one.
	for _, m := range ms {
		before := m.st.Stats().SyncRounds
		testutil.WaitFor(t, 20*time.Second, m.cfg.Name+" to complete two more anti-entropy rounds", func() bool {
			return m.st.Stats().SyncRounds >= before+2
		})
	}
	sameContents(t, ms)

	for name, r := range map[string]*recordingRelay{"relay to a": relayA, "relay to b": relayB} {
		conns, wire := r.recorded()
		if conns == 0 || len(wire) == 0 {
			t.Fatalf("%s: %d connections, %d bytes: the test saw no internal API traffic", name, conns, len(wire))
		}
		if wire[0] != 0x16 { // a TLS handshake record
			t.Errorf("%s: traffic does not start with a TLS handshake: %q", name, wire[:min(len(wire), 32)])
		}
		for _, s := range append([]string{secret, "Bearer", "plaintext-", "from-a-", "from-b-", "/internal/v1/"}, values...) {
			if bytes.Contains(wire, []byte(s)) {
				t.Errorf("%s: %q crossed the wire in the clear (%d bytes recorded)", name, s, len(wire))
			}
		}
	}
	if t.Failed() {
		return
	}
	// The relays did carry the records: they are in the bytes, encrypted.
	_, wire := relayA.recorded()
	if len(wire) < len(big) {
		t.Errorf("relay to a carried %d bytes, less than the large record alone", len(wire))
	}
}
