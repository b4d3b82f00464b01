package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"gearbox/broker/api"
)

func TestNodeCommands(t *testing.T) {
	fb := newFakeBroker(t)
	fb.on("GET", "/broker/rest/nodes", fakeReply{data: `[
		{"name": "node1", "addr": "127.0.0.11", "zone": "z1", "region": "r1", "alive": true, "draining": false, "gears": 3, "max_gears": 100, "isolation": "uid+cgroup2"},
		{"name": "node2", "addr": "127.0.0.12", "zone": "z2", "region": "r1", "alive": true, "draining": true, "gears": 1, "max_gears": 50, "isolation": "none (not root)", "evacuation": "moving gear g1 to node1: waiting for replacement g9"},
		{"name": "node3", "addr": "127.0.0.13", "zone": "", "region": "", "alive": false, "draining": false, "gears": 0, "max_gears": 100}]`})
	fb.on("POST", "/broker/rest/nodes/node2/events", fakeReply{msgs: []string{"Node node2: drain done."}})

	out, _, err := runCLI(t, "node", "list")
	if err != nil {
		t.Fatal(err)
	}
	wantRequest(t, fb.last(), "GET", "/broker/rest/nodes", nil)
	want := [][]string{
		{"NAME", "ADDRESS", "ZONE", "REGION", "STATUS", "GEARS", "ISOLATION"},
		{"node1", "127.0.0.11", "z1", "r1", "alive", "3/100", "uid+cgroup2"},
		{"node2", "127.0.0.12", "z2", "r1", "alive, draining", "1/50", "none (not root)"},
		{"node3", "127.0.0.13", "-", "-", "down", "0/100", "-"},
	}
	table, notes, _ := strings.Cut(out, "\n\n")
	if got := cells(table); !equalCells(got, want) {
		t.Errorf("node list = %q, want %q", got, want)
	}
	if notes != "node2 evacuation: moving gear g1 to node1: waiting for replacement g9\n" {
		t.Errorf("node list notes %q", notes)
	}
	out, _, err = runCLI(t, "node", "list", "--json")
	if err != nil {
		t.Fatal(err)
	}
	fb.requests()
	var ns []api.Node
	if err := json.Unmarshal([]byte(out), &ns); err != nil || len(ns) != 3 || !ns[1].Draining || ns[0].Isolation != "uid+cgroup2" {
		t.Errorf("--json: %v, %+v", err, ns)
	}

	for _, ev := range []string{"drain", "undrain"} {
		out, _, err := runCLI(t, "node", ev, "node2")
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{"event": ev}
		if ev == "drain" {
			want["evacuate"] = "true"
		}
		wantRequest(t, fb.last(), "POST", "/broker/rest/nodes/node2/events", want)
		wantContains(t, "node "+ev, out, "Node node2: drain done.")
	}
	if _, _, err := runCLI(t, "node", "drain", "node2", "--no-evacuate"); err != nil {
		t.Fatal(err)
	}
	wantRequest(t, fb.last(), "POST", "/broker/rest/nodes/node2/events", map[string]string{"event": "drain", "evacuate": "false"})
	fb.on("POST", "/broker/rest/nodes/nope/events", fakeReply{code: 404, exit: 101, msgs: []string{"Node 'nope' not found."}})
	if _, _, err := runCLI(t, "node", "drain", "nope"); err == nil || err.Error() != "Node 'nope' not found." {
		t.Errorf("err = %v", err)
	}
	fb.requests()

	fb.on("DELETE", "/broker/rest/nodes/node3", fakeReply{msgs: []string{"Node node3 removed: 2 gear(s) replaced."}})
	out, _, err = runCLI(t, "node", "remove", "node3")
	if err != nil {
		t.Fatal(err)
	}
	wantRequest(t, fb.last(), "DELETE", "/broker/rest/nodes/node3", nil)
	wantContains(t, "node remove", out, "Node node3 removed: 2 gear(s) replaced.")
	fb.on("DELETE", "/broker/rest/nodes/node1", fakeReply{code: 409, msgs: []string{"Node 'node1' is alive"}})
	if _, _, err := runCLI(t, "node", "remove", "node1"); err == nil || err.Error() != "Node 'node1' is alive" {
		t.Errorf("remove an alive node: %v", err)
	}
	fb.requests()
}

