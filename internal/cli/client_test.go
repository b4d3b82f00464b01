package cli

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
)

// fakeBroker answers the broker's REST API with canned envelopes and
// records the requests it gets.
type fakeBroker struct {
	t   *testing.T
	srv *httptest.Server

	mu      sync.Mutex
	replies map[string]fakeReply // by "METHOD /path"
	reqs    []fakeRequest
}

// fakeReply is one canned answer: data (a JSON text) and info messages,
// or, with code 300 and up, an error message and exit code.
type fakeReply struct {
	code int
	data string
	msgs []string
	exit int
	text string // a text/plain body instead of an envelope
}

// fakeRequest is what the fake broker was asked.
type fakeRequest struct {
	Method, Path string
	Query, Form  url.Values
	Auth         string // the Authorization header
	ContentType  string
}

// newFakeBroker starts a fake broker and points the client commands at it
// with GEARBOX_API, authenticating as admin with GEARBOX_USER and
// GEARBOX_PASSWORD. The saved login lives in a fresh temporary folder.
func newFakeBroker(t *testing.T) *fakeBroker {
	t.Helper()
	fb := &fakeBroker{t: t, replies: map[string]fakeReply{}}
	fb.srv = httptest.NewServer(http.HandlerFunc(fb.serve))
	t.Cleanup(fb.srv.Close)
	isolateCLIEnv(t)
	t.Setenv("GEARBOX_API", fb.srv.URL)
	t.Setenv("GEARBOX_USER", "admin")
	t.Setenv("GEARBOX_PASSWORD", "secret123")
	return fb
}

// isolateCLIEnv clears the client's environment variables and gives the
// test its own configuration folder, so that no real saved login is read
// or written.
func isolateCLIEnv(t *testing.T) {
	t.Helper()
	for _, name := range []string{"API", "USER", "PASSWORD", "PASSWORD_FILE", "NEW_PASSWORD", "NEW_PASSWORD_FILE",
		"CURRENT_PASSWORD", "CURRENT_PASSWORD_FILE", "NAMESPACE", "INSECURE"} {
		t.Setenv("GEARBOX_"+name, "") // restores the old value after the test
		os.Unsetenv("GEARBOX_" + name)
	}
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
}

// on sets the reply to method and path.
func (fb *fakeBroker) on(method, path string, r fakeReply) {
	fb.mu.Lock()
	defer fb.mu.Unlock()
	fb.replies[method+" "+path] = r
}

func (fb *fakeBroker) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	form, err := url.ParseQuery(string(body))
	if err != nil {
		fb.t.Errorf("%s %s: body %q is not a form: %v", r.Method, r.URL.Path, body, err)
	}
	fb.mu.Lock()
	fb.reqs = append(fb.reqs, fakeRequest{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Form: form,
		Auth: r.Header.Get("Authorization"), ContentType: r.Header.Get("Content-Type")})
	rep, ok := fb.replies[r.Method+" "+r.URL.Path+"?"+r.URL.RawQuery] // a reply for one query
	if !ok {
		rep, ok = fb.replies[r.Method+" "+r.URL.Path]
	}
	fb.mu.Unlock()
	if !ok {
		rep = fakeReply{code: http.StatusNotFound, msgs: []string{"fake broker: no reply for " + r.Method + " " + r.URL.Path}}
	}
	if rep.code == 0 {
		rep.code = http.StatusOK
	}
	if rep.text != "" {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(rep.code)
		io.WriteString(w, rep.text)
		return
	}
	env := map[string]any{"status": "ok", "messages": []any{}, "version": "1.0"}
	if rep.data != "" {
		env["data"] = json.RawMessage(rep.data)
	}
	var msgs []any
	for _, m := range rep.msgs {
		sev := "info"
		if rep.code >= 300 {
			sev = "error"
			env["status"] = "unprocessable_entity"
		}
		msgs = append(msgs, map[string]any{"severity": sev, "text": m, "exit_code": rep.exit, "field": nil})
	}
	if msgs != nil {
		env["messages"] = msgs
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(rep.code)
	json.NewEncoder(w).Encode(env)
}

// requests returns the requests so far and forgets them.
func (fb *fakeBroker) requests() []fakeRequest {
	fb.mu.Lock()
	defer fb.mu.Unlock()
	out := fb.reqs
	fb.reqs = nil
	return out
}

// last returns the only request since the last call, failing otherwise.
func (fb *fakeBroker) last() fakeRequest {
	fb.t.Helper()
	reqs := fb.requests()
	if len(reqs) != 1 {
		fb.t.Fatalf("broker got %d requests, want 1: %+v", len(reqs), reqs)
	}
	return reqs[0]
}

// runCLI runs gearbox in-process with args and returns its output.
func runCLI(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	return runCLIWithInput(t, "", args...)
}

func runCLIWithInput(t *testing.T, input string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	app := newApp(&out, &errOut)
	app.Reader = strings.NewReader(input)
	err = app.Run(append([]string{"gearbox"}, args...))
	return out.String(), errOut.String(), err
}

