package member

import (
	"flag"
	"io"
	"maps"
	"slices"
	"testing"

	"gearbox/node"
	"gearbox/store/state"

	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"512MiB", 512 << 20, true},
		{"1GiB", 1 << 30, true},
		{"100MB", 100e6, true},
		{"4096", 4096, true},
		{" 2 kib ", 2048, true},
		{"10B", 10, true},
		{"0", 0, false},
		{"-1MiB", 0, false},
		{"MiB", 0, false},
		{"12XB", 0, false},
		{"1.5GiB", 0, false},
		{"", 0, false},
		{"99999999999GiB", 0, false},
	}
	for _, tt := range tests {
		got, err := parseSize(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestParsePortRange(t *testing.T) {
	if lo, hi, err := parsePortRange("35531-65535"); err != nil || lo != 35531 || hi != 65535 {
		t.Errorf("default range: %d-%d, %v", lo, hi, err)
	}
	for _, bad := range []string{"", "80", "0-10", "10-5", "1-70000", "a-b"} {
		if _, _, err := parsePortRange(bad); err == nil {
			t.Errorf("parsePortRange(%q) accepted", bad)
		}
	}
}

func TestParseUIDRange(t *testing.T) {
	if lo, hi, err := parseUIDRange("40000-59999"); err != nil || lo != 40000 || hi != 59999 {
		t.Errorf("default range: %d-%d, %v", lo, hi, err)
	}
	for _, bad := range []string{"", "40000", "0-100", "999-2000", "5000-5000", "6000-5000", "a-b", "1000-2147483647"} {
		if _, _, err := parseUIDRange(bad); err == nil {
			t.Errorf("parseUIDRange(%q) accepted", bad)
		}
	}
}

func TestParseGearLimits(t *testing.T) {
	def := formatGearLimits(node.DefaultLimits)
	if def != "small=512MiB/256,medium=1GiB/512,large=2GiB/1024" {
		t.Errorf("default --gear-limits %q", def)
	}
	got, err := parseGearLimits(def)
	if err != nil || !maps.Equal(got, node.DefaultLimits) {
		t.Errorf("parseGearLimits(%q) = %v, %v", def, got, err)
	}
	got, err = parseGearLimits(" medium = 768MiB/300 ")
	if err != nil || got[state.SizeMedium] != (node.Limits{Memory: 768 << 20, Procs: 300}) ||
		got[state.SizeSmall] != node.DefaultLimits[state.SizeSmall] {
		t.Errorf("one size: %v, %v", got, err)
	}
	for _, bad := range []string{"small", "small=512MiB", "huge=1GiB/10", "small=1MiB/256", "small=512MiB/2", "small=x/1"} {
		if _, err := parseGearLimits(bad); err == nil {
			t.Errorf("parseGearLimits(%q) accepted", bad)
		}
	}
}

// serveRoleOptions parses args as `gearbox serve` flags and returns the
// role options they make.
func serveRoleOptions(t *testing.T, args ...string) RoleOptions {
	t.Helper()
	set := flag.NewFlagSet("serve", flag.ContinueOnError)
	set.SetOutput(io.Discard)
	for _, f := range ServeCommand(new(zerolog.Logger)).Flags {
		if err := f.Apply(set); err != nil {
			t.Fatal(err)
		}
	}
	if err := set.Parse(args); err != nil {
		t.Fatal(err)
	}
	o, err := ParseRoleOptions(cli.NewContext(&cli.App{}, set, nil))
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// A specific --bind is the default host of every listener, so that
// members on one host (--bind 127.0.0.21, .22, ...) do not collide on
// :80; a listener's own flag wins, and a wildcard --bind changes nothing.
func TestListenersFollowBind(t *testing.T) {
	addrs := func(o RoleOptions) []string {
		return []string{o.Broker.APIAddr, o.HTTPAddr, o.Router.HTTPAddr, o.DNS.Addr}
	}
	for _, tt := range []struct {
		args []string
		want []string
	}{
		{nil, []string{":7480", ":80", ":80", ":53"}},
		{[]string{"--bind", "0.0.0.0"}, []string{":7480", ":80", ":80", ":53"}},
		{[]string{"--bind", "127.0.0.21"}, []string{"127.0.0.21:7480", "127.0.0.21:80", "127.0.0.21:80", "127.0.0.21:53"}},
		{[]string{"--bind", "::1"}, []string{"[::1]:7480", "[::1]:80", "[::1]:80", "[::1]:53"}},
		{[]string{"--bind", "127.0.0.22", "--http-addr", ":8081", "--dns-addr", ""},
			[]string{"127.0.0.22:7480", ":8081", "127.0.0.22:80", ""}},
		{[]string{"--bind", "127.0.0.23", "--api-addr", "10.0.0.1:7480", "--router-addr", ":9090"},
			[]string{"10.0.0.1:7480", "127.0.0.23:80", ":9090", "127.0.0.23:53"}},
	} {
		got := addrs(serveRoleOptions(t, tt.args...))
		if !slices.Equal(got, tt.want) {
			t.Errorf("%v: api, front, router, dns = %q, want %q", tt.args, got, tt.want)
		}
	}
}
