package cli

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"gearbox/broker/api"
)

// appJSON is an HA app with its gears, as GET .../applications/web?include=gears
// returns it: two LB gears on two nodes in two zones, one rotated out.
const appJSON = `{
  "id": "a1b2c3", "name": "web", "domain_id": "ns", "owner": "demo",
  "app_url": "http://web-ns.apps.example.com/", "ha_url": "http://ha-web-ns.apps.example.com/",
  "framework": "static", "scalable": true, "ha": true, "gear_profile": "small", "state": "started",
  "gear_count": 3, "scales_from": 2, "scales_to": -1, "ha_multiplier": 0, "aliases": [],
  "load_balancers": {"gears": 2, "nodes": 2, "zones": 2, "rotated_out": true, "really_ha": true},
  "creation_time": "2024-05-01T10:00:00Z",
  "gears": [
    {"id": "g1", "state": "started", "zone": "z1", "region": "r1", "node": "node1", "lb": true, "head": true, "rotated_out": true, "cartridges": ["lb", "static"]},
    {"id": "g2", "state": "started", "zone": "z2", "region": "r1", "node": "node2", "lb": true, "head": false, "rotated_out": true, "cartridges": ["lb", "static"]},
    {"id": "g3", "state": "unknown", "reason": "node node3 is not alive", "zone": "z1", "region": "r1", "node": "node3", "lb": false, "head": false, "rotated_out": false, "cartridges": ["static"]}
  ]
}`

// plainAppJSON is a scalable, not HA app whose one LB gear is its only
// node: not really HA.
const plainAppJSON = `{
  "id": "d4e5f6", "name": "blog", "domain_id": "ns", "owner": "demo",
  "app_url": "http://blog-ns.apps.example.com/", "framework": "static", "scalable": true, "ha": false,
  "gear_profile": "small", "state": "started", "gear_count": 1, "scales_from": 1, "scales_to": 5,
  "ha_multiplier": 0, "aliases": [],
  "load_balancers": {"gears": 1, "nodes": 1, "zones": 1, "rotated_out": false, "really_ha": false},
  "creation_time": "2024-05-01T10:00:00Z"
}`

// cells splits the lines of a table into space-separated cells.
func cells(table string) [][]string {
	var out [][]string
	for _, line := range strings.Split(strings.TrimSpace(table), "\n") {
		out = append(out, regexp.MustCompile(`\s{2,}`).Split(strings.TrimSpace(line), -1))
	}
	return out
}

func TestAppShow(t *testing.T) {
	fb := newFakeBroker(t)
	const path = "/broker/rest/domains/ns/applications/web"
	fb.on("GET", path, fakeReply{data: appJSON})
	fb.on("GET", "/broker/rest/domains/ns/applications/blog", fakeReply{data: plainAppJSON})

	out, _, err := runCLI(t, "app", "show", "web", "-n", "ns")
	if err != nil {
		t.Fatal(err)
	}
	wantRequest(t, fb.last(), "GET", path, map[string]string{"include": ""})
	wantContains(t, "app show", out,
		"web @ http://web-ns.apps.example.com/",
		"HA URL:", "http://ha-web-ns.apps.example.com/",
		"Scalable:", "HA:", "Gears:", "3",
		"Scale limits:", "min 2, max unlimited",
		"Load balancers:", "2 LB gears on 2 nodes in 2 zones, rotated out of serving",
		"Really HA:", "yes")
	if strings.Contains(out, "g1") {
		t.Errorf("app show without --gears lists gears:\n%s", out)
	}

	out, _, err = runCLI(t, "app", "show", "web", "-n", "ns", "--gears")
	if err != nil {
		t.Fatal(err)
	}
	wantRequest(t, fb.last(), "GET", path, map[string]string{"include": "gears"})
	table := out[strings.Index(out, "ID "):]
	want := [][]string{
		{"ID", "STATE", "CARTRIDGES", "SIZE", "NODE", "ZONE", "LB"},
		{"g1", "started", "lb static", "small", "node1", "z1", "head, rotated out"},
		{"g2", "started", "lb static", "small", "node2", "z2", "yes, rotated out"},
		{"g3", "unknown", "static", "small", "node3", "z1", "-"},
	}
	if got := cells(table); !equalCells(got, want) {
		t.Errorf("gears table = %q, want %q", got, want)
	}

	out, _, err = runCLI(t, "app", "show", "blog", "-n", "ns")
	if err != nil {
		t.Fatal(err)
	}
	fb.requests()
	wantContains(t, "app show blog", out, "min 1, max 5", "1 LB gear on 1 node in 1 zone", "Really HA:")
	if strings.Contains(out, "HA URL") || strings.Contains(out, "Really HA:      yes") {
		t.Errorf("plain app shown as HA:\n%s", out)
	}

	out, _, err = runCLI(t, "app", "show", "web", "-n", "ns", "--gears", "--json")
	if err != nil {
		t.Fatal(err)
	}
	fb.requests()
	var a api.App
	if err := json.Unmarshal([]byte(out), &a); err != nil {
		t.Fatalf("--json output does not parse: %v\n%s", err, out)
	}
	if a.Name != "web" || len(a.Gears) != 3 || a.LB == nil || !a.LB.ReallyHA || a.ScalesTo != -1 {
		t.Errorf("--json app = %+v", a)
	}
}

