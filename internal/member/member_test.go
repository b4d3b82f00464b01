package member

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"gearbox/internal/testutil"
	"gearbox/store"
	"gearbox/store/internalapi"
)

// ips are this package's test addresses (see testutil.IPs).
var ips = testutil.NewIPs(5, 1)

// newTestConfig is the config of a member with roles on ip, as
// `gearbox serve --role roles --bind ip` with args as role flags would
// make it, with fast failure detection.
func newTestConfig(t *testing.T, roles, ip string, args ...string) Config {
	t.Helper()
	ro, err := RoleOptionsFromArgs(args)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := Options{Roles: roles, Name: "m-" + ip, DataDir: t.TempDir(), Bind: ip, SerfPort: 7946, InternalPort: 7947,
		ClusterSecret: "member-test-secret-0123456789", Domain: "example.com",
		LeaveTimeout: 5 * time.Second, AntiEntropyInterval: time.Second}.Config()
	if err != nil {
		t.Fatal(err)
	}
	cfg.Store.Profile = store.ProfileLocal
	cfg.Roles = ro
	return cfg
}

// memberLeaks are the goroutines no member test may leave behind.
var memberLeaks = []string{"gearbox/internal/member.", "gearbox/store.", "gearbox/router.", "hashicorp/serf", "hashicorp/memberlist"}

// startRouterMember starts a member with the router role on a fresh
// address (adjust, if not nil, changes its config first), checks that no
// goroutine outlives the test, and closes the member when the test ends.
func startRouterMember(t *testing.T, adjust func(*Config)) (*Member, Config) {
	t.Helper()
	testutil.CheckNoLeaks(t, memberLeaks...)
	ip := ips.Next()
	cfg := newTestConfig(t, "router", ip, "--router-addr", ip+":0")
	if adjust != nil {
		adjust(&cfg)
	}
	m, err := New(cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m, cfg
}

// A member starts once, serves the internal API with its roles' handlers
// mounted, and after Leave listens no more; Leave and Close are safe to
// repeat.
func TestMemberLifecycle(t *testing.T) {
	testutil.CheckNoLeaks(t, memberLeaks...)
	ip := ips.Next()
	cfg := newTestConfig(t, "router", ip, "--router-addr", ip+":0")
	m, err := New(cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ctx); !errors.Is(err, ErrStarted) {
		t.Errorf("second Start: %v, want ErrStarted", err)
	}
	_, members, err := store.FetchMembers(ctx, nil, cfg.InternalAddr, cfg.Store.ClusterSecret)
	if err != nil || len(members) != 1 || members[0].Name != cfg.Store.Name || strings.Join(members[0].Roles, ",") != "router" {
		t.Fatalf("members from the internal API: %+v, %v", members, err)
	}
	if m.internal.routerStatus.Load() == nil {
		t.Error("the router's status is not mounted on the internal API")
	}
	lctx, cancel := context.WithTimeout(ctx, cfg.LeaveTimeout)
	defer cancel()
	if err := m.Leave(lctx); err != nil {
		t.Fatalf("leave: %v", err)
	}
	if m.internal.routerStatus.Load() != nil {
		t.Error("the router's status is still mounted after Leave")
	}
	if c, err := net.DialTimeout("tcp", cfg.InternalAddr, time.Second); err == nil {
		c.Close()
		t.Error("the internal API still accepts connections after Leave")
	}
	if err := m.Leave(lctx); err != nil {
		t.Errorf("second Leave: %v", err)
	}
	if err := m.Close(); err != nil {
		t.Errorf("Close after Leave: %v", err)
	}
	if err := m.Start(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("Start after Leave: %v, want ErrClosed", err)
	}
}

// Roles stop last started first, each given the leave deadline; one still
// stopping at the deadline is logged and waited for, so that nothing
// closes the store under it.
func TestStopRolesWithinDeadline(t *testing.T) {
	logs := &testutil.Buffer{}
	m := &Member{log: zerolog.New(logs)}
	var stopped []string
	var sawDeadline bool
	release := make(chan struct{})
	m.roles = []roleStop{
		{"first", func(context.Context) error { stopped = append(stopped, "first"); return nil }},
		{"slow", func(ctx context.Context) error {
			_, sawDeadline = ctx.Deadline()
			<-ctx.Done()
			<-release // still stopping after the deadline
			stopped = append(stopped, "slow")
			return nil
		}},
		{"failing", func(context.Context) error { stopped = append(stopped, "failing"); return errors.New("boom") }},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	done := make(chan struct{})
	go func() { m.stopRoles(ctx); close(done) }()
	testutil.WaitFor(t, 10*time.Second, "the slow role's warning", func() bool {
		return strings.Contains(logs.String(), "role still stopping at the leave deadline")
	})
	select {
	case <-done:
		t.Fatal("stopRoles returned while a role was still stopping")
	default:
	}
	close(release)
	<-done
	if strings.Join(stopped, ",") != "failing,slow,first" {
		t.Errorf("roles stopped: %v, want failing, slow, first (last started first, each waited for)", stopped)
	}
	if !sawDeadline {
		t.Error("a role's stop was not given the leave deadline")
	}
	for _, want := range []string{`"role":"slow"`, "stop role failed", "boom"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("logs lack %q:\n%s", want, logs.String())
		}
	}
}

// A start that fails (here: the internal API's port is taken) reports
// which flags to look at and leaves nothing running or open: the data
// directory can be opened again at once.
func TestStartFailureCleansUp(t *testing.T) {
	testutil.CheckNoLeaks(t, "gearbox/internal/member.", "gearbox/store.", "hashicorp/serf", "hashicorp/memberlist")
	ip := ips.Next()
	cfg := newTestConfig(t, "router", ip, "--router-addr", ip+":0")
	taken, err := net.Listen("tcp", cfg.InternalAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	m, err := New(cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	err = m.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "--internal-port") {
		t.Fatalf("start on a taken internal port: %v, want an error naming --internal-port", err)
	}
	if err := m.Close(); err != nil {
		t.Errorf("Close after a failed start: %v", err)
	}
	// The store was closed: bbolt's file lock is free again.
	again, err := New(cfg, zerolog.Nop())
	if err != nil {
		t.Fatalf("reopen after a failed start: %v", err)
	}
	again.Close()
}

// Serve runs a member until its context ends, then leaves and returns nil.
func TestServeLeavesWhenContextEnds(t *testing.T) {
	testutil.CheckNoLeaks(t, memberLeaks...)
	ip := ips.Next()
	cfg := newTestConfig(t, "router", ip, "--router-addr", ip+":0")
	logs := &testutil.Buffer{}
	ctx, cancel := context.WithCancelCause(context.Background())
	served := make(chan error, 1)
	go func() { served <- Serve(ctx, cfg, zerolog.New(logs)) }()
	testutil.WaitFor(t, 20*time.Second, "member ready", func() bool { return strings.Contains(logs.String(), "member ready") })
	cancel(errors.New("signal terminated"))
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Serve did not return after its context ended")
	}
	for _, want := range []string{"leaving cluster", "signal terminated", "member stopped"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("logs lack %q", want)
		}
	}
	if c, err := net.DialTimeout("tcp", cfg.InternalAddr, time.Second); err == nil {
		c.Close()
		t.Error("the internal API still accepts connections after Serve returned")
	}
}

