package broker

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gearbox/broker/githook"
	"gearbox/internal/testutil"
	"gearbox/store"
	"gearbox/store/state"
)

// TestMain runs the test binary as the repositories' pre-receive hook
// when a test's broker asks for it (gitHook).
func TestMain(m *testing.M) {
	if os.Getenv("GEARBOX_BROKER_TEST_HOOK") == "1" {
		os.Exit(githook.Run(context.Background(), os.Stdin, os.Stdout, os.Getenv))
	}
	os.Exit(m.Run())
}

// gitHook has a test's broker run this test binary as the hook.
func gitHook(t testing.TB) func(*Config) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return func(cfg *Config) { cfg.GitHook = []string{"env", "GEARBOX_BROKER_TEST_HOOK=1", exe} }
}

// needGit skips a test on a machine without git.
func needGit(t testing.TB) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed")
	}
}

// gitRun runs git in dir with env added, and returns its combined output
// and error.
func gitRun(dir string, env []string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "GIT_CONFIG_NOSYSTEM=1", "HOME="+dir,
		"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.test", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.test")
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// gitAuth is the environment that has git send who's basic auth, without
// putting it on a command line.
func gitAuth(who creds) []string {
	h := "Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(who.user+":"+who.pass))
	return []string{"GIT_CONFIG_COUNT=1", "GIT_CONFIG_KEY_0=http.extraHeader", "GIT_CONFIG_VALUE_0=" + h}
}

// commit writes files into the repository dir and commits them.
func commit(t testing.TB, dir string, files map[string]string) string {
	t.Helper()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, args := range [][]string{{"add", "-A"}, {"commit", "-q", "-m", "change"}} {
		if out, err := gitRun(dir, nil, args...); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	out, err := gitRun(dir, nil, "rev-parse", "HEAD")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(out)
}

// archiveHas reports whether the tar.gz file holds a file called name.
func archiveHas(file, name string) bool {
	f, err := os.Open(file)
	if err != nil {
		return false
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return false
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err != nil {
			return false
		}
		if strings.TrimPrefix(h.Name, "./") == name {
			return true
		}
	}
}

// archiveFile returns the content of file name in the tar.gz file.
func archiveFile(t testing.TB, file, name string) string {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("%s not in %s: %v", name, file, err)
		}
		if strings.TrimPrefix(h.Name, "./") == name {
			b, _ := io.ReadAll(tr)
			return string(b)
		}
	}
}

