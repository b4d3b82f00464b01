package cli

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openPTY returns a new pseudo-terminal: its master, where the test
// types, and its slave, the command's standard input. It skips the test
// where the host has none to give.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Skipf("unlock pseudo-terminal: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Skipf("pseudo-terminal number: %v", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("open pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	// Drain what the terminal echoes, so that it never fills up.
	go io.Copy(io.Discard, m)
	return m, s
}

// runOnTerminal runs gearbox in-process with a pseudo-terminal as its
// standard input, on which typed has been typed, and returns its
// standard error (where prompts go).
func runOnTerminal(t *testing.T, typed string, args ...string) (stderr string, err error) {
	t.Helper()
	m, s := openPTY(t)
	if _, err := io.WriteString(m, typed); err != nil {
		t.Fatal(err)
	}
	var errOut bytes.Buffer
	done := make(chan error, 1)
	go func() {
		app := newApp(io.Discard, &errOut)
		app.Reader = s
		done <- app.Run(append([]string{"gearbox"}, args...))
	}()
	select {
	case err = <-done:
	case <-time.After(10 * time.Second):
		s.Close()
		t.Fatalf("gearbox %v still waiting after 10 s", args)
	}
	return errOut.String(), err
}

// TestPasswordPrompt: on a terminal, a password not given is asked for,
// without echo; a new one twice.
func TestPasswordPrompt(t *testing.T) {
	fb := newFakeBroker(t)
	fb.on("POST", "/broker/rest/user/authorizations", fakeReply{code: 201, data: tokenJSON})
	fb.on("GET", "/broker/rest/domains", fakeReply{data: `[]`})
	fb.on("POST", "/broker/rest/users", fakeReply{code: 201, data: userJSON})
	fb.on("PUT", "/broker/rest/users/demo", fakeReply{data: userJSON})
	os.Unsetenv("GEARBOX_PASSWORD")

	stderr, err := runOnTerminal(t, "typed pass 1\n", "login", "--user", "demo")
	if err != nil {
		t.Fatal(err)
	}
	wantContains(t, "prompt", stderr, "Password for demo at "+fb.srv.URL+": ")
	if got := fb.last().Auth; got != basicAuth("demo", "typed pass 1") {
		t.Errorf("login auth = %q", got)
	}

	if _, err := runOnTerminal(t, "typed-pass-2\n", "domain", "list", "--user", "admin"); err != nil {
		t.Fatal(err)
	}
	if got := fb.last().Auth; got != basicAuth("admin", "typed-pass-2") {
		t.Errorf("auth = %q", got)
	}

	t.Setenv("GEARBOX_PASSWORD", "caller-1")
	stderr, err = runOnTerminal(t, "new-pass-3\nnew-pass-3\n", "user", "create", "bob")
	if err != nil {
		t.Fatal(err)
	}
	wantContains(t, "prompt", stderr, "Password for new user bob: ", "Again: ")
	r := fb.last()
	if r.Form.Get("password") != "new-pass-3" || r.Auth != basicAuth("admin", "caller-1") {
		t.Errorf("user create sent password %q, auth %q", r.Form.Get("password"), r.Auth)
	}
	_, err = runOnTerminal(t, "new-pass-3\nnew-pass-4\n", "user", "create", "bob")
	if err == nil || err.Error() != "the passwords do not match" {
		t.Errorf("err = %v", err)
	}
	_, err = runOnTerminal(t, "\n", "user", "create", "bob")
	if err == nil || err.Error() != "no password for the new user" {
		t.Errorf("err = %v", err)
	}
	if reqs := fb.requests(); len(reqs) > 0 {
		t.Errorf("the broker was called: %+v", reqs)
	}

	// Changing one's own password with a saved login: the new one
	// twice, then the current one.
	if _, _, err := runCLI(t, "login", "--api", fb.srv.URL, "--user", "demo"); err != nil {
		t.Fatal(err)
	}
	fb.requests()
	os.Unsetenv("GEARBOX_USER")
	os.Unsetenv("GEARBOX_PASSWORD")
	stderr, err = runOnTerminal(t, "new-pass-5\nnew-pass-5\nold-pass-5\n", "user", "set", "demo", "--change-password")
	if err != nil {
		t.Fatal(err)
	}
	wantContains(t, "prompts", stderr, "New password for demo: ", "Again: ", "Current password of demo: ")
	r = fb.last()
	if r.Form.Get("password") != "new-pass-5" || r.Form.Get("current_password") != "old-pass-5" || !strings.HasPrefix(r.Auth, "Bearer ") {
		t.Errorf("user set sent password %q, current %q, auth %q", r.Form.Get("password"), r.Form.Get("current_password"), r.Auth)
	}
}
