package scripts

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The tests run install.sh with DESTDIR set to a scratch root, so that it
// writes nothing outside it, and with a systemctl first in PATH that
// records being called: with DESTDIR set, install.sh must not call it.

// shell returns the path of sh, skipping the test where there is none.
func shell(t *testing.T) string {
	t.Helper()
	if runtime.GOOS == "windows" {
		t.Skip("install.sh is a POSIX shell script for Linux hosts")
	}
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh: ", err)
	}
	return sh
}

// cleanEnv is the test's environment without the variables that
// install.sh reads, plus extra.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GEARBOX_") && !strings.HasPrefix(kv, "DESTDIR=") && !strings.HasPrefix(kv, "PATH=") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// installer runs install.sh in one test.
type installer struct {
	t      *testing.T
	sh     string
	script string // install.sh's absolute path
	path   string // PATH, with the fake systemctl first
	called string // the file the fake systemctl writes
}

func newInstaller(t *testing.T) *installer {
	t.Helper()
	sh := shell(t)
	script, err := filepath.Abs("install.sh")
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	called := filepath.Join(bin, "systemctl-called")
	fake := fmt.Sprintf("#!/bin/sh\necho \"systemctl $*\" >>%s\nexit 1\n", called)
	if err := os.WriteFile(filepath.Join(bin, "systemctl"), []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	return &installer{t: t, sh: sh, script: script, path: bin + ":" + os.Getenv("PATH"), called: called}
}

// run runs install.sh with args under the scratch root dest, in directory
// dir ("": the test's), with env added to a clean environment. It returns
// the output and whether the script succeeded.
func (in *installer) run(dest, dir string, env []string, args ...string) (string, bool) {
	in.t.Helper()
	if !filepath.IsAbs(dest) || dest == "/" {
		in.t.Fatalf("DESTDIR %q: the tests install under scratch roots only", dest)
	}
	cmd := exec.Command(in.sh, append([]string{in.script}, args...)...)
	cmd.Dir = dir
	cmd.Env = cleanEnv(append([]string{"DESTDIR=" + dest, "PATH=" + in.path}, env...)...)
	out, err := cmd.CombinedOutput()
	if _, statErr := os.Stat(in.called); statErr == nil {
		b, _ := os.ReadFile(in.called)
		in.t.Fatalf("install.sh ran systemctl with DESTDIR set:\n%s", b)
	}
	if err != nil {
		var exit *exec.ExitError
		if !errors.As(err, &exit) {
			in.t.Fatalf("run install.sh: %v", err)
		}
		return string(out), false
	}
	return string(out), true
}

// mustRun is run, failing the test if install.sh fails.
func (in *installer) mustRun(dest string, env []string, args ...string) string {
	in.t.Helper()
	out, ok := in.run(dest, "", env, args...)
	if !ok {
		in.t.Fatalf("install.sh %s failed:\n%s", strings.Join(args, " "), out)
	}
	return out
}

// fakeBinary writes a stand-in for the gearbox binary and returns its path.
func fakeBinary(t *testing.T, dir, text string) string {
	t.Helper()
	p := filepath.Join(dir, "gearbox")
	if err := os.WriteFile(p, []byte("#!/bin/sh\necho "+text+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// tree returns every file and directory under root: its mode, and a
// file's contents.
func tree(t *testing.T, root string) map[string]string {
	t.Helper()
	out := make(map[string]string)
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		v := fmt.Sprintf("%v", fi.Mode())
		if fi.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			v += " " + string(b)
		}
		out[rel] = v
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// The files install.sh makes, relative to DESTDIR.
const (
	binPath    = "usr/local/bin/gearbox"
	etcDir     = "etc/gearbox"
	envPath    = "etc/gearbox/gearbox.env"
	secretPath = "etc/gearbox/cluster-secret"
	dataDir    = "var/lib/gearbox"
	unitPath   = "etc/systemd/system/gearbox.service"
)

func checkMode(t *testing.T, root, rel string, want fs.FileMode) {
	t.Helper()
	fi, err := os.Lstat(filepath.Join(root, rel))
	if err != nil {
		t.Errorf("%s: %v", rel, err)
		return
	}
	if got := fi.Mode().Perm(); got != want {
		t.Errorf("%s: mode %#o, want %#o", rel, got, want)
	}
}

func readFile(t *testing.T, root, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// envSettings returns the variables that gearbox.env sets (comments
// aside), in order, as NAME=value.
func envSettings(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	for _, l := range strings.Split(readFile(t, root, envPath), "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}

var hexSecret = regexp.MustCompile(`^[0-9a-f]{64}$`)

// secretOf returns the cluster secret installed under root, checking that
// it is one generated line of at least 32 hex digits (64 in fact).
func secretOf(t *testing.T, root string) string {
	t.Helper()
	s := readFile(t, root, secretPath)
	if !strings.HasSuffix(s, "\n") || !hexSecret.MatchString(strings.TrimSuffix(s, "\n")) {
		t.Errorf("cluster-secret %q: want 64 hex digits and a newline", s)
	}
	return strings.TrimSuffix(s, "\n")
}

// TestInstall installs under a scratch root and checks it file by file,
// then installs again and checks that nothing changed.
func TestInstall(t *testing.T) {
	in := newInstaller(t)
	root := t.TempDir()
	bin := fakeBinary(t, t.TempDir(), "fake gearbox")
	args := []string{"--role", "broker,node", "--name", "gb1", "--join", "10.0.0.2,10.0.0.3:7946",
		"--domain=apps.example.com", "--bind", "10.0.0.1", "--advertise", "10.0.0.1", bin}
	out := in.mustRun(root, nil, args...)
	for _, want := range []string{"installed " + filepath.Join(root, binPath), "generated " + filepath.Join(root, secretPath),
		"not started", "copy /etc/gearbox/cluster-secret", "--join 10.0.0.1"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	checkMode(t, root, binPath, 0o755)
	if got, want := readFile(t, root, binPath), readFile(t, "/", bin); got != want {
		t.Errorf("installed binary %q, want %q", got, want)
	}
	checkMode(t, root, etcDir, 0o700)
	checkMode(t, root, envPath, 0o600)
	checkMode(t, root, secretPath, 0o600)
	checkMode(t, root, dataDir, 0o700)
	checkMode(t, root, unitPath, 0o644)
	for _, d := range []string{"usr/local/bin", "etc/systemd/system", "var/lib"} {
		checkMode(t, root, d, 0o755)
	}
	wantEnv := []string{"GEARBOX_ROLE=broker,node", "GEARBOX_NAME=gb1", "GEARBOX_DOMAIN=apps.example.com",
		"GEARBOX_JOIN=10.0.0.2,10.0.0.3:7946", "GEARBOX_BIND=10.0.0.1", "GEARBOX_ADVERTISE=10.0.0.1"}
	if got := envSettings(t, root); !slices.Equal(got, wantEnv) {
		t.Errorf("gearbox.env sets %q, want %q", got, wantEnv)
	}
	secret := secretOf(t, root)
	if strings.Contains(readFile(t, root, envPath), secret) || strings.Contains(out, secret) {
		t.Error("the secret is in gearbox.env or in the output")
	}

	// Everything installed, and nothing else.
	var got []string
	for rel := range tree(t, root) {
		got = append(got, rel)
	}
	slices.Sort(got)
	want := []string{".", "etc", etcDir, secretPath, envPath, "etc/systemd", "etc/systemd/system", unitPath,
		"usr", "usr/local", "usr/local/bin", binPath, "var", "var/lib", dataDir}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("installed %q, want %q", got, want)
	}

	// Again, the same: nothing changes, the secret stays.
	before := tree(t, root)
	out = in.mustRun(root, nil, args...)
	if after := tree(t, root); !mapsEqual(before, after) {
		t.Errorf("a second run changed the installation:\nbefore %q\nafter  %q", before, after)
	}
	for _, want := range []string{"unchanged " + filepath.Join(root, binPath), "kept " + filepath.Join(root, secretPath),
		"kept " + filepath.Join(root, envPath), "unchanged " + filepath.Join(root, unitPath)} {
		if !strings.Contains(out, want) {
			t.Errorf("second run's output lacks %q:\n%s", want, out)
		}
	}

	// Other options keep gearbox.env unless --force-env; a new binary
	// replaces the old; the data directory keeps the mode the node gave
	// it (searchable by gears).
	if err := os.Chmod(filepath.Join(root, dataDir), 0o711); err != nil {
		t.Fatal(err)
	}
	bin2 := fakeBinary(t, t.TempDir(), "newer gearbox")
	in.mustRun(root, nil, "--name", "other", bin2)
	if got := envSettings(t, root); !slices.Equal(got, wantEnv) {
		t.Errorf("without --force-env, gearbox.env became %q", got)
	}
	if got := readFile(t, root, binPath); got != readFile(t, "/", bin2) {
		t.Errorf("the binary was not replaced: %q", got)
	}
	checkMode(t, root, binPath, 0o755)
	checkMode(t, root, dataDir, 0o711)
	in.mustRun(root, nil, "--force-env", "--name", "other", "--role", "router", bin2)
	wantEnv2 := []string{"GEARBOX_ROLE=router", "GEARBOX_NAME=other", "GEARBOX_DOMAIN=example.com"}
	if got := envSettings(t, root); !slices.Equal(got, wantEnv2) {
		t.Errorf("with --force-env, gearbox.env sets %q, want %q", got, wantEnv2)
	}
	checkMode(t, root, envPath, 0o600)
	if got := secretOf(t, root); got != secret {
		t.Errorf("the secret changed over runs: %q, then %q", secret, got)
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestInstallDefaults installs ./gearbox with no option and no GEARBOX_
// variable: all roles, the host's name, example.com, no join, bind or
// advertise (left as comments, since an empty variable would set the flag
// to nothing).
func TestInstallDefaults(t *testing.T) {
	in := newInstaller(t)
	root, dir := t.TempDir(), t.TempDir()
	fakeBinary(t, dir, "fake gearbox")
	out, ok := in.run(root, dir, nil)
	if !ok {
		t.Fatalf("install.sh failed:\n%s", out)
	}
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"GEARBOX_ROLE=all", "GEARBOX_NAME=" + host, "GEARBOX_DOMAIN=example.com"}
	if got := envSettings(t, root); !slices.Equal(got, want) {
		t.Errorf("gearbox.env sets %q, want %q", got, want)
	}
	env := readFile(t, root, envPath)
	for _, c := range []string{"#GEARBOX_JOIN=", "#GEARBOX_BIND=", "#GEARBOX_ADVERTISE="} {
		if !strings.Contains(env, "\n"+c) {
			t.Errorf("gearbox.env lacks the comment %q:\n%s", c, env)
		}
	}
	if readFile(t, root, binPath) != readFile(t, dir, "gearbox") {
		t.Error("./gearbox was not installed")
	}
	// Generated secrets differ from one installation to the next.
	root2 := t.TempDir()
	if _, ok := in.run(root2, dir, nil); !ok {
		t.Fatal("second installation failed")
	}
	if a, b := secretOf(t, root), secretOf(t, root2); a == b {
		t.Errorf("two installations generated the same secret %s", a)
	}
}

// TestInstallFromEnvironment takes the settings and the secret from
// GEARBOX_ variables.
func TestInstallFromEnvironment(t *testing.T) {
	in := newInstaller(t)
	root := t.TempDir()
	bin := fakeBinary(t, t.TempDir(), "fake gearbox")
	secret := "a secret given in the environment"
	env := []string{"GEARBOX_ROLE=node", "GEARBOX_NAME=n1", "GEARBOX_JOIN=10.0.0.1", "GEARBOX_DOMAIN=d.test",
		"GEARBOX_BIND=10.0.0.9", "GEARBOX_ADVERTISE=192.0.2.9", "GEARBOX_CLUSTER_SECRET=" + secret}
	out := in.mustRun(root, env, "--name", "n2", bin) // an option wins over the variable
	want := []string{"GEARBOX_ROLE=node", "GEARBOX_NAME=n2", "GEARBOX_DOMAIN=d.test", "GEARBOX_JOIN=10.0.0.1",
		"GEARBOX_BIND=10.0.0.9", "GEARBOX_ADVERTISE=192.0.2.9"}
	if got := envSettings(t, root); !slices.Equal(got, want) {
		t.Errorf("gearbox.env sets %q, want %q", got, want)
	}
	if got := readFile(t, root, secretPath); got != secret+"\n" {
		t.Errorf("cluster-secret holds %q, want %q", got, secret+"\n")
	}
	if !strings.Contains(out, "installed "+filepath.Join(root, secretPath)) {
		t.Errorf("output:\n%s", out)
	}
	checkMode(t, root, secretPath, 0o600)
	if strings.Contains(readFile(t, root, envPath), secret) || strings.Contains(out, secret) {
		t.Error("the secret is in gearbox.env or in the output")
	}
}

// TestInstallSecretFile takes the secret from --cluster-secret-file, and
// never replaces an installed secret with another.
func TestInstallSecretFile(t *testing.T) {
	in := newInstaller(t)
	root, dir := t.TempDir(), t.TempDir()
	bin := fakeBinary(t, dir, "fake gearbox")
	secret := "0123456789abcdef0123456789abcdef\n"
	file := filepath.Join(dir, "cluster-secret")
	if err := os.WriteFile(file, []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	in.mustRun(root, nil, "--cluster-secret-file", file, bin)
	if got := readFile(t, root, secretPath); got != secret {
		t.Errorf("cluster-secret holds %q, want %q", got, secret)
	}
	checkMode(t, root, secretPath, 0o600)
	in.mustRun(root, nil, "--cluster-secret-file="+file, bin) // the same again: fine

	other := filepath.Join(dir, "other-secret")
	if err := os.WriteFile(other, []byte("another secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, ok := in.run(root, "", nil, "--cluster-secret-file", other, bin)
	if ok || !strings.Contains(out, "holds another secret") {
		t.Errorf("another secret over an installed one: ok=%v\n%s", ok, out)
	}
	out, ok = in.run(root, "", []string{"GEARBOX_CLUSTER_SECRET=another secret"}, bin)
	if ok || !strings.Contains(out, "holds another secret") {
		t.Errorf("another secret from the environment over an installed one: ok=%v\n%s", ok, out)
	}
	if got := readFile(t, root, secretPath); got != secret {
		t.Errorf("cluster-secret became %q", got)
	}
}

// TestInstallRefuses checks that bad input fails before anything is
// written.
func TestInstallRefuses(t *testing.T) {
	in := newInstaller(t)
	dir := t.TempDir()
	bin := fakeBinary(t, dir, "fake gearbox")
	notExec := filepath.Join(dir, "not-exec")
	if err := os.WriteFile(notExec, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{filepath.Join(dir, "missing")}, "no such file"},
		{[]string{notExec}, "not executable"},
		{[]string{"--name", "a b", bin}, "--name"},
		{[]string{"--name", "x\ny", bin}, "--name"},
		{[]string{"--join", "10.0.0.1 #", bin}, "--join"},
		{[]string{"--domain", "$(reboot)", bin}, "--domain"},
		{[]string{"--role", "broker,cache", bin}, "unknown role"},
		{[]string{"--role", "", bin}, "--role"},
		{[]string{"--bogus", bin}, "unknown option"},
		{[]string{"--name"}, "needs a value"},
		{[]string{bin, bin}, "one binary"},
		{[]string{"--cluster-secret-file", empty, bin}, "empty"},
		{[]string{"--cluster-secret-file", filepath.Join(dir, "nope"), bin}, "cannot read"},
	} {
		root := t.TempDir()
		out, ok := in.run(root, "", nil, tt.args...)
		if ok || !strings.Contains(out, tt.want) {
			t.Errorf("install.sh %q: ok=%v, want a failure that says %q:\n%s", tt.args, ok, tt.want, out)
		}
		if got := tree(t, root); len(got) > 1 {
			t.Errorf("install.sh %q wrote %q", tt.args, got)
		}
	}
	out, ok := in.run(t.TempDir(), "", []string{"DESTDIR=relative"}, bin)
	if ok || !strings.Contains(out, "absolute") {
		t.Errorf("a relative DESTDIR: ok=%v\n%s", ok, out)
	}
}

// unitSettings returns the unit's settings by section and key, in order.
func unitSettings(t *testing.T, unit string) map[string][]string {
	t.Helper()
	out := make(map[string][]string)
	section := ""
	sc := bufio.NewScanner(strings.NewReader(unit))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		switch {
		case l == "" || strings.HasPrefix(l, "#"):
		case strings.HasPrefix(l, "["):
			section = strings.Trim(l, "[]")
		default:
			k, v, ok := strings.Cut(l, "=")
			if !ok {
				t.Errorf("unit line %q is not KEY=VALUE", l)
			}
			out[section+"."+k] = append(out[section+"."+k], v)
		}
	}
	return out
}

// TestUnit checks the unit's choices, then has systemd-analyze verify it
// where it is installed.
func TestUnit(t *testing.T) {
	in := newInstaller(t)
	root := t.TempDir()
	in.mustRun(root, nil, fakeBinary(t, t.TempDir(), "fake gearbox"))
	unit := readFile(t, root, unitPath)
	set := unitSettings(t, unit)
	for k, want := range map[string]string{
		"Service.EnvironmentFile": "/etc/gearbox/gearbox.env",
		"Service.ExecStart":       "/usr/local/bin/gearbox serve --cluster-secret-file /etc/gearbox/cluster-secret",
		"Service.Restart":         "always",
		"Service.Delegate":        "yes",
		"Service.KillMode":        "mixed",
		"Service.TasksMax":        "infinity",
		"Service.NoNewPrivileges": "yes",
		"Service.ProtectSystem":   "strict",
		"Service.ReadWritePaths":  "/var/lib/gearbox",
		"Service.ProtectHome":     "yes",
		"Service.PrivateTmp":      "yes",
		// Gears get a mount namespace each, for a private /proc; a node
		// that cannot make one does not isolate gears.
		"Service.RestrictNamespaces": "mnt",
		"Install.WantedBy":           "multi-user.target",
	} {
		if got := set[k]; !slices.Equal(got, []string{want}) {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if v := set["Service.LimitNOFILE"]; len(v) != 1 {
		t.Errorf("LimitNOFILE = %q, want one", v)
	} else if n, err := strconv.Atoi(v[0]); err != nil || n < 65536 {
		t.Errorf("LimitNOFILE = %q, want at least 65536", v[0])
	}
	// What would stop the node from isolating gears: read-only cgroups,
	// a user namespace or another user (no setuid to gear uids).
	for _, k := range []string{"ProtectControlGroups", "PrivateUsers", "User", "DynamicUser", "MemoryDenyWriteExecute"} {
		if v, ok := set["Service."+k]; ok {
			t.Errorf("%s = %q is set", k, v)
		}
	}
	if strings.Contains(set["Service.ExecStart"][0], "--cluster-secret ") {
		t.Error("ExecStart puts the secret in argv")
	}

	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed (Debian package systemd): the unit was not verified")
	}
	// systemd-analyze verify wants ExecStart's binary to exist: verify a
	// copy that runs the one under the scratch root.
	dir := t.TempDir()
	copyUnit := strings.ReplaceAll(unit, "/usr/local/bin/gearbox", filepath.Join(root, binPath))
	if err := os.WriteFile(filepath.Join(dir, "gearbox.service"), []byte(copyUnit), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(analyze, "verify", filepath.Join(dir, "gearbox.service"))
	cmd.Env = cleanEnv("PATH=" + os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	// It warns of unknown keys and bad values, and goes on: any output is
	// a failure.
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// TestShellcheck lints install.sh as a POSIX sh script, where shellcheck
// is installed.
func TestShellcheck(t *testing.T) {
	shell(t)
	sc, err := exec.LookPath("shellcheck")
	if err != nil {
		t.Skip("shellcheck is not installed (Debian package shellcheck): install.sh was not linted")
	}
	out, err := exec.Command(sc, "--shell=sh", "install.sh").CombinedOutput()
	if err != nil {
		t.Errorf("shellcheck install.sh: %v\n%s", err, out)
	}
}

// readmeInstall returns the command lines of the code blocks of README.md's
// section "Install on VMs".
func readmeInstall(t *testing.T) [][]string {
	t.Helper()
	raw, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(string(raw), "\n## Install on VMs\n")
	if !ok {
		t.Fatal(`README.md has no section "Install on VMs"`)
	}
	sec, _, _ = strings.Cut(sec, "\n## ")
	var blocks [][]string
	var cur []string
	in := false
	for _, l := range strings.Split(sec, "\n") {
		switch {
		case strings.HasPrefix(l, "```") && !in:
			in, cur = true, nil
		case strings.HasPrefix(l, "```"):
			in = false
			blocks = append(blocks, cur)
		case in && strings.TrimSpace(l) != "":
			cur = append(cur, l)
		}
	}
	return blocks
}

// copyModule copies the module's source (not .git nor local state) to
// dir, so that the README's build command runs as written without writing
// into the working tree.
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
		if !d.Type().IsRegular() || rel == "gearbox" {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, rel), b, fi.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
}

var nameFlag = regexp.MustCompile(`--name (\S+)`)

// TestReadmeInstall runs the commands of README.md's "Install on VMs" as
// written, each host under a scratch root of its own: the first block on
// gb1 (the build, in a copy of the module; with -short a stand-in binary
// instead), then, with gb1's secret copied to ./cluster-secret as the
// README says, each line of the second block on the host it names.
func TestReadmeInstall(t *testing.T) {
	in := newInstaller(t)
	blocks := readmeInstall(t)
	if len(blocks) != 2 || len(blocks[0]) != 2 || len(blocks[1]) < 1 {
		t.Fatalf("README's Install on VMs changed shape: %q", blocks)
	}
	const build = "CGO_ENABLED=0 go build -o gearbox ."
	if blocks[0][0] != build {
		t.Fatalf("README's first command is %q, want %q", blocks[0][0], build)
	}
	work := t.TempDir()
	goBin := ""
	if testing.Short() {
		if err := os.MkdirAll(filepath.Join(work, "scripts"), 0o755); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile("install.sh")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(work, "scripts", "install.sh"), b, 0o755); err != nil {
			t.Fatal(err)
		}
		fakeBinary(t, work, "fake gearbox")
		t.Logf("-short: %q not run, a stand-in binary instead", build)
	} else {
		copyModule(t, "..", work)
		gobin, err := exec.LookPath("go")
		if err != nil {
			gobin = filepath.Join(runtime.GOROOT(), "bin", "go")
		}
		goBin = filepath.Dir(gobin)
	}

	hosts := make(map[string]string) // name: its root
	runLine := func(line, dest string) {
		t.Helper()
		if !strings.HasPrefix(line, "sh scripts/install.sh ") && line != build {
			t.Fatalf("README command %q is not one this test knows", line)
		}
		if line == build && testing.Short() {
			return
		}
		cmd := exec.Command(in.sh, "-c", line)
		cmd.Dir = work
		path := in.path
		if goBin != "" {
			path = in.path + ":" + goBin
		}
		cmd.Env = cleanEnv("DESTDIR="+dest, "PATH="+path)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", line, err, out)
		}
		if _, err := os.Stat(in.called); err == nil {
			t.Fatalf("%s ran systemctl with DESTDIR set", line)
		}
	}
	hostOf := func(line string) string {
		m := nameFlag.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("README command %q names no host (--name)", line)
		}
		if hosts[m[1]] == "" {
			hosts[m[1]] = t.TempDir()
		}
		return hosts[m[1]]
	}
	first := hostOf(blocks[0][1])
	for _, line := range blocks[0] {
		runLine(line, first)
	}
	secret := secretOf(t, first)
	if err := os.WriteFile(filepath.Join(work, "cluster-secret"), []byte(readFile(t, first, secretPath)), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, line := range blocks[1] {
		runLine(line, hostOf(line))
	}

	binary := readFile(t, work, "gearbox")
	for name, root := range hosts {
		if readFile(t, root, binPath) != binary {
			t.Errorf("%s: the installed binary is not ./gearbox", name)
		}
		if got := secretOf(t, root); got != secret {
			t.Errorf("%s: cluster secret %q, want gb1's %q", name, got, secret)
		}
		env := envSettings(t, root)
		if !slices.Contains(env, "GEARBOX_NAME="+name) {
			t.Errorf("%s: gearbox.env sets %q", name, env)
		}
		if joins := slices.Contains(env, "GEARBOX_JOIN=10.0.0.1"); joins == (root == first) {
			t.Errorf("%s: gearbox.env sets %q (only the other hosts join 10.0.0.1)", name, env)
		}
	}
	if len(hosts) < 3 {
		t.Errorf("README installs %d hosts, want 3", len(hosts))
	}

	if testing.Short() {
		return
	}
	// The binary the README built names every variable that gearbox.env
	// sets.
	help, err := exec.Command(filepath.Join(first, binPath), "serve", "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("gearbox serve --help: %v\n%s", err, help)
	}
	for name, root := range hosts {
		for _, kv := range envSettings(t, root) {
			k, _, _ := strings.Cut(kv, "=")
			if !strings.Contains(string(help), "[$"+k+"]") {
				t.Errorf("%s: gearbox.env sets %s, which gearbox serve does not read", name, k)
			}
		}
	}
}