// A process that knows a member's gossip port but not the cluster secret
// cannot join: gossip is encrypted with a key derived from the secret, so
// it learns no member, no internal API address to send requests to, and
// no state; and while it listens, the member never calls the internal
// API it announces (where the secret went in the clear before it was
// proved by mutual TLS instead).
func TestJoinWithoutTheSecretFails(t *testing.T) {
	m, cfg := startRouterMember(t, nil)
	if _, err := m.Store().Put(context.Background(), "apps", "secret-app", "state only members may read"); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name    string
		key     []byte
		control bool // with the cluster's key: the trap must see the member
	}{
		{"no gossip key", nil, false},
		{"another secret's key", store.DeriveGossipKey("not-the-cluster-secret"), false},
		{"the cluster's key (control)", store.DeriveGossipKey(cfg.Store.ClusterSecret), true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			aip := ips.Next()
			// The attacker announces an internal API of its own, where a
			// member that took it in would send anti-entropy requests:
			// the listener counts every connection made to it.
			trap, err := net.Listen("tcp", aip+":7947")
			if err != nil {
				t.Fatal(err)
			}
			defer trap.Close()
			var dialed atomic.Int32
			go func() {
				for {
					c, err := trap.Accept()
					if err != nil {
						return
					}
					dialed.Add(1)
					c.Close()
				}
			}()
			ac := store.LocalConfig("mallory", t.TempDir(), aip)
			ac.EncryptKey = tt.key
			ac.ClusterSecret = "not-the-cluster-secret"
			ac.InternalPort = 7947
			attacker, err := store.New(ac)
			if err != nil {
				t.Fatal(err)
			}
			defer attacker.Close()
			if err := attacker.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			reached, _ := attacker.Join([]string{net.JoinHostPort(cfg.Store.BindAddr, "7946")})
			if tt.control {
				testutil.WaitFor(t, 15*time.Second, "the member dialing the internal API of a member it took in",
					func() bool { return reached == 1 && dialed.Load() > 0 })
				return
			}
			if reached != 0 {
				t.Errorf("the join reached %d members", reached)
			}
			// It listens while the member writes and runs three rounds
			// of anti-entropy: a negative, so a fixed time.
			for i := range 3 {
				if _, err := m.Store().Put(context.Background(), "apps", fmt.Sprintf("app-%d", i), "more state"); err != nil {
					t.Fatal(err)
				}
				time.Sleep(cfg.Store.AntiEntropyInterval)
			}
			if n := dialed.Load(); n != 0 {
				t.Errorf("the member connected to the attacker's internal API %d times", n)
			}
			for _, mem := range attacker.Members() {
				if mem.Name != "mallory" {
					t.Errorf("learned of member %s (internal API %s)", mem.Name, mem.InternalAddr)
				}
			}
			for _, mem := range m.Store().Members() {
				if mem.Name == "mallory" {
					t.Errorf("the member took the attacker in: %+v", mem)
				}
			}
			if n, err := attacker.Dump(); err != nil || len(n) != 0 {
				t.Errorf("the attacker holds %d records (%v)", len(n), err)
			}
		})
	}
}

