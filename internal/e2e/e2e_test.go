//go:build linux

// End-to-end tests: they build the gearbox binary and drive real processes
// on 127.0.0.11-13 (every 127/8 address is local on Linux), with the
// default ports 7946 and 7947 on each address. Other tests use 127.0.0.21
// and up, with random ports.

package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gearbox/internal/testutil"
	"gearbox/store"
	"gearbox/store/internalapi"
)

var (
	buildOnce sync.Once
	buildDir  string
	buildBin  string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// gearboxBinary builds the static binary once per test run and returns its
// path. End-to-end tests are skipped with -short.
func gearboxBinary(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test: builds and runs the gearbox binary")
	}
	buildOnce.Do(func() {
		if buildDir, buildErr = os.MkdirTemp("", "gearbox-e2e-"); buildErr != nil {
			return
		}
		buildBin = filepath.Join(buildDir, "gearbox")
		cmd := exec.Command(goTool(), "build", "-o", buildBin, "gearbox")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildBin
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

// childEnv is the test's environment without GEARBOX_* variables, so that
// the processes see only the flags a test gives them.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GEARBOX_") {
			env = append(env, kv)
		}
	}
	return env
}

// runGearbox runs the binary to completion and returns its output and exit
// code.
func runGearbox(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return runGearboxFor(t, 30*time.Second, args...)
}

// runGearboxFor is runGearbox with a timeout other than 30 s.
func runGearboxFor(t *testing.T, timeout time.Duration, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return runGearboxEnv(t, timeout, nil, args...)
}

// runGearboxEnv is runGearboxFor with env (KEY=VALUE) added to the
// process's environment: secrets go there, never in args.
func runGearboxEnv(t testing.TB, timeout time.Duration, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, gearboxBinary(t), args...)
	cmd.Env = append(childEnv(), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr) && exitErr.Exited():
		code = exitErr.ExitCode()
	default:
		t.Fatalf("gearbox %s: %v\nstderr:\n%s", strings.Join(args, " "), err, errOut.String())
	}
	return out.String(), errOut.String(), code
}

// member is one `gearbox serve` process. Restarting it starts a new
// process with the same arguments; its output keeps accumulating.
type member struct {
	t      testing.TB
	name   string
	ip     string
	args   []string
	env    []string // added to the environment: secrets go there
	wrap   []string // a command that runs the binary (such as nsenter), if any
	output *testutil.Buffer

	mu    sync.Mutex
	cmd   *exec.Cmd
	done  chan struct{}
	state *os.ProcessState
}

