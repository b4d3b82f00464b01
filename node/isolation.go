package node

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"gearbox/store/state"
)

// Gear isolation. A node that runs as root runs each gear's commands as a
// uid of the gear's own (and a gid of the same number, with no
// supplementary groups), owning the gear's app and data directories, and
// limits its memory and processes by gear size: with a cgroup per run
// where the host lets it (cgroup v2, else the v1 memory and pids
// controllers), else with rlimits. In every mode each run gets a mount
// namespace of its own with a private /proc that shows it only its own
// uid's processes (privateProc, in launch_linux.go). What it settles for
// is found at node start by trying it: a probe process is started as a
// confined gear would be, and must find itself as intended
// (isolationProbe).

// Values of Config.Isolation (--gear-isolation): IsolateAuto takes the
// strongest mode that works here; IsolateCgroup2, IsolateCgroup1 and
// IsolateRlimit ask for one mode; without the mode asked for, or with
// IsolateAuto and no mode at all, the node does not start. Only
// IsolateNone, asked for explicitly, runs gears unisolated.
const (
	IsolateAuto    = "auto"
	IsolateCgroup2 = "cgroup2"
	IsolateCgroup1 = "cgroup1"
	IsolateRlimit  = "rlimit"
	IsolateNone    = "none"
)

// IsolationChoices are the values of Config.Isolation.
var IsolationChoices = []string{IsolateAuto, IsolateCgroup2, IsolateCgroup1, IsolateRlimit, IsolateNone}

// Isolation modes, as Supervisor.Isolation and the node's record report
// them. ModeNone is followed by why, as in "none (turned off)".
const (
	// ModeCgroup2: own uid; memory.max, memory.swap.max 0 and pids.max in
	// a cgroup v2 per run.
	ModeCgroup2 = "uid+cgroup2"
	// ModeCgroup1: own uid; memory.limit_in_bytes (and memsw, if swap is
	// accounted) and pids.max in cgroup v1 memory and pids cgroups per run.
	ModeCgroup1 = "uid+cgroup1"
	// ModeRlimit: own uid; RLIMIT_DATA per process and RLIMIT_NPROC for
	// the uid. Processes that leave the gear's process group outlive it.
	ModeRlimit = "uid+rlimit"
	// ModeNone: gears run as the node's user, unlimited.
	ModeNone = "none"
)

// Limits are the resource limits of a gear.
type Limits struct {
	// Memory caps the gear's memory in bytes: all its processes' together
	// in a cgroup (swap not on top), each process's data (RLIMIT_DATA)
	// with rlimits.
	Memory int64
	// Procs caps the gear's processes, threads included (pids.max, or
	// RLIMIT_NPROC of its uid).
	Procs int
}

// DefaultLimits are the limits of each gear size.
var DefaultLimits = map[string]Limits{
	state.SizeSmall:  {Memory: 512 << 20, Procs: 256},
	state.SizeMedium: {Memory: 1 << 30, Procs: 512},
	state.SizeLarge:  {Memory: 2 << 30, Procs: 1024},
}

// Default gear uid range: the first uid is the node's own, for its probe;
// gears get the others.
const (
	DefaultGearUIDMin = 40000
	DefaultGearUIDMax = 59999
)

// isolator is how a node isolates its gears: the mode found at start, and
// what it takes to confine a gear.
type isolator struct {
	mode   string
	note   string   // why the mode is none
	cg     *cgroups // cgroup modes
	limits map[string]Limits
	uids   *uidAllocator
}

// String is the mode as reported: "uid+cgroup1", "none (turned off)", ...
func (iso *isolator) String() string {
	if iso.mode == ModeNone && iso.note != "" {
		return ModeNone + " (" + iso.note + ")"
	}
	return iso.mode
}

// on reports whether gears run as uids of their own.
func (iso *isolator) on() bool { return iso.mode != ModeNone }