// A peer that cannot prove it holds the cluster secret gets nothing from a
// member's internal API: not over plain HTTP, not over TLS without a
// client certificate, not with the certificate derived from another
// secret (the client does not check the member, so that the refusal is
// the member's). With the secret, the same request is answered.
func TestInternalAPIRefusesPeersWithoutTheSecret(t *testing.T) {
	m, cfg := startRouterMember(t, nil)
	if _, err := m.Store().Put(context.Background(), "apps", "secret-app", "state only members may read"); err != nil {
		t.Fatal(err)
	}
	otherSecret := internalapi.ClientTLS("not-the-cluster-secret")
	otherSecret.VerifyConnection = nil
	secret := cfg.Store.ClusterSecret
	for _, tt := range []struct {
		name   string
		scheme string
		tls    *tls.Config
		auth   string
		wantOK bool
	}{
		{"plain http", "http", nil, "", false},
		{"plain http, secret as bearer", "http", nil, "Bearer " + secret, false},
		{"tls without a client certificate", "https", &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true}, "", false},
		{"tls without a client certificate, secret as bearer", "https", &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true}, "Bearer " + secret, false},
		{"another secret's certificate", "https", otherSecret, "", false},
		{"the secret's certificate", "https", internalapi.ClientTLS(secret), "", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tr := &http.Transport{Proxy: nil, TLSClientConfig: tt.tls, DisableKeepAlives: true}
			defer tr.CloseIdleConnections()
			for _, path := range []string{internalapi.PathMembers, internalapi.PathStoreStatus, internalapi.PathRouterStatus} {
				req, _ := http.NewRequest(http.MethodGet, tt.scheme+"://"+cfg.InternalAddr+path, nil)
				if tt.auth != "" {
					req.Header.Set("Authorization", tt.auth)
				}
				resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Do(req)
				var code int
				var body []byte
				if err == nil {
					body, _ = io.ReadAll(resp.Body)
					resp.Body.Close()
					code = resp.StatusCode
				}
				if tt.wantOK {
					if err != nil || code != http.StatusOK {
						t.Errorf("GET %s: %d %s %v", path, code, body, err)
					}
					continue
				}
				if code == http.StatusOK || bytes.Contains(body, []byte(cfg.Store.Name)) || bytes.Contains(body, []byte("records")) {
					t.Errorf("GET %s: %d %s", path, code, body)
				}
			}
		})
	}
}

// A peer that trickles a request to the internal API is cut off after
// the read time-out instead of holding the connection forever.
func TestInternalAPICutsTrickledRequests(t *testing.T) {
	_, cfg := startRouterMember(t, func(c *Config) { c.InternalReadTimeout = 300 * time.Millisecond })
	// A peer with the secret: the handshake passes, the request trickles.
	c, err := tls.Dial("tcp", cfg.InternalAddr, internalapi.ClientTLS(cfg.Store.ClusterSecret))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("POST /internal/v1/store/put HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{")); err != nil {
		t.Fatal(err)
	}
	// Keep trickling a byte at a time; the server must end the
	// connection (the read of its answer returns) within a few time-outs.
	closed := make(chan struct{})
	go func() {
		buf := make([]byte, 512)
		for {
			if _, err := c.Read(buf); err != nil {
				close(closed)
				return
			}
		}
	}()
	deadline := time.After(10 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-closed:
			return
		case <-deadline:
			t.Fatal("a trickled request still holds its connection after 10 s")
		case <-tick.C:
			c.Write([]byte(" "))
		}
	}
}

