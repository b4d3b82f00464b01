//go:build linux

package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"gearbox/internal/testutil"
	"gearbox/store/state"
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("gear isolation needs the tests to run as root")
	}
}

// whoami asks gear g's helper process what it is.
func (n *testNode) whoami(g state.Gear) probeReport {
	n.t.Helper()
	code, body := get(n.t, "http://"+n.addr(g)+"/whoami", "")
	var rep probeReport
	if err := json.Unmarshal([]byte(body), &rep); code != 200 || err != nil {
		n.t.Fatalf("whoami of gear %s: %d %q: %v", g.ID, code, body, err)
	}
	return rep
}

// tryWrite asks gear g's helper process to create file path: "ok" or why
// not.
func (n *testNode) tryWrite(g state.Gear, path string) string {
	n.t.Helper()
	_, body := get(n.t, "http://"+n.addr(g)+"/write?path="+url.QueryEscape(path), "")
	return body
}

// read asks gear g's helper process to read file path: "ok", a newline
// and the content, or why not.
func (n *testNode) read(g state.Gear, path string) string {
	n.t.Helper()
	_, body := get(n.t, "http://"+n.addr(g)+"/read?path="+url.QueryEscape(path), "")
	return body
}

// procMounts returns the lines of this process's mountinfo for /proc, to
// check that nothing a gear mounts reaches the node.
func procMounts(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 4 && f[4] == "/proc" {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// helperApp stores app ns/name, run by the helper program.
func (n *testNode) helperApp(ns, name string) {
	n.put(state.BucketApps, state.AppKey(ns, name), state.App{ID: "a-" + name, Name: name, Domain: ns, State: state.GearStarted,
		Env: map[string]string{"GEARBOX_NODE_TEST_HELPER": "serve"}})
}

func owner(t *testing.T, path string) (uid, gid int, mode os.FileMode) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return int(st.Uid), int(st.Gid), fi.Mode().Perm()
}

// checkLimits checks that the limits in force for the gear process that
// reported rep are l, as the node's isolation mode sets them.
func checkLimits(t *testing.T, mode string, rep probeReport, l Limits) {
	t.Helper()
	if mode == ModeRlimit {
		if rep.Data != uint64(l.Memory) || rep.Procs != uint64(l.Procs) {
			t.Errorf("RLIMIT_DATA %d, RLIMIT_NPROC %d; want %d, %d", rep.Data, rep.Procs, l.Memory, l.Procs)
		}
		return
	}
	mounts, err := readMountinfo("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	own, err := parseProcCgroup(strings.NewReader(rep.Cgroup))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]string{"": {"memory.max", "pids.max"}}
	fstype := "cgroup2"
	if mode == ModeCgroup1 {
		files = map[string][]string{"memory": {"memory.limit_in_bytes"}, "pids": {"pids.max"}}
		fstype = "cgroup"
	}
	want := map[string]string{"memory.max": strconv.FormatInt(l.Memory, 10), "memory.limit_in_bytes": strconv.FormatInt(l.Memory, 10),
		"pids.max": strconv.Itoa(l.Procs)}
	for ctl, fs := range files {
		dir, ok := cgroupDir(mounts, own, fstype, ctl)
		if !ok || !strings.Contains(dir, cgroupGearsDir) {
			t.Errorf("gear process is in no gear cgroup (%s): %q", ctl, rep.Cgroup)
			continue
		}
		for _, f := range fs {
			b, err := os.ReadFile(filepath.Join(dir, f))
			if got := strings.TrimSpace(string(b)); err != nil || got != want[f] {
				t.Errorf("%s/%s holds %q (%v), want %s", dir, f, got, err, want[f])
			}
		}
	}
}

// A node that runs as root runs each gear as a uid of its own, that owns
// the gear's app and data directories and cannot write another gear's,
// within the limits of the gear's size; the uid stays the gear's across
// node restarts, and the run's cgroup goes with the gear.
func TestGearIsolation(t *testing.T) {
	needRoot(t)
	n := newTestStore(t)
	n.setup = helperPrograms
	n.s = n.startSupervisor()
	mode := n.s.iso.mode
	if !n.s.iso.on() {
		t.Fatalf("a node that runs as root does not isolate gears: %s", n.s.Isolation())
	}
	t.Logf("isolation: %s", n.s.Isolation())
	n.helperApp("ns", "one")
	n.helperApp("ns", "two")
	g1, g2 := n.gear("aaaa00000000000000000001", "one", "ns", 1), n.gear("aaaa00000000000000000002", "two", "ns", 1)
	g2.Size = state.SizeMedium
	n.put(state.BucketGears, g1.ID, g1)
	n.put(state.BucketGears, g2.ID, g2)
	n.waitState(g1.ID, state.GearStarted)
	n.waitState(g2.ID, state.GearStarted)

	reps := map[string]probeReport{}
	for _, g := range []state.Gear{g1, g2} {
		rep := n.whoami(g)
		reps[g.ID] = rep
		if rep.UID < n.s.cfg.GearUIDMin+1 || rep.UID > n.s.cfg.GearUIDMax || rep.GID != rep.UID || len(rep.Groups) != 0 || !rep.NNP {
			t.Errorf("gear %s runs as %+v, want a uid of the gear range, the same gid, no groups, no_new_privs", g.ID, rep)
		}
		dir := n.gearDir(g.ID)
		for _, d := range []struct {
			sub      string
			uid, gid int
			mode     os.FileMode
		}{{"", 0, rep.UID, 0o750}, {"app", rep.UID, rep.UID, 0o700}, {"data", rep.UID, rep.UID, 0o700}, {"logs", 0, 0, 0o700}} {
			if uid, gid, m := owner(t, filepath.Join(dir, d.sub)); uid != d.uid || gid != d.gid || m != d.mode {
				t.Errorf("gear %s: %q is %d:%d %o, want %d:%d %o", g.ID, d.sub, uid, gid, m, d.uid, d.gid, d.mode)
			}
		}
		if uid, _, _ := owner(t, filepath.Join(dir, "logs", "gear.log")); uid != 0 {
			t.Errorf("gear %s: gear.log owned by %d, want the node's", g.ID, uid)
		}
		for _, p := range []string{filepath.Join(dir, "data", "f"), filepath.Join(dir, "app", "f")} {
			if got := n.tryWrite(g, p); got != "ok" {
				t.Errorf("gear %s cannot write its own %s: %s", g.ID, p, got)
			}
		}
		checkLimits(t, mode, rep, n.s.cfg.Limits[g.Size])
	}
	if reps[g1.ID].UID == reps[g2.ID].UID {
		t.Errorf("two gears share uid %d", reps[g1.ID].UID)
	}
	for _, p := range []string{filepath.Join(n.gearDir(g2.ID), "data", "f"), filepath.Join(n.gearDir(g2.ID), "f"),
		filepath.Join(n.gearDir(g1.ID), "f"), filepath.Join(n.gearDir(g1.ID), "logs", "f"), filepath.Join(n.dir, "data", "gears", "f")} {
		if got := n.tryWrite(g1, p); !strings.Contains(got, "permission denied") {
			t.Errorf("gear %s writing %s: %q, want permission denied", g1.ID, p, got)
		}
	}

	// The uid stays the gear's across restarts of the node.
	n.s.Close()
	n.s = n.startSupervisor()
	n.waitState(g1.ID, state.GearStarted)
	if rep := n.whoami(g1); rep.UID != reps[g1.ID].UID {
		t.Errorf("gear %s runs as uid %d after a node restart, was %d", g1.ID, rep.UID, reps[g1.ID].UID)
	}

	// The run's cgroup goes with the gear.
	n.del(state.BucketGears, g1.ID)
	testutil.WaitFor(t, 10*time.Second, "gear directory removed", func() bool {
		_, err := os.Stat(n.gearDir(g1.ID))
		return os.IsNotExist(err)
	})
	if n.s.iso.cg != nil {
		for _, d := range n.s.iso.cg.dirs(g1.ID) {
			if _, err := os.Stat(d); !os.IsNotExist(err) {
				t.Errorf("cgroup %s of a destroyed gear: %v", d, err)
			}
		}
	}
	// The uid is released right after the directory goes.
	testutil.WaitFor(t, 5*time.Second, "destroyed gear's uid released", func() bool { return n.s.iso.uids.lookup(g1.ID) == 0 })
}

// Modes asked for are used, or the node does not start; with isolation
// turned off gears run as the node's user and the node says so.
func TestIsolationModes(t *testing.T) {
	needRoot(t)
	auto := newTestNode(t)
	best := auto.s.iso.mode
	auto.s.Close()

	t.Run("none", func(t *testing.T) {
		n := newTestStore(t)
		n.setup = helperPrograms
		n.s = n.startSupervisor(func(c *Config) { c.Isolation = IsolateNone })
		if got := n.s.Isolation(); got != "none (turned off)" {
			t.Errorf("Isolation() = %q", got)
		}
		n.helperApp("ns", "one")
		g := n.gear("bbbb00000000000000000001", "one", "ns", 1)
		n.put(state.BucketGears, g.ID, g)
		n.waitState(g.ID, state.GearStarted)
		if rep := n.whoami(g); rep.UID != 0 {
			t.Errorf("gear runs as uid %d with isolation off, want the node's", rep.UID)
		}
		if _, err := os.Stat(filepath.Join(n.gearDir(g.ID), uidFile)); !os.IsNotExist(err) {
			t.Errorf("uid file with isolation off: %v", err)
		}
	})
	t.Run("rlimit", func(t *testing.T) {
		n := newTestStore(t)
		n.setup = helperPrograms
		n.s = n.startSupervisor(func(c *Config) {
			c.Isolation = IsolateRlimit
			c.Limits = map[string]Limits{state.SizeSmall: {Memory: 300 << 20, Procs: 100}}
		})
		if got := n.s.Isolation(); got != ModeRlimit {
			t.Fatalf("Isolation() = %q", got)
		}
		n.helperApp("ns", "one")
		g := n.gear("bbbb00000000000000000002", "one", "ns", 1)
		n.put(state.BucketGears, g.ID, g)
		n.waitState(g.ID, state.GearStarted)
		rep := n.whoami(g)
		if rep.UID == 0 || !rep.NNP {
			t.Errorf("gear runs as %+v", rep)
		}
		checkLimits(t, ModeRlimit, rep, Limits{Memory: 300 << 20, Procs: 100})
	})
	// Auto mode tries cgroup2, cgroup1, rlimit in turn: a mode stronger
	// than the one it took does not work here.
	rank := map[string]int{ModeCgroup2: 3, ModeCgroup1: 2, ModeRlimit: 1, ModeNone: 0}
	for _, m := range []string{IsolateCgroup2, IsolateCgroup1} {
		t.Run(m, func(t *testing.T) {
			mode := map[string]string{IsolateCgroup2: ModeCgroup2, IsolateCgroup1: ModeCgroup1}[m]
			if rank[mode] < rank[best] {
				t.Skipf("auto mode took %s: whether %s works too is not known", best, m)
			}
			n := newTestStore(t)
			cfg := FastConfig(n.st, filepath.Join(n.dir, "data"), n.ip, "example.test")
			cfg.Isolation = m
			s, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			err = s.Start(context.Background())
			if mode != best {
				if err == nil || !strings.Contains(err.Error(), m) {
					t.Errorf("Start with isolation %s, which auto mode passed over for %s: %v", m, best, err)
				}
				return
			}
			if err != nil || s.Isolation() != mode {
				t.Errorf("Start with isolation %s: %v, %q", m, err, s.Isolation())
			}
		})
	}
}

// A build runs as the uid of the gear that asked for the deployment; then
// the deployment is root's, and every gear of the app reads it and none
// writes it.
func TestIsolatedBuild(t *testing.T) {
	needRoot(t)
	if !inGearPath("python3") || !inGearPath("sh") {
		t.Skipf("python3 and sh are not in the gear PATH %s", defaultPath)
	}
	n, b := newDeployNode(t)
	if !n.s.iso.on() {
		t.Fatalf("a node that runs as root does not isolate gears: %s", n.s.Isolation())
	}
	manifest := "web: (touch probe 2>/dev/null && echo writable || echo read-only) > \"$GEARBOX_DATA_DIR/w\"; exec python3 -m http.server \"$PORT\" --bind \"$GEARBOX_IP\"\n" +
		"build: id -u > builder.txt && mkdir out && echo secret > out/f && chmod 600 out/f && touch \"$HOME/cache\"\n"
	app := state.AppKey("ns", "py")
	id := n.deploy(b, app, tarGz(t, tarFile(ManifestFile, manifest)), nil)
	n.setDeployment("ns", "py", id)
	g1, g2 := n.gear("c1", "py", "ns", 1), n.gear("c2", "py", "ns", 2)
	n.put(state.BucketGears, g1.ID, g1)
	n.put(state.BucketGears, g2.ID, g2)
	var uids []string
	for _, g := range []state.Gear{g1, g2} {
		n.waitState(g.ID, state.GearStarted)
		uid, _, _ := owner(t, filepath.Join(n.gearDir(g.ID), "data"))
		uids = append(uids, strconv.Itoa(uid))
		if body, err := os.ReadFile(filepath.Join(n.gearDir(g.ID), "data", "w")); err != nil || string(body) != "read-only\n" {
			t.Errorf("gear %s finds its deployment %q (%v), want read-only", g.ID, body, err)
		}
		if code, body := get(t, "http://"+n.addr(g)+"/out/f", ""); code != 200 || body != "secret\n" {
			t.Errorf("gear %s reads out/f: %d %q", g.ID, code, body)
		}
	}
	dir := n.depDir(app, id)
	builder, err := os.ReadFile(filepath.Join(dir, "builder.txt"))
	if err != nil || !slices.Contains(uids, strings.TrimSpace(string(builder))) {
		t.Errorf("build ran as uid %q (%v), want one of the gears' %v", builder, err, uids)
	}
	for _, c := range []struct {
		path string
		mode os.FileMode
	}{{"", 0o755}, {"out", 0o755}, {"out/f", 0o644}, {"builder.txt", 0o644}} {
		if uid, gid, m := owner(t, filepath.Join(dir, c.path)); uid != 0 || gid != 0 || m != c.mode {
			t.Errorf("deployment's %q is %d:%d %o after the build, want 0:0 %o", c.path, uid, gid, m, c.mode)
		}
	}
	for _, d := range []string{"deployments", "deployments/apps", "deployments/apps/ns+py"} {
		if _, _, m := owner(t, filepath.Join(n.dir, "data", d)); m != 0o711 {
			t.Errorf("%s directory mode %o, want 711", d, m)
		}
	}
}

func TestParseCgroupFiles(t *testing.T) {
	// A host with cgroup v1 controllers and an empty unified hierarchy,
	// seen from a container whose memory cgroup is mounted as its root.
	mountinfo := `22 1 0:20 / /sys rw - sysfs sysfs rw
30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
34 30 0:31 /kubepods/pod1 /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
35 30 0:32 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
38 30 0:35 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
41 22 0:38 / /mnt/with\040space rw - cgroup2 cgroup2 rw
`
	procCgroup := `8:pids:/
4:memory:/kubepods/pod1/c1
3:cpu,cpuacct:/x
0::/user.slice
`
	mounts, err := parseMountinfo(strings.NewReader(mountinfo))
	if err != nil {
		t.Fatal(err)
	}
	if len(mounts) != 5 || mounts[4].point != "/mnt/with space" {
		t.Fatalf("mounts %+v", mounts)
	}
	own, err := parseProcCgroup(strings.NewReader(procCgroup))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		fstype, ctl, want string
	}{
		{"cgroup", "memory", "/sys/fs/cgroup/memory/c1"},
		{"cgroup", "pids", "/sys/fs/cgroup/pids"},
		{"cgroup", "cpuacct", "/sys/fs/cgroup/cpu,cpuacct/x"},
		{"cgroup2", "", "/sys/fs/cgroup/unified/user.slice"},
		{"cgroup", "blkio", ""},
	} {
		got, ok := cgroupDir(mounts, own, c.fstype, c.ctl)
		if got != c.want || ok != (c.want != "") {
			t.Errorf("cgroupDir(%s, %q) = %q, %v; want %q", c.fstype, c.ctl, got, ok, c.want)
		}
	}
}

func TestUIDAllocator(t *testing.T) {
	gears := t.TempDir()
	mk := func(id string) string {
		d := filepath.Join(gears, id)
		if err := os.MkdirAll(d, 0o750); err != nil {
			t.Fatal(err)
		}
		return d
	}
	// From uid 1 on, the allocator must skip the host's users, groups and
	// processes.
	a, err := newUIDAllocator(0, 1<<20, gears)
	if err != nil {
		t.Fatal(err)
	}
	u1, err := a.assign("g1", mk("g1"))
	if err != nil {
		t.Fatal(err)
	}
	if u1 == 0 || hostIDs()[u1] {
		t.Errorf("assigned uid %d, taken on the host", u1)
	}
	u2, _ := a.assign("g2", mk("g2"))
	if u2 == u1 {
		t.Errorf("two gears got uid %d", u1)
	}
	if again, _ := a.assign("g1", mk("g1")); again != u1 {
		t.Errorf("g1 got %d, then %d", u1, again)
	}
	// A new allocator reads the uids back.
	b, err := newUIDAllocator(0, 1<<20, gears)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := b.assign("g2", mk("g2")); got != u2 {
		t.Errorf("g2 has uid %d after a restart, was %d", got, u2)
	}
	b.release("g1")
	if got := b.lookup("g1"); got != 0 {
		t.Errorf("released g1 keeps %d", got)
	}
	full, _ := newUIDAllocator(u2-1, u2, gears)
	if _, err := full.assign("g3", mk("g3")); err == nil {
		t.Error("a full range handed out a uid")
	}
}

// Isolation fails closed: a node whose gear users cannot reach DATA_DIR
// (a directory above it that others cannot search), and a node that does
// not run as root, refuse to start rather than run every tenant's code as
// one user, unlimited; they say what failed and the fix. Only
// --gear-isolation none, asked for, runs gears unisolated.
func TestIsolationFailsClosed(t *testing.T) {
	n := newTestStore(t)
	locked := filepath.Join(t.TempDir(), "locked")
	if err := os.Mkdir(locked, 0o700); err != nil {
		t.Fatal(err)
	}
	cfg := FastConfig(n.st, filepath.Join(locked, "data"), n.ip, "example.test")
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	err = s.Start(context.Background())
	want := []string{"make the directories above DATA_DIR searchable (chmod o+x ", locked, "--gear-isolation none"}
	if os.Geteuid() != 0 {
		want = []string{"runs as uid " + strconv.Itoa(os.Geteuid()), "run it as root", "--gear-isolation none"}
	}
	if !errors.Is(err, ErrCannotIsolate) {
		t.Fatalf("Start of a node that cannot isolate gears: %v (isolation %q), want ErrCannotIsolate", err, s.Isolation())
	}
	t.Logf("Start: %v", err)
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("Start: %q, want it to say %q", err, w)
		}
	}
	if _, err := CheckIsolation(filepath.Join(locked, "data"), "check", DefaultGearUIDMin, DefaultGearUIDMax); !errors.Is(err, ErrCannotIsolate) {
		t.Errorf("CheckIsolation = %v, want ErrCannotIsolate", err)
	}

	cfg.Isolation = IsolateNone
	s2, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if err := s2.Start(context.Background()); err != nil || s2.Isolation() != "none (turned off)" {
		t.Errorf("Start with --gear-isolation none: %v, %q", err, s2.Isolation())
	}
}