// wantRequest checks a request's method, path and form or query
// parameters (only those named in params).
func wantRequest(t *testing.T, got fakeRequest, method, path string, params map[string]string) {
	t.Helper()
	if got.Method != method || got.Path != path {
		t.Errorf("request = %s %s, want %s %s", got.Method, got.Path, method, path)
	}
	vals := url.Values{}
	for k, v := range got.Query {
		vals[k] = v
	}
	for k, v := range got.Form {
		vals[k] = v
	}
	if method != http.MethodGet && got.ContentType != "" && got.ContentType != "application/x-www-form-urlencoded" {
		t.Errorf("content type = %q, want a form", got.ContentType)
	}
	for k, v := range params {
		if !vals.Has(k) && v != "" {
			t.Errorf("%s %s: no parameter %s, want %q (got %v)", method, path, k, v, vals)
		} else if vals.Get(k) != v {
			t.Errorf("%s %s: %s = %q, want %q", method, path, k, vals.Get(k), v)
		}
	}
}

// wantContains checks that s holds every one of want.
func wantContains(t *testing.T, what, s string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(s, w) {
			t.Errorf("%s does not contain %q:\n%s", what, w, s)
		}
	}
}

// basicAuth is the Authorization header of login:password.
func basicAuth(login, password string) string {
	r, _ := http.NewRequest(http.MethodGet, "/", nil)
	r.SetBasicAuth(login, password)
	return r.Header.Get("Authorization")
}

// TestCLIArgs checks argument and flag handling common to the client
// commands: flags after arguments, missing and extra arguments, unknown
// flags, help.
func TestCLIArgs(t *testing.T) {
	fb := newFakeBroker(t)
	fb.on("GET", "/broker/rest/domains/ns/applications/web", fakeReply{data: appJSON})
	tests := []struct {
		args    []string
		wantErr string
	}{
		{[]string{"app", "show", "web", "-n", "ns"}, ""},
		{[]string{"app", "show", "-n", "ns", "web"}, ""},
		{[]string{"app", "show", "--namespace=ns", "web"}, ""},
		{[]string{"app", "show", "web", "--json", "--namespace", "ns"}, ""},
		{[]string{"app", "show", "-n", "ns", "--", "web"}, ""},
		{[]string{"app", "show", "-n", "ns"}, "gearbox app show needs APP; run 'gearbox app show --help' for usage"},
		{[]string{"app", "show", "web", "other", "-n", "ns"}, `gearbox app show takes APP, got extra argument "other"`},
		{[]string{"app", "show", "web", "-n", "ns", "--bogus"}, "unknown flag --bogus; run 'gearbox app show --help' for usage"},
		{[]string{"app", "show", "web"}, "no namespace: pass -n NAMESPACE or set GEARBOX_NAMESPACE"},
		{[]string{"app", "show", "web", "-n"}, "flag needs an argument"},
		{[]string{"domain", "list", "extra"}, `gearbox domain list takes no arguments, got "extra"`},
		{[]string{"app", "scale", "web", "-n", "ns"}, "pass --min N and/or --max M"},
		{[]string{"gear", "move", "g1"}, "pass --node NODE"},
		{[]string{"user", "set", "bob"}, "nothing to change"},
		{[]string{"app", "show", "web", "-n", "ns", "--user", "admin", "--password", ""}, "--password would put a password on the command line"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			out, _, err := runCLI(t, tt.args...)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(out, "web") {
					t.Errorf("output does not show the app:\n%s", out)
				}
				wantRequest(t, fb.last(), "GET", "/broker/rest/domains/ns/applications/web", nil)
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans several lines: %q", err)
			}
			if reqs := fb.requests(); len(reqs) > 0 {
				t.Errorf("the broker was called: %+v", reqs)
			}
		})
	}
}

func TestCLIHelp(t *testing.T) {
	isolateCLIEnv(t)
	for _, args := range [][]string{
		{"app", "--help"}, {"app", "show", "--help"}, {"app", "show", "web", "--help"}, {"app", "scale", "-h"},
		{"domain", "--help"}, {"user", "create", "--help"}, {"node", "--help"}, {"gear", "move", "--help"},
		{"login", "--help"}, {"logout", "--help"}, {"token", "--help"}, {"token", "revoke", "--help"},
	} {
		out, _, err := runCLI(t, args...)
		if err != nil {
			t.Errorf("%v: %v", args, err)
		}
		if !strings.Contains(out, "USAGE") {
			t.Errorf("%v printed no help:\n%s", args, out)
		}
	}
	out, _, _ := runCLI(t, "app", "show", "--help")
	wantContains(t, "app show --help", out, "GEARBOX_API", "GEARBOX_USER", "GEARBOX_PASSWORD", "--password-file", "GEARBOX_NAMESPACE", "--insecure", "--json", "--gears")
	out, _, _ = runCLI(t, "user", "create", "--help")
	wantContains(t, "user create --help", out, "--password-file", "GEARBOX_NEW_PASSWORD", "--new-password-file", "(twice) on a terminal")
	out, _, _ = runCLI(t, "user", "set", "--help")
	wantContains(t, "user set --help", out, "--change-password", "--new-password-file", "GEARBOX_CURRENT_PASSWORD", "--current-password-file")
	// The refused flags are not offered.
	for _, args := range [][]string{{"app", "show", "--help"}, {"login", "--help"}, {"user", "create", "--help"}, {"user", "set", "--help"}} {
		out, _, _ := runCLI(t, args...)
		for _, refused := range []string{"--password ", "--password=", "--auth-password", "--new-password ", "--current-password "} {
			if strings.Contains(out, refused) {
				t.Errorf("%v offers %s:\n%s", args, refused, out)
			}
		}
	}
}