func equalCells(a, b [][]string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if strings.Join(a[i], "|") != strings.Join(b[i], "|") {
			return false
		}
	}
	return true
}

func TestAppList(t *testing.T) {
	fb := newFakeBroker(t)
	fb.on("GET", "/broker/rest/domains/ns/applications", fakeReply{data: "[" + appJSON + "," + plainAppJSON + "]"})
	fb.on("GET", "/broker/rest/domains/empty/applications", fakeReply{data: "[]"})
	t.Setenv("GEARBOX_NAMESPACE", "ns")

	out, _, err := runCLI(t, "app", "list")
	if err != nil {
		t.Fatal(err)
	}
	wantRequest(t, fb.last(), "GET", "/broker/rest/domains/ns/applications", nil)
	want := [][]string{
		{"NAME", "CARTRIDGE", "GEARS", "SCALABLE", "HA", "STATE", "URL"},
		{"web", "static", "3", "yes", "yes", "started", "http://web-ns.apps.example.com/"},
		{"blog", "static", "1", "yes", "no", "started", "http://blog-ns.apps.example.com/"},
	}
	if got := cells(out); !equalCells(got, want) {
		t.Errorf("app list = %q, want %q", got, want)
	}

	out, _, err = runCLI(t, "app", "list", "--json")
	if err != nil {
		t.Fatal(err)
	}
	fb.requests()
	var as []api.App
	if err := json.Unmarshal([]byte(out), &as); err != nil || len(as) != 2 {
		t.Fatalf("--json: %v, %d apps\n%s", err, len(as), out)
	}

	out, _, err = runCLI(t, "app", "list", "-n", "empty", "--json")
	if err != nil {
		t.Fatal(err)
	}
	wantRequest(t, fb.last(), "GET", "/broker/rest/domains/empty/applications", nil)
	if strings.TrimSpace(out) != "[]" {
		t.Errorf("--json of no apps = %q, want []", out)
	}
	out, _, _ = runCLI(t, "app", "list", "-n", "empty")
	fb.requests()
	wantContains(t, "app list of no apps", out, "No applications in domain empty")
}

