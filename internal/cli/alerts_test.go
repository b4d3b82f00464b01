package cli

import (
	"strings"
	"testing"
)

func TestAlerts(t *testing.T) {
	fb := newFakeBroker(t)
	const path = "/broker/rest/alerts"
	fb.on("GET", path, fakeReply{data: `[
		{"seq": 3, "kind": "node_failed", "node": "n1", "reason": "node n1 has been gone for 10s or more (member failed)", "action": "replacing its 2 gear(s) on other nodes", "time": "2026-03-04T05:06:07Z"},
		{"seq": 4, "kind": "gear_replaced", "node": "n1", "app_name": "web", "namespace": "ns", "gear": "g1", "reason": "node n1 is lost", "action": "gear started anew on node n2", "time": "2026-03-04T05:06:08Z"},
		{"seq": 5, "kind": "gear_crashing", "node": "n2", "app_name": "web", "namespace": "ns", "gear": "g2", "reason": "gear g2 keeps ending", "log": ["starting", "fatal: \u001b[31mno db"], "time": "2026-03-04T05:06:09Z"}]`})
	fb.on("GET", path+"?after=5", fakeReply{data: `[]`})
	out, _, err := runCLI(t, "alerts", "--after", "2")
	if err != nil {
		t.Fatal(err)
	}
	reqs := fb.requests()
	if len(reqs) != 2 || reqs[0].Query.Get("after") != "2" || reqs[1].Query.Get("after") != "5" {
		t.Errorf("requests %+v: want after=2 then after=5", reqs)
	}
	want := "3 2026-03-04T05:06:07.000Z node_failed node=n1: node n1 has been gone for 10s or more (member failed); replacing its 2 gear(s) on other nodes\n" +
		"4 2026-03-04T05:06:08.000Z gear_replaced node=n1 app=ns/web gear=g1: node n1 is lost; gear started anew on node n2\n" +
		"5 2026-03-04T05:06:09.000Z gear_crashing node=n2 app=ns/web gear=g2: gear g2 keeps ending\n    | starting\n    | fatal: ?[31mno db\n"
	if out != want {
		t.Errorf("alerts printed\n%s\nwant\n%s", out, want)
	}
	fb.on("GET", path, fakeReply{text: `{"seq": 5, "kind": "app_recovered", "app_name": "web", "namespace": "ns", "reason": "back", "time": "2026-03-04T05:06:09Z"}` + "\n\n"})
	out, _, err = runCLI(t, "alerts", "-f", "--after", "4")
	wantRequest(t, fb.last(), "GET", path, map[string]string{"after": "4", "follow": "1"})
	if out != "5 2026-03-04T05:06:09.000Z app_recovered app=ns/web: back\n" {
		t.Errorf("alerts -f printed %q", out)
	}
	if err == nil || !strings.Contains(err.Error(), "resume with 'gearbox alerts -f --after 5'") {
		t.Errorf("end of the followed feed: %v", err)
	}
}
