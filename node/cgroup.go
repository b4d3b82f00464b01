package node

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Control groups for gears, through the cgroup file systems (Linux).
//
// Each run of a gear's process (and each build) gets a cgroup of its own,
// made when it is launched and removed, after whatever is left in it is
// killed, when it ends: a process that left the gear's process group
// goes with the run all the same. What an earlier run of the node left
// (it died without stopping its gears) is swept away at start. Gear cgroups live under
// OWN/gearbox-gears/NODE, where OWN is the node's own cgroup, so that the
// limits the node itself runs under (a container's, a systemd unit's)
// still hold for its gears.
//
// With cgroup v2, memory and pids must be enabled for OWN's children.
// v2 lets only a cgroup without processes of its own do that (the root
// aside), so a node that is alone in its cgroup moves itself into
// OWN/gearbox-member first; a node that shares its cgroup with other
// processes cannot use v2 (run it in a cgroup of its own: with systemd,
// Delegate=yes).

// cgroupGearsDir is the directory, under the node's own cgroup, that holds
// the gear cgroups of every node of the process.
const cgroupGearsDir = "gearbox-gears"

// cgroupMemberDir is the leaf that a node moves itself into under cgroup
// v2, so that its own cgroup may enable controllers for its children.
const cgroupMemberDir = "gearbox-member"

// cgroupLimit is one limit file of a cgroup.
type cgroupLimit struct {
	file     string
	value    func(Limits) int64
	optional bool // absent on some hosts (swap accounting off)
}

// cgroups makes and removes the cgroups of one node's gears.
type cgroups struct {
	version int
	// parents are where the node's gear cgroups go: one directory with
	// v2; with v1 one per hierarchy (memory, pids; one if they share it).
	parents []string
	// limits are the files written in each parent's children, by parent.
	limits [][]cgroupLimit
}

func memoryLimit(l Limits) int64 { return l.Memory }
func procsLimit(l Limits) int64  { return int64(l.Procs) }
func noSwap(Limits) int64        { return 0 }

var (
	v2Limits = []cgroupLimit{
		{file: "memory.max", value: memoryLimit},
		{file: "memory.swap.max", value: noSwap, optional: true},
		{file: "pids.max", value: procsLimit},
	}
	// memsw (memory plus swap) follows memory.limit_in_bytes, which it may
	// not be below.
	v1MemoryLimits = []cgroupLimit{
		{file: "memory.limit_in_bytes", value: memoryLimit},
		{file: "memory.memsw.limit_in_bytes", value: memoryLimit, optional: true},
	}
	v1PidsLimits = []cgroupLimit{{file: "pids.max", value: procsLimit}}
)

