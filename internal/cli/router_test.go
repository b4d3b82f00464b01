package cli

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"gearbox/broker/api"
)

func TestAliasCommands(t *testing.T) {
	fb := newFakeBroker(t)
	const path = "/broker/rest/domains/ns/applications/web/aliases"
	fb.on("POST", path, fakeReply{code: 201, data: `{"id": "www.example.org", "has_private_ssl_certificate": false}`,
		msgs: []string{"Alias www.example.org added to application web."}})
	out, _, err := runCLI(t, "app", "alias", "add", "web", "WWW.example.org", "-n", "ns")
	if err != nil {
		t.Fatal(err)
	}
	wantRequest(t, fb.last(), "POST", path, map[string]string{"id": "WWW.example.org"})
	if out != "Alias www.example.org added to application web.\n" {
		t.Errorf("alias add printed %q", out)
	}

	fb.on("GET", path, fakeReply{data: `[{"id": "www.example.org"}, {"id": "shop.example.org"}]`})
	if out, _, err = runCLI(t, "app", "alias", "list", "web", "-n", "ns"); err != nil || out != "www.example.org\nshop.example.org\n" {
		t.Errorf("alias list: %q, %v", out, err)
	}
	fb.requests()
	if out, _, err = runCLI(t, "app", "alias", "list", "web", "-n", "ns", "--json"); err != nil {
		t.Fatal(err)
	}
	var as []api.Alias
	if err := json.Unmarshal([]byte(out), &as); err != nil || len(as) != 2 || as[1].ID != "shop.example.org" {
		t.Errorf("alias list --json: %v %+v", err, as)
	}
	// With ACME: one alias holds an ACME certificate, another says why
	// it has none yet.
	fb.on("GET", path, fakeReply{data: `[{"id": "www.example.org", "has_private_ssl_certificate": true,
		"certificate": {"not_after": "2027-03-01T00:00:00Z", "fingerprint_sha256": "ab", "acme": true}},
		{"id": "shop.example.org", "has_private_ssl_certificate": false,
		"acme": {"error": "shop.example.org resolves to 192.0.2.1, not to the cluster", "failures": 2, "next_try": "2026-12-06T05:00:00Z"}}]`})
	want := "www.example.org  (ACME certificate, expires 2027-03-01, renewed automatically)\n" +
		"shop.example.org\n  no ACME certificate yet (2 tries failed, next at 2026-12-06T05:00:00Z): shop.example.org resolves to 192.0.2.1, not to the cluster\n"
	if out, _, err = runCLI(t, "app", "alias", "list", "web", "-n", "ns"); err != nil || out != want {
		t.Errorf("alias list with ACME:\n%s%v\nwant:\n%s", out, err, want)
	}
	fb.on("GET", path, fakeReply{data: `[]`})
	if out, _, err = runCLI(t, "app", "alias", "list", "web", "-n", "ns"); err != nil || !strings.Contains(out, "has no aliases") {
		t.Errorf("alias list, none: %q, %v", out, err)
	}

	fb.on("DELETE", path+"/www.example.org", fakeReply{msgs: []string{"Alias www.example.org removed from application web."}})
	if out, _, err = runCLI(t, "app", "alias", "remove", "web", "www.example.org", "-n", "ns"); err != nil || out != "Alias www.example.org removed from application web.\n" {
		t.Errorf("alias remove: %q, %v", out, err)
	}
	fb.requests()

	const conflict = "The alias 'www.example.org' is already in use by another application; an alias routes to one application only."
	fb.on("POST", path, fakeReply{code: 409, exit: 140, msgs: []string{conflict}})
	if _, _, err := runCLI(t, "app", "alias", "add", "web", "www.example.org", "-n", "ns"); err == nil || err.Error() != conflict {
		t.Errorf("conflict: %v", err)
	}
	if _, _, err := runCLI(t, "app", "alias", "add", "web", "-n", "ns"); err == nil || !strings.Contains(err.Error(), "needs HOST") {
		t.Errorf("alias add without HOST: %v", err)
	}
	if _, _, err := runCLI(t, "app", "alias", "add", "web", "www.example.org"); err == nil || !strings.Contains(err.Error(), "no namespace") {
		t.Errorf("alias add without -n: %v", err)
	}
}