// gearDataDir returns a new data directory that gear users can traverse
// (mode 0711, and its parent): a root node refuses to start where it
// cannot isolate gears, and t.TempDir's are 0700.
func gearDataDir(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// secretEnv is the environment that gives a member the cluster secret.
func secretEnv(secret string) []string { return []string{"GEARBOX_CLUSTER_SECRET=" + secret} }

// adminEnv gives a broker member its first admin, admin:adminpass1.
const adminEnv = "GEARBOX_BOOTSTRAP_ADMIN=admin:adminpass1"

// startMember starts the gearbox binary with args and env (KEY=VALUE,
// added to the test's environment).
func startMember(t testing.TB, name, ip string, env []string, args ...string) *member {
	t.Helper()
	m := &member{t: t, name: name, ip: ip, args: args, env: env, output: &testutil.Buffer{}}
	m.start()
	t.Cleanup(m.kill)
	return m
}

func (m *member) start() {
	m.t.Helper()
	cmd := exec.Command(gearboxBinary(m.t), m.args...)
	if len(m.wrap) > 0 {
		cmd = exec.Command(m.wrap[0], append(append(m.wrap[1:len(m.wrap):len(m.wrap)], cmd.Path), m.args...)...)
	}
	cmd.Env = append(childEnv(), m.env...)
	cmd.Stdout, cmd.Stderr = m.output, m.output
	// Members must not outlive a test binary that dies without cleanup.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	fmt.Fprintf(m.output, "=== start %s\n", strings.Join(m.args, " "))
	if err := cmd.Start(); err != nil {
		m.t.Fatalf("start %s: %v", m.name, err)
	}
	done := make(chan struct{})
	m.mu.Lock()
	m.cmd, m.done, m.state = cmd, done, nil
	m.mu.Unlock()
	go func() {
		cmd.Wait()
		m.mu.Lock()
		m.state = cmd.ProcessState
		m.mu.Unlock()
		close(done)
	}()
}

func (m *member) signal(sig os.Signal) {
	m.t.Helper()
	m.mu.Lock()
	cmd := m.cmd
	m.mu.Unlock()
	if err := cmd.Process.Signal(sig); err != nil {
		m.t.Fatalf("signal %s to %s: %v", sig, m.name, err)
	}
}

// wait waits up to timeout for the process to exit and returns its state.
func (m *member) wait(timeout time.Duration) (*os.ProcessState, bool) {
	m.mu.Lock()
	done := m.done
	m.mu.Unlock()
	select {
	case <-done:
		m.mu.Lock()
		defer m.mu.Unlock()
		return m.state, true
	case <-time.After(timeout):
		return nil, false
	}
}

func (m *member) kill() {
	m.mu.Lock()
	cmd, done := m.cmd, m.done
	m.mu.Unlock()
	select {
	case <-done:
	default:
		cmd.Process.Kill()
		<-done
	}
}

func (m *member) apiAddr() string { return m.ip + ":7947" }

// lastRun returns the output of the member's latest process.
func (m *member) lastRun() string {
	out := m.output.String()
	return out[strings.LastIndex(out, "=== start "):]
}

// recordsAtStart returns the record count of the "store started" event in
// a process's output, or -1 if there is none.
func recordsAtStart(t *testing.T, output string) int {
	t.Helper()
	for _, line := range strings.Split(output, "\n") {
		var ev struct {
			Message string
			Records *int
		}
		if json.Unmarshal([]byte(line), &ev) == nil && ev.Message == "store started" && ev.Records != nil {
			return *ev.Records
		}
	}
	return -1
}

// cluster is the test's set of members and their shared secret.
type cluster struct {
	t       *testing.T
	secret  string
	members []*member
}

// logs returns the tail of every member's output, for failure messages.
func (c *cluster) logs() string {
	var b strings.Builder
	for _, m := range c.members {
		out := m.output.String()
		if len(out) > 6000 {
			out = "...\n" + out[len(out)-6000:]
		}
		fmt.Fprintf(&b, "\n----- %s output -----\n%s", m.name, out)
	}
	return b.String()
}

// waitFor polls cond until it holds or timeout passes; state describes
// what cond last saw, for the failure message.
func (c *cluster) waitFor(timeout time.Duration, what string, cond func() (ok bool, state string)) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("timed out after %s waiting for %s; last seen: %s%s", timeout, what, state, c.logs())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// statuses runs `gearbox members --json` against m and returns each
// member's status by name.
func (c *cluster) statuses(m *member) (map[string]string, string) {
	c.t.Helper()
	stdout, stderr, code := runGearboxEnv(c.t, 30*time.Second, secretEnv(c.secret), "members", "--addr", m.apiAddr(), "--json")
	if code != 0 {
		return nil, fmt.Sprintf("exit %d: %s", code, strings.TrimSpace(stderr))
	}
	var ms []store.Member
	if err := json.Unmarshal([]byte(stdout), &ms); err != nil {
		c.t.Fatalf("members --json printed invalid JSON: %v\n%s", err, stdout)
	}
	out := make(map[string]string, len(ms))
	for _, x := range ms {
		out[x.Name] = x.Status
	}
	return out, fmt.Sprint(out)
}

// waitStatus waits until viewer reports each named member with status, and
// knows exactly len(c.members) members.
func (c *cluster) waitStatus(viewer *member, timeout time.Duration, status string, names ...string) {
	c.t.Helper()
	c.waitFor(timeout, fmt.Sprintf("%s to report %v %s", viewer.name, names, status), func() (bool, string) {
		got, state := c.statuses(viewer)
		if len(got) != len(c.members) {
			return false, state
		}
		for _, n := range names {
			if got[n] != status {
				return false, state
			}
		}
		return true, state
	})
}

// internalClient calls members' internal APIs as a member holding secret
// does: mutual TLS with the key derived from it (internalapi.Transport),
// one connection per call. Call URLs made with internalapi.URL.
func internalClient(secret string) *http.Client {
	tr := internalapi.Transport(secret)
	tr.DisableKeepAlives = true
	return &http.Client{Transport: tr, Timeout: 5 * time.Second}
}

// internalGet GETs path from the internal API at addr as a member holding
// secret would, or, with secret "", over plain HTTP as a caller without
// it might. It returns the status and body, or the error of a refused
// handshake (see internalapi.Refused).
func internalGet(addr, path, secret string) (int, []byte, error) {
	hc, url := internalClient(secret), internalapi.URL(addr, path)
	if secret == "" {
		hc, url = &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}, Timeout: 5 * time.Second}, "http://"+addr+path
	}
	resp, err := hc.Get(url)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// api calls a member's internal API with the cluster secret.