// An isolated gear sees in /proc only its own processes: not the node's,
// not another gear's, not the host's; and it still reads there what apps
// read. The node's /proc stays as it was, and the node sees the gears.
func TestGearPrivateProc(t *testing.T) {
	needRoot(t)
	before := procMounts(t)
	n := newTestStore(t)
	n.setup = helperPrograms
	n.s = n.startSupervisor()
	if !n.s.iso.on() {
		t.Fatalf("a node that runs as root does not isolate gears: %s", n.s.Isolation())
	}
	n.helperApp("ns", "one")
	n.helperApp("ns", "two")
	g1, g2 := n.gear("dddd00000000000000000001", "one", "ns", 1), n.gear("dddd00000000000000000002", "two", "ns", 1)
	n.put(state.BucketGears, g1.ID, g1)
	n.put(state.BucketGears, g2.ID, g2)
	n.waitState(g1.ID, state.GearStarted)
	n.waitState(g2.ID, state.GearStarted)
	rep1, rep2 := n.whoami(g1), n.whoami(g2)

	if rep1.ParentVisible {
		t.Errorf("gear %s sees its parent, the node (pid %d), in /proc", g1.ID, os.Getpid())
	}
	if !slices.Contains(rep1.Visible, rep1.PID) {
		t.Errorf("gear %s (pid %d) does not see itself in /proc: %v", g1.ID, rep1.PID, rep1.Visible)
	}
	for _, pid := range rep1.Visible {
		if uid := procUID(pid); uid != rep1.UID {
			t.Errorf("gear %s (uid %d) sees pid %d of uid %d in /proc", g1.ID, rep1.UID, pid, uid)
		}
	}
	for _, pid := range []int{os.Getpid(), rep2.PID, 1} {
		for _, f := range []string{"cmdline", "environ", "status"} {
			p := fmt.Sprintf("/proc/%d/%s", pid, f)
			if got := n.read(g1, p); !strings.Contains(got, "no such file or directory") {
				t.Errorf("gear %s reads %s: %.100q, want no such file", g1.ID, p, got)
			}
		}
	}
	for _, p := range []string{"/proc/self/status", "/proc/self/cmdline", "/proc/self/mountinfo", "/proc/cpuinfo", "/proc/meminfo", "/proc/loadavg"} {
		if got := n.read(g1, p); !strings.HasPrefix(got, "ok\n") || len(got) == len("ok\n") {
			t.Errorf("gear %s reads %s: %.100q, want its content", g1.ID, p, got)
		}
	}
	if got := n.read(g1, "/proc/self/status"); !strings.Contains(got, fmt.Sprintf("\nUid:\t%d\t", rep1.UID)) {
		t.Errorf("gear %s's /proc/self/status does not say its uid %d: %.300q", g1.ID, rep1.UID, got)
	}

	if uid := procUID(rep1.PID); uid != rep1.UID {
		t.Errorf("the node finds gear %s's process %d as uid %d, want %d", g1.ID, rep1.PID, uid, rep1.UID)
	}
	if after := procMounts(t); after != before {
		t.Errorf("the node's /proc mounts changed while gears ran:\n%s\nwas:\n%s", after, before)
	}
}