// limitsFor returns the limits of gears of size (small's for an unknown
// size).
func (iso *isolator) limitsFor(size string) Limits {
	if l, ok := iso.limits[size]; ok {
		return l
	}
	return iso.limits[state.SizeSmall]
}

// jail returns how a run named name (a gear id, or a build's name) of a
// gear of size is confined as uid; nil when gears are not isolated.
func (iso *isolator) jail(name string, uid int, size string) *jail {
	if !iso.on() {
		return nil
	}
	return &jail{uid: uid, limits: iso.limitsFor(size), cg: iso.cg, cgroupName: name, rlimits: iso.mode == ModeRlimit}
}

// close removes the node's cgroup parents.
func (iso *isolator) close() {
	if iso.cg != nil {
		iso.cg.close()
	}
}

// isolationError is why a mode cannot be used: short for reports, err in
// full.
type isolationError struct {
	short string
	err   error
}

func (e *isolationError) Error() string { return e.err.Error() }
func (e *isolationError) Unwrap() error { return e.err }

// errUnreachable is the short reason of a probe that could not reach its
// directories; errPrivateProc of one that could not get a private /proc,
// or that saw the node's process in it.
const (
	errUnreachable = "gear users cannot reach DATA_DIR"
	errPrivateProc = "gears cannot get a private /proc"
)

// noIsolationFix ends every refusal to start for want of isolation: the
// way out for an operator who means to run everyone's code as one user.
const noIsolationFix = "or run with --gear-isolation none to run gears unisolated, for a single-user node"

// detectIsolation finds the mode cfg asks for, or with IsolateAuto the
// strongest that works, for the gears of node (its name); tried lists, in
// order, why stronger modes were passed over.
//
// It fails closed: unless cfg asks for IsolateNone, a node that cannot
// isolate gears (it does not run as root, or no mode works here) gets an
// error that wraps ErrCannotIsolate and says what failed and the fix. A
// node that fell back to running every tenant's code as root, unlimited,
// would be worse than one that does not start.
func detectIsolation(cfg *Config, node string) (iso *isolator, tried []error, err error) {
	iso = &isolator{mode: ModeNone, limits: cfg.Limits}
	choice := cfg.Isolation
	switch {
	case choice == IsolateNone:
		iso.note = "turned off"
		return iso, nil, nil
	case os.Geteuid() != 0:
		return nil, nil, fmt.Errorf("gear isolation %s: %w: the node runs as uid %d, and only root can run gears as users of their own; run it as root, %s",
			choice, ErrCannotIsolate, os.Geteuid(), noIsolationFix)
	}
	if err := prepareDataDir(cfg.DataDir); err != nil {
		return nil, nil, err
	}
	uids, err := newUIDAllocator(cfg.GearUIDMin, cfg.GearUIDMax, filepath.Join(cfg.DataDir, "gears"))
	if err != nil {
		return nil, nil, err
	}
	iso.uids = uids
	modes := []string{IsolateCgroup2, IsolateCgroup1, IsolateRlimit}
	if choice != IsolateAuto {
		modes = []string{choice}
	}
	cgName := cgroupSafe(node)
	for _, m := range modes {
		cand := &isolator{limits: cfg.Limits, uids: uids}
		switch m {
		case IsolateCgroup2, IsolateCgroup1:
			v := 2
			cand.mode = ModeCgroup2
			if m == IsolateCgroup1 {
				v, cand.mode = 1, ModeCgroup1
			}
			cg, err := newCgroups(v, cgName)
			if err != nil {
				tried = append(tried, &isolationError{short: "no usable " + m, err: err})
				continue
			}
			cand.cg = cg
		case IsolateRlimit:
			cand.mode = ModeRlimit
		}
		if err := cand.probe(cfg.DataDir); err != nil {
			cand.close()
			tried = append(tried, fmt.Errorf("%s: %w", cand.mode, err))
			continue
		}
		return cand, tried, nil
	}
	return nil, tried, cannotIsolate(choice, cfg.DataDir, tried)
}