func (c *cluster) api(m *member, path string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	req, err := http.NewRequest(http.MethodPost, internalapi.URL(m.apiAddr(), path), bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := internalClient(c.secret).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST %s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// get reads path from m's internal API into out.
func (c *cluster) get(m *member, path string, out any) error {
	resp, err := internalClient(c.secret).Get(internalapi.URL(m.apiAddr(), path))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// put writes a record through m's internal API, as a peer pushing it
// during anti-entropy would.
func (c *cluster) put(m *member, bucket, key, value string) {
	c.t.Helper()
	v, _ := json.Marshal(value)
	rec := store.Record{Bucket: bucket, Key: key, Value: v,
		Version: store.Version{Wall: time.Now().UnixMilli(), Member: "e2e-test"}}
	var resp struct {
		Applied int `json:"applied"`
	}
	if err := c.api(m, internalapi.PathStorePut, map[string]any{"records": []store.Record{rec}}, &resp); err != nil {
		c.t.Fatalf("put %s/%s on %s: %v%s", bucket, key, m.name, err, c.logs())
	}
	if resp.Applied != 1 {
		c.t.Fatalf("put %s/%s on %s applied %d records, want 1", bucket, key, m.name, resp.Applied)
	}
}

// waitRecord waits until m holds bucket/key with value.
func (c *cluster) waitRecord(m *member, timeout time.Duration, bucket, key, value string) {
	c.t.Helper()
	c.waitFor(timeout, fmt.Sprintf("%s to hold %s/%s", m.name, bucket, key), func() (bool, string) {
		var resp struct {
			Records []store.Record `json:"records"`
		}
		refs := []store.Ref{{Bucket: bucket, Key: key}}
		if err := c.api(m, internalapi.PathStoreGet, map[string]any{"refs": refs}, &resp); err != nil {
			return false, err.Error()
		}
		if len(resp.Records) != 1 || resp.Records[0].Deleted {
			return false, fmt.Sprintf("records %+v", resp.Records)
		}
		var got string
		if err := resp.Records[0].Decode(&got); err != nil || got != value {
			return false, fmt.Sprintf("value %s", resp.Records[0].Value)
		}
		return true, ""
	})
}

func randomSecret(t testing.TB) string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// TestE2ECluster runs three members as real processes: they join, a
// SIGKILLed member is reported failed and comes back alive with its data
// after a restart, and a SIGTERMed member leaves gracefully.
func TestE2ECluster(t *testing.T) {
	gearboxBinary(t)
	c := &cluster{t: t, secret: randomSecret(t)}
	base := gearDataDir(t)
	serveArgs := func(name, ip string, join bool) []string {
		args := []string{"--log-format", "json", "serve",
			"--role", "node", "--name", name, "--data-dir", filepath.Join(base, name),
			"--bind", ip, "--serf-port", "7946", "--internal-port", "7947",
			"--anti-entropy-interval", "1s",
			"--http-addr", ip + ":8080"}
		if join {
			args = append(args, "--join", "127.0.0.11")
		}
		return args
	}

	gb1 := startMember(t, "gb1", "127.0.0.11", secretEnv(c.secret), serveArgs("gb1", "127.0.0.11", false)...)
	c.members = []*member{gb1}
	c.waitStatus(gb1, 30*time.Second, store.StatusAlive, "gb1")
	gb2 := startMember(t, "gb2", "127.0.0.12", secretEnv(c.secret), serveArgs("gb2", "127.0.0.12", true)...)
	gb3 := startMember(t, "gb3", "127.0.0.13", secretEnv(c.secret), serveArgs("gb3", "127.0.0.13", true)...)
	c.members = []*member{gb1, gb2, gb3}
	c.waitStatus(gb1, 60*time.Second, store.StatusAlive, "gb1", "gb2", "gb3")
	c.waitStatus(gb3, 30*time.Second, store.StatusAlive, "gb1", "gb2", "gb3")

	t.Run("members table", func(t *testing.T) {
		stdout, stderr, code := runGearboxEnv(t, 30*time.Second, secretEnv(c.secret), "members", "--addr", gb1.apiAddr())
		if code != 0 {
			t.Fatalf("members: exit %d: %s", code, stderr)
		}
		lines := strings.Split(strings.TrimSpace(stdout), "\n")
		if len(lines) != 4 || !strings.HasPrefix(lines[0], "NAME") {
			t.Fatalf("members table:\n%s", stdout)
		}
		for i, name := range []string{"gb1", "gb2", "gb3"} {
			f := strings.Fields(lines[i+1])
			if len(f) != 6 || f[0] != name || f[1] != fmt.Sprintf("127.0.0.1%d:7946", i+1) || f[2] != "node" || f[5] != "alive" {
				t.Errorf("row %q, want %s 127.0.0.1%d:7946 node - - alive", lines[i+1], name, i+1)
			}
		}
		if strings.Contains(stdout, "*") {
			t.Errorf("no member is a broker, yet the table marks a leader:\n%s", stdout)
		}
	})

	t.Run("members needs the secret", func(t *testing.T) {
		for _, env := range [][]string{secretEnv("wrong"), nil} {
			stdout, stderr, code := runGearboxEnv(t, 30*time.Second, env, "members", "--addr", gb1.apiAddr())
			if code != 1 || stderr != "gearbox: unauthorized: wrong or missing cluster secret (--cluster-secret-file or GEARBOX_CLUSTER_SECRET)\n" || stdout != "" {
				t.Errorf("%v: exit %d, stdout %q, stderr %q", env, code, stdout, stderr)
			}
		}
	})

	t.Run("internal api needs the secret", func(t *testing.T) {
		// Without it, plain HTTP gets no answer from the TLS listener;
		// with another secret the handshake is refused.
		if code, body, _ := internalGet(gb1.apiAddr(), internalapi.PathStoreStatus, ""); code == http.StatusOK || bytes.Contains(body, []byte("records")) {
			t.Errorf("status over plain http: %d %s", code, body)
		}
		if code, body, err := internalGet(gb1.apiAddr(), internalapi.PathStoreStatus, "wrong"); !internalapi.Refused(err) {
			t.Errorf("status with another secret: %d %s %v, want a refused handshake", code, body, err)
		}
		if code, body, err := internalGet(gb1.apiAddr(), internalapi.PathStoreStatus, c.secret); err != nil || code != http.StatusOK {
			t.Errorf("status with the secret: %d %s %v", code, body, err)
		}
	})

	// A record written on gb1 reaches gb3.
	c.put(gb1, "e2e", "before-kill", "one")
	c.waitRecord(gb3, 30*time.Second, "e2e", "before-kill", "one")

	// What gb3 holds when it is killed: its node record, its peers' and
	// the e2e record.
	var before struct {
		Records int `json:"records"`
	}
	if err := c.get(gb3, internalapi.PathStoreStatus, &before); err != nil {
		t.Fatal(err)
	}
	if before.Records < 1 {
		t.Fatalf("gb3 holds %d records before the kill", before.Records)
	}

	// SIGKILL: no leave is announced, so the others detect a failure.
	gb3.signal(syscall.SIGKILL)
	if _, ok := gb3.wait(10 * time.Second); !ok {
		t.Fatalf("gb3 still running 10s after SIGKILL%s", c.logs())
	}
	c.waitStatus(gb1, 60*time.Second, store.StatusFailed, "gb3")

	// Written while gb3 is down: gb3 must catch up after its restart.
	c.put(gb1, "e2e", "while-down", "two")

	gb3.start()
	c.waitStatus(gb1, 60*time.Second, store.StatusAlive, "gb1", "gb2", "gb3")
	c.waitStatus(gb3, 30*time.Second, store.StatusAlive, "gb1", "gb2", "gb3")
	// The store counts its records when it starts, before it can receive
	// any: the records there came from gb3's own data dir.
	if n := recordsAtStart(t, gb3.lastRun()); n != before.Records {
		t.Fatalf("restarted gb3 started with %d records, want the %d it held before the kill%s", n, before.Records, c.logs())
	}
	c.waitRecord(gb3, 30*time.Second, "e2e", "before-kill", "one")
	c.waitRecord(gb3, 30*time.Second, "e2e", "while-down", "two")

	// SIGTERM: gb2 leaves gracefully, exits 0, and the others see it left.
	gb2.signal(syscall.SIGTERM)
	state, ok := gb2.wait(30 * time.Second)
	if !ok {
		t.Fatalf("gb2 still running 30s after SIGTERM%s", c.logs())
	}
	if state.ExitCode() != 0 {
		t.Fatalf("gb2 exited with %s after SIGTERM, want 0%s", state, c.logs())
	}
	c.waitStatus(gb1, 30*time.Second, store.StatusLeft, "gb2")
	c.waitStatus(gb3, 30*time.Second, store.StatusLeft, "gb2")

	t.Run("logs", func(t *testing.T) {
		// gb2 ran once, start to graceful stop: every line of its output
		// is a JSON event, and the lifecycle messages are there.
		var msgs []string
		notBuilt := 0
		for _, line := range strings.Split(strings.TrimSpace(gb2.output.String()), "\n")[1:] {
			var ev struct {
				Level, Message, Component, Role string
			}
			if err := json.Unmarshal([]byte(line), &ev); err != nil || ev.Level == "" || ev.Message == "" {
				t.Errorf("not a JSON log event: %q", line)
				continue
			}
			msgs = append(msgs, ev.Message)
			if ev.Message == "role not built yet" {
				notBuilt++
			}
		}
		if notBuilt != 0 {
			t.Errorf(`"role not built yet" logged %d times for --role node, which is built`, notBuilt)
		}
		all := strings.Join(msgs, "\n")
		for _, want := range []string{"starting member", "store started", "node started", "member ready", "leaving cluster", "member stopped"} {
			if !strings.Contains(all, want) {
				t.Errorf("gb2 did not log %q", want)
			}
		}
		if strings.Contains(all, "cluster is unauthenticated") {
			t.Errorf("gb2 has a cluster secret, yet warned that the cluster is unauthenticated")
		}
	})
}

// TestE2ECommandErrors checks that bad invocations of the real binary fail
// with exit code 1 and one clear line on stderr.
func TestE2ECommandErrors(t *testing.T) {
	gearboxBinary(t)
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(keyFile, []byte("not-a-key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	openFile := filepath.Join(t.TempDir(), "open")
	if err := os.WriteFile(openFile, []byte("s3cret\n"), 0o600); err != nil || os.Chmod(openFile, 0o644) != nil {
		t.Fatal(err)
	}
	dataDir := t.TempDir()
	secret := secretEnv("command-errors-secret")
	tests := []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"bad role", nil, []string{"serve", "--role", "bogus", "--data-dir", dataDir}, `gearbox: --role: unknown role "bogus"`},
		{"serf port 0", nil, []string{"serve", "--serf-port", "0", "--data-dir", dataDir}, "gearbox: --serf-port 0 is out of range: want 1-65535"},
		{"internal port too high", nil, []string{"serve", "--internal-port", "65536", "--data-dir", dataDir}, "gearbox: --internal-port 65536 is out of range"},
		{"bad gossip key", nil, []string{"serve", "--encrypt-file", keyFile, "--data-dir", dataDir}, "gearbox: --encrypt: decode gossip key"},
		{"secret on the command line", nil, []string{"serve", "--cluster-secret", "s3cret", "--data-dir", dataDir},
			"gearbox: --cluster-secret would put a secret on the command line, where every process on this host can read it"},
		{"secret file others may read", nil, []string{"serve", "--cluster-secret-file", openFile, "--data-dir", dataDir},
			"gearbox: --cluster-secret-file: " + openFile + " may be read or written by other users (mode 0644)"},
		{"no secret", nil, []string{"serve", "--data-dir", dataDir}, "gearbox: no cluster secret"},
		{"bind not an ip", nil, []string{"serve", "--bind", "nowhere", "--data-dir", dataDir}, `gearbox: --bind "nowhere" is not an IP address`},
		{"unknown flag", nil, []string{"serve", "--no-such-flag"}, "gearbox: unknown flag --no-such-flag; run 'gearbox serve --help' for usage"},
		{"data dir under a file", secret, []string{"serve", "--bind", "127.0.0.11", "--serf-port", "17946", "--internal-port", "17947", "--data-dir", filepath.Join(file, "sub")},
			"gearbox: open store: create data dir " + filepath.Join(file, "sub")},
		{"member unreachable", nil, []string{"members", "--addr", "127.0.0.1:1"}, "gearbox: cannot reach gearbox member at 127.0.0.1:1: "},
		{"unknown command", nil, []string{"frobnicate"}, `gearbox: unknown command "frobnicate"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, code := runGearboxEnv(t, 30*time.Second, tt.env, tt.args...)
			if code != 1 {
				t.Errorf("exit code %d, want 1", code)
			}
			lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
			last := lines[len(lines)-1]
			if !strings.HasPrefix(last, tt.want) {
				t.Errorf("last stderr line %q, want it to start with %q", last, tt.want)
			}
			// serve may log its start before failing; nothing else may be
			// plain text, and nothing may look like a crash.
			for _, l := range lines[:len(lines)-1] {
				if !json.Valid([]byte(l)) {
					t.Errorf("stray stderr line %q", l)
				}
			}
			if strings.Contains(stderr, "panic") || strings.Contains(stderr, "goroutine ") || stdout != "" {
				t.Errorf("stdout %q, stderr %q", stdout, stderr)
			}
		})
	}
}

func TestE2EVersion(t *testing.T) {
	gearboxBinary(t)
	stdout, stderr, code := runGearbox(t, "version")
	if code != 0 || !strings.HasPrefix(stdout, "gearbox dev\nbuilt with go") {
		t.Errorf("version: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}
