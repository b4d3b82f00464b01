package member

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"gearbox/internal/testutil"
	"gearbox/store"
)

func TestParseRoles(t *testing.T) {
	tests := []struct {
		in      string
		want    []string
		wantErr string
	}{
		{in: "all", want: []string{"broker", "node", "router"}},
		{in: "node", want: []string{"node"}},
		{in: "router,broker", want: []string{"broker", "router"}},
		{in: " Node , node ,", want: []string{"node"}},
		{in: "all,node", want: []string{"broker", "node", "router"}},
		{in: "bogus", wantErr: `--role: unknown role "bogus"`},
		{in: "node,dns", wantErr: `unknown role "dns"`},
		{in: "", wantErr: "--role is empty"},
		{in: " , ", wantErr: "--role is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseRoles(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseRoles(%q) = %v, %v; want error containing %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("parseRoles(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestValidPort(t *testing.T) {
	for _, p := range []int{1, 7946, 65535} {
		if err := validPort("--serf-port", p); err != nil {
			t.Errorf("validPort(%d) = %v, want nil", p, err)
		}
	}
	for _, p := range []int{-1, 0, 65536, 100000} {
		err := validPort("--internal-port", p)
		if err == nil || !strings.Contains(err.Error(), "--internal-port") || !strings.Contains(err.Error(), "1-65535") {
			t.Errorf("validPort(%d) = %v, want an error naming --internal-port and the range", p, err)
		}
	}
}

func TestParseJoin(t *testing.T) {
	tests := []struct {
		in      []string
		want    []string
		wantErr string
	}{
		{in: nil, want: nil},
		{in: []string{"10.0.0.1"}, want: []string{"10.0.0.1:7946"}},
		{in: []string{"10.0.0.1:8000", "gb2.example.com"}, want: []string{"10.0.0.1:8000", "gb2.example.com:7946"}},
		{in: []string{" 10.0.0.1 ", ""}, want: []string{"10.0.0.1:7946"}},
		{in: []string{"::1"}, want: []string{"[::1]:7946"}},
		{in: []string{"[fd00::2]"}, want: []string{"[fd00::2]:7946"}},
		{in: []string{"[fd00::2]:9000"}, want: []string{"[fd00::2]:9000"}},
		{in: []string{"10.0.0.1:0"}, wantErr: `--join "10.0.0.1:0": port "0" is not in 1-65535`},
		{in: []string{"10.0.0.1:x"}, wantErr: `--join "10.0.0.1:x"`},
		{in: []string{":7946"}, wantErr: "host is empty"},
		{in: []string{"a:b:c"}, wantErr: "want host or host:port"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.in, ","), func(t *testing.T) {
			got, err := parseJoin(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseJoin(%q) = %v, %v; want error containing %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("parseJoin(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestValidDomain(t *testing.T) {
	for _, d := range []string{"example.com", "apps.example.com.", "a-b.c1", "localhost"} {
		if err := validDomain(d); err != nil {
			t.Errorf("validDomain(%q) = %v", d, err)
		}
	}
	for _, d := range []string{"", "a..b", "-a.com", "a-.com", "a b.com", "a_b.com", "apps.example.com/x", strings.Repeat("a", 64) + ".com"} {
		if err := validDomain(d); err == nil || !strings.Contains(err.Error(), "--domain") {
			t.Errorf("validDomain(%q) = %v, want an error naming --domain", d, err)
		}
	}
}

func validOptions() Options {
	return Options{
		Roles: "all", Name: "m1", DataDir: "/tmp/gearbox-test", Bind: "0.0.0.0",
		SerfPort: 7946, InternalPort: 7947, Domain: "example.com", ClusterSecret: "options-test-secret",
		LeaveTimeout: 10 * time.Second, AntiEntropyInterval: 10 * time.Second,
	}
}

func TestServeOptionsConfig(t *testing.T) {
	key := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef"))
	o := validOptions()
	o.Roles = "node"
	o.Bind = "127.0.0.11"
	o.Advertise = "10.1.2.3"
	o.InternalPort = 9000
	o.Join = []string{"127.0.0.12", "127.0.0.13:7000"}
	o.Encrypt, o.ClusterSecret = key, ""
	o.Zone, o.Region = "z1", "r1"
	o.Domain = "Apps.Example.COM."
	o.MaxClockSkew = 5 * time.Minute
	cfg, err := o.Config()
	if err != nil {
		t.Fatal(err)
	}
	sc := cfg.Store
	if sc.Name != "m1" || sc.DataDir != "/tmp/gearbox-test" || sc.BindAddr != "127.0.0.11" || sc.BindPort != 7946 ||
		sc.AdvertiseAddr != "10.1.2.3" || sc.InternalPort != 9000 || sc.Zone != "z1" || sc.Region != "r1" || sc.MaxClockSkew != 5*time.Minute {
		t.Errorf("store config = %+v", sc)
	}
	if !reflect.DeepEqual(sc.Roles, []string{"node"}) {
		t.Errorf("Roles = %v", sc.Roles)
	}
	if !reflect.DeepEqual(sc.Join, []string{"127.0.0.12:7946", "127.0.0.13:7000"}) {
		t.Errorf("Join = %v", sc.Join)
	}
	if string(sc.EncryptKey) != "0123456789abcdef" {
		t.Errorf("EncryptKey = %q", sc.EncryptKey)
	}
	want, _ := store.DeriveSecret(key)
	if sc.ClusterSecret != want || !cfg.SecretDerived {
		t.Errorf("ClusterSecret = %q (derived %v), want %q derived", sc.ClusterSecret, cfg.SecretDerived, want)
	}
	if cfg.InternalAddr != "127.0.0.11:9000" {
		t.Errorf("InternalAddr = %q", cfg.InternalAddr)
	}
	if cfg.Domain != "apps.example.com" {
		t.Errorf("Domain = %q", cfg.Domain)
	}

	cfg, err = validOptions().Config()
	if err != nil {
		t.Fatal(err)
	}
	// A cluster secret alone also encrypts gossip, with a key derived
	// from it: the same on every member that holds the secret.
	if cfg.Store.ClusterSecret != "options-test-secret" || cfg.SecretDerived ||
		string(cfg.Store.EncryptKey) != string(store.DeriveGossipKey("options-test-secret")) || len(cfg.Store.EncryptKey) != 32 {
		t.Errorf("secret only: secret %q (derived %v), gossip key %x", cfg.Store.ClusterSecret, cfg.SecretDerived, cfg.Store.EncryptKey)
	}
	if cfg.Store.MaxClockSkew != time.Minute {
		t.Errorf("MaxClockSkew = %s by default, want 1m", cfg.Store.MaxClockSkew)
	}
	if cfg.InternalAddr != "0.0.0.0:7947" {
		t.Errorf("InternalAddr = %q", cfg.InternalAddr)
	}
}

func TestServeOptionsErrors(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*Options)
		want   []string
	}{
		{"bad role", func(o *Options) { o.Roles = "bogus" }, []string{`--role: unknown role "bogus"`}},
		{"no name", func(o *Options) { o.Name = "" }, []string{"--name is required"}},
		{"name with space", func(o *Options) { o.Name = "a b" }, []string{"--name"}},
		{"no data dir", func(o *Options) { o.DataDir = "" }, []string{"--data-dir is required"}},
		{"bind not ip", func(o *Options) { o.Bind = "localhost" }, []string{`--bind "localhost" is not an IP address`}},
		{"advertise not ip", func(o *Options) { o.Advertise = "x" }, []string{`--advertise "x"`}},
		{"serf port 0", func(o *Options) { o.SerfPort = 0 }, []string{"--serf-port 0 is out of range"}},
		{"internal port high", func(o *Options) { o.InternalPort = 70000 }, []string{"--internal-port 70000 is out of range"}},
		{"same ports", func(o *Options) { o.InternalPort = 7946 }, []string{"must differ"}},
		{"bad join", func(o *Options) { o.Join = []string{"h:99999"} }, []string{`--join "h:99999"`}},
		{"bad key", func(o *Options) { o.Encrypt = "nope" }, []string{"--encrypt: decode gossip key"}},
		{"bad key, no secret", func(o *Options) { o.Encrypt = "nope"; o.ClusterSecret = "" }, []string{"--encrypt: decode gossip key"}},
		{"no secret", func(o *Options) { o.ClusterSecret = "" }, []string{"no cluster secret", "--cluster-secret-file", "GEARBOX_CLUSTER_SECRET"}},
		{"bad domain", func(o *Options) { o.Domain = "a..b" }, []string{"--domain"}},
		{"leave timeout", func(o *Options) { o.LeaveTimeout = 0 }, []string{"--leave-timeout"}},
		{"clock skew negative", func(o *Options) { o.MaxClockSkew = -time.Second }, []string{"--max-clock-skew -1s"}},
		{"clock skew past tombstones", func(o *Options) { o.MaxClockSkew = 48 * time.Hour }, []string{"--max-clock-skew 48h0m0s", "tombstone"}},
		{"several", func(o *Options) { o.Roles = "x"; o.SerfPort = -1 }, []string{"--role", "--serf-port -1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := validOptions()
			tt.modify(&o)
			_, err := o.Config()
			if err == nil {
				t.Fatal("config() succeeded, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q spans several lines", err)
			}
			if strings.Count(err.Error(), "--encrypt") > 1 {
				t.Errorf("error %q reports --encrypt twice", err)
			}
		})
	}
}

// The --acme-* flags: off by default, read into the broker's config, and
// refused with the flag's name when wrong.
func TestACMEFlags(t *testing.T) {
	ro, err := RoleOptionsFromArgs(nil)
	if err != nil || ro.Broker.ACME.Directory != "" {
		t.Fatalf("defaults: %+v, %v; want ACME off", ro.Broker.ACME, err)
	}
	dir := t.TempDir()
	ca := testutil.NewCA(t, "ACME CA")
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, []byte(ca.PEM), 0o600); err != nil {
		t.Fatal(err)
	}
	ro, err = RoleOptionsFromArgs([]string{"--acme-directory", "https://ca.example/dir", "--acme-email", "ops@example.org",
		"--acme-ca-file", caFile, "--acme-resolver", "127.0.0.1:5353", "--acme-renew-before", "240h"})
	if a := ro.Broker.ACME; err != nil || a.Directory != "https://ca.example/dir" || a.Email != "ops@example.org" || a.Roots == nil ||
		a.Resolver != "127.0.0.1:5353" || a.RenewBefore != 240*time.Hour {
		t.Errorf("parsed %+v, %v", a, err)
	}
	notPEM := filepath.Join(dir, "not.pem")
	os.WriteFile(notPEM, []byte("hello"), 0o600)
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--acme-directory", "http://ca.example/dir"}, "--acme-directory"},
		{[]string{"--acme-directory", "https://ca.example/dir", "--acme-ca-file", filepath.Join(dir, "none.pem")}, "--acme-ca-file"},
		{[]string{"--acme-directory", "https://ca.example/dir", "--acme-ca-file", notPEM}, "holds no PEM certificate"},
		{[]string{"--acme-directory", "https://ca.example/dir", "--acme-resolver", "nope"}, "--acme-resolver"},
		{[]string{"--acme-directory", "https://ca.example/dir", "--acme-renew-before", "0s"}, "--acme-renew-before"},
	} {
		if _, err := RoleOptionsFromArgs(tt.args); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: %v, want an error naming %s", tt.args, err, tt.want)
		}
	}
}
