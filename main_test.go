package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestUsageErrors runs the command line in-process with arguments that
// must fail before anything starts, and checks the errors are one clear
// line and nothing else is printed.
func TestUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"bogus"}, `unknown command "bogus"`},
		{[]string{"--bogus"}, "unknown flag --bogus; run 'gearbox --help' for usage"},
		{[]string{"serve", "--bogus"}, "unknown flag --bogus; run 'gearbox serve --help' for usage"},
		{[]string{"serve", "--log-format", "json"}, "--log-format is a global flag: give it before the command, as in 'gearbox --log-format ... serve'"},
		{[]string{"members", "--log-level=debug"}, "--log-level is a global flag"},
		{[]string{"serve", "--serf-port", "x"}, `invalid value "x" for flag --serf-port`},
		{[]string{"serve", "extra"}, `serve takes no arguments, got "extra"`},
		{[]string{"serve", "--role", "bogus"}, `--role: unknown role "bogus"`},
		{[]string{"serve", "--internal-port", "0"}, "--internal-port 0 is out of range: want 1-65535"},
		{[]string{"serve", "--encrypt", "short"}, "--encrypt would put a secret on the command line"},
		{[]string{"serve", "--cluster-secret", "s3cret"}, "--cluster-secret would put a secret on the command line, where every process on this host can read it: " +
			"write it to a file only you can read and give --cluster-secret-file FILE, or set GEARBOX_CLUSTER_SECRET"},
		{[]string{"serve", "--bootstrap-admin", "admin:password1"}, "--bootstrap-admin would put a secret on the command line"},
		{[]string{"serve", "--data-dir", "/nonexistent"}, "no cluster secret"},
		{[]string{"serve", "--max-clock-skew", "48h"}, "--max-clock-skew 48h0m0s must be positive and shorter than the tombstone lifetime"},
		{[]string{"serve", "--max-clock-skew", "0s"}, "--max-clock-skew 0s must be positive"},
		{[]string{"serve", "--acme-directory", "http://ca.example/dir"}, `--acme-directory "http://ca.example/dir": want the https URL of an ACME directory`},
		{[]string{"--log-level", "loud", "version"}, `--log-level "loud"`},
		{[]string{"members", "--addr", "h:0"}, `--addr "h:0"`},
		{[]string{"members", "--encrypt", "x"}, "--encrypt would put a secret on the command line"},
		{[]string{"members", "--cluster-secret", "x"}, "--cluster-secret would put a secret on the command line"},
		{[]string{"login", "--password", "x"}, "--password would put a password on the command line, where every process on this host can read it"},
		{[]string{"domain", "list", "--user", "u", "--password", "x"}, "set GEARBOX_PASSWORD or give --password-file FILE"},
		{[]string{"user", "create", "bob", "--password", "x"}, "GEARBOX_NEW_PASSWORD"},
		{[]string{"user", "list", "--auth-password", "x"}, "--auth-password would put a password on the command line"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := newApp(&stdout, &stderr).Run(append([]string{"gearbox"}, tt.args...))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans several lines: %q", err)
			}
			if stdout.Len() > 0 {
				t.Errorf("stdout = %q, want nothing", stdout.String())
			}
			if strings.Contains(stderr.String(), "Incorrect Usage") {
				t.Errorf("stderr = %q", stderr.String())
			}
		})
	}
}

func TestHelpAndVersion(t *testing.T) {
	for _, args := range [][]string{{}, {"--help"}, {"serve", "--help"}, {"members", "--help"}, {"version"}, {"--version"}} {
		var stdout, stderr bytes.Buffer
		if err := newApp(&stdout, &stderr).Run(append([]string{"gearbox"}, args...)); err != nil {
			t.Errorf("%v: %v", args, err)
		}
		if stdout.Len() == 0 {
			t.Errorf("%v printed nothing", args)
		}
	}
	var stdout bytes.Buffer
	if err := newApp(&stdout, &bytes.Buffer{}).Run([]string{"gearbox", "serve", "--help"}); err != nil {
		t.Fatal(err)
	}
	for _, env := range []string{"GEARBOX_ROLE", "GEARBOX_NAME", "GEARBOX_DATA_DIR", "GEARBOX_BIND", "GEARBOX_ADVERTISE",
		"GEARBOX_SERF_PORT", "GEARBOX_INTERNAL_PORT", "GEARBOX_JOIN", "GEARBOX_ENCRYPT", "GEARBOX_CLUSTER_SECRET", "--cluster-secret-file", "--encrypt-file", "--bootstrap-admin-file",
		"GEARBOX_DOMAIN", "GEARBOX_ZONE", "GEARBOX_REGION", `(default: "/var/lib/gearbox")`, "(default: 7946)", "(default: 7947)"} {
		if !strings.Contains(stdout.String(), env) {
			t.Errorf("serve --help does not mention %s", env)
		}
	}
}