// cannotIsolate is the error of a node whose every mode failed, as tried
// says: what failed and the fix.
func cannotIsolate(choice, dataDir string, tried []error) error {
	why := make([]string, len(tried))
	for i, err := range tried {
		why[i] = err.Error()
	}
	fix := "run the node on a host that lets root confine processes (cgroup v2, the cgroup v1 memory and pids controllers, or rlimits), " + noIsolationFix
	for _, err := range tried {
		var ie *isolationError
		if errors.As(err, &ie) && ie.short == errPrivateProc {
			fix = "run the node on Linux 5.8 or later (for a /proc mounted with hidepid=invisible) and let it make mount namespaces (under systemd: RestrictNamespaces=mnt, as the unit of scripts/install.sh has it), " + noIsolationFix
		}
		if errors.As(err, &ie) && ie.short == errUnreachable {
			dirs := unsearchable(dataDir)
			if len(dirs) == 0 {
				dirs = []string{"..."}
			}
			fix = fmt.Sprintf("make the directories above DATA_DIR searchable (chmod o+x %s), %s", strings.Join(dirs, " "), noIsolationFix)
			break
		}
	}
	return fmt.Errorf("gear isolation %s: %w: %s; to fix: %s", choice, ErrCannotIsolate, strings.Join(why, "; "), fix)
}

// unsearchable returns the directories above dir that others than their
// owner cannot search (no o+x), outermost first.
func unsearchable(dir string) []string {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil
	}
	var out []string
	for d := filepath.Dir(abs); ; d = filepath.Dir(d) {
		if fi, err := os.Stat(d); err == nil && fi.Mode().Perm()&0o001 == 0 {
			out = append([]string{d}, out...)
		}
		if d == filepath.Dir(d) {
			return out
		}
	}
}

// CheckIsolation reports whether a node that runs as this process's
// user, with its data in dataDir and gear uids uidMin..uidMax
// (--gear-uid-range), isolates gears with IsolateAuto: the mode it takes,
// or an error that wraps ErrCannotIsolate and says why and the fix. It
// tries as Start does, as node name (whose cgroups it removes again), and
// leaves behind only DATA_DIR's directories, which the node makes anyway.
// gearbox dev asks it before it starts its nodes.
func CheckIsolation(dataDir, name string, uidMin, uidMax int) (string, error) {
	if err := checkPlatform(); err != nil {
		return "", err
	}
	cfg := Config{DataDir: dataDir, Isolation: IsolateAuto, GearUIDMin: uidMin, GearUIDMax: uidMax, Limits: maps.Clone(DefaultLimits)}
	iso, _, err := detectIsolation(&cfg, name)
	if err != nil {
		return "", err
	}
	iso.close()
	return iso.String(), nil
}

// prepareDataDir lets gear uids reach their directories and nothing
// else: DATA_DIR and DATA_DIR/gears and deployments are searchable but
// not listable by others, DATA_DIR/run is the node's alone. DATA_DIR
// holds nothing else that others may read (its files are 0600).
func prepareDataDir(dataDir string) error {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return err
	}
	fi, err := os.Stat(dataDir)
	if err != nil {
		return err
	}
	if fi.Mode().Perm()&0o001 == 0 {
		if err := os.Chmod(dataDir, fi.Mode().Perm()|0o001); err != nil {
			return fmt.Errorf("let gear users search %s: %w", dataDir, err)
		}
	}
	for _, d := range []struct {
		name string
		mode os.FileMode
	}{{"gears", 0o711}, {"deployments", 0o711}, {"run", 0o700}} {
		p := filepath.Join(dataDir, d.name)
		if err := os.MkdirAll(p, d.mode); err != nil {
			return err
		}
		if err := os.Chmod(p, d.mode); err != nil {
			return err
		}
	}
	return nil
}

