package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"gearbox/broker/api"
)

func TestDomainCommands(t *testing.T) {
	fb := newFakeBroker(t)
	fb.on("POST", "/broker/rest/domains", fakeReply{code: 201,
		data: `{"name": "ns", "id": "ns", "owner": "admin", "application_count": 0, "created_at": "2024-05-01T10:00:00Z"}`,
		msgs: []string{"Domain 'ns' created."}})
	fb.on("GET", "/broker/rest/domains", fakeReply{data: `[
		{"name": "ns", "id": "ns", "owner": "admin", "application_count": 2, "created_at": "2024-05-01T10:00:00Z"},
		{"name": "other", "id": "other", "owner": "demo", "application_count": 0, "created_at": "2024-05-02T10:00:00Z"}]`})
	fb.on("DELETE", "/broker/rest/domains/ns", fakeReply{msgs: []string{"Domain 'ns' deleted."}})

	tests := []struct {
		args   []string
		method string
		path   string
		params map[string]string
		want   []string // in stdout
	}{
		{[]string{"domain", "create", "ns"}, "POST", "/broker/rest/domains", map[string]string{"name": "ns"}, []string{"Domain 'ns' created."}},
		{[]string{"domain", "list"}, "GET", "/broker/rest/domains", nil, []string{"NAMESPACE", "OWNER", "APPS", "ns", "admin", "2", "other", "demo"}},
		{[]string{"domain", "delete", "ns"}, "DELETE", "/broker/rest/domains/ns", map[string]string{"force": "false"}, []string{"Domain 'ns' deleted."}},
		{[]string{"domain", "delete", "ns", "--force"}, "DELETE", "/broker/rest/domains/ns", map[string]string{"force": "true"}, []string{"Domain 'ns' deleted."}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			out, _, err := runCLI(t, tt.args...)
			if err != nil {
				t.Fatal(err)
			}
			wantRequest(t, fb.last(), tt.method, tt.path, tt.params)
			wantContains(t, "output", out, tt.want...)
		})
	}

	out, _, err := runCLI(t, "domain", "list", "--json")
	if err != nil {
		t.Fatal(err)
	}
	fb.requests()
	var ds []api.Domain
	if err := json.Unmarshal([]byte(out), &ds); err != nil || len(ds) != 2 || ds[0].Applications != 2 {
		t.Errorf("--json: %v, %+v", err, ds)
	}
	out, errOut, err := runCLI(t, "domain", "create", "ns", "--json")
	if err != nil {
		t.Fatal(err)
	}
	fb.requests()
	var d api.Domain
	if err := json.Unmarshal([]byte(out), &d); err != nil || d.Name != "ns" {
		t.Errorf("--json: %v, %+v", err, d)
	}
	wantContains(t, "stderr", errOut, "Domain 'ns' created.")

	fb.on("DELETE", "/broker/rest/domains/ns", fakeReply{code: 422, exit: 128,
		msgs: []string{"Domain 'ns' contains applications. Delete the applications first or set force to true."}})
	_, _, err = runCLI(t, "domain", "delete", "ns")
	if err == nil || err.Error() != "Domain 'ns' contains applications. Delete the applications first or set force to true." {
		t.Errorf("err = %v", err)
	}
	fb.requests()

	fb.on("GET", "/broker/rest/domains", fakeReply{data: `[]`})
	out, _, _ = runCLI(t, "domain", "list")
	fb.requests()
	wantContains(t, "empty list", out, "No domains")
}
