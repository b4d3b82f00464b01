//go:build linux

package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	brokerapi "gearbox/broker/api"
	"gearbox/broker/client"
	"gearbox/store/internalapi"
)

// TestBrokerEndToEnd runs the seed's HA walkthrough against real
// processes on 127.0.0.14-16: a broker and node on the first, nodes on the
// others, each in its own zone. It uses the REST API through the client
// and the CLI binary.
func TestBrokerEndToEnd(t *testing.T) {
	gearboxBinary(t)
	const secret = "e2e-broker-secret"
	// Apart from each other, and from the default range that other tests
	// use.
	uidRanges := map[string]string{"b1": "61000-61999", "n2": "62000-62999", "n3": "63000-63999"}
	common := func(name, ip, zone string, extra ...string) []string {
		dataDir := gearDataDir(t)
		args := []string{"--log-format", "json", "serve", "--name", name, "--bind", ip,
			"--data-dir", dataDir, "--zone", zone,
			"--anti-entropy-interval", "1s", "--http-addr", ip + ":8080", "--gear-uid-range", uidRanges[name]}
		return append(args, extra...)
	}
	b1 := startMember(t, "b1", "127.0.0.14", append(secretEnv(secret), adminEnv), common("b1", "127.0.0.14", "za",
		"--role", "broker,node", "--api-addr", "127.0.0.14:7480", "--dns-addr", "127.0.0.14:5353")...)
	n2 := startMember(t, "n2", "127.0.0.15", secretEnv(secret), common("n2", "127.0.0.15", "zb", "--role", "node", "--join", "127.0.0.14")...)
	n3 := startMember(t, "n3", "127.0.0.16", secretEnv(secret), common("n3", "127.0.0.16", "zc", "--role", "node", "--join", "127.0.0.14")...)
	logs := func() string {
		return "\n--- b1 ---\n" + b1.output.String() + "\n--- n2 ---\n" + n2.output.String() + "\n--- n3 ---\n" + n3.output.String()
	}
	ctx := context.Background()
	api := "http://127.0.0.14:7480"
	admin := &client.Client{BaseURL: api, User: "admin", Password: "adminpass1"}

	waitUntil(t, 60*time.Second, "broker sees three alive nodes", logs, func() bool {
		nodes, err := admin.Nodes(ctx)
		if err != nil {
			return false
		}
		alive := 0
		for _, n := range nodes {
			if n.Alive {
				alive++
			}
		}
		return alive == 3
	})
	// Each node says how it isolates gears: as root, by uid.
	nodeList, err := admin.Nodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodeList {
		ok := n.Isolation == "none (not root)"
		if os.Geteuid() == 0 {
			ok = strings.HasPrefix(n.Isolation, "uid+")
		}
		if !ok {
			t.Errorf("node %s isolates gears by %q (uid %d)%s", n.Name, n.Isolation, os.Geteuid(), logs())
		}
	}

	readmeUserAndLogin(t, api)
	demo := &client.Client{BaseURL: api, User: "demo", Password: "password1"}
	if _, _, err := demo.CreateDomain(ctx, "test"); err != nil {
		t.Fatalf("create domain: %v", err)
	}
	// rhc create-app testha ruby-1.9 -s
	app, _, err := demo.CreateApp(ctx, "test", "testha", client.AppOptions{Scale: true})
	if err != nil {
		t.Fatalf("create app: %v", err)
	}
	if app.GearCount != 1 || !app.Scalable || app.HA {
		t.Fatalf("new scalable app: %+v", app)
	}
	// curl ... --data-urlencode event=make-ha
	_, msgs, err := demo.AppEvent(ctx, "test", "testha", "make-ha")
	if err != nil {
		t.Fatalf("make-ha: %v", err)
	}
	if got := client.Texts(msgs); got != "Application testha is now ha" {
		t.Errorf("make-ha message %q", got)
	}
	groups, err := demo.GearGroups(ctx, "test", "testha")
	if err != nil {
		t.Fatal(err)
	}
	if len(groups) != 1 || len(groups[0].Gears) != 2 {
		t.Fatalf("gear groups after make-ha: %+v", groups)
	}
	nodes, zones := map[string]bool{}, map[string]bool{}
	for _, g := range groups[0].Gears {
		if !g.LB {
			t.Errorf("gear %s is not an LB gear after make-ha", g.ID)
		}
		nodes[g.Node], zones[g.Zone] = true, true
		var lb, web bool
		for _, e := range g.Endpoints {
			lb = lb || strings.Join(e.Types, ",") == "load_balancer"
			web = web || strings.Join(e.Types, ",") == "web_framework"
			if e.ExternalAddress == "" || e.ExternalPort == 0 {
				t.Errorf("gear %s endpoint without address: %+v", g.ID, e)
			}
		}
		if !lb || !web {
			t.Errorf("gear %s endpoints %+v: want load_balancer and web_framework", g.ID, g.Endpoints)
		}
	}
	if len(nodes) != 2 || len(zones) != 2 {
		t.Errorf("LB gears on nodes %v, zones %v: want two of each", nodes, zones)
	}

	// The nodes run the gears: both report started, and each node's front
	// listener serves the welcome page for the app's hostname.
	ips := map[string]string{"b1": "127.0.0.14", "n2": "127.0.0.15", "n3": "127.0.0.16"}
	waitUntil(t, 30*time.Second, "both gears started", logs, func() bool {
		gg, err := demo.GearGroups(ctx, "test", "testha")
		if err != nil || len(gg) != 1 {
			return false
		}
		for _, g := range gg[0].Gears {
			if g.State != "started" {
				return false
			}
		}
		return true
	})
	for _, g := range groups[0].Gears {
		req, _ := http.NewRequest("GET", "http://"+ips[g.Node]+":8080/", nil)
		req.Host = "testha-test.example.com"
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("GET the app through node %s: %v", g.Node, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "testha") {
			t.Errorf("app through node %s front: %s\n%s", g.Node, resp.Status, body)
		}
	}

	// A deployment archive uploaded to the broker is served to members by
	// its internal API, with the cluster secret only.
	archive := tinyArchive(t)
	req, _ := http.NewRequest("POST", api+"/broker/rest/domains/test/applications/testha/deployments", bytes.NewReader(archive))
	req.SetBasicAuth("demo", "password1")
	req.Header.Set("Content-Type", "application/gzip")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("upload deployment: %s %s", resp.Status, body)
	}
	sum := sha256.Sum256(archive)
	blobPath := internalapi.BlobPath(hex.EncodeToString(sum[:]))
	for _, secret := range []string{"", "wrong", secret} {
		code, got, err := internalGet("127.0.0.14:7947", blobPath, secret)
		switch {
		case secret == "e2e-broker-secret" && (err != nil || code != http.StatusOK || !bytes.Equal(got, archive)):
			t.Errorf("blob with the secret: %d, %d bytes, %v", code, len(got), err)
		case secret != "e2e-broker-secret" && (code == http.StatusOK || bytes.Contains(got, archive)):
			t.Errorf("blob with secret %q: %d, %d bytes, want nothing", secret, code, len(got))
		}
	}

	// The CLI packs a folder and uploads it; the listing shows both
	// deployments, the folder's current.
	site := t.TempDir()
	if err := os.WriteFile(filepath.Join(site, "index.html"), []byte("<h1>from the CLI</h1>\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The password goes in the environment: a password flag is refused,
	// with the same exit code as other usage errors.
	cliAuth := []string{"--api", api, "--user", "demo"}
	cliEnv := []string{"GEARBOX_PASSWORD=password1"}
	_, stderr, code := runGearbox(t, append([]string{"domain", "list", "--password", "password1"}, cliAuth...)...)
	if code != 1 || !strings.Contains(stderr, "gearbox: --password would put a password on the command line") || strings.Contains(stderr, "password1") {
		t.Errorf("gearbox domain list --password: exit %d, stderr %q", code, stderr)
	}
	out, stderr, code := runGearboxEnv(t, 30*time.Second, cliEnv, append([]string{"app", "deploy", "testha", site, "-n", "test"}, cliAuth...)...)
	// It follows the roll-out: exit 0 means every gear passed its check.
	if code != 0 || !strings.Contains(out, "is current for testha") || !strings.Contains(stderr, "roll-out: 2 of 2 gears") {
		t.Fatalf("gearbox app deploy (exit %d):\n%s\n%s", code, out, stderr)
	}
	out, stderr, code = runGearboxEnv(t, 30*time.Second, cliEnv, append([]string{"app", "deployments", "testha", "-n", "test", "--json"}, cliAuth...)...)
	var deps struct {
		Deployments []brokerapi.Deployment
		Rollout     brokerapi.Rollout
	}
	if code != 0 || json.Unmarshal([]byte(out), &deps) != nil || len(deps.Deployments) != 2 || deps.Deployments[0].ID != hex.EncodeToString(sum[:]) ||
		!deps.Deployments[1].Current || deps.Rollout.State != "done" || deps.Rollout.Deployment != deps.Deployments[1].ID {
		t.Fatalf("gearbox app deployments (exit %d): %s\n%s", code, out, stderr)
	}

	// Every node fetches the deployment from the broker, checks it and
	// serves it: the app's hostname answers with the deployed page on
	// each LB gear's node.
	for _, g := range groups[0].Gears {
		front := "http://" + ips[g.Node] + ":8080/"
		waitUntil(t, 30*time.Second, "deployed page through node "+g.Node, logs, func() bool {
			req, _ := http.NewRequest("GET", front, nil)
			req.Host = "testha-test.example.com"
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return false
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK && strings.Contains(string(body), "from the CLI")
		})
	}

	// gearbox app logs: the lines of both gears' logs, merged in time
	// order, each stamped and prefixed with its gear; the nodes noted
	// each gear's start on the deployment.
	gearIDs := map[string]bool{}
	for _, g := range groups[0].Gears {
		gearIDs[g.ID] = true
	}
	lineRE := regexp.MustCompile(`^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) ([a-z0-9]+) (.*)$`)
	out, stderr, code = runGearboxEnv(t, 30*time.Second, cliEnv, append([]string{"app", "logs", "testha", "-n", "test"}, cliAuth...)...)
	started, last := map[string]bool{}, ""
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		m := lineRE.FindStringSubmatch(line)
		if m == nil || !gearIDs[m[2]] || m[1] < last {
			t.Fatalf("gearbox app logs (exit %d): line %q is not TIME GEAR_ID LINE of a gear of testha, in time order:\n%s\n%s", code, line, out, stderr)
		}
		last = m[1]
		if strings.HasPrefix(m[3], "gearbox: starting the gear on port ") && strings.HasSuffix(m[3], " with deployment "+deps.Deployments[1].ID[:12]) {
			started[m[2]] = true
		}
	}
	if code != 0 || len(started) != 2 {
		t.Fatalf("gearbox app logs (exit %d): want both gears' starts on the deployment:\n%s\n%s", code, out, stderr)
	}
	// Nodes serve gears' logs on the internal API with the cluster secret
	// only.
	for _, g := range groups[0].Gears {
		for _, secret := range []string{"", "wrong", secret} {
			code, _, err := internalGet(ips[g.Node]+":7947", internalapi.GearLogsPath(g.ID), secret)
			if ok := err == nil && code == http.StatusOK; ok != (secret == "e2e-broker-secret") {
				t.Errorf("gear log on %s with secret %q: %d %v", g.Node, secret, code, err)
			}
		}
	}
	// -f follows: a restart's lines arrive, and Ctrl-C ends it cleanly.
	follow := startMember(t, "logs -f", "", cliEnv, append([]string{"app", "logs", "testha", "-n", "test", "-f", "--tail", "1"}, cliAuth...)...)
	followLogs := func() string { return "\n--- app logs -f ---\n" + follow.lastRun() + logs() }
	waitUntil(t, 30*time.Second, "the tail of both gears' logs", followLogs, func() bool {
		n := 0
		for id := range gearIDs {
			if strings.Contains(follow.output.String(), " "+id+" ") {
				n++
			}
		}
		return n == 2
	})
	if _, _, err := demo.AppEvent(ctx, "test", "testha", "restart"); err != nil {
		t.Fatalf("restart: %v", err)
	}
	waitUntil(t, 60*time.Second, "both gears' restarts followed", followLogs, func() bool {
		n := 0
		for id := range gearIDs {
			if strings.Contains(follow.output.String(), " "+id+" gearbox: stopping the gear") {
				n++
			}
		}
		return n == 2
	})
	follow.signal(os.Interrupt)
	if st, ok := follow.wait(10 * time.Second); !ok || st.ExitCode() != 0 {
		t.Errorf("gearbox app logs -f after Ctrl-C: exited %v (%v)%s", st, ok, follow.lastRun())
	}

	// rhc scale-cartridge -a testha ruby --min 1 --max 1
	_, _, err = demo.SetScale(ctx, "test", "testha", "static", 1, 1)
	if err == nil || !strings.Contains(err.Error(), "Cannot set the max gear limit to '1' if the application is HA (highly available)") {
		t.Errorf("scale to 1 on an HA app: %v", err)
	}

	// The CLI sees the same: app show --gears lists two LB gears.
	out, stderr, code = runGearboxEnv(t, 30*time.Second, cliEnv, append([]string{"app", "show", "testha", "-n", "test", "--gears"}, cliAuth...)...)
	if code != 0 || strings.Count(out, "lb static") != 2 {
		t.Errorf("gearbox app show --gears (exit %d):\n%s\n%s", code, out, stderr)
	}
	_, stderr, code = runGearboxEnv(t, 30*time.Second, cliEnv, append([]string{"app", "scale", "testha", "-n", "test", "--min", "1", "--max", "1"}, cliAuth...)...)
	if code == 0 || !strings.Contains(stderr, "if the application is HA") {
		t.Errorf("gearbox app scale --max 1 on an HA app: exit %d, stderr %q", code, stderr)
	}

	// disable-ha, then the app can go back to one gear and one LB.
	if _, _, err := demo.AppEvent(ctx, "test", "testha", "disable-ha"); err != nil {
		t.Fatalf("disable-ha: %v", err)
	}
	app, _, err = demo.AppEvent(ctx, "test", "testha", "scale-down")
	if err != nil {
		t.Fatalf("scale-down after disable-ha: %v", err)
	}
	if app.GearCount != 1 || app.HA || app.LB == nil || app.LB.Gears != 1 {
		t.Errorf("after disable-ha and scale-down: gears %d, ha %v, lb %+v", app.GearCount, app.HA, app.LB)
	}
}