func TestAppCreate(t *testing.T) {
	fb := newFakeBroker(t)
	const path = "/broker/rest/domains/ns/applications"
	fb.on("POST", path, fakeReply{code: 201, data: appJSON, msgs: []string{"Application web was created."}})
	tests := []struct {
		args []string
		want map[string]string
	}{
		{[]string{"web", "-n", "ns"}, map[string]string{"name": "web", "scale": "false", "ha": "false", "gear_size": "", "region": "", "cartridge": ""}},
		{[]string{"web", "-n", "ns", "--scale"}, map[string]string{"name": "web", "scale": "true", "ha": "false"}},
		{[]string{"-n", "ns", "web", "--ha", "--gear-size", "medium", "--region", "eu", "--cartridge", "static"},
			map[string]string{"name": "web", "scale": "false", "ha": "true", "gear_size": "medium", "region": "eu", "cartridge": "static"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			out, _, err := runCLI(t, append([]string{"app", "create"}, tt.args...)...)
			if err != nil {
				t.Fatal(err)
			}
			r := fb.last()
			wantRequest(t, r, "POST", path, tt.want)
			if r.Auth != basicAuth("admin", "secret123") {
				t.Errorf("auth = %q", r.Auth)
			}
			wantContains(t, "app create", out, "Application web was created.", "web @ http://web-ns.apps.example.com/", "head, rotated out")
		})
	}

	// Refusals carry the broker's message.
	fb.on("POST", path, fakeReply{code: 422, exit: 105,
		msgs: []string{"Invalid application name 'my-app': use 1 to 32 lower-case letters and digits, no dashes (the hostname is APP-NAMESPACE.apps.example.com)."}})
	_, _, err := runCLI(t, "app", "create", "my-app", "-n", "ns")
	if err == nil || !strings.HasPrefix(err.Error(), "Invalid application name 'my-app'") {
		t.Errorf("err = %v", err)
	}
	fb.requests()
}

func TestAppEvents(t *testing.T) {
	fb := newFakeBroker(t)
	const path = "/broker/rest/domains/ns/applications/web/events"
	tests := []struct {
		cmd, event, msg string
		summary         bool
	}{
		{"start", "start", "Application web has started", false},
		{"stop", "stop", "Application web has stopped", false},
		{"restart", "restart", "Application web has restarted", false},
		{"enable-ha", "make-ha", "Application web is now ha", true},
		{"make-ha", "make-ha", "Application web is now ha", true},
		{"disable-ha", "disable-ha", "Application web is no longer ha", true},
		{"scale-up", "scale-up", "Application web has scaled up to 3 gears.", true},
		{"scale-down", "scale-down", "Application web has scaled down to 3 gears.", true},
	}
	for _, tt := range tests {
		t.Run(tt.cmd, func(t *testing.T) {
			fb.on("POST", path, fakeReply{data: appJSON, msgs: []string{tt.msg}})
			restart := tt.cmd == "restart"
			waitHA := tt.event == "make-ha"
			if waitHA {
				// enable-ha waits until HA is effective.
				fb.on("GET", "/broker/rest/domains/ns/applications/web",
					fakeReply{data: strings.Replace(appJSON, `"really_ha": true}`, `"really_ha": true, "ha_effective": true}`, 1)})
			}
			if restart {
				// restart follows the roll-out it starts.
				fb.on("GET", "/broker/rest/domains/ns/applications/web/rollout",
					fakeReply{data: `{"deployment":"","restarts":1,"state":"done","done":3,"total":3,"message":"every gear runs the welcome page"}`})
			}
			out, errOut, err := runCLI(t, "app", tt.cmd, "web", "-n", "ns")
			if err != nil {
				t.Fatal(err)
			}
			if restart {
				reqs := fb.requests()
				if len(reqs) < 2 {
					t.Fatalf("restart sent %+v, want the event and roll-out reads", reqs)
				}
				wantRequest(t, reqs[0], "POST", path, map[string]string{"event": tt.event})
				for _, r := range reqs[1:] {
					wantRequest(t, r, "GET", "/broker/rest/domains/ns/applications/web/rollout", nil)
				}
				if !strings.Contains(errOut, "roll-out: 3 of 3 gears; every gear runs the welcome page") {
					t.Errorf("restart stderr %q, want the roll-out's progress", errOut)
				}
			} else if waitHA {
				reqs := fb.requests()
				if len(reqs) != 2 {
					t.Fatalf("%s sent %+v, want the event and a read of the app", tt.cmd, reqs)
				}
				wantRequest(t, reqs[0], "POST", path, map[string]string{"event": tt.event})
				wantRequest(t, reqs[1], "GET", "/broker/rest/domains/ns/applications/web", nil)
				if !strings.Contains(errOut, "HA: effective") {
					t.Errorf("%s stderr %q, want HA effective", tt.cmd, errOut)
				}
			} else {
				wantRequest(t, fb.last(), "POST", path, map[string]string{"event": tt.event})
			}
			if !strings.HasPrefix(out, tt.msg+"\n") {
				t.Errorf("output = %q, want the broker's message first", out)
			}
			summary := "web: 3 gears; load balancers: 2 LB gears on 2 nodes in 2 zones, rotated out of serving; really HA: yes"
			if got := strings.Contains(out, summary); got != tt.summary {
				t.Errorf("summary printed = %v, want %v:\n%s", got, tt.summary, out)
			}

			// --json: the app on stdout, the message on stderr.
			out, errOut, err = runCLI(t, "app", tt.cmd, "web", "-n", "ns", "--json")
			if err != nil {
				t.Fatal(err)
			}
			fb.requests()
			var a api.App
			if err := json.Unmarshal([]byte(out), &a); err != nil || a.Name != "web" {
				t.Errorf("--json: %v, %+v", err, a)
			}
			if !strings.Contains(errOut, tt.msg) {
				t.Errorf("stderr = %q, want the message", errOut)
			}
		})
	}
}