// A push of the deploy branch deploys its commit and rolls it out, the
// progress coming back as remote: lines; a push whose deployment fails is
// refused and the app runs what it ran; other branches are only stored;
// the repository reaches every broker and goes with the app.
func TestGitPush(t *testing.T) {
	needGit(t)
	c := newCluster(t, clusterOpts{cfg: gitHook(t)})
	c.fakeNodes(t)
	c.domain(t, admin, "ns")
	c.createApp(t, admin, "ns", "web", url.Values{"scale": {"true"}})
	c.event(t, admin, "ns", "web", "scale-up")
	remote := c.url + "/git/ns/web.git"

	work := t.TempDir()
	if out, err := gitRun(work, nil, "init", "-q", "-b", "main"); err != nil {
		t.Fatalf("git init: %v\n%s", err, out)
	}
	first := commit(t, work, map[string]string{"index.html": "v1\n", ".gitignore": "secret.txt\n", "secret.txt": "not committed\n"})
	out, err := gitRun(work, gitAuth(admin), "push", remote, "main")
	if err != nil {
		t.Fatalf("first push: %v\n%s", err, out)
	}
	for _, want := range []string{"remote: building a deployment of web from commit " + first[:12], "remote: roll-out: ", "remote: deployed: web runs deployment"} {
		if !strings.Contains(out, want) {
			t.Errorf("push output lacks %q:\n%s", want, out)
		}
	}
	a := c.appRecord(t, "ns", "web")
	if a.Deployment == "" || archiveFile(t, c.b.blobPath(a.Deployment), "index.html") != "v1\n" {
		t.Fatalf("after the push the app runs %q, want the pushed commit's files", a.Deployment)
	}
	if archiveHas(c.b.blobPath(a.Deployment), "secret.txt") {
		t.Error("an ignored file was deployed")
	}
	if r := c.rollout(t, "ns", "web"); r.State != state.RolloutDone || r.Deployment != a.Deployment || r.Done != 2 {
		t.Errorf("roll-out after the push: %+v", r)
	}
	good := a.Deployment

	// Another branch is stored, not deployed.
	if out, err := gitRun(work, nil, "checkout", "-q", "-b", "feature"); err != nil {
		t.Fatal(out)
	}
	feature := commit(t, work, map[string]string{"index.html": "feature\n"})
	out, err = gitRun(work, gitAuth(admin), "push", remote, "feature")
	if err != nil || !strings.Contains(out, "remote: feature stored; pushes of main are deployed") {
		t.Fatalf("push of another branch: %v\n%s", err, out)
	}
	if a := c.appRecord(t, "ns", "web"); a.Deployment != good {
		t.Errorf("a push of another branch deployed %s", a.Deployment)
	}

	// A deployment that fails: the push is refused, the app goes back.
	gitRun(work, nil, "checkout", "-q", "main")
	commit(t, work, map[string]string{"broken": "x\n", "index.html": "v2\n"})
	out, err = gitRun(work, gitAuth(admin), "push", remote, "main")
	if err == nil {
		t.Fatalf("push of a failing deployment succeeded:\n%s", out)
	}
	for _, want := range []string{"remote: roll-out: ", "build of deployment failed", "remote: push refused: deployment", "runs deployment " + good[:12] + " again", "pre-receive hook declined"} {
		if !strings.Contains(out, want) {
			t.Errorf("refused push's output lacks %q:\n%s", want, out)
		}
	}
	if a := c.appRecord(t, "ns", "web"); a.Deployment != good {
		t.Errorf("after a refused push the app runs %s, want %s again", a.Deployment, good)
	}
	out, err = gitRun(work, gitAuth(admin), "ls-remote", remote)
	if err != nil || !strings.Contains(out, first+"\trefs/heads/main") || !strings.Contains(out, feature+"\trefs/heads/feature") {
		t.Errorf("remote's refs after a refused push: %v\n%s, want main at %s", err, out, first)
	}

	// Credentials: none, wrong, or another user's.
	out, err = gitRun(work, nil, "ls-remote", remote)
	if err == nil || !strings.Contains(out, "Authentication failed") && !strings.Contains(out, "could not read Username") {
		t.Errorf("ls-remote without credentials: %v\n%s", err, out)
	}
	out, err = gitRun(work, gitAuth(basic(adminLogin, "wrong-password")), "ls-remote", remote)
	if err == nil || !strings.Contains(out, "could not read Username") && !strings.Contains(out, "Authentication failed") {
		t.Errorf("ls-remote with a wrong password: %v\n%s", err, out)
	}
	c.ok(t, "POST", "/broker/rest/users", admin, url.Values{"login": {"eve"}, "password": {"evepass123"}}, nil)
	out, err = gitRun(work, gitAuth(basic("eve", "evepass123")), "push", remote, "main")
	if err == nil {
		t.Errorf("another user pushed to the app:\n%s", out)
	}
	// A token works as the password.
	var tok struct {
		Token string `json:"token"`
	}
	c.ok(t, "POST", "/broker/rest/user/authorizations", admin, nil, &tok)
	if out, err := gitRun(work, gitAuth(basic(adminLogin, tok.Token)), "ls-remote", remote); err != nil || !strings.Contains(out, "refs/heads/main") {
		t.Errorf("ls-remote with a token as the password: %v\n%s", err, out)
	}

	// A second broker gets its own copy.
	m2 := startMember(t, "b2", []string{store.RoleBroker}, "", "")
	if _, err := m2.st.Join([]string{c.bm.GossipAddr()}); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "b2 sees the repository's record", func() bool {
		_, err := m2.st.GetRecord(state.BucketRepos, "ns/web")
		return err == nil
	})
	b2, _ := startBroker(t, m2, c.clock, clusterOpts{cfg: gitHook(t)})
	testutil.WaitFor(t, 20*time.Second, "b2's copy of the repository", func() bool {
		out, err := gitRun(t.TempDir(), nil, "--git-dir", b2.repoDir("ns/web"), "for-each-ref", "--format=%(objectname) %(refname)")
		return err == nil && strings.Contains(out, first+" refs/heads/main") && strings.Contains(out, feature+" refs/heads/feature")
	})

	// The app's deletion removes every copy.
	c.ok(t, "DELETE", appPath("ns", "web", ""), admin, nil, nil)
	testutil.WaitFor(t, 40*time.Second, "the repository removed from both brokers", func() bool {
		_, err1 := os.Stat(c.b.repoDir("ns/web"))
		_, err2 := os.Stat(b2.repoDir("ns/web"))
		return errors.Is(err1, os.ErrNotExist) && errors.Is(err2, os.ErrNotExist)
	})
}
