package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"gearbox/broker/api"
	"gearbox/lb"
)

// lbStatusJSON is what the broker answers for an HA app's lb-status: the
// head gear's load balancer, as its node served it, and a second LB gear
// whose node could not be read.
const lbStatusJSON = `[
	{"gear": {"id": "g1", "state": "started", "zone": "z1", "region": "r1", "node": "n1", "lb": true, "head": true, "rotated_out": false, "cartridges": ["lb", "static"]},
	 "status": {"balance": "leastconn", "rotation": "in", "sessions": 3, "queued": 0, "requests": 120, "retries": 2, "no_backend": 0, "queue_timeouts": 0,
		"backends": [
			{"id": "g1", "addr": "127.0.0.11:35001", "local": true, "state": "up", "since": "2024-05-01T10:00:00Z", "why": "check passed",
			 "draining": false, "rotated_out": false, "serving": true, "last_check": {"time": "2024-05-01T10:00:02Z", "ok": true, "status": 200, "duration_ns": 1500000},
			 "checks": 9, "sessions_current": 1, "sessions_total": 70, "errors": 0},
			{"id": "g3", "addr": "127.0.0.13:35002", "local": false, "state": "up", "progress": "going down 1/2", "since": "2024-05-01T10:00:00Z", "why": "check passed",
			 "draining": true, "rotated_out": false, "serving": false, "last_check": {"time": "2024-05-01T10:00:02Z", "ok": false, "error": "connection refused", "duration_ns": 200000},
			 "checks": 9, "sessions_current": 0, "sessions_total": 50, "errors": 4}]}},
	{"gear": {"id": "g2", "state": "unknown", "zone": "z2", "region": "r1", "node": "n2", "lb": true, "head": false, "rotated_out": false, "cartridges": ["lb", "static"]},
	 "error": "cannot read this load balancer's status: its node n2 is not alive (failed)"}
]`

func TestAppLBStatusCommand(t *testing.T) {
	fb := newFakeBroker(t)
	fb.on("GET", "/broker/rest/domains/ns/applications/web/lb-status", fakeReply{data: lbStatusJSON})

	out, _, err := runCLI(t, "app", "lb-status", "web", "-n", "ns")
	if err != nil {
		t.Fatal(err)
	}
	wantRequest(t, fb.last(), "GET", "/broker/rest/domains/ns/applications/web/lb-status", nil)
	wantContains(t, "lb-status", out,
		"LB gear g1 (head) on n1, zone z1, started: balance leastconn, rotation in, 3 sessions, 0 queued, 120 requests, 2 retries",
		"BACKEND", "ADDRESS", "LAST CHECK",
		"g1       127.0.0.11:35001", "passed 200 in 1.5ms", "local",
		"up (going down 1/2)", "failed: connection refused in 200µs", "draining",
		"LB gear g2 on n2, zone z2, unknown: cannot read this load balancer's status: its node n2 is not alive (failed)")

	// --json prints the broker's data, each status as lb's.
	out, _, err = runCLI(t, "app", "lb-status", "web", "-n", "ns", "--json")
	if err != nil {
		t.Fatal(err)
	}
	fb.requests()
	var sts []api.LBStatus
	if err := json.Unmarshal([]byte(out), &sts); err != nil || len(sts) != 2 || sts[1].Error == "" || sts[1].Status != nil {
		t.Fatalf("--json: %v, %+v\n%s", err, sts, out)
	}
	var p lb.Status
	if err := json.Unmarshal(sts[0].Status, &p); err != nil || len(p.Backends) != 2 || p.Backends[1].Errors != 4 || !p.Backends[1].Draining {
		t.Errorf("--json status: %v, %+v", err, p)
	}

	// No LB gear yet; the broker's refusals as they come.
	fb.on("GET", "/broker/rest/domains/ns/applications/web/lb-status", fakeReply{data: `[]`})
	out, _, err = runCLI(t, "app", "lb-status", "web", "-n", "ns")
	if err != nil || out != "Application web has no LB gear yet.\n" {
		t.Errorf("no LB gear: %q, %v", out, err)
	}
	fb.on("GET", "/broker/rest/domains/ns/applications/plain/lb-status", fakeReply{code: 422, exit: 1,
		msgs: []string{"Application 'plain' is not scalable: it has no load balancer."}})
	fb.on("GET", "/broker/rest/domains/other/applications/web/lb-status", fakeReply{code: 403, exit: 1,
		msgs: []string{"Domain 'other' belongs to another user."}})
	for app, want := range map[string]string{
		"plain -n ns":  "Application 'plain' is not scalable: it has no load balancer.",
		"web -n other": "Domain 'other' belongs to another user.",
	} {
		if _, _, err := runCLI(t, append([]string{"app", "lb-status"}, strings.Fields(app)...)...); err == nil || err.Error() != want {
			t.Errorf("app lb-status %s: %v, want %q", app, err, want)
		}
	}
	fb.requests()

	out, _, _ = runCLI(t, "app", "lb-status", "--help")
	wantContains(t, "app lb-status --help", out, "gearbox app lb-status APP -n NAMESPACE", "only the owner and", "--json")
}
