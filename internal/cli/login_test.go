package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const tokenJSON = `{"id": "abc123", "token": "gbx_secrettoken", "login": "demo", "note": "gearbox login",
	"created_at": "2024-05-01T10:00:00Z", "expires_at": "2024-05-31T10:00:00Z", "expires_in": 2592000}`

func TestLogin(t *testing.T) {
	fb := newFakeBroker(t)
	os.Unsetenv("GEARBOX_USER")
	os.Unsetenv("GEARBOX_PASSWORD")
	os.Unsetenv("GEARBOX_API")
	fb.on("POST", "/broker/rest/user/authorizations", fakeReply{code: 201, data: tokenJSON,
		msgs: []string{"Authorization created; the token is shown only once."}})
	fb.on("GET", "/broker/rest/domains", fakeReply{data: `[]`})
	path := filepath.Join(os.Getenv("XDG_CONFIG_HOME"), "gearbox", "credentials.json")

	t.Setenv("GEARBOX_PASSWORD", "demopass1")
	out, _, err := runCLI(t, "login", "--api", fb.srv.URL+"/", "--user", "demo")
	os.Unsetenv("GEARBOX_PASSWORD")
	if err != nil {
		t.Fatal(err)
	}
	r := fb.last()
	wantRequest(t, r, "POST", "/broker/rest/user/authorizations", nil)
	if r.Auth != basicAuth("demo", "demopass1") {
		t.Errorf("login auth = %q", r.Auth)
	}
	wantContains(t, "login", out, "Logged in to "+fb.srv.URL+" as demo.", path)

	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("credentials mode = %v, want 0600", fi.Mode().Perm())
	}
	if di, err := os.Stat(filepath.Dir(path)); err != nil || di.Mode().Perm() != 0o700 {
		t.Errorf("credentials folder: %v, %v, want mode 0700", di.Mode().Perm(), err)
	}
	raw, _ := os.ReadFile(path)
	var saved map[string]any
	if err := json.Unmarshal(raw, &saved); err != nil {
		t.Fatal(err)
	}
	if saved["api"] != fb.srv.URL || saved["user"] != "demo" || saved["token"] != "gbx_secrettoken" {
		t.Errorf("saved credentials = %v", saved)
	}
	if strings.Contains(string(raw), "demopass1") {
		t.Errorf("the password was saved")
	}

	// Later commands use the saved API and token.
	for _, args := range [][]string{{"domain", "list"}, {"domain", "list", "--api", fb.srv.URL}} {
		if _, _, err := runCLI(t, args...); err != nil {
			t.Fatal(err)
		}
		if got := fb.last().Auth; got != "Bearer gbx_secrettoken" {
			t.Errorf("%v: auth = %q, want the saved token", args, got)
		}
	}
	// --user overrides the token.
	if _, _, err := runCLI(t, "domain", "list", "--user", "admin", "--password-file", passwordFile(t, "adminpass", 0o600)); err != nil {
		t.Fatal(err)
	}
	if got := fb.last().Auth; got != basicAuth("admin", "adminpass") {
		t.Errorf("auth with --user = %q", got)
	}
	// The token is not sent to another broker.
	_, _, err = runCLI(t, "domain", "list", "--api", "http://127.0.0.1:1")
	if err == nil || !strings.Contains(err.Error(), "not logged in to http://127.0.0.1:1") {
		t.Errorf("err = %v", err)
	}
	// A refused token says how to get a new one.
	fb.on("GET", "/broker/rest/domains", fakeReply{code: 401, msgs: []string{"Invalid login or password, or the token is unknown or expired."}})
	_, _, err = runCLI(t, "domain", "list")
	if err == nil || !strings.HasPrefix(err.Error(), "Invalid login or password, or the token is unknown or expired. (the token saved by 'gearbox login' for demo at "+fb.srv.URL+" may have expired or been revoked: run 'gearbox login' again)") {
		t.Errorf("err = %v", err)
	}
	fb.requests()

	out, _, err = runCLI(t, "logout")
	if err != nil {
		t.Fatal(err)
	}
	wantContains(t, "logout", out, "Logged out of "+fb.srv.URL+" (was demo)")
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("credentials still there after logout: %v", err)
	}
	out, _, err = runCLI(t, "logout")
	if err != nil || out != "Not logged in.\n" {
		t.Errorf("second logout: %q, %v", out, err)
	}
	_, _, err = runCLI(t, "domain", "list")
	if err == nil || !strings.Contains(err.Error(), "not logged in to http://127.0.0.1:7480") {
		t.Errorf("after logout: err = %v", err)
	}
	if reqs := fb.requests(); len(reqs) > 0 {
		t.Errorf("unexpected requests: %+v", reqs)
	}
}

