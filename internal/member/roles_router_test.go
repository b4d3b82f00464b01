package member

import (
	"bytes"
	"strings"
	"testing"

	"gearbox/store"
)

// Bad --router-addr values fail before anything starts, with one line
// that names the flag; good ones pass. --internal-port 0 makes every
// run fail before a member starts.
func TestRouterAddrFlag(t *testing.T) {
	for _, tt := range []struct {
		addr string
		ok   bool
	}{
		{"80", false},
		{"127.0.0.1", false},
		{":http", false},
		{":70000", false},
		{"127.0.0.1:-1", false},
		{":80", true},
		{"127.0.0.1:0", true},
		{"localhost:8080", true},
		{"[::1]:8080", true},
		{"", true},
	} {
		var stdout, stderr bytes.Buffer
		err := newApp(&stdout, &stderr).Run([]string{"gearbox", "serve", "--router-addr", tt.addr, "--internal-port", "0"})
		if err == nil {
			t.Fatalf("--router-addr %q: serve ran", tt.addr)
		}
		if named := strings.Contains(err.Error(), `--router-addr "`+tt.addr+`"`); named == tt.ok {
			t.Errorf("--router-addr %q: %v; want the flag named only if bad", tt.addr, err)
		}
		if strings.Contains(err.Error(), "\n") || stdout.Len() > 0 {
			t.Errorf("--router-addr %q: error %q, stdout %q", tt.addr, err, stdout.String())
		}
	}
	var stdout bytes.Buffer
	if err := newApp(&stdout, &bytes.Buffer{}).Run([]string{"gearbox", "serve", "--help"}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"--router-addr", "GEARBOX_ROUTER_ADDR", `(default: ":80")`} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("serve --help does not mention %s", want)
		}
	}
}

func TestCheckRouterAddr(t *testing.T) {
	both := []string{store.RoleNode, store.RoleRouter}
	tests := []struct {
		name         string
		roles        []string
		router, http string
		ok           bool
	}{
		{"defaults on a node and router", both, ":80", ":80", false},
		{"wildcard and a specific address", both, "0.0.0.0:80", "10.0.0.5:80", false},
		{"specific and IPv6 wildcard", both, "10.0.0.5:8080", "[::]:8080", false},
		{"same address", both, "127.0.0.1:8080", "127.0.0.1:8080", false},
		{"same host name", both, "LOCALHOST:8080", "localhost:8080", false},
		{"other ports", both, ":8080", ":80", true},
		{"other addresses", both, "127.0.0.1:8080", "127.0.0.11:8080", true},
		{"ports picked by the system", both, "127.0.0.1:0", "127.0.0.1:0", true},
		{"no router listener", both, "", ":80", true},
		{"no front listener", both, ":80", "", true},
		{"router only", []string{store.RoleRouter}, ":80", ":80", true},
		{"node only", []string{store.RoleNode, store.RoleBroker}, ":80", ":80", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var cfg Config
			cfg.Store.Roles = tt.roles
			cfg.Roles.HTTPAddr = tt.http
			cfg.Roles.Router.HTTPAddr = tt.router
			moved, err := checkRouterAddr(&cfg)
			if moved {
				t.Errorf("an explicit --router-addr moved to %s", cfg.Roles.Router.HTTPAddr)
			}
			if (err == nil) != tt.ok {
				t.Errorf("checkRouterAddr: %v, want ok %v", err, tt.ok)
			}
			if err != nil && !strings.Contains(err.Error(), "--router-addr "+tt.router+" and --http-addr "+tt.http) {
				t.Errorf("error %q does not name both flags", err)
			}
		})
	}
}

// A default --router-addr on a member that is also a node moves aside for
// the front listener, so that `gearbox serve` with every role starts.
func TestRouterAddrDefaultMovesAside(t *testing.T) {
	for _, tt := range []struct{ router, http, want string }{
		{":80", ":80", ":8080"},
		{":80", "127.0.0.1:80", ":8080"},
		{":80", ":8080", ":80"},
	} {
		var cfg Config
		cfg.Store.Roles = []string{store.RoleNode, store.RoleRouter}
		cfg.Roles.HTTPAddr = tt.http
		cfg.Roles.Router = routerOptions{HTTPAddr: tt.router, Default: true}
		if _, err := checkRouterAddr(&cfg); err != nil || cfg.Roles.Router.HTTPAddr != tt.want {
			t.Errorf("router %s, front %s: got %s, %v; want %s", tt.router, tt.http, cfg.Roles.Router.HTTPAddr, err, tt.want)
		}
	}
	var cfg Config
	cfg.Store.Roles = []string{store.RoleNode, store.RoleRouter}
	cfg.Roles.HTTPAddr = ":8080"
	cfg.Roles.Router = routerOptions{HTTPAddr: ":8080", Default: true}
	if _, err := checkRouterAddr(&cfg); err == nil {
		t.Errorf("router and front both on :8080, the router's default: no error")
	}
}