// probeTimeout bounds a probe's run.
const probeTimeout = 10 * time.Second

// probe starts a confined process as a gear's would be (as the reserved
// uid, in a cgroup of its own, with small gears' limits) and checks what
// it reports of itself, and that it reaches the gears' and deployments'
// directories.
func (iso *isolator) probe(dataDir string) error {
	// The probe's cgroup name is no gear id: those have no dash.
	j := &jail{uid: iso.uids.min, limits: iso.limitsFor(state.SizeSmall), cg: iso.cg, cgroupName: "node-probe",
		rlimits: iso.mode == ModeRlimit}
	var out bytes.Buffer
	c := Command{Path: "/proc/self/exe", Args: []string{probeName, filepath.Join(dataDir, "gears"), filepath.Join(dataDir, "deployments")},
		Env: []string{}, Dir: "/", jail: j}
	run, err := c.Launch(&out)
	if errors.Is(err, os.ErrPermission) {
		// Root may make mount namespaces, unless something forbids it
		// (systemd's RestrictNamespaces=yes, a seccomp filter).
		return &isolationError{short: errPrivateProc, err: fmt.Errorf("start a gear process in a mount namespace of its own: %w", err)}
	}
	if err != nil {
		return &isolationError{short: "gear processes cannot be confined here", err: err}
	}
	t := time.NewTimer(probeTimeout)
	select {
	case <-run.Done():
	case <-t.C:
		run.Stop(0)
	}
	t.Stop()
	text := strings.TrimSpace(out.String())
	if err := run.Err(); err != nil {
		short := fmt.Sprintf("cannot run processes as uid %d", j.uid)
		if strings.Contains(text, privateProcFailed) {
			short = errPrivateProc
		}
		return &isolationError{short: short, err: fmt.Errorf("probe: %v: %s", err, text)}
	}
	var rep probeReport
	if err := json.Unmarshal([]byte(text), &rep); err != nil {
		return fmt.Errorf("probe said %q: %w", text, err)
	}
	return rep.check(j)
}

// check compares what a probe confined by j found with what j asks.
func (r probeReport) check(j *jail) error {
	if r.UID != j.uid || r.GID != j.uid || len(r.Groups) > 0 {
		return fmt.Errorf("probe ran as uid %d, gid %d, groups %v; want uid and gid %d and no groups", r.UID, r.GID, r.Groups, j.uid)
	}
	if !r.ProcSelf {
		return &isolationError{short: errPrivateProc, err: errors.New("probe cannot read /proc/self/status in its private /proc")}
	}
	if r.ParentVisible {
		return &isolationError{short: errPrivateProc,
			err: errors.New("probe sees the node's process in its /proc: gears would see the node's and other gears' processes (a private /proc with hidepid=invisible takes Linux 5.8 or later)")}
	}
	if !r.NNP {
		return errors.New("probe ran without no_new_privs")
	}
	if len(r.Denied) > 0 {
		return &isolationError{short: errUnreachable,
			err: fmt.Errorf("gear users cannot reach their directories (make the directories above DATA_DIR searchable by others): %s", r.Denied[0])}
	}
	if j.cg != nil {
		own, _ := parseProcCgroup(strings.NewReader(r.Cgroup))
		keys := []string{""}
		if j.cg.version == 1 {
			keys = []string{"memory", "pids"}
		}
		for _, k := range keys {
			if !strings.HasSuffix(own[k], "/"+cgroupGearsDir+"/"+filepath.Base(j.cg.parents[0])+"/"+j.cgroupName) {
				return fmt.Errorf("probe is in cgroup %q (%s), not in its own", own[k], k)
			}
		}
	}
	if j.rlimits && (r.Data != uint64(j.limits.Memory) || r.Procs != uint64(j.limits.Procs)) {
		return fmt.Errorf("probe has RLIMIT_DATA %d and RLIMIT_NPROC %d, want %d and %d", r.Data, r.Procs, j.limits.Memory, j.limits.Procs)
	}
	return nil
}

