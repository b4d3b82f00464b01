package cli

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// passwordFile writes content to a new file with mode and returns its
// path.
func passwordFile(t *testing.T, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // whatever the umask
		t.Fatal(err)
	}
	return p
}

// TestPasswordFlagsRefused: a password on the command line, where every
// process on the host can read it, is refused with the alternatives
// named, before anything is sent, whichever command and password it is.
func TestPasswordFlagsRefused(t *testing.T) {
	fb := newFakeBroker(t)
	fb.on("GET", "/broker/rest/domains", fakeReply{data: `[]`})
	const pw = "s3cret-pw"
	caller := []string{"--password would put a password on the command line, where every process on this host can read it",
		"GEARBOX_PASSWORD", "--password-file FILE", "asked on a terminal"}
	for _, tt := range []struct {
		args []string
		want []string
	}{
		{[]string{"domain", "list", "--password", pw}, caller},
		{[]string{"domain", "list", "--user", "demo", "--password=" + pw}, caller},
		{[]string{"app", "show", "web", "-n", "ns", "--password", pw}, caller},
		{[]string{"login", "--user", "demo", "--password", pw}, caller},
		{[]string{"token", "list", "--password", pw}, caller},
		{[]string{"user", "list", "--password", pw}, caller},
		// On user create and set, --password was the new password.
		{[]string{"user", "create", "bob", "--password", pw}, []string{"--password would put a password on the command line",
			"for the user's new password, set GEARBOX_NEW_PASSWORD or give --new-password-file FILE",
			"for the password of --user, set GEARBOX_PASSWORD or give --password-file FILE"}},
		{[]string{"user", "set", "bob", "--password", pw}, []string{"GEARBOX_NEW_PASSWORD", "GEARBOX_PASSWORD"}},
		{[]string{"user", "list", "--auth-password", pw}, []string{"--auth-password would put a password on the command line",
			"for the password of --user, set GEARBOX_PASSWORD or give --password-file FILE"}},
		{[]string{"user", "create", "bob", "--user", "root", "--auth-password", pw}, []string{"--auth-password would put", "GEARBOX_PASSWORD"}},
		{[]string{"user", "set", "bob", "--change-password", "--new-password", pw}, []string{"--new-password would put",
			"for the user's new password, set GEARBOX_NEW_PASSWORD or give --new-password-file FILE"}},
		{[]string{"user", "create", "bob", "--new-password", pw}, []string{"--new-password would put", "GEARBOX_NEW_PASSWORD"}},
		// Refused even where it would not be used.
		{[]string{"user", "set", "bob", "--ha", "--current-password", pw}, []string{"--current-password would put",
			"for your current password, set GEARBOX_CURRENT_PASSWORD or give --current-password-file FILE"}},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			_, _, err := runCLI(t, tt.args...)
			if err == nil {
				t.Fatal("accepted")
			}
			wantContains(t, "error", err.Error(), tt.want...)
			if strings.Contains(err.Error(), pw) || strings.Contains(err.Error(), "\n") {
				t.Errorf("error shows the password or spans lines: %q", err)
			}
			if reqs := fb.requests(); len(reqs) > 0 {
				t.Errorf("the broker was called: %+v", reqs)
			}
		})
	}
}