func TestAppDelete(t *testing.T) {
	fb := newFakeBroker(t)
	const path = "/broker/rest/domains/ns/applications/web"
	fb.on("DELETE", path, fakeReply{msgs: []string{"Application web is deleted."}})
	out, _, err := runCLI(t, "app", "delete", "web", "-n", "ns")
	if err != nil {
		t.Fatal(err)
	}
	wantRequest(t, fb.last(), "DELETE", path, nil)
	if out != "Application web is deleted.\n" {
		t.Errorf("output = %q", out)
	}
	out, _, err = runCLI(t, "app", "delete", "web", "-n", "ns", "--json")
	if err != nil {
		t.Fatal(err)
	}
	fb.requests()
	var res struct{ Messages []api.Message }
	if err := json.Unmarshal([]byte(out), &res); err != nil || len(res.Messages) != 1 || res.Messages[0].Text != "Application web is deleted." {
		t.Errorf("--json: %v, %+v", err, res)
	}
}

func TestAppScale(t *testing.T) {
	fb := newFakeBroker(t)
	const app = "/broker/rest/domains/ns/applications/blog"
	fb.on("GET", app, fakeReply{data: plainAppJSON})
	fb.on("PUT", app+"/cartridges/static", fakeReply{
		data: `{"name": "static", "type": "web_framework", "scales_from": 2, "scales_to": -1, "supported_scales_to": true, "current_scale": 2}`,
		msgs: []string{"Scale range of static set to 2--1."}})
	tests := []struct {
		flags    []string
		from, to string
	}{
		{[]string{"--min", "2", "--max", "-1"}, "2", "-1"},
		{[]string{"--max", "-1"}, "1", "-1"}, // min stays 1
		{[]string{"--min", "3"}, "3", "5"},   // max stays 5
		{[]string{"--min=2", "--max=4"}, "2", "4"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.flags, " "), func(t *testing.T) {
			out, _, err := runCLI(t, append([]string{"app", "scale", "blog", "-n", "ns"}, tt.flags...)...)
			if err != nil {
				t.Fatal(err)
			}
			reqs := fb.requests()
			if len(reqs) != 2 {
				t.Fatalf("requests = %+v, want the app then the scale", reqs)
			}
			wantRequest(t, reqs[0], "GET", app, nil)
			wantRequest(t, reqs[1], "PUT", app+"/cartridges/static", map[string]string{"scales_from": tt.from, "scales_to": tt.to})
			wantContains(t, "app scale", out, "Scale range of static set to", "blog: min 2, max unlimited; 2 gears now.")
		})
	}

	fb.on("PUT", app+"/cartridges/static", fakeReply{code: 422, msgs: []string{"Cannot set the max gear limit to '1' if the application is HA (highly available)"}})
	_, _, err := runCLI(t, "app", "scale", "blog", "-n", "ns", "--max", "1")
	if err == nil || err.Error() != "Cannot set the max gear limit to '1' if the application is HA (highly available)" {
		t.Errorf("err = %v", err)
	}
	fb.requests()
}