var cgroupUnsafeRE = regexp.MustCompile(`[^A-Za-z0-9._-]`)

// cgroupSafe makes s fit as a cgroup directory name.
func cgroupSafe(s string) string {
	s = cgroupUnsafeRE.ReplaceAllString(s, "_")
	if s == "" || s == "." || s == ".." {
		s = "_" + s
	}
	return s
}

// uidFile is where a gear's uid is noted, in the gear's directory (which
// the gear cannot write).
const uidFile = "uid"

// uidAllocator hands each gear of the node a uid of its own from
// min+1..max and keeps it across restarts (in the gear's uidFile). min
// is the node's, for its probe.
type uidAllocator struct {
	min, max int

	mu     sync.Mutex
	byGear map[string]int
	owner  map[int]string // uid -> gear
}

// newUIDAllocator returns an allocator that knows the uids noted in the
// gear directories under gearsDir.
func newUIDAllocator(min, max int, gearsDir string) (*uidAllocator, error) {
	a := &uidAllocator{min: min, max: max, byGear: make(map[string]int), owner: make(map[int]string)}
	ents, err := os.ReadDir(gearsDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	for _, e := range ents {
		if uid, ok := readUIDFile(filepath.Join(gearsDir, e.Name())); ok && e.IsDir() && a.owner[uid] == "" {
			a.byGear[e.Name()], a.owner[uid] = uid, e.Name()
		}
	}
	return a, nil
}

func readUIDFile(dir string) (int, bool) {
	b, err := os.ReadFile(filepath.Join(dir, uidFile))
	if err != nil {
		return 0, false
	}
	uid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	return uid, err == nil && uid > 0
}

// assign returns gear id's uid, allocating one (and noting it in dir) if
// it has none: the lowest of the range that no other gear of this node
// has, that names no user or group of the host, and that no process runs
// as (so that a uid whose processes outlived their gear is not handed
// on).
func (a *uidAllocator) assign(id, dir string) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if uid, ok := a.byGear[id]; ok {
		return uid, nil
	}
	if uid, ok := readUIDFile(dir); ok && a.owner[uid] == "" {
		a.byGear[id], a.owner[uid] = uid, id
		return uid, nil
	}
	taken := hostIDs()
	for uid := a.min + 1; uid <= a.max; uid++ {
		if a.owner[uid] != "" || taken[uid] {
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, uidFile), []byte(strconv.Itoa(uid)+"\n"), 0o644); err != nil {
			return 0, fmt.Errorf("note gear uid: %w", err)
		}
		a.byGear[id], a.owner[uid] = uid, id
		return uid, nil
	}
	return 0, fmt.Errorf("gear uid range %d-%d: %w", a.min+1, a.max, ErrNoGearUID)
}

// lookup returns gear id's uid, or 0 if it has none.
func (a *uidAllocator) lookup(id string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.byGear[id]
}

// release forgets gear id's uid, once its directory is gone.
func (a *uidAllocator) release(id string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if uid, ok := a.byGear[id]; ok {
		delete(a.byGear, id)
		delete(a.owner, uid)
	}
}

// hostIDs returns the uids and gids in use on the host: of its users and
// groups, and of its processes.
func hostIDs() map[int]bool {
	ids := make(map[int]bool)
	for _, f := range []string{"/etc/passwd", "/etc/group"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			if p := strings.Split(sc.Text(), ":"); len(p) > 2 {
				if id, err := strconv.Atoi(p[2]); err == nil {
					ids[id] = true
				}
			}
		}
	}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/status")
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "Uid:"); ok {
				for _, f := range strings.Fields(v) {
					if id, err := strconv.Atoi(f); err == nil {
						ids[id] = true
					}
				}
				break
			}
		}
	}
	return ids
}
