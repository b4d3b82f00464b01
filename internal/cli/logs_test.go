package cli

import (
	"encoding/json"
	"strings"
	"testing"
)

const logsText = "2026-03-04T05:06:01.000Z g1 gearbox: starting the gear on port 35531 with the welcome page\n" +
	"2026-03-04T05:06:02.000Z g2 hello from g2\n" +
	"2026-03-04T05:06:03.000Z g2 gearbox: cannot read this gear's log from node node2: connection refused\n"

func TestAppLogs(t *testing.T) {
	fb := newFakeBroker(t)
	const path = "/broker/rest/domains/ns/applications/web/logs"
	fb.on("GET", path, fakeReply{text: logsText})

	out, _, err := runCLI(t, "app", "logs", "web", "-n", "ns")
	if err != nil {
		t.Fatal(err)
	}
	wantRequest(t, fb.last(), "GET", path, map[string]string{"tail": "100", "follow": ""})
	if out != logsText {
		t.Errorf("app logs printed\n%s\nwant\n%s", out, logsText)
	}

	// Flags after the argument; the rhc name works too.
	if _, _, err := runCLI(t, "app", "tail", "web", "-n", "ns", "-f", "--tail", "5"); err != nil {
		t.Fatal(err)
	}
	wantRequest(t, fb.last(), "GET", path, map[string]string{"tail": "5", "follow": "true"})

	out, _, err = runCLI(t, "app", "logs", "web", "-n", "ns", "--json")
	if err != nil {
		t.Fatal(err)
	}
	fb.requests()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var first logLineJSON
	if len(lines) != 3 || json.Unmarshal([]byte(lines[1]), &first) != nil ||
		first != (logLineJSON{Time: "2026-03-04T05:06:02.000Z", Gear: "g2", Text: "hello from g2"}) {
		t.Errorf("app logs --json printed\n%s", out)
	}

	if _, _, err := runCLI(t, "app", "logs", "web", "-n", "ns", "--tail", "-1"); err == nil || !strings.Contains(err.Error(), "--tail -1") {
		t.Errorf("negative --tail: %v", err)
	}
	fb.on("GET", "/broker/rest/domains/ns/applications/nope/logs", fakeReply{code: 404, msgs: []string{"Application 'nope' not found in domain 'ns'."}, exit: 101})
	if _, _, err := runCLI(t, "app", "logs", "nope", "-n", "ns"); err == nil || !strings.Contains(err.Error(), "Application 'nope' not found") {
		t.Errorf("unknown app: %v", err)
	}
	if reqs := fb.requests(); len(reqs) != 1 {
		t.Errorf("requests %+v: want only the one for the unknown app", reqs)
	}
}
