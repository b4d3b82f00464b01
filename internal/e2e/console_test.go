//go:build linux

package e2e

import (
	"context"
	"fmt"
	"net/url"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestConsoleInBrowser drives the web console in a headless Chromium
// (Debian's chromium package, which .ci/run installs) against a broker and
// two nodes (separate processes): a user logs in, creates a domain and a
// scalable app, scales it, makes it HA and watches HA become effective,
// deploys a .tar.gz, and sees its log line come; another user sees none
// of it, not even through the API with the console's session.
func TestConsoleInBrowser(t *testing.T) {
	chrome, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium (Debian package chromium) is not installed: the console's browser test is skipped")
	}
	c := startAppCluster(t, "e2e-console-secret", []memberSpec{
		{"b1", "127.0.0.98", "broker", ""}, {"n1", "127.0.0.99", "node", "za"}, {"n2", "127.0.0.100", "node", "zb"},
	})
	ctx := context.Background()
	for _, u := range []string{"alice", "bob"} {
		if _, _, err := c.admin.CreateUser(ctx, u, u+"-password-1", url.Values{"ha": {"true"}, "max_gears": {"10"}}); err != nil {
			t.Fatal(err)
		}
	}
	// The app to deploy, packed as a user would.
	appDir := t.TempDir()
	buildTestApp(t, appDir, "v1")
	archive := filepath.Join(t.TempDir(), "app.tar.gz")
	if out, err := exec.Command("tar", "-czf", archive, "-C", appDir, ".").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v\n%s", err, out)
	}

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chrome), chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true), chromedp.UserDataDir(t.TempDir()))
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()
	// The first run starts the browser, with no deadline of its own.
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	// What the page says on its console goes to a failure's report.
	var consoleMu sync.Mutex
	var consoleLines []string
	go func() {
		for m, err := range chromedp.Console(bctx) {
			if err != nil {
				return
			}
			consoleMu.Lock()
			consoleLines = append(consoleLines, m.String())
			consoleMu.Unlock()
		}
	}()
	page := func() string {
		tctx, cancel := context.WithTimeout(bctx, 5*time.Second)
		defer cancel()
		body, err := chromedp.Run(tctx, chromedp.Evaluate[string](
			`JSON.stringify({hash: location.hash, error: document.getElementById("error").textContent, view: document.getElementById("view").innerText})`))
		consoleMu.Lock()
		defer consoleMu.Unlock()
		return fmt.Sprintf("%s (%v)\nconsole:\n%s\n", body, err, strings.Join(consoleLines, "\n"))
	}
	run := func(what string, timeout time.Duration, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		tctx, cancel := context.WithTimeout(bctx, timeout)
		defer cancel()
		if err := chromedp.Do(tctx, steps...); err != nil {
			t.Fatalf("%s: %v\npage:\n%s%s", what, err, page(), c.logs())
		}
	}
	// eval runs a script whose promise gives an int.
	eval := func(what, script string) int {
		t.Helper()
		tctx, cancel := context.WithTimeout(bctx, 30*time.Second)
		defer cancel()
		v, err := chromedp.Run(tctx, chromedp.Evaluate[int](script, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return v
	}
	// waitText waits until the element sel's text contains want.
	waitText := func(what, sel, want string, timeout time.Duration) {
		t.Helper()
		deadline := time.Now().Add(timeout)
		var got string
		for {
			tctx, cancel := context.WithTimeout(bctx, 5*time.Second)
			var err error
			got, err = chromedp.Run(tctx, chromedp.Text(chromedp.CSS(sel)))
			cancel()
			if err == nil && strings.Contains(got, want) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %s says %q, want %q (%v)%s", what, sel, got, want, err, c.logs())
			}
			// The views show what they read when drawn: redraw.
			rctx, cancel := context.WithTimeout(bctx, 5*time.Second)
			chromedp.Run(rctx, chromedp.Evaluate[any](`route().then(() => 0)`, chromedp.EvalAwaitPromise))
			cancel()
			time.Sleep(500 * time.Millisecond)
		}
	}
	logIn := func(user string) {
		t.Helper()
		run("log in as "+user, 30*time.Second,
			chromedp.Navigate(c.api+"/console/"),
			chromedp.WaitVisible(chromedp.CSS("#login-form")),
			chromedp.SendKeys(chromedp.CSS("#login-user"), user),
			chromedp.SendKeys(chromedp.CSS("#login-password"), user+"-password-1"),
			chromedp.Click(chromedp.CSS("#login-submit")),
			chromedp.WaitVisible(chromedp.CSS("#apps-view")))
	}

	logIn("alice")
	run("create a domain", 30*time.Second,
		chromedp.SendKeys(chromedp.CSS("#create-domain input[name=name]"), "alice"),
		chromedp.Click(chromedp.CSS("#create-domain button")),
		chromedp.WaitVisible(chromedp.CSS("#create-app-alice")))
	run("create a scalable app", 30*time.Second,
		chromedp.SendKeys(chromedp.CSS("#create-app-alice input[name=name]"), "web"),
		chromedp.Click(chromedp.CSS("#create-app-alice input[name=scale]")),
		chromedp.Click(chromedp.CSS("#create-app-alice button")),
		chromedp.WaitVisible(chromedp.CSS(`a[href="#/app/alice/web"]`)),
		chromedp.Click(chromedp.CSS(`a[href="#/app/alice/web"]`)),
		chromedp.WaitVisible(chromedp.CSS("#app-view")))
	run("scale up", 30*time.Second, chromedp.Click(chromedp.CSS("#event-scale-up")))
	waitText("two gears", "#app-gear-count", "2", 60*time.Second)
	run("make it HA", 30*time.Second, chromedp.WaitVisible(chromedp.CSS("#event-make-ha")), chromedp.Click(chromedp.CSS("#event-make-ha")))
	waitText("HA effective", "#app-ha", "yes, effective", 120*time.Second)

	run("deploy a .tar.gz", 30*time.Second,
		chromedp.SetUploadFiles(chromedp.CSS("#deploy-file"), []string{archive}),
		chromedp.Click(chromedp.CSS("#deploy-submit")))
	waitText("roll-out done", "#rollout", "done", 180*time.Second)
	waitText("the app's log line", "#log", "e2eapp v1 listening", 60*time.Second)

	// Bob sees none of it, in the page or through the API with his
	// session.
	run("log out", 30*time.Second, chromedp.Click(chromedp.CSS("#logout")), chromedp.WaitVisible(chromedp.CSS("#login-form")))
	logIn("bob")
	apps := page()
	if strings.Contains(apps, "alice") || strings.Contains(apps, "web") {
		t.Errorf("bob's console shows alice's apps:\n%s", apps)
	}
	status := eval("bob's session on alice's app",
		`fetch("/broker/rest/domains/alice/applications/web", {credentials: "same-origin"}).then(r => r.status)`)
	if status != 404 && status != 403 {
		t.Errorf("bob's session reading alice's app: %d, want 404 or 403", status)
	}
	// A change with the session cookie but without its CSRF token is
	// refused.
	status = eval("a change without the CSRF token",
		`fetch("/broker/rest/domains", {method: "POST", credentials: "same-origin", headers: {"Content-Type": "application/x-www-form-urlencoded"}, body: "name=bobs"}).then(r => r.status)`)
	if status != 403 {
		t.Errorf("a change without the CSRF token: %d, want 403", status)
	}
}