// TestAppNamespace checks that every app command wants a namespace and
// takes it from GEARBOX_NAMESPACE.
func TestAppNamespace(t *testing.T) {
	fb := newFakeBroker(t)
	for _, cmd := range []string{"create", "list", "show", "delete", "start", "stop", "restart", "enable-ha", "disable-ha", "scale-up", "scale-down", "scale"} {
		args := []string{"app", cmd}
		if cmd != "list" {
			args = append(args, "web")
		}
		_, _, err := runCLI(t, args...)
		if err == nil || err.Error() != "no namespace: pass -n NAMESPACE or set GEARBOX_NAMESPACE (see 'gearbox domain list')" {
			t.Errorf("%s: err = %v", cmd, err)
		}
	}
	if reqs := fb.requests(); len(reqs) > 0 {
		t.Errorf("the broker was called: %+v", reqs)
	}
	t.Setenv("GEARBOX_NAMESPACE", "ns")
	fb.on("GET", "/broker/rest/domains/ns/applications/web", fakeReply{data: appJSON})
	if _, _, err := runCLI(t, "app", "show", "web"); err != nil {
		t.Fatal(err)
	}
	wantRequest(t, fb.last(), "GET", "/broker/rest/domains/ns/applications/web", nil)
}

// A crashing gear is shown with why and the end of its log.
func TestAppShowCrashingGear(t *testing.T) {
	fb := newFakeBroker(t)
	fb.on("GET", "/broker/rest/domains/ns/applications/blog", fakeReply{data: strings.Replace(plainAppJSON, `"creation_time"`,
		`"gears": [{"id": "g9", "state": "crashing", "reason": "ended 6 times in 10m0s, last crashed: exit status 1; starting again in 5m0s",
		"log_tail": ["listening", "panic: no database"], "node": "node1", "lb": true, "head": true, "cartridges": ["lb", "go"]}], "creation_time"`, 1)})
	out, _, err := runCLI(t, "app", "show", "blog", "-n", "ns", "--gears")
	if err != nil {
		t.Fatal(err)
	}
	want := "Gear g9 is crashing: ended 6 times in 10m0s, last crashed: exit status 1; starting again in 5m0s\n    | listening\n    | panic: no database\n"
	if !strings.HasSuffix(out, want) {
		t.Errorf("app show printed\n%s\nwant it to end with\n%s", out, want)
	}
}

func TestAppAutoscale(t *testing.T) {
	fb := newFakeBroker(t)
	const path = "/broker/rest/domains/ns/applications/blog/events"
	fb.on("POST", path, fakeReply{data: plainAppJSON, msgs: []string{"Autoscaling of blog is off: it keeps its 1 gears until scaled by hand."}})
	for arg, ev := range map[string]string{"off": "disable-autoscale", "on": "enable-autoscale"} {
		out, _, err := runCLI(t, "app", "autoscale", "blog", arg, "-n", "ns")
		if err != nil {
			t.Fatal(err)
		}
		wantRequest(t, fb.last(), "POST", path, map[string]string{"event": ev})
		wantContains(t, "app autoscale "+arg, out, "Autoscaling of blog is off")
	}
	if _, _, err := runCLI(t, "app", "autoscale", "blog", "maybe", "-n", "ns"); err == nil || !strings.Contains(err.Error(), "say on or off") {
		t.Errorf("autoscale maybe: %v", err)
	}
	fb.requests()
}