func TestLoginPassword(t *testing.T) {
	fb := newFakeBroker(t)
	os.Unsetenv("GEARBOX_PASSWORD")
	fb.on("POST", "/broker/rest/user/authorizations", fakeReply{code: 201, data: tokenJSON})
	path := filepath.Join(os.Getenv("XDG_CONFIG_HOME"), "gearbox", "credentials.json")

	// From a file that only its owner may read.
	if _, _, err := runCLI(t, "login", "--user", "demo", "--password-file", passwordFile(t, "file pass\n", 0o600)); err != nil {
		t.Fatal(err)
	}
	if got := fb.last().Auth; got != basicAuth("demo", "file pass") {
		t.Errorf("auth = %q", got)
	}

	// Not a terminal and no password: a clear error, and standard input
	// is not read (a password piped there is not taken either).
	os.Remove(path)
	_, _, err := runCLIWithInput(t, "piped pass\n", "login", "--user", "demo")
	if err == nil || !strings.Contains(err.Error(), "no password for demo: set GEARBOX_PASSWORD or give --password-file FILE") {
		t.Errorf("err = %v", err)
	}
	if reqs := fb.requests(); len(reqs) > 0 {
		t.Errorf("logged in without a password: %+v", reqs)
	}
	os.Unsetenv("GEARBOX_USER")
	_, _, err = runCLIWithInput(t, "pw\n", "login")
	if err == nil || err.Error() != "pass --user LOGIN (or set GEARBOX_USER)" {
		t.Errorf("err = %v", err)
	}

	// A refused login saves nothing and says why.
	fb.on("POST", "/broker/rest/user/authorizations", fakeReply{code: 401, msgs: []string{"Invalid login or password, or the token is unknown or expired."}})
	t.Setenv("GEARBOX_PASSWORD", "wrong")
	_, _, err = runCLI(t, "login", "--user", "demo")
	if err == nil || err.Error() != "Invalid login or password, or the token is unknown or expired." {
		t.Errorf("err = %v", err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("credentials saved after a refused login: %v", err)
	}
	fb.requests()
}

// TestLoginTightensFolder checks that an existing, looser gearbox folder
// is made private before the token is written into it.
func TestLoginTightensFolder(t *testing.T) {
	fb := newFakeBroker(t)
	fb.on("POST", "/broker/rest/user/authorizations", fakeReply{code: 201, data: tokenJSON})
	dir := filepath.Join(os.Getenv("XDG_CONFIG_HOME"), "gearbox")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runCLI(t, "login"); err != nil {
		t.Fatal(err)
	}
	fb.requests()
	if di, err := os.Stat(dir); err != nil || di.Mode().Perm() != 0o700 {
		t.Errorf("folder mode = %v, %v", di.Mode().Perm(), err)
	}
	left, _ := filepath.Glob(filepath.Join(dir, ".credentials-*"))
	if len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

// TestLoginCorruptFile checks that an unreadable saved login is reported
// when it is needed and ignored when --api and --user make it unneeded.
func TestLoginCorruptFile(t *testing.T) {
	fb := newFakeBroker(t)
	fb.on("GET", "/broker/rest/domains", fakeReply{data: `[]`})
	path := filepath.Join(os.Getenv("XDG_CONFIG_HOME"), "gearbox", "credentials.json")
	os.MkdirAll(filepath.Dir(path), 0o700)
	if err := os.WriteFile(path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runCLI(t, "domain", "list"); err != nil {
		t.Fatalf("with GEARBOX_API and GEARBOX_USER: %v", err)
	}
	fb.requests()
	os.Unsetenv("GEARBOX_USER")
	_, _, err := runCLI(t, "domain", "list")
	if err == nil || !strings.Contains(err.Error(), "run 'gearbox logout' to remove it") {
		t.Errorf("err = %v", err)
	}
	if out, _, err := runCLI(t, "logout"); err != nil || !strings.Contains(out, "Removed") {
		t.Errorf("logout: %q, %v", out, err)
	}
}