// newCgroups prepares the cgroups of version 1 or 2 for the gears of node
// (a name safe for a path), creating the parents. It fails, saying why,
// when that version cannot limit memory and processes here.
func newCgroups(version int, node string) (*cgroups, error) {
	mounts, err := readMountinfo("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	own, err := readProcCgroup("/proc/self/cgroup")
	if err != nil {
		return nil, err
	}
	c := &cgroups{version: version}
	switch version {
	case 2:
		base, err := cgroup2Base(mounts, own)
		if err != nil {
			return nil, err
		}
		dir := filepath.Join(base, cgroupGearsDir, node)
		for _, d := range []string{filepath.Join(base, cgroupGearsDir), dir} {
			if err := os.Mkdir(d, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
				return nil, fmt.Errorf("cgroup2: %w", err)
			}
			if err := enableControllers(d); err != nil {
				return nil, fmt.Errorf("cgroup2: %w", err)
			}
		}
		c.parents, c.limits = []string{dir}, [][]cgroupLimit{v2Limits}
	case 1:
		for _, ctl := range []struct {
			name   string
			limits []cgroupLimit
		}{{"memory", v1MemoryLimits}, {"pids", v1PidsLimits}} {
			d, ok := cgroupDir(mounts, own, "cgroup", ctl.name)
			if !ok {
				return nil, fmt.Errorf("cgroup1: no %s hierarchy is mounted", ctl.name)
			}
			dir := filepath.Join(d, cgroupGearsDir, node)
			if i := slices.Index(c.parents, dir); i >= 0 { // one hierarchy for both
				c.limits[i] = append(slices.Clone(c.limits[i]), ctl.limits...)
				continue
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return nil, fmt.Errorf("cgroup1: %w", err)
			}
			c.parents = append(c.parents, dir)
			c.limits = append(c.limits, ctl.limits)
		}
	default:
		return nil, fmt.Errorf("cgroup version %d", version)
	}
	c.sweep()
	return c, nil
}

// sweep removes the cgroups that an earlier run of the node left, with
// what still runs in them: at start, none of the node's gears runs yet.
func (c *cgroups) sweep() {
	names := make(map[string]bool)
	for _, p := range c.parents {
		ents, _ := os.ReadDir(p)
		for _, e := range ents {
			if e.IsDir() {
				names[e.Name()] = true
			}
		}
	}
	for name := range names {
		c.remove(name)
	}
}

// dirs returns the directories of cgroup name.
func (c *cgroups) dirs(name string) []string {
	out := make([]string, len(c.parents))
	for i, p := range c.parents {
		out[i] = filepath.Join(p, name)
	}
	return out
}

// create makes cgroup name with limits l and returns its directories. A
// cgroup of that name left by an earlier run (of a node that died) is
// emptied and removed first.
func (c *cgroups) create(name string, l Limits) ([]string, error) {
	if err := c.remove(name); err != nil {
		return nil, err
	}
	dirs := c.dirs(name)
	for i, d := range dirs {
		if err := os.Mkdir(d, 0o755); err != nil {
			c.remove(name)
			return nil, fmt.Errorf("create cgroup: %w", err)
		}
		for _, lim := range c.limits[i] {
			if err := writeCgroupValue(filepath.Join(d, lim.file), lim.value(l)); err != nil {
				if lim.optional && errors.Is(err, os.ErrNotExist) {
					continue
				}
				c.remove(name)
				return nil, fmt.Errorf("create cgroup: %w", err)
			}
		}
	}
	return dirs, nil
}

// writeCgroupValue writes v to the limit file path and reads it back: a
// limit is in force only once the kernel says so.
func writeCgroupValue(path string, v int64) error {
	s := strconv.FormatInt(v, 10)
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		return err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if got := strings.TrimSpace(string(b)); got != s {
		return fmt.Errorf("%s holds %s after writing %s", path, got, s)
	}
	return nil
}

// remove kills what runs in cgroup name and removes it; a missing cgroup
// is no error.
func (c *cgroups) remove(name string) error {
	var errs []error
	dirs := c.dirs(name)
	for _, d := range dirs {
		killCgroup(d)
	}
	for _, d := range dirs {
		if err := removeCgroupDir(d); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// close removes the node's parents if no gear cgroup is left in them, and
// the gearbox-gears directories above them if no node uses them.
func (c *cgroups) close() {
	for _, p := range c.parents {
		if os.Remove(p) == nil {
			os.Remove(filepath.Dir(p))
		}
	}
}

// killCgroup kills every process of the cgroup at dir and returns once it
// holds none (or after 5 s).
func killCgroup(dir string) {
	if _, err := os.Stat(dir); err != nil {
		return
	}
	os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0o644) // v2, Linux 5.14+
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		pids, err := cgroupProcs(dir)
		if err != nil || len(pids) == 0 {
			return
		}
		for _, pid := range pids {
			killPID(pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// removeCgroupDir removes the (empty) cgroup at dir, waiting for its last
// processes to be gone.
func removeCgroupDir(dir string) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := os.Remove(dir)
		if err == nil || errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if !errors.Is(err, syscall.EBUSY) || time.Now().After(deadline) {
			return fmt.Errorf("remove cgroup: %w", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// cgroupProcs lists the processes of the cgroup at dir.
func cgroupProcs(dir string) ([]int, error) {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return nil, err
	}
	var out []int
	for _, f := range strings.Fields(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil {
			out = append(out, pid)
		}
	}
	return out, nil
}

// cgroup2 delegation is done once per process: the node moves itself, and
// every node of the process shares the result.
var v2base struct {
	sync.Mutex
	dir string
}

// cgroup2Base returns the cgroup v2 directory under which this process's
// gear cgroups go, with memory and pids enabled for its children.
func cgroup2Base(mounts []mountEntry, own map[string]string) (string, error) {
	v2base.Lock()
	defer v2base.Unlock()
	if v2base.dir != "" {
		return v2base.dir, nil
	}
	dir, ok := cgroupDir(mounts, own, "cgroup2", "")
	if !ok {
		return "", errors.New("cgroup2: no unified hierarchy is mounted")
	}
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.controllers"))
	if err != nil {
		return "", fmt.Errorf("cgroup2: %w", err)
	}
	have := strings.Fields(string(b))
	for _, c := range []string{"memory", "pids"} {
		if !slices.Contains(have, c) {
			return "", fmt.Errorf("cgroup2: controller %s is not available in %s (it has: %s)", c, dir, strings.Join(have, " "))
		}
	}
	if err := enableControllers(dir); errors.Is(err, syscall.EBUSY) {
		// The node's cgroup holds processes: it may enable controllers for
		// its children only once they are gone, so the node moves into a
		// leaf of its own, if it is alone.
		pids, err := cgroupProcs(dir)
		if err != nil {
			return "", fmt.Errorf("cgroup2: %w", err)
		}
		if len(pids) != 1 || pids[0] != os.Getpid() {
			return "", fmt.Errorf("cgroup2: %s holds other processes than this one; run gearbox in a cgroup of its own (systemd: Delegate=yes)", dir)
		}
		leaf := filepath.Join(dir, cgroupMemberDir)
		if err := os.Mkdir(leaf, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return "", fmt.Errorf("cgroup2: %w", err)
		}
		if err := os.WriteFile(filepath.Join(leaf, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
			return "", fmt.Errorf("cgroup2: move into %s: %w", leaf, err)
		}
		if err := enableControllers(dir); err != nil {
			return "", fmt.Errorf("cgroup2: %w", err)
		}
	} else if err != nil {
		return "", fmt.Errorf("cgroup2: %w", err)
	}
	v2base.dir = dir
	return dir, nil
}

// enableControllers enables memory and pids for the children of the
// cgroup v2 at dir.
func enableControllers(dir string) error {
	path := filepath.Join(dir, "cgroup.subtree_control")
	if b, err := os.ReadFile(path); err == nil {
		f := strings.Fields(string(b))
		if slices.Contains(f, "memory") && slices.Contains(f, "pids") {
			return nil
		}
	}
	if err := os.WriteFile(path, []byte("+memory +pids"), 0o644); err != nil {
		return fmt.Errorf("enable memory and pids in %s: %w", dir, err)
	}
	return nil
}

// mountEntry is a line of /proc/self/mountinfo.
type mountEntry struct {
	root   string // the mounted directory of the file system
	point  string // where it is mounted
	fstype string
	opts   []string // super options: a cgroup v1 mount's controllers
}

func readMountinfo(path string) ([]mountEntry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseMountinfo(f)
}

// parseMountinfo reads the cgroup file systems of a mountinfo table.
func parseMountinfo(r io.Reader) ([]mountEntry, error) {
	var out []mountEntry
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		// ID PARENT MAJ:MIN ROOT POINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		a, b := strings.Fields(pre), strings.Fields(post)
		if len(a) < 5 || len(b) < 3 || (b[0] != "cgroup" && b[0] != "cgroup2") {
			continue
		}
		out = append(out, mountEntry{root: unescapeMount(a[3]), point: unescapeMount(a[4]), fstype: b[0],
			opts: strings.Split(b[2], ",")})
	}
	return out, sc.Err()
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func readProcCgroup(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseProcCgroup(f)
}

// parseProcCgroup reads /proc/PID/cgroup: the process's cgroup path by
// controller, and under "" its cgroup v2 path.
func parseProcCgroup(r io.Reader) (map[string]string, error) {
	out := make(map[string]string)
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		// ID:CONTROLLERS:PATH; v2's line is 0::PATH.
		f := strings.SplitN(sc.Text(), ":", 3)
		if len(f) != 3 {
			continue
		}
		if f[0] == "0" && f[1] == "" {
			out[""] = f[2]
			continue
		}
		for _, c := range strings.Split(f[1], ",") {
			out[c] = f[2]
		}
	}
	return out, sc.Err()
}

// cgroupDir returns the directory of this process's cgroup in the
// hierarchy of fstype (cgroup or cgroup2) that has controller (v1), as
// mounted here.
func cgroupDir(mounts []mountEntry, own map[string]string, fstype, controller string) (string, bool) {
	path, ok := own[controller]
	if !ok {
		return "", false
	}
	for _, m := range mounts {
		if m.fstype != fstype || (controller != "" && !slices.Contains(m.opts, controller)) {
			continue
		}
		// A mount of a subtree (a container's) shows the paths below it.
		rel, ok := strings.CutPrefix(path, m.root)
		if m.root == "/" {
			rel, ok = path, true
		}
		if !ok || (rel != "" && !strings.HasPrefix(rel, "/")) {
			continue
		}
		return filepath.Join(m.point, rel), true
	}
	return "", false
}