const testEvents = `[
	{"seq": 7, "action": "create_application", "app_name": "web", "namespace": "ns", "scalable": true, "time": "2026-03-04T05:06:07Z"},
	{"seq": 8, "action": "add_public_endpoint", "app_name": "web", "namespace": "ns", "scalable": true, "gear_id": "g1",
	 "public_port_name": "GEARBOX_LB_PORT", "public_address": "10.0.0.1", "public_port": 35532, "protocols": ["http", "ws"],
	 "types": ["load_balancer"], "time": "2026-03-04T05:06:07.5Z"},
	{"seq": 9, "action": "add_alias", "app_name": "web", "namespace": "ns", "scalable": true, "alias": "www.example.org", "time": "2026-03-04T05:06:08Z"}]`

func TestRouterEvents(t *testing.T) {
	fb := newFakeBroker(t)
	const path = "/broker/rest/routing/events"
	fb.on("GET", path, fakeReply{data: testEvents})
	// The command asks again after the last event, and stops at an
	// empty page.
	fb.on("GET", path+"?after=9", fakeReply{data: `[]`})
	out, _, err := runCLI(t, "router", "events", "--after", "6")
	if err != nil {
		t.Fatal(err)
	}
	reqs := fb.requests()
	if len(reqs) != 2 || reqs[0].Query.Get("after") != "6" || reqs[1].Query.Get("after") != "9" {
		t.Errorf("requests %+v: want after=6 then after=9", reqs)
	}
	want := "7 2026-03-04T05:06:07.000Z create_application ns/web scalable=true ha=false\n" +
		"8 2026-03-04T05:06:07.500Z add_public_endpoint ns/web gear=g1 endpoint=10.0.0.1:35532 types=load_balancer\n" +
		"9 2026-03-04T05:06:08.000Z add_alias ns/web alias=www.example.org\n"
	if out != want {
		t.Errorf("router events printed\n%s\nwant\n%s", out, want)
	}

	out, _, err = runCLI(t, "router", "events", "--json")
	if err != nil {
		t.Fatal(err)
	}
	fb.requests()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var e api.RoutingEvent
	if len(lines) != 3 || json.Unmarshal([]byte(lines[1]), &e) != nil || e.Seq != 8 || e.PublicPort != 35532 {
		t.Errorf("router events --json printed\n%s", out)
	}

	// Followed: NDJSON with keep-alive lines; the end of the stream says
	// how to resume.
	var nd strings.Builder
	var list []json.RawMessage
	json.Unmarshal([]byte(testEvents), &list)
	for _, l := range list {
		var compact strings.Builder
		json.NewEncoder(&compact).Encode(l)
		nd.WriteString(compact.String() + "\n")
	}
	fb.on("GET", path, fakeReply{text: nd.String()})
	out, _, err = runCLI(t, "router", "events", "-f", "--after", "6")
	wantRequest(t, fb.last(), "GET", path, map[string]string{"after": "6", "follow": "1"})
	if out != want {
		t.Errorf("router events -f printed\n%s\nwant\n%s", out, want)
	}
	if err == nil || !strings.Contains(err.Error(), "resume with 'gearbox router events -f --after 9'") {
		t.Errorf("end of the followed feed: %v", err)
	}

	fb.on("GET", path, fakeReply{code: 403, msgs: []string{"This action needs an administrator."}})
	if _, _, err := runCLI(t, "router", "events"); err == nil || err.Error() != "This action needs an administrator." {
		t.Errorf("not an admin: %v", err)
	}
}

