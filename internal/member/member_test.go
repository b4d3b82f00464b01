package member

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"gearbox/internal/testutil"
	"gearbox/store"
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

// A member starts once, serves the internal API with its roles' handlers
// mounted, and after Leave listens no more; Leave and Close are safe to
// repeat.
func TestMemberLifecycle(t *testing.T) {
	testutil.CheckNoLeaks(t, "gearbox/internal/member.", "gearbox/store.", "gearbox/router.", "hashicorp/serf", "hashicorp/memberlist")
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
	_, members, err := store.FetchMembers(ctx, &http.Client{Timeout: 5 * time.Second}, cfg.InternalAddr, cfg.Store.ClusterSecret)
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
	if err := m.Start(ctx); !errors.Is(err, ErrStarted) {
		t.Errorf("Start after Leave: %v, want ErrStarted", err)
	}
}

// A role that does not stop within the leave deadline is logged and left
// behind: the member goes on stopping the others.
func TestStopRolesWithinDeadline(t *testing.T) {
	var logs bytes.Buffer
	m := &Member{log: zerolog.New(&logs)}
	block := make(chan struct{})
	defer close(block)
	var stopped []string
	m.roles = []roleStop{
		{"first", func(context.Context) error { stopped = append(stopped, "first"); return nil }},
		{"stuck", func(context.Context) error { <-block; return nil }},
		{"failing", func(context.Context) error { stopped = append(stopped, "failing"); return errors.New("boom") }},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	done := make(chan struct{})
	go func() { m.stopRoles(ctx); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("stopRoles waited for a stuck role past the deadline")
	}
	if strings.Join(stopped, ",") != "failing,first" {
		t.Errorf("roles stopped: %v, want failing then first (last started first)", stopped)
	}
	for _, want := range []string{"role did not stop within the leave deadline", `"role":"stuck"`, "stop role failed", "boom"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("logs lack %q:\n%s", want, logs.String())
		}
	}
}
