package cmdline

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// secretContext parses args with the flags of one secret, as a command
// would.
func secretContext(t *testing.T, args ...string) *cli.Context {
	t.Helper()
	set := flag.NewFlagSet("test", flag.ContinueOnError)
	set.SetOutput(io.Discard)
	for _, f := range SecretFlags("cluster-secret", "TEST_SECRET", "", "a test secret") {
		if err := f.Apply(set); err != nil {
			t.Fatal(err)
		}
	}
	if err := set.Parse(args); err != nil {
		t.Fatal(err)
	}
	return cli.NewContext(&cli.App{}, set, nil)
}

// A secret comes from a file only its owner may read, or from the
// environment; on the command line (readable by every process on the
// host in /proc/PID/cmdline) it is refused with the alternatives named.
func TestSecret(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good", "  s3cret-from-file\n", 0o600)
	open := write("open", "s3cret", 0o644)
	empty := write("empty", "\n", 0o600)
	for _, tt := range []struct {
		name    string
		args    []string
		env     string
		want    string
		wantErr string
	}{
		{"none", nil, "", "", ""},
		{"file", []string{"--cluster-secret-file", good}, "", "s3cret-from-file", ""},
		{"environment", nil, " s3cret-from-env ", "s3cret-from-env", ""},
		{"command line", []string{"--cluster-secret", "s3cret"}, "", "", "--cluster-secret would put a secret on the command line"},
		{"file readable by others", []string{"--cluster-secret-file", open}, "", "", "may be read or written by other users (mode 0644)"},
		{"empty file", []string{"--cluster-secret-file", empty}, "", "", "is empty"},
		{"missing file", []string{"--cluster-secret-file", filepath.Join(dir, "none")}, "", "", "no such file"},
		{"file and environment", []string{"--cluster-secret-file", good}, "x", "", "give one"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("GEARBOX_TEST_SECRET", tt.env)
			got, err := Secret(secretContext(t, tt.args...), "cluster-secret", "TEST_SECRET")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %q, %v; want an error containing %q", got, err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "s3cret") {
					t.Errorf("the error shows the secret: %v", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}
