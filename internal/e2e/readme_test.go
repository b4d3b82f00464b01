//go:build linux

package e2e

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"gearbox/internal/testutil"
)

// readmeBlock returns the first fenced code block of README.md that
// follows the line containing after.
func readmeBlock(t *testing.T, readme, after string) string {
	t.Helper()
	i := strings.Index(readme, after)
	if i < 0 {
		t.Fatalf("README.md has no %q", after)
	}
	rest := readme[i:]
	start := strings.Index(rest, "```")
	if start < 0 {
		t.Fatalf("no code block after %q", after)
	}
	rest = rest[start:]
	rest = rest[strings.Index(rest, "\n")+1:]
	end := strings.Index(rest, "```")
	return rest[:end]
}

// copyModule copies the module's source (everything but .git and local
// state) to dir, so that a README command such as `go build -o gearbox .`
// runs as written without writing into the working tree.
func copyModule(t *testing.T, root, dir string) {
	t.Helper()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() && (d.Name() == ".git" || strings.HasPrefix(d.Name(), ".gearbox-")) {
			return filepath.SkipDir
		}
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dir, rel), 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestReadmeOneMachineCluster runs the README's commands for a cluster
// on one machine exactly as written: make the secret, build, start three
// members on 127.0.0.11-13, then `gearbox members` as the README shows it,
// which must list the three, alive, gb1 the broker leader.
func TestReadmeOneMachineCluster(t *testing.T) {
	gearboxBinary(t) // skipped with -short, like the other end-to-end tests
	if os.Geteuid() != 0 {
		t.Skip("the README's one-machine cluster runs as root (node fronts on port 80)")
	}
	raw, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(raw)
	secret := readmeBlock(t, readme, "Every member needs the same cluster secret")
	cluster := readmeBlock(t, readme, "Or, to try it, on one Linux machine")
	var members string
	for _, line := range strings.Split(readmeBlock(t, readme, "`gearbox members` asks"), "\n") {
		if cmd, ok := strings.CutPrefix(line, "$ "); ok {
			members = cmd
		}
	}
	if !strings.Contains(cluster, "go build") || members == "" {
		t.Fatalf("README blocks changed shape:\n%s\n%s", cluster, members)
	}
	dir := t.TempDir()
	copyModule(t, "../..", dir)
	env := append(childEnv(), "PATH="+filepath.Dir(goTool())+":"+os.Getenv("PATH"))

	// The README's commands, then: wait for the members started with &.
	sh := exec.Command("bash", "-c", secret+cluster+"wait\n")
	sh.Dir, sh.Env = dir, env
	out := &testutil.Buffer{}
	sh.Stdout, sh.Stderr = out, out
	sh.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := sh.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { sh.Wait(); close(exited) }()
	t.Cleanup(func() {
		syscall.Kill(-sh.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			syscall.Kill(-sh.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		if t.Failed() {
			t.Logf("output of the README's commands:\n%s", tail(out.String(), 8000))
		}
	})

	var last string
	testutil.WaitFor(t, 3*time.Minute, "the README's members table", func() bool {
		select {
		case <-exited:
			t.Fatalf("the README's commands ended:\n%s", out.String())
		default:
		}
		cmd := exec.Command("bash", "-c", members)
		cmd.Dir, cmd.Env = dir, env
		b, _ := cmd.CombinedOutput()
		last = string(b)
		lines := strings.Split(strings.TrimSpace(last), "\n")
		if len(lines) < 4 {
			return false
		}
		for i, name := range []string{"gb1 *", "gb2", "gb3"} {
			if !strings.HasPrefix(lines[i+1], name+" ") || !strings.HasSuffix(lines[i+1], "alive") ||
				!strings.Contains(lines[i+1], "broker,node,router") {
				return false
			}
		}
		return true
	}, func() string { return "last table:\n" + last })
	if bytes.Contains([]byte(out.String()), []byte("panic")) {
		t.Errorf("a member panicked:\n%s", out.String())
	}
}