// A launcher that finds itself in the node's mount namespace, where its
// /proc is the host's, fails (exit 127, saying why) rather than mount
// over the host's /proc or run the gear with the host's.
func TestLauncherNeedsOwnMountNamespace(t *testing.T) {
	needRoot(t)
	before := procMounts(t)
	b, err := json.Marshal(launchSpec{Path: "/bin/true", Args: []string{"true"}, Env: []string{}, Dir: "/", UID: DefaultGearUIDMin,
		Parent: os.Getpid()})
	if err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var out bytes.Buffer
	// As wrap starts a launcher, but with the node's SysProcAttr: no
	// mount namespace of its own.
	cmd := &exec.Cmd{Path: "/proc/self/exe", Args: []string{launcherName}, Env: []string{}, Dir: "/", Stdout: &out, Stderr: &out,
		ExtraFiles: []*os.File{r}, SysProcAttr: sysProcAttr()}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r.Close()
	w.Write(b)
	w.Close()
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 127 {
		t.Errorf("launcher in the node's mount namespace: %v, want exit status 127", err)
	}
	for _, want := range []string{privateProcFailed, "not in a mount namespace of its own"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("launcher said %q, want it to say %q", out.String(), want)
		}
	}
	if after := procMounts(t); after != before {
		t.Errorf("the node's /proc mounts changed:\n%s\nwas:\n%s", after, before)
	}
}