func TestGearMove(t *testing.T) {
	fb := newFakeBroker(t)
	const path = "/broker/rest/gears/g1/move"
	fb.on("POST", path, fakeReply{data: `{"id": "g1", "state": "started", "zone": "z2", "region": "r1", "node": "node2", "lb": true, "head": true,
		"rotated_out": false, "cartridges": ["lb", "static"]}`, msgs: []string{"Gear g1 moved from node1 to node2."}})
	tests := []struct {
		args  []string
		force string
	}{
		{[]string{"gear", "move", "g1", "--node", "node2"}, "false"},
		{[]string{"gear", "move", "--node", "node2", "g1", "--force"}, "true"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			out, _, err := runCLI(t, tt.args...)
			if err != nil {
				t.Fatal(err)
			}
			wantRequest(t, fb.last(), "POST", path, map[string]string{"node": "node2", "force": tt.force})
			if out != "Gear g1 moved from node1 to node2.\n" {
				t.Errorf("output = %q", out)
			}
		})
	}
	out, _, err := runCLI(t, "gear", "move", "g1", "--node", "node2", "--json")
	if err != nil {
		t.Fatal(err)
	}
	fb.requests()
	var g api.Gear
	if err := json.Unmarshal([]byte(out), &g); err != nil || g.Node != "node2" || !g.Head {
		t.Errorf("--json: %v, %+v", err, g)
	}

	const refusal = "Moving gear 'g1' to node 'node2' would put LB gears of HA application 'web' on one node; pass force=true to move it anyway."
	fb.on("POST", path, fakeReply{code: 409, msgs: []string{refusal}})
	if _, _, err := runCLI(t, "gear", "move", "g1", "--node", "node2"); err == nil || err.Error() != refusal {
		t.Errorf("err = %v", err)
	}
	fb.requests()
}

func TestGearStopStart(t *testing.T) {
	fb := newFakeBroker(t)
	const path = "/broker/rest/gears/g1/events"
	for _, ev := range []string{"stop", "start"} {
		fb.on("POST", path, fakeReply{data: `{"id": "g1", "state": "started", "node": "node1"}`, msgs: []string{"Gear g1: " + ev + " requested."}})
		out, _, err := runCLI(t, "gear", ev, "g1")
		if err != nil {
			t.Fatal(err)
		}
		wantRequest(t, fb.last(), "POST", path, map[string]string{"event": ev})
		if out != "Gear g1: "+ev+" requested.\n" {
			t.Errorf("gear %s output = %q", ev, out)
		}
		fb.requests()
	}
	if _, _, err := runCLI(t, "gear", "stop"); err == nil || !strings.Contains(err.Error(), "needs GEAR") {
		t.Errorf("gear stop without GEAR: %v", err)
	}
}

func TestEnvCommands(t *testing.T) {
	fb := newFakeBroker(t)
	const path = "/broker/rest/domains/ns/applications/web/environment-variables"
	fb.on("POST", path, fakeReply{data: `[{"name": "DB_URL", "value": "a=b"}]`, msgs: []string{"Environment variable DB_URL set."}})
	out, _, err := runCLI(t, "env", "set", "web", "DB_URL=a=b", "-n", "ns")
	if err != nil {
		t.Fatal(err)
	}
	wantRequest(t, fb.last(), "POST", path, map[string]string{"name": "DB_URL", "value": "a=b"})
	if out != "Environment variable DB_URL set.\n" {
		t.Errorf("env set output = %q", out)
	}
	fb.on("GET", path, fakeReply{data: `[{"name": "DB_URL", "value": "a=b"}, {"name": "X", "value": ""}]`})
	if out, _, err = runCLI(t, "env", "list", "web", "-n", "ns"); err != nil || out != "DB_URL=a=b\nX=\n" {
		t.Errorf("env list: %q, %v", out, err)
	}
	fb.on("DELETE", path+"/X", fakeReply{msgs: []string{"Environment variable X removed."}})
	if out, _, err = runCLI(t, "env", "unset", "web", "X", "-n", "ns"); err != nil || out != "Environment variable X removed.\n" {
		t.Errorf("env unset: %q, %v", out, err)
	}
	if _, _, err := runCLI(t, "env", "set", "web", "NOEQUALS", "-n", "ns"); err == nil || !strings.Contains(err.Error(), "NAME=VALUE") {
		t.Errorf("env set without =: %v", err)
	}
	fb.requests()
}
