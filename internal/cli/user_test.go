package cli

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"gearbox/broker/api"
)

const userJSON = `{"login": "bob", "admin": false, "capabilities": {"ha": true, "max_gears": 10, "gear_sizes": ["small", "medium"]},
	"consumed_gears": 3, "created_at": "2024-05-01T10:00:00Z"}`

func TestUserCommands(t *testing.T) {
	fb := newFakeBroker(t)
	fb.on("POST", "/broker/rest/users", fakeReply{code: 201, data: userJSON, msgs: []string{"User 'bob' created."}})
	fb.on("PUT", "/broker/rest/users/bob", fakeReply{data: userJSON, msgs: []string{"User 'bob' updated."}})
	fb.on("PUT", "/broker/rest/users/admin", fakeReply{data: userJSON, msgs: []string{"User 'bob' updated."}})
	fb.on("GET", "/broker/rest/users", fakeReply{data: `[` + userJSON + `,
		{"login": "admin", "admin": true, "capabilities": {"ha": false, "max_gears": 100, "gear_sizes": ["small"]}, "consumed_gears": 0}]`})

	newFile := passwordFile(t, "filepass12\n", 0o600)
	tests := []struct {
		args   []string
		env    map[string]string
		method string
		path   string
		params map[string]string
		absent []string // parameters that must not be sent
		want   []string
	}{
		{[]string{"user", "create", "bob"}, map[string]string{"GEARBOX_NEW_PASSWORD": "bobpass12"}, "POST", "/broker/rest/users",
			map[string]string{"login": "bob", "password": "bobpass12"}, []string{"ha", "max_gears", "gear_sizes", "admin"},
			[]string{"User 'bob' created.", "LOGIN", "bob", "3/10", "small,medium"}},
		{[]string{"user", "create", "bob", "--new-password-file", newFile, "--ha", "--max-gears", "10", "--gear-sizes", "small,medium", "--admin"}, nil, "POST", "/broker/rest/users",
			map[string]string{"login": "bob", "password": "filepass12", "ha": "true", "max_gears": "10", "gear_sizes": "small,medium", "admin": "true"}, nil,
			[]string{"User 'bob' created."}},
		{[]string{"user", "set", "bob", "--ha=false"}, nil, "PUT", "/broker/rest/users/bob",
			map[string]string{"ha": "false"}, []string{"max_gears", "gear_sizes", "admin", "password"}, []string{"User 'bob' updated."}},
		{[]string{"user", "set", "bob", "--max-gears", "0", "--admin=true", "--change-password"}, map[string]string{"GEARBOX_NEW_PASSWORD": "newpass12"}, "PUT", "/broker/rest/users/bob",
			map[string]string{"max_gears": "0", "admin": "true", "password": "newpass12"}, []string{"ha", "gear_sizes", "current_password"}, []string{"User 'bob' updated."}},
		{[]string{"user", "set", "bob", "--change-password", "--new-password-file", newFile}, nil, "PUT", "/broker/rest/users/bob",
			map[string]string{"password": "filepass12"}, []string{"current_password"}, []string{"User 'bob' updated."}},
		// Changing one's own password sends the current one: the
		// caller's password, or GEARBOX_CURRENT_PASSWORD.
		{[]string{"user", "set", "admin", "--change-password"}, map[string]string{"GEARBOX_NEW_PASSWORD": "newpass12"}, "PUT", "/broker/rest/users/admin",
			map[string]string{"password": "newpass12", "current_password": "secret123"}, []string{"ha", "max_gears"}, []string{"User 'bob' updated."}},
		{[]string{"user", "set", "admin", "--change-password"}, map[string]string{"GEARBOX_NEW_PASSWORD": "newpass12", "GEARBOX_CURRENT_PASSWORD": "oldpass12"}, "PUT", "/broker/rest/users/admin",
			map[string]string{"password": "newpass12", "current_password": "oldpass12"}, nil, []string{"User 'bob' updated."}},
		{[]string{"user", "list"}, nil, "GET", "/broker/rest/users", nil, nil,
			[]string{"LOGIN", "ADMIN", "HA", "GEARS", "GEAR SIZES", "bob", "3/10", "admin", "0/100"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			out, _, err := runCLI(t, tt.args...)
			if err != nil {
				t.Fatal(err)
			}
			r := fb.last()
			wantRequest(t, r, tt.method, tt.path, tt.params)
			for _, k := range tt.absent {
				if r.Form.Has(k) {
					t.Errorf("sent %s=%q, want it absent", k, r.Form.Get(k))
				}
			}
			// The caller authenticates with GEARBOX_PASSWORD, which never
			// becomes the user's password.
			if r.Auth != basicAuth("admin", "secret123") {
				t.Errorf("auth = %q", r.Auth)
			}
			wantContains(t, "output", out, tt.want...)
		})
	}

	// Without a terminal, a missing new password is an error at once:
	// standard input is not read.
	_, _, err := runCLIWithInput(t, "frompipe1\n", "user", "create", "bob")
	if err == nil || !strings.Contains(err.Error(), "no password for the new user: set GEARBOX_NEW_PASSWORD or give --new-password-file FILE") {
		t.Errorf("err = %v", err)
	}
	_, _, err = runCLI(t, "user", "set", "bob", "--change-password")
	if err == nil || !strings.Contains(err.Error(), "no new password: set GEARBOX_NEW_PASSWORD") {
		t.Errorf("err = %v", err)
	}
	// A new password without --change-password is neither sent nor
	// dropped silently.
	t.Setenv("GEARBOX_NEW_PASSWORD", "newpass12")
	_, _, err = runCLI(t, "user", "set", "bob", "--ha")
	if err == nil || !strings.Contains(err.Error(), "without --change-password") {
		t.Errorf("err = %v", err)
	}
	os.Unsetenv("GEARBOX_NEW_PASSWORD")
	if reqs := fb.requests(); len(reqs) > 0 {
		t.Errorf("the broker was called: %+v", reqs)
	}

	out, _, err := runCLI(t, "user", "list", "--json")
	if err != nil {
		t.Fatal(err)
	}
	fb.requests()
	var us []api.User
	if err := json.Unmarshal([]byte(out), &us); err != nil || len(us) != 2 || us[0].Capabilities.MaxGears != 10 {
		t.Errorf("--json: %v, %+v", err, us)
	}

	fb.on("POST", "/broker/rest/users", fakeReply{code: 409, msgs: []string{"User 'bob' already exists."}})
	t.Setenv("GEARBOX_NEW_PASSWORD", "bobpass12")
	if _, _, err := runCLI(t, "user", "create", "bob"); err == nil || err.Error() != "User 'bob' already exists." {
		t.Errorf("err = %v", err)
	}
	fb.requests()
}