// The node's probe passes only a private /proc: one where the probe reads
// its own status and does not see the node.
func TestProbeCheckPrivateProc(t *testing.T) {
	j := &jail{uid: DefaultGearUIDMin}
	ok := probeReport{UID: j.uid, GID: j.uid, Groups: []int{}, NNP: true, PID: 7, Visible: []int{7}, ProcSelf: true}
	if err := ok.check(j); err != nil {
		t.Fatalf("check of a probe confined as asked: %v", err)
	}
	for name, mod := range map[string]func(*probeReport){
		"sees the node":          func(r *probeReport) { r.ParentVisible = true },
		"cannot read /proc/self": func(r *probeReport) { r.ProcSelf = false },
	} {
		t.Run(name, func(t *testing.T) {
			r := ok
			mod(&r)
			err := r.check(j)
			var ie *isolationError
			if !errors.As(err, &ie) || ie.short != errPrivateProc {
				t.Fatalf("check: %v, want %q", err, errPrivateProc)
			}
			fix := cannotIsolate(IsolateAuto, t.TempDir(), []error{err}).Error()
			for _, want := range []string{"/proc", "Linux 5.8", "RestrictNamespaces=mnt", "--gear-isolation none"} {
				if !strings.Contains(fix, want) {
					t.Errorf("refusal %q does not say %q", fix, want)
				}
			}
		})
	}
}
