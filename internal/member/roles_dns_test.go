package member

import (
	"bytes"
	"context"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"

	"gearbox/store"
)

// parseDNSArgs parses args with the DNS flags.
func parseDNSArgs(t *testing.T, args ...string) (dnsOptions, error) {
	t.Helper()
	var got dnsOptions
	var perr error
	app := &cli.App{Flags: dnsFlags(), Writer: &bytes.Buffer{}, ErrWriter: &bytes.Buffer{},
		Action: func(c *cli.Context) error { got, perr = parseDNSOptions(c); return nil }}
	if err := app.Run(append([]string{"gearbox"}, args...)); err != nil {
		t.Fatalf("flags %v: %v", args, err)
	}
	return got, perr
}

func TestDNSFlags(t *testing.T) {
	o, err := parseDNSArgs(t)
	if err != nil {
		t.Fatal(err)
	}
	if o.Addr != ":53" || o.TTL != 30*time.Second || o.NegativeTTL != 10*time.Second || !o.ManageHADNS ||
		o.RouterHostname != "" || len(o.AllowTransfer) != 0 || o.RateLimit != 200 {
		t.Errorf("defaults %+v", o)
	}
	o, err = parseDNSArgs(t, "--dns-addr", "127.0.0.1:5353", "--dns-ttl", "1m", "--dns-negative-ttl", "5s",
		"--router-hostname", "router.example.com", "--dns-allow-transfer", "192.0.2.1,10.0.0.0/8", "--dns-allow-transfer", "[2001:db8::1]:5353")
	if err != nil {
		t.Fatal(err)
	}
	if o.Addr != "127.0.0.1:5353" || o.TTL != time.Minute || o.NegativeTTL != 5*time.Second || o.RouterHostname != "router.example.com" ||
		!slices.Equal(o.AllowTransfer, []string{"192.0.2.1", "10.0.0.0/8", "[2001:db8::1]:5353"}) {
		t.Errorf("set %+v", o)
	}
	if o, err := parseDNSArgs(t, "--dns-addr", ""); err != nil || o.Addr != "" {
		t.Errorf("empty --dns-addr: %+v, %v", o, err)
	}
	if o, err := parseDNSArgs(t, "--manage-ha-dns=false"); err != nil || o.ManageHADNS {
		t.Errorf("--manage-ha-dns=false: %+v, %v", o, err)
	}
	if o, err := parseDNSArgs(t, "--dns-rate-limit", "0"); err != nil || o.RateLimit != 0 {
		t.Errorf("--dns-rate-limit 0: %+v, %v", o, err)
	}
	if o, err := parseDNSArgs(t, "--dns-rate-limit", "1000"); err != nil || o.RateLimit != 1000 {
		t.Errorf("--dns-rate-limit 1000: %+v, %v", o, err)
	}

	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--dns-addr", "53"}, `--dns-addr "53": want HOST:PORT`},
		{[]string{"--dns-addr", ":0"}, `--dns-addr ":0": want HOST:PORT`},
		{[]string{"--dns-addr", ":70000"}, `--dns-addr ":70000"`},
		{[]string{"--dns-addr", "ns.example.com:53"}, "--dns-addr \"ns.example.com:53\": the host must be an IP address"},
		{[]string{"--dns-ttl", "0s"}, "--dns-ttl 0s: want whole seconds"},
		{[]string{"--dns-ttl", "1500ms"}, "--dns-ttl 1.5s: want whole seconds"},
		{[]string{"--dns-negative-ttl", "720h"}, "--dns-negative-ttl 720h0m0s: want whole seconds from 1s to 168h0m0s"},
		{[]string{"--router-hostname", "not a name"}, `--router-hostname "not a name": want a host name`},
		{[]string{"--router-hostname", "10.0.0.1"}, `--router-hostname "10.0.0.1": want a host name`},
		{[]string{"--router-hostname", "r.example.com", "--manage-ha-dns=false"}, "--router-hostname has no use with --manage-ha-dns=false"},
		{[]string{"--dns-rate-limit", "-1"}, "--dns-rate-limit -1: want responses a second"},
		{[]string{"--dns-rate-limit", "2000000"}, "--dns-rate-limit 2000000: want responses a second"},
		{[]string{"--dns-allow-transfer", "ns2.example.com"}, `--dns-allow-transfer: "ns2.example.com" is not an IP, IP:port or CIDR`},
	} {
		_, err := parseDNSArgs(t, tt.args...)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: error %v, want one with %q", tt.args, err, tt.want)
		}
	}
	// Every error is told at once.
	_, err = parseDNSArgs(t, "--dns-addr", "x", "--dns-ttl", "0s")
	if err == nil || !strings.Contains(err.Error(), "--dns-addr") || !strings.Contains(err.Error(), "--dns-ttl") {
		t.Errorf("two bad flags: %v", err)
	}
}

func TestDNSFlagsInServeHelp(t *testing.T) {
	var stdout bytes.Buffer
	if err := newApp(&stdout, &bytes.Buffer{}).Run([]string{"gearbox", "serve", "--help"}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"dns", "--dns-addr", "GEARBOX_DNS_ADDR", "--dns-ttl", "--dns-negative-ttl", "--router-hostname",
		"--manage-ha-dns", "--dns-allow-transfer"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("serve --help does not mention %s", want)
		}
	}
}

// A default --dns-addr that cannot be bound leaves the broker without DNS
// and says so; one given on the command line fails the start.
func TestStartDNSDefaultAddrTaken(t *testing.T) {
	sc := store.LocalConfig("dns1", t.TempDir(), "127.0.0.1")
	st, err := store.New(sc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	taken := pc.LocalAddr().String()
	for _, def := range []bool{true, false} {
		var cfg Config
		cfg.Domain = "example.com"
		cfg.Roles.HAPrefix = "ha-"
		cfg.Roles.DNS = dnsOptions{Addr: taken, TTL: 30 * time.Second, NegativeTTL: 10 * time.Second, ManageHADNS: true, Default: def}
		var logs bytes.Buffer
		cfg.Store.Logger = zerolog.New(&logs)
		m := &Member{cfg: cfg, st: st, log: cfg.Store.Logger}
		err := m.startDNS(context.Background(), cfg)
		if def {
			if err != nil || !strings.Contains(logs.String(), "dns not started") {
				t.Errorf("default address taken: %v; logs %s", err, logs.String())
			}
			m.stopRoles(context.Background())
		} else if err == nil || !strings.Contains(err.Error(), "--dns-addr") {
			t.Errorf("given address taken: %v, want an error naming --dns-addr", err)
		}
	}
}