// TestPasswordSources: each password comes from its variable or from a
// file that only its owner may read; a file others may read, or both a
// file and the variable, are refused before anything is sent.
func TestPasswordSources(t *testing.T) {
	fb := newFakeBroker(t)
	fb.on("GET", "/broker/rest/domains", fakeReply{data: `[]`})
	fb.on("PUT", "/broker/rest/users/admin", fakeReply{data: userJSON})
	os.Unsetenv("GEARBOX_PASSWORD")
	good := passwordFile(t, " from-file-1 \n", 0o600)
	for _, tt := range []struct {
		name    string
		args    []string
		env     map[string]string
		auth    string            // the password of admin sent
		params  map[string]string // sent by user set
		wantErr string
	}{
		{"caller from environment", []string{"domain", "list"}, map[string]string{"GEARBOX_PASSWORD": "from-env-1"}, "from-env-1", nil, ""},
		{"caller from file", []string{"domain", "list", "--password-file", good}, nil, "from-file-1", nil, ""},
		{"caller from file named in environment", []string{"domain", "list"}, map[string]string{"GEARBOX_PASSWORD_FILE": good}, "from-file-1", nil, ""},
		{"caller file readable by the group", []string{"domain", "list", "--password-file", passwordFile(t, "pw", 0o640)}, nil, "", nil,
			"may be read or written by other users (mode 0640)"},
		{"caller file readable by all", []string{"domain", "list", "--password-file", passwordFile(t, "pw", 0o604)}, nil, "", nil,
			"may be read or written by other users (mode 0604): make it readable by its owner only"},
		{"caller file missing", []string{"domain", "list", "--password-file", filepath.Join(t.TempDir(), "none")}, nil, "", nil, "no such file"},
		{"caller file and environment", []string{"domain", "list", "--password-file", good}, map[string]string{"GEARBOX_PASSWORD": "x"}, "", nil,
			"--password-file and GEARBOX_PASSWORD are both set: give one"},
		{"new and current from environment", []string{"user", "set", "admin", "--change-password"},
			map[string]string{"GEARBOX_PASSWORD": "caller-1", "GEARBOX_NEW_PASSWORD": "new-pass-1", "GEARBOX_CURRENT_PASSWORD": "current-1"}, "caller-1",
			map[string]string{"password": "new-pass-1", "current_password": "current-1"}, ""},
		{"new and current from files", []string{"user", "set", "admin", "--change-password", "--new-password-file", good,
			"--current-password-file", passwordFile(t, "current-2\n", 0o600)}, map[string]string{"GEARBOX_PASSWORD": "caller-1"}, "caller-1",
			map[string]string{"password": "from-file-1", "current_password": "current-2"}, ""},
		{"new file readable by others", []string{"user", "set", "admin", "--change-password", "--new-password-file", passwordFile(t, "pw", 0o644)},
			map[string]string{"GEARBOX_PASSWORD": "caller-1"}, "", nil, "--new-password-file: "},
		{"current file readable by others", []string{"user", "set", "admin", "--change-password", "--current-password-file", passwordFile(t, "pw", 0o644)},
			map[string]string{"GEARBOX_PASSWORD": "caller-1", "GEARBOX_NEW_PASSWORD": "new-pass-1"}, "", nil, "--current-password-file: "},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			_, _, err := runCLI(t, tt.args...)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				if reqs := fb.requests(); len(reqs) > 0 {
					t.Errorf("the broker was called: %+v", reqs)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			r := fb.last()
			if r.Auth != basicAuth("admin", tt.auth) {
				t.Errorf("auth = %q, want admin's password %q", r.Auth, tt.auth)
			}
			for k, v := range tt.params {
				if got := r.Form.Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
		})
	}
}

// TestPasswordMissingNoTerminal: without a terminal, a password that is
// not given is a clear error at once; the command never waits on
// standard input, here a pipe that stays open.
func TestPasswordMissingNoTerminal(t *testing.T) {
	fb := newFakeBroker(t)
	os.Unsetenv("GEARBOX_PASSWORD")
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	for _, tt := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"login", "--user", "demo"}, nil, "no password for demo: set GEARBOX_PASSWORD or give --password-file FILE (readable by you only), or run this on a terminal to be asked for it"},
		{[]string{"domain", "list", "--user", "demo"}, nil, "--user demo needs a password: set GEARBOX_PASSWORD or give --password-file FILE"},
		{[]string{"user", "create", "bob"}, map[string]string{"GEARBOX_PASSWORD": "caller-1"}, "no password for the new user: set GEARBOX_NEW_PASSWORD"},
		{[]string{"user", "set", "bob", "--change-password"}, map[string]string{"GEARBOX_PASSWORD": "caller-1"}, "no new password: set GEARBOX_NEW_PASSWORD"},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			done := make(chan error, 1)
			go func() {
				app := newApp(io.Discard, io.Discard)
				app.Reader = r
				done <- app.Run(append([]string{"gearbox"}, tt.args...))
			}()
			select {
			case err := <-done:
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("err = %v, want one containing %q", err, tt.want)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("still waiting for a password after 10 s")
			}
			if reqs := fb.requests(); len(reqs) > 0 {
				t.Errorf("the broker was called: %+v", reqs)
			}
		})
	}
}