func TestRouterWebhooks(t *testing.T) {
	fb := newFakeBroker(t)
	const path = "/broker/rest/routing/webhooks"
	fb.on("POST", path, fakeReply{code: 201, data: `{"id": "abc123", "url": "https://hooks.example.org/gearbox", "after": 41, "secret": "s3cr3t"}`,
		msgs: []string{"Webhook abc123 created; it receives the routing events after 41."}})
	out, _, err := runCLI(t, "router", "webhook", "add", "https://hooks.example.org/gearbox")
	if err != nil {
		t.Fatal(err)
	}
	r := fb.last()
	wantRequest(t, r, "POST", path, map[string]string{"url": "https://hooks.example.org/gearbox"})
	if r.Form.Has("after") {
		t.Errorf("webhook add without --after sent after=%s", r.Form.Get("after"))
	}
	if out != "Webhook abc123 created; it receives the routing events after 41.\nSecret: s3cr3t\n" {
		t.Errorf("webhook add printed %q", out)
	}
	if _, _, err := runCLI(t, "router", "webhook", "add", "https://hooks.example.org/gearbox", "--after", "0"); err != nil {
		t.Fatal(err)
	}
	wantRequest(t, fb.last(), "POST", path, map[string]string{"after": "0"})

	fb.on("GET", path, fakeReply{data: `[
		{"id": "abc123", "url": "https://hooks.example.org/gearbox", "after": 41, "pending": 3, "last_error": "POST https://hooks.example.org/gearbox answered 503 Service Unavailable", "created_at": "2026-03-04T05:06:07Z"},
		{"id": "def456", "url": "http://10.0.0.9/hook", "feed": "alerts", "after": 44, "pending": 0, "created_at": "2026-03-04T05:06:08Z"}]`})
	out, _, err = runCLI(t, "router", "webhook", "list")
	if err != nil {
		t.Fatal(err)
	}
	fb.requests()
	wantCells := [][]string{
		{"ID", "FEED", "URL", "AFTER", "PENDING", "LAST ERROR"},
		{"abc123", "routing", "https://hooks.example.org/gearbox", "41", "3", "POST https://hooks.example.org/gearbox answered 503 Service Unavailable"},
		{"def456", "alerts", "http://10.0.0.9/hook", "44", "0", "-"},
	}
	if got := cells(out); !equalCells(got, wantCells) {
		t.Errorf("webhook list = %q, want %q", got, wantCells)
	}

	fb.on("DELETE", path+"/abc123", fakeReply{msgs: []string{"Webhook abc123 deleted."}})
	if out, _, err = runCLI(t, "router", "webhook", "remove", "abc123"); err != nil || out != "Webhook abc123 deleted.\n" {
		t.Errorf("webhook remove: %q, %v", out, err)
	}
	fb.requests()
}

// testRoutes is the fixed state of the export golden file: an HA app
// with a stopped LB gear and an alias, a non-scalable app with an alias,
// a scalable app with no name to route (left out), and an HA app whose
// gears have no endpoint yet.
const testRoutes = `[
	{"app": "shop", "namespace": "demo", "host": "shop-demo.apps.example.com", "aliases": ["www.shop.example.org"],
	 "scalable": false, "ha": false,
	 "endpoints": [{"gear_id": "g3", "address": "10.0.0.3:35531", "state": "started", "types": ["web_framework"]}]},
	{"app": "web", "namespace": "demo", "host": "web-demo.apps.example.com", "ha_host": "ha-web-demo.apps.example.com",
	 "aliases": ["www.example.org"], "scalable": true, "ha": true,
	 "endpoints": [
		{"gear_id": "g1", "address": "10.0.0.1:35532", "state": "started", "head": true, "types": ["load_balancer"]},
		{"gear_id": "g2", "address": "10.0.0.2:35532", "state": "stopped", "types": ["load_balancer"]}]},
	{"app": "api", "namespace": "other", "host": "api-other.apps.example.com", "aliases": [], "scalable": true, "ha": false,
	 "endpoints": [{"gear_id": "g4", "address": "10.0.0.1:35540", "state": "started", "types": ["load_balancer"]}]},
	{"app": "new", "namespace": "other", "host": "new-other.apps.example.com", "ha_host": "ha-new-other.apps.example.com",
	 "aliases": [], "scalable": true, "ha": true, "endpoints": []}]`