// tinyArchive is a tar.gz holding one index.html.
func tinyArchive(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	page := []byte("<h1>deployed</h1>\n")
	if err := tw.WriteHeader(&tar.Header{Name: "index.html", Mode: 0o644, Size: int64(len(page))}); err != nil {
		t.Fatal(err)
	}
	tw.Write(page)
	tw.Close()
	zw.Close()
	return buf.Bytes()
}

// waitUntil polls cond until it holds or fails the test after timeout.
func waitUntil(t testing.TB, timeout time.Duration, what string, logs func() string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for: %s%s", timeout, what, logs())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// readmeUserAndLogin runs the README walkthrough's user create and login
// lines exactly as written (the password of each in the environment, not
// on the command line), with GEARBOX_API set to api as the walkthrough's
// export sets it to its own broker, then checks the saved login works.
func readmeUserAndLogin(t *testing.T, api string) {
	t.Helper()
	raw, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, line := range strings.Split(readmeBlock(t, string(raw), "The seed's HA walkthrough"), "\n") {
		if strings.Contains(line, "./gearbox user create ") || strings.Contains(line, "./gearbox login ") {
			lines = append(lines, line)
		}
	}
	if len(lines) != 2 || strings.Contains(strings.Join(lines, "\n"), "--password ") {
		t.Fatalf("README walkthrough's user create and login lines changed shape: %q", lines)
	}
	dir := t.TempDir()
	if err := os.Symlink(gearboxBinary(t), filepath.Join(dir, "gearbox")); err != nil {
		t.Fatal(err)
	}
	sh := exec.Command("bash", "-ec", strings.Join(append(lines, "./gearbox domain list"), "\n"))
	sh.Dir = dir
	sh.Env = append(childEnv(), "GEARBOX_API="+api, "XDG_CONFIG_HOME="+filepath.Join(dir, "config"))
	out, err := sh.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Logged in to "+api+" as demo.") {
		t.Fatalf("README walkthrough's user create and login: %v\n%s", err, out)
	}
}

// waitAliveNodes waits until the broker that admin talks to sees n node
// members alive.
func waitAliveNodes(t testing.TB, admin *client.Client, n int, timeout time.Duration, logs func() string) {
	t.Helper()
	waitUntil(t, timeout, fmt.Sprintf("the broker sees %d alive nodes", n), logs, func() bool {
		nodes, err := admin.Nodes(context.Background())
		alive := 0
		for _, node := range nodes {
			if node.Alive {
				alive++
			}
		}
		return err == nil && alive == n
	})
}
