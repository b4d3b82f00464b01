//go:build linux

package e2e

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	brokerapi "gearbox/broker/api"
)

// TestGitPushEndToEnd runs the README's git push lines exactly as written
// against a broker and two nodes (separate processes): the app serves
// the pushed commit. A second push whose health check fails is refused
// with the reason while the first version serves every request, and a
// third, healthy, push is deployed.
func TestGitPushEndToEnd(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed")
	}
	c := startAppClusterEnv(t, "e2e-git-secret", []memberSpec{
		{"b1", "127.0.0.91", "broker", ""}, {"n1", "127.0.0.92", "node", "za"}, {"n2", "127.0.0.93", "node", "zb"},
	}, []string{"GEARBOX_HANDOVER_TIMEOUT=20s"})
	ctx := context.Background()
	if _, _, err := c.admin.CreateDomain(ctx, "test"); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	if err := os.Symlink(gearboxBinary(t), filepath.Join(dir, "gearbox")); err != nil {
		t.Fatal(err)
	}
	appDir := filepath.Join(dir, "myapp")
	if err := os.Mkdir(appDir, 0o755); err != nil {
		t.Fatal(err)
	}
	buildTestApp(t, appDir, "v1")
	env := append(childEnv(), "HOME="+dir, "XDG_CONFIG_HOME="+filepath.Join(dir, "config"), "GEARBOX_API="+c.api,
		"GIT_CONFIG_NOSYSTEM=1", "GIT_TERMINAL_PROMPT=0", "GIT_AUTHOR_NAME=dev", "GIT_AUTHOR_EMAIL=dev@example.test",
		"GIT_COMMITTER_NAME=dev", "GIT_COMMITTER_EMAIL=dev@example.test")
	sh := func(in, script string) (string, error) {
		cmd := exec.Command("bash", "-ec", script)
		cmd.Dir, cmd.Env = in, env
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	// The CLI's login: git pushes with the token it saves.
	if out, err := sh(dir, "GEARBOX_PASSWORD=adminpass1 ./gearbox login --user admin"); err != nil {
		t.Fatalf("login: %v\n%s", err, out)
	}
	raw, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	block := readmeBlock(t, string(raw), "Or deploy with `git push`")
	if !strings.Contains(block, "git push gearbox main") {
		t.Fatalf("README's git push block changed shape:\n%s", block)
	}
	out, err := sh(dir, block)
	if err != nil {
		t.Fatalf("README's git push lines: %v\n%s%s", err, out, c.logs())
	}
	for _, want := range []string{"remote: building a deployment of myapp from commit", "remote: roll-out: ", "remote: deployed: myapp runs deployment"} {
		if !strings.Contains(out, want) {
			t.Errorf("first push's output lacks %q:\n%s", want, out)
		}
	}

	var gear brokerapi.Gear
	waitUntil(t, 30*time.Second, "the app's gear", c.logs, func() bool {
		gg, err := c.admin.GearGroups(ctx, "test", "myapp")
		if err == nil && len(gg) == 1 && len(gg[0].Gears) == 1 {
			gear = gg[0].Gears[0]
		}
		return gear.ID != ""
	})
	front, host := "http://"+c.ip(gear.Node)+":8080", "myapp-test.apps.example.com"
	hc := &http.Client{Timeout: 5 * time.Second}
	waitUntil(t, 60*time.Second, "the app serves v1", c.logs, func() bool { return askApp(hc, front, host, "GET").version == "v1" })
	show, errOut, code := runGearboxEnv(t, 30*time.Second, []string{"HOME=" + dir, "XDG_CONFIG_HOME=" + filepath.Join(dir, "config")},
		"app", "show", "myapp", "-n", "test", "--api", c.api)
	if code != 0 || !strings.Contains(show, c.api+"/git/test/myapp.git (deploys branch main)") {
		t.Errorf("app show (exit %d) does not give the git remote:\n%s%s", code, show, errOut)
	}
	first, err := c.admin.App(ctx, "test", "myapp", false)
	if err != nil {
		t.Fatal(err)
	}
	deps, err := c.admin.Deployments(ctx, "test", "myapp")
	if err != nil || len(deps) != 1 {
		t.Fatalf("deployments after the first push: %v %+v", err, deps)
	}

	// A version whose health check fails: refused, v1 serves throughout.
	if err := os.WriteFile(filepath.Join(appDir, "version.txt"), []byte("unhealthy-v2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	load := startLoad(front, host, 4)
	out, err = sh(appDir, `git commit -q -am "v2" && git push gearbox main`)
	n, fails := load.end()
	if err == nil {
		t.Fatalf("the push of a version that fails its health check succeeded:\n%s", out)
	}
	for _, want := range []string{"did not pass its health check", "remote: push refused: deployment", "runs deployment " + deps[0].ID[:12] + " again", "pre-receive hook declined"} {
		if !strings.Contains(out, want) {
			t.Errorf("refused push's output lacks %q:\n%s", want, out)
		}
	}
	if len(fails) > 0 || load.byVer["v1"] != n {
		t.Errorf("during the refused push, %d of %d requests failed (first: %v) and %d were answered by v1", len(fails), n, fails, load.byVer["v1"])
	}
	t.Logf("refused push: %d requests, all answered by v1", n)
	if a, err := c.admin.App(ctx, "test", "myapp", false); err != nil || a.ID != first.ID {
		t.Fatalf("app after the refused push: %v", err)
	}
	if ro, err := c.admin.Rollout(ctx, "test", "myapp"); err != nil || ro.Deployment != deps[0].ID {
		t.Errorf("after the refused push the app's deployment is %s (%v), want %s", ro.Deployment, err, deps[0].ID)
	}

	// Fixed: the next push deploys.
	if err := os.WriteFile(filepath.Join(appDir, "version.txt"), []byte("v3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := sh(appDir, `git commit -q -am "v3" && git push gearbox main`); err != nil || !strings.Contains(out, "remote: deployed: myapp") {
		t.Fatalf("push of v3: %v\n%s", err, out)
	}
	waitUntil(t, 30*time.Second, "the app serves v3", c.logs, func() bool { return askApp(hc, front, host, "GET").version == "v3" })
}
