//go:build linux

package e2e

import (
	"bufio"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"gearbox/internal/testutil"

	"github.com/miekg/dns"
)

// Lines of the dev command's instructions that the test follows.
var (
	devCurlRE = regexp.MustCompile(`curl -H 'Host: ([^']+)' (http://[0-9.:]+/)\s*$`)
	devDigRE  = regexp.MustCompile(`dig @([0-9.]+) -p ([0-9]+) (ha-\S+)`)
)

// TestDevEndToEnd runs `gearbox dev` from nothing, as the README says, and
// follows the instructions it prints: the ha- name resolves and answers
// through the router within 30 s of the start. Ctrl-C then stops it, and
// a second start on the same state does the same.
func TestDevEndToEnd(t *testing.T) {
	bin := gearboxBinary(t)
	dir := filepath.Join(t.TempDir(), "dev")
	t.Run("first start", func(t *testing.T) { runDevOnce(t, bin, dir, true) })
	t.Run("start again", func(t *testing.T) { runDevOnce(t, bin, dir, false) })
	checkDevFilesPrivate(t, dir)
}

// checkDevFilesPrivate checks that what gearbox dev keeps is its user's
// only: the folder (0700), its log, each member's state.db (0600) and
// gossip snapshot folder (0700).
func checkDevFilesPrivate(t *testing.T, dir string) {
	want := map[string]fs.FileMode{".": fs.ModeDir | 0o700, "gearbox.log": 0o600}
	dbs, _ := filepath.Glob(filepath.Join(dir, "*", "state.db"))
	if len(dbs) == 0 {
		t.Errorf("no state.db under %s", dir)
	}
	for _, db := range dbs {
		m, _ := filepath.Rel(dir, filepath.Dir(db))
		want[filepath.Join(m, "state.db")] = 0o600
		want[filepath.Join(m, "serf")] = fs.ModeDir | 0o700
	}
	for path, mode := range want {
		fi, err := os.Stat(filepath.Join(dir, path))
		if err != nil {
			t.Errorf("%s: %v", path, err)
		} else if got := fi.Mode() & (fs.ModeDir | fs.ModePerm); got != mode {
			t.Errorf("%s: mode %s, want %s", path, got, mode)
		}
	}
}

// runDevOnce starts `gearbox dev` on dir, follows its instructions (with
// cli, its CLI commands too, in a shell, as printed) and stops it with
// Ctrl-C.
func runDevOnce(t *testing.T, bin, dir string, cli bool) {
	cmd := exec.Command(bin, "dev", "--data-dir", dir)
	cmd.Env = childEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := &testutil.Buffer{}
	cmd.Stderr = stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		if t.Failed() {
			log, _ := os.ReadFile(dir + "/gearbox.log")
			t.Logf("stderr:\n%s\nlog (end):\n%s", stderr.String(), tail(string(log), 8000))
		}
	})

	var out strings.Builder
	var curlHost, curlURL, digServer, digName string
	deadline := time.After(30 * time.Second)
	for curlURL == "" || digName == "" || !strings.Contains(out.String(), "Ctrl-C stops everything") {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("gearbox dev exited during start-up:\n%s", out.String())
			}
			out.WriteString(line + "\n")
			if m := devCurlRE.FindStringSubmatch(line); m != nil && strings.HasPrefix(m[1], "ha-") && curlURL == "" {
				curlHost, curlURL = m[1], m[2]
			}
			if m := devDigRE.FindStringSubmatch(line); m != nil && digName == "" {
				digServer, digName = m[1]+":"+m[2], m[3]
			}
		case <-deadline:
			t.Fatalf("no instructions within 30 s; output so far:\n%s", out.String())
		}
	}
	// The printed commands work.
	req, _ := http.NewRequest("GET", curlURL, nil)
	req.Host = curlHost
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s with Host %s: %v", curlURL, curlHost, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "demo") {
		t.Fatalf("%s with Host %s: %s %.300s", curlURL, curlHost, resp.Status, body)
	}
	if took := time.Since(start); took > 30*time.Second {
		t.Errorf("the ha- URL answered %s after the start, want within 30 s", took)
	}
	got, rcode, err := lookup(digServer, digName, dns.TypeA)
	if err != nil || rcode != dns.RcodeSuccess || len(got) == 0 {
		t.Errorf("dig @%s %s: %v rcode %d, %v", digServer, digName, got, rcode, err)
	}
	t.Logf("gearbox dev ready after %s; %s -> %v", time.Since(start).Round(time.Millisecond), digName, got)
	if cli {
		followCLICommands(t, out.String(), dir)
	}

	// Ctrl-C stops everything within seconds.
	cmd.Process.Signal(os.Interrupt)
	go func() {
		for range lines {
		}
	}()
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("gearbox dev after Ctrl-C: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("gearbox dev still running 20 s after Ctrl-C")
	}
}

// followCLICommands runs, in one shell and exactly as printed, the export
// and gearbox command lines of the dev cluster's instructions: the CLI
// commands must work from a fresh checkout, where no gearbox binary is on
// PATH until the printed export puts the dev cluster's own there.
func followCLICommands(t *testing.T, printed, dir string) {
	t.Helper()
	var script []string
	var gearboxLines int
	for _, line := range strings.Split(printed, "\n") {
		// Commands are indented; progress lines ("gearbox dev: ...") are
		// not.
		if !strings.HasPrefix(line, "  ") {
			continue
		}
		cmd, _, _ := strings.Cut(strings.TrimSpace(line), "#")
		cmd = strings.TrimSpace(cmd)
		switch {
		case strings.HasPrefix(cmd, "export "):
			script = append(script, cmd)
		case strings.HasPrefix(cmd, "gearbox "):
			script = append(script, cmd)
			gearboxLines++
		}
	}
	// app show, app lb-status, node list, dev kill, dev start.
	if gearboxLines < 5 {
		t.Fatalf("found %d gearbox commands in the instructions, want at least 5:\n%s", gearboxLines, printed)
	}
	// Which gearbox the commands ran.
	script = append(script, "command -v gearbox")
	sh := exec.Command("bash", "-ec", strings.Join(script, "\n"))
	// No gearbox on PATH but the one the instructions put there.
	sh.Env = append(childEnv(), "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	out, err := sh.CombinedOutput()
	if err != nil {
		t.Fatalf("the printed CLI commands failed: %v\n%s\n--- output:\n%s", err, strings.Join(script, "\n"), out)
	}
	// app lb-status shows at least the load balancer that served the
	// ha- URL, with its backends.
	for _, want := range []string{"demo", "LB gear", "balance leastconn", "BACKEND", "dev-node1", "dev-node2", "dev-node3", "kill done", "start done",
		filepath.Join(dir, "bin", "gearbox")} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output of the printed CLI commands lacks %q:\n%s", want, out)
		}
	}
}

// tail returns the last n bytes of s.
func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