// TestRouterExport checks the nginx configuration against the golden
// file testdata/router-export.nginx (GEARBOX_UPDATE_GOLDEN=1 rewrites
// it), and has nginx check it when nginx is installed.
func TestRouterExport(t *testing.T) {
	fb := newFakeBroker(t)
	fb.on("GET", "/broker/rest/routing/routes", fakeReply{data: testRoutes})
	out, _, err := runCLI(t, "router", "export", "--format", "nginx")
	if err != nil {
		t.Fatal(err)
	}
	wantRequest(t, fb.last(), "GET", "/broker/rest/routing/routes", nil)
	golden := filepath.Join("testdata", "router-export.nginx")
	if os.Getenv("GEARBOX_UPDATE_GOLDEN") != "" {
		if err := os.WriteFile(golden, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if out != string(want) {
		t.Errorf("router export printed\n%s\nwant (%s)\n%s", out, golden, want)
	}
	nginxCheck(t, out)

	out, _, err = runCLI(t, "router", "export", "--json")
	if err != nil {
		t.Fatal(err)
	}
	fb.requests()
	var rs []api.Route
	if err := json.Unmarshal([]byte(out), &rs); err != nil || len(rs) != 4 || rs[1].HAHost != "ha-web-demo.apps.example.com" || !rs[1].Endpoints[0].Head {
		t.Errorf("router export --json: %v %+v", err, rs)
	}

	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--format", "haproxy"}, `unknown --format "haproxy"; formats: nginx, json`},
		{[]string{"--listen", "80; evil"}, `--listen "80; evil"`},
	} {
		if _, _, err := runCLI(t, append([]string{"router", "export"}, tt.args...)...); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("router export %v: %v, want %q", tt.args, err, tt.want)
		}
	}
	if reqs := fb.requests(); len(reqs) != 0 {
		t.Errorf("refused flags still called the broker: %+v", reqs)
	}
	if out, _, err := runCLI(t, "router", "export", "--listen", "127.0.0.1:8080"); err != nil || !strings.Contains(out, "listen 127.0.0.1:8080;") {
		t.Errorf("--listen: %v\n%s", err, out)
	}

	// Names that could break the file are refused, not written.
	fb.on("GET", "/broker/rest/routing/routes", fakeReply{data: `[{"app": "x", "namespace": "y", "host": "x-y.example.com",
		"aliases": ["a.example.org; }"], "endpoints": [{"gear_id": "g", "address": "10.0.0.1:1", "state": "started"}]}]`})
	if _, _, err := runCLI(t, "router", "export"); err == nil || !strings.Contains(err.Error(), "cannot go into an nginx configuration") {
		t.Errorf("bad alias: %v", err)
	}
}

// nginxCheck runs `nginx -t` on conf included in an http block, when
// nginx is installed.
func nginxCheck(t *testing.T, conf string) {
	t.Helper()
	bin, err := exec.LookPath("nginx")
	if err != nil {
		if _, err = os.Stat("/usr/sbin/nginx"); err != nil {
			t.Skip("nginx is not installed: the configuration is checked against the golden file only")
		}
		bin = "/usr/sbin/nginx"
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "gearbox.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	main := "error_log stderr;\npid " + filepath.Join(dir, "nginx.pid") + ";\nevents {}\nhttp {\n"
	for _, p := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		main += "    " + p + "_temp_path " + filepath.Join(dir, p) + ";\n"
	}
	main += "    access_log off;\n    include " + filepath.Join(dir, "gearbox.conf") + ";\n}\n"
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(main), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "-t", "-p", dir, "-c", filepath.Join(dir, "nginx.conf"), "-e", "stderr").CombinedOutput()
	if err != nil {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
}