// TestClientAuth checks which credentials the client commands send.
func TestClientAuth(t *testing.T) {
	fb := newFakeBroker(t)
	fb.on("GET", "/broker/rest/domains", fakeReply{data: `[]`})

	if _, _, err := runCLI(t, "domain", "list"); err != nil {
		t.Fatal(err)
	}
	if got := fb.last().Auth; got != basicAuth("admin", "secret123") {
		t.Errorf("auth from GEARBOX_USER/GEARBOX_PASSWORD = %q", got)
	}
	os.Unsetenv("GEARBOX_PASSWORD") // else two sources: refused
	if _, _, err := runCLI(t, "domain", "list", "--user", "demo", "--password-file", passwordFile(t, "other123\n", 0o600)); err != nil {
		t.Fatal(err)
	}
	if got := fb.last().Auth; got != basicAuth("demo", "other123") {
		t.Errorf("auth from --user/--password-file = %q", got)
	}

	// Without a login or --user nothing is sent, and the error says what
	// to do.
	os.Unsetenv("GEARBOX_USER")
	os.Unsetenv("GEARBOX_PASSWORD")
	_, _, err := runCLI(t, "domain", "list")
	if err == nil || !strings.Contains(err.Error(), "not logged in to "+fb.srv.URL+": run 'gearbox login") {
		t.Errorf("err = %v, want not logged in", err)
	}
	t.Setenv("GEARBOX_PASSWORD", "x")
	_, _, err = runCLI(t, "domain", "list")
	if err == nil || !strings.Contains(err.Error(), "a password (GEARBOX_PASSWORD or --password-file) needs --user") {
		t.Errorf("err = %v", err)
	}
	// user commands take the caller's password as the others do.
	fb.on("GET", "/broker/rest/users", fakeReply{data: `[]`})
	t.Setenv("GEARBOX_PASSWORD", "rootpass1")
	if _, _, err := runCLI(t, "user", "list", "--user", "root"); err != nil {
		t.Fatal(err)
	}
	if got := fb.last().Auth; got != basicAuth("root", "rootpass1") {
		t.Errorf("auth from GEARBOX_PASSWORD on user list = %q", got)
	}
	if reqs := fb.requests(); len(reqs) > 0 {
		t.Errorf("unexpected requests: %+v", reqs)
	}
}

// TestClientBrokerErrors checks that the broker's message becomes the
// error, on one line, and that unreachable brokers are named.
func TestClientBrokerErrors(t *testing.T) {
	fb := newFakeBroker(t)
	fb.on("GET", "/broker/rest/domains/ns/applications/nope", fakeReply{code: 404, exit: 101,
		msgs: []string{"Application 'nope' not found in domain 'ns'."}})
	fb.on("POST", "/broker/rest/domains/ns/applications/web/events", fakeReply{code: 422, exit: 1,
		msgs: []string{"Application 'web' is not scalable; only scalable applications can be made highly available."}})
	fb.on("GET", "/broker/rest/nodes", fakeReply{code: 403, exit: 1, msgs: []string{"This action needs an administrator."}})
	fb.on("GET", "/broker/rest/domains", fakeReply{code: 401, msgs: []string{"Invalid login or password, or the token is unknown or expired."}})
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"app", "show", "nope", "-n", "ns"}, "Application 'nope' not found in domain 'ns'."},
		{[]string{"app", "enable-ha", "web", "-n", "ns"}, "Application 'web' is not scalable; only scalable applications can be made highly available."},
		{[]string{"node", "list", "--json"}, "This action needs an administrator."},
		{[]string{"domain", "list"}, "Invalid login or password, or the token is unknown or expired."},
		{[]string{"domain", "list", "--api", "http://127.0.0.1:1"}, "cannot reach the broker at http://127.0.0.1:1"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			out, _, err := runCLI(t, tt.args...)
			if err == nil || err.Error() != tt.want && !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			if out != "" {
				t.Errorf("stdout = %q, want nothing", out)
			}
			fb.requests()
		})
	}
}
