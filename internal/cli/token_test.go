package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"gearbox/broker/api"
)

func TestTokenCommands(t *testing.T) {
	fb := newFakeBroker(t)
	fb.on("GET", "/broker/rest/user/authorizations", fakeReply{data: `[
		{"id": "0123456789ab", "login": "admin", "note": "gearbox login on laptop", "created_at": "2024-05-01T10:00:00Z", "expires_at": "2024-05-31T10:00:00Z", "expires_in": 2592000},
		{"id": "ba9876543210", "login": "admin", "created_at": "2024-05-02T10:00:00Z", "expires_at": "2024-05-02T11:00:00Z", "expires_in": 3600}]`})
	fb.on("DELETE", "/broker/rest/user/authorizations/0123456789ab", fakeReply{msgs: []string{"Authorization '0123456789ab' revoked."}})

	tests := []struct {
		args   []string
		method string
		path   string
		want   []string // in stdout
	}{
		{[]string{"token", "list"}, "GET", "/broker/rest/user/authorizations",
			[]string{"ID", "NOTE", "CREATED", "EXPIRES", "0123456789ab", "gearbox login on laptop", "ba9876543210"}},
		{[]string{"token", "revoke", "0123456789ab"}, "DELETE", "/broker/rest/user/authorizations/0123456789ab",
			[]string{"Authorization '0123456789ab' revoked."}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			out, _, err := runCLI(t, tt.args...)
			if err != nil {
				t.Fatal(err)
			}
			wantRequest(t, fb.last(), tt.method, tt.path, nil)
			wantContains(t, "output", out, tt.want...)
		})
	}

	out, _, err := runCLI(t, "token", "list", "--json")
	if err != nil {
		t.Fatal(err)
	}
	fb.requests()
	var ts []api.Token
	if err := json.Unmarshal([]byte(out), &ts); err != nil || len(ts) != 2 || ts[1].ExpiresIn != 3600 {
		t.Errorf("--json: %v, %+v", err, ts)
	}

	if _, _, err := runCLI(t, "token", "revoke"); err == nil {
		t.Error("revoke without an id: no error")
	}
	if reqs := fb.requests(); len(reqs) > 0 {
		t.Errorf("revoke without an id sent %+v", reqs)
	}

	fb.on("DELETE", "/broker/rest/user/authorizations/nope", fakeReply{code: 404, exit: 101, msgs: []string{"Authorization 'nope' not found."}})
	if _, _, err := runCLI(t, "token", "revoke", "nope"); err == nil || err.Error() != "Authorization 'nope' not found." {
		t.Errorf("err = %v", err)
	}
	fb.requests()

	fb.on("GET", "/broker/rest/user/authorizations", fakeReply{data: `[]`})
	out, _, _ = runCLI(t, "token", "list")
	fb.requests()
	wantContains(t, "empty list", out, "No API tokens")
}