// The internal API cuts a peer that stops reading its answer (each write
// must be taken within InternalWriteTimeout), and caps connections: one
// over the cap is closed as soon as it is accepted, before any TLS
// handshake, and the API serves again once connections close.
func TestInternalAPIWriteTimeoutAndConnCap(t *testing.T) {
	m, cfg := startRouterMember(t, func(c *Config) {
		c.InternalWriteTimeout = 300 * time.Millisecond
		c.InternalMaxConns, c.InternalMaxConnsPerClient = 4, 4
	})
	// An answer far larger than the sockets' buffers: 64 records of
	// 128 KiB.
	value := strings.Repeat("x", 128<<10)
	var refs []string
	for i := range 64 {
		key := fmt.Sprintf("big-%d", i)
		if _, err := m.Store().Put(context.Background(), "apps", key, value); err != nil {
			t.Fatal(err)
		}
		refs = append(refs, fmt.Sprintf(`{"b":"apps","k":%q}`, key))
	}
	dialer := &net.Dialer{Timeout: 5 * time.Second, Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	c, err := tls.DialWithDialer(dialer, "tcp", cfg.InternalAddr, internalapi.ClientTLS(cfg.Store.ClusterSecret))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	body := `{"refs":[` + strings.Join(refs, ",") + `]}`
	fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", internalapi.PathStoreGet, len(body), body)
	// The peer reads nothing: the server's write times out and the
	// connection closes.
	testutil.WaitFor(t, 15*time.Second, "the internal API closing a connection whose peer stopped reading",
		func() bool { return m.internalGuard.Conns() == 0 }, func() string { return fmt.Sprint(m.internalGuard.Conns(), " open") })
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if err == nil {
		t.Error("the whole answer came: the write was not cut")
	}

	// The cap: four connections held without a handshake, a fifth is
	// closed at once.
	var held []net.Conn
	for range 4 {
		hc, err := net.Dial("tcp", cfg.InternalAddr)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, hc)
	}
	testutil.WaitFor(t, 5*time.Second, "four connections counted", func() bool { return m.internalGuard.Conns() == 4 })
	over, err := net.Dial("tcp", cfg.InternalAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer over.Close()
	over.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := over.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Errorf("the connection over the cap: read %d, %v; want it closed (EOF)", n, err)
	}
	if n := m.internalGuard.Refused(); n == 0 {
		t.Error("no connection counted as refused")
	}
	for _, hc := range held {
		hc.Close()
	}
	cl := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: internalapi.ClientTLS(cfg.Store.ClusterSecret)}}
	testutil.WaitFor(t, 10*time.Second, "the internal API serving again", func() bool {
		resp, err := cl.Get("https://" + cfg.InternalAddr + internalapi.PathStoreStatus)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// --metrics-addr serves the metrics, and caps each scraper's address at 16
// connections: the 16th is admitted, a 17th is closed when accepted.
func TestMetricsListenerCap(t *testing.T) {
	var addr string
	startRouterMember(t, func(c *Config) {
		addr = c.Store.BindAddr + ":9100"
		c.Roles.MetricsAddr = addr
	})
	// refused reports whether the listener closed c (with or without a
	// 503) rather than waiting for its request.
	refused := func(c net.Conn) bool {
		c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		n, err := c.Read(make([]byte, 512))
		return n > 0 || errors.Is(err, io.EOF)
	}
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for i := range 16 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
		if i == 15 && refused(c) {
			t.Fatal("the 16th connection was refused")
		}
	}
	over, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer over.Close()
	if !refused(over) {
		t.Error("a 17th connection was not refused")
	}
	for _, c := range held {
		c.Close()
	}
	held = nil
	cl := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	var code int
	var body []byte
	testutil.WaitFor(t, 10*time.Second, "the metrics served once the connections closed", func() bool {
		resp, err := cl.Get("http://" + addr + "/metrics")
		if err != nil {
			return false
		}
		body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		code = resp.StatusCode
		return code == 200 && strings.Contains(string(body), "go_goroutines")
	}, func() string { return fmt.Sprintf("%d %.200s", code, body) })
}
