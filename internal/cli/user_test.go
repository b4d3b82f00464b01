package cli

import (
	"encoding/json"
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

	tests := []struct {
		args   []string
		method string
		path   string
		params map[string]string
		absent []string // parameters that must not be sent
		want   []string
	}{
		{[]string{"user", "create", "bob", "--password", "bobpass12"}, "POST", "/broker/rest/users",
			map[string]string{"login": "bob", "password": "bobpass12"}, []string{"ha", "max_gears", "gear_sizes", "admin"},
			[]string{"User 'bob' created.", "LOGIN", "bob", "3/10", "small,medium"}},
		{[]string{"user", "create", "bob", "--password", "bobpass12", "--ha", "--max-gears", "10", "--gear-sizes", "small,medium", "--admin"}, "POST", "/broker/rest/users",
			map[string]string{"login": "bob", "password": "bobpass12", "ha": "true", "max_gears": "10", "gear_sizes": "small,medium", "admin": "true"}, nil,
			[]string{"User 'bob' created."}},
		{[]string{"user", "set", "bob", "--ha=false"}, "PUT", "/broker/rest/users/bob",
			map[string]string{"ha": "false"}, []string{"max_gears", "gear_sizes", "admin", "password"}, []string{"User 'bob' updated."}},
		{[]string{"user", "set", "bob", "--max-gears", "0", "--admin=true", "--password", "newpass12"}, "PUT", "/broker/rest/users/bob",
			map[string]string{"max_gears": "0", "admin": "true", "password": "newpass12"}, []string{"ha", "gear_sizes", "current_password"}, []string{"User 'bob' updated."}},
		// Changing one's own password sends the current one: the
		// caller's password, or --current-password.
		{[]string{"user", "set", "admin", "--password", "newpass12"}, "PUT", "/broker/rest/users/admin",
			map[string]string{"password": "newpass12", "current_password": "secret123"}, []string{"ha", "max_gears"}, []string{"User 'bob' updated."}},
		{[]string{"user", "set", "admin", "--password", "newpass12", "--current-password", "oldpass12"}, "PUT", "/broker/rest/users/admin",
			map[string]string{"password": "newpass12", "current_password": "oldpass12"}, nil, []string{"User 'bob' updated."}},
		{[]string{"user", "list"}, "GET", "/broker/rest/users", nil, nil,
			[]string{"LOGIN", "ADMIN", "HA", "GEARS", "GEAR SIZES", "bob", "3/10", "admin", "0/100"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
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

	// The new user's password from standard input.
	if _, _, err := runCLIWithInput(t, "frompipe1\n", "user", "create", "bob"); err != nil {
		t.Fatal(err)
	}
	wantRequest(t, fb.last(), "POST", "/broker/rest/users", map[string]string{"password": "frompipe1"})
	_, _, err := runCLI(t, "user", "create", "bob")
	if err == nil || !strings.Contains(err.Error(), "no password for the new user") {
		t.Errorf("err = %v", err)
	}
	if reqs := fb.requests(); len(reqs) > 0 {
		t.Errorf("created a user without a password: %+v", reqs)
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
	if _, _, err := runCLI(t, "user", "create", "bob", "--password", "bobpass12"); err == nil || err.Error() != "User 'bob' already exists." {
		t.Errorf("err = %v", err)
	}
	fb.requests()
}
