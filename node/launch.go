package node

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// A confined process is started in two steps. The node starts its own
// binary again (/proc/self/exe) under the name launcherName, as root; that
// launcher reads what to run from a pipe on fd 3, moves itself into the
// run's cgroups, sets the rlimits, drops to the gear's uid and gid with no
// supplementary groups and no_new_privs, and only then executes the
// gear's program. The program thus never runs outside its cgroups or
// limits, which a cgroup v1 join or a prlimit after the start could not
// promise; cgroup v1 and v2 take the same path, and no clone3 is needed.
//
// Any binary that imports this package serves as launcher (see init): the
// gearbox binary, and the test binaries.

// launcherName is argv[0] of a launcher; probeName of the isolation probe
// that a launcher runs at node start (isolation.go).
const (
	launcherName = "gearbox-gear-launch"
	probeName    = "gearbox-gear-probe"
)

func init() {
	if len(os.Args) == 0 {
		return
	}
	switch os.Args[0] {
	case launcherName:
		runLauncher()
	case probeName:
		runProbe(os.Args[1:])
	}
}

// jail is how one run of a command is confined: as uid, in a cgroup named
// cgroupName of cg (if cg is set), under rlimits (if rlimits).
type jail struct {
	uid        int
	limits     Limits
	cg         *cgroups
	cgroupName string
	rlimits    bool
}

// launchSpec is what a launcher reads on fd 3.
type launchSpec struct {
	Path string   `json:"path"`
	Args []string `json:"args"`
	Env  []string `json:"env"`
	Dir  string   `json:"dir"`
	UID  int      `json:"uid"`
	// Cgroups are the directories of the cgroups to join.
	Cgroups []string `json:"cgroups,omitempty"`
	// Data and Procs, when not zero, are RLIMIT_DATA and RLIMIT_NPROC.
	Data  int64 `json:"data,omitempty"`
	Procs int64 `json:"procs,omitempty"`
	// Parent is the node's pid: a launcher whose parent died before it
	// could ask to die with it exits.
	Parent int `json:"parent"`
}

// wrap turns cmd, which would run path with args, env and dir, into a
// launcher that runs it confined by j. It makes the run's cgroup; the
// caller calls start once cmd started (it sends the spec) and cleanup once
// the run is over (it removes the cgroup), or cleanup alone if cmd did not
// start.
func (j *jail) wrap(cmd *exec.Cmd, path string, args, env []string, dir string) (start func() error, cleanup func(), err error) {
	spec := launchSpec{Path: path, Args: args, Env: env, Dir: dir, UID: j.uid, Parent: os.Getpid()}
	if spec.Dir == "" {
		spec.Dir = "/"
	}
	if j.rlimits {
		spec.Data, spec.Procs = j.limits.Memory, int64(j.limits.Procs)
	}
	end := func() {}
	if j.cg != nil {
		dirs, err := j.cg.create(j.cgroupName, j.limits)
		if err != nil {
			return nil, nil, err
		}
		spec.Cgroups = dirs
		end = func() { j.cg.remove(j.cgroupName) }
	}
	b, err := json.Marshal(spec)
	if err != nil {
		end()
		return nil, nil, err
	}
	r, w, err := os.Pipe()
	if err != nil {
		end()
		return nil, nil, err
	}
	cmd.Path, cmd.Args, cmd.Env, cmd.Dir = "/proc/self/exe", []string{launcherName}, []string{}, "/"
	cmd.ExtraFiles = []*os.File{r}
	start = func() error {
		r.Close()
		// A launcher that died early makes this fail; its run reports why.
		_, err := w.Write(b)
		w.Close()
		return err
	}
	return start, func() { r.Close(); w.Close(); end() }, nil
}

// runLauncher is the launcher's whole life: it never returns.
func runLauncher() {
	fail := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "gearbox: confine gear process: "+format+"\n", args...)
		os.Exit(127)
	}
	f := os.NewFile(3, "launch spec")
	b, err := io.ReadAll(f)
	f.Close()
	if err != nil {
		fail("read spec: %v", err)
	}
	var sp launchSpec
	if err := json.Unmarshal(b, &sp); err != nil {
		fail("read spec: %v", err)
	}
	if sp.UID <= 0 {
		fail("uid %d", sp.UID)
	}
	pid := []byte(strconv.Itoa(os.Getpid()))
	for _, d := range sp.Cgroups {
		if err := os.WriteFile(d+"/cgroup.procs", pid, 0o644); err != nil {
			fail("join cgroup: %v", err)
		}
	}
	for _, rl := range []struct {
		res int
		v   int64
	}{{unix.RLIMIT_DATA, sp.Data}, {unix.RLIMIT_NPROC, sp.Procs}} {
		if rl.v > 0 {
			if err := unix.Setrlimit(rl.res, &unix.Rlimit{Cur: uint64(rl.v), Max: uint64(rl.v)}); err != nil {
				fail("set rlimit %d: %v", rl.res, err)
			}
		}
	}
	// Go applies these to every thread of the process.
	if err := syscall.Setgroups([]int{}); err != nil {
		fail("drop supplementary groups: %v", err)
	}
	if err := syscall.Setgid(sp.UID); err != nil {
		fail("set gid %d: %v", sp.UID, err)
	}
	if err := syscall.Setuid(sp.UID); err != nil {
		fail("set uid %d: %v", sp.UID, err)
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		fail("set no_new_privs: %v", err)
	}
	// Changing uid cleared the parent-death signal that the node asked
	// for; the node may have died meanwhile.
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(syscall.SIGKILL), 0, 0, 0); err != nil {
		fail("set parent-death signal: %v", err)
	}
	if os.Getppid() != sp.Parent {
		os.Exit(127)
	}
	if err := os.Chdir(sp.Dir); err != nil {
		fail("enter %s as uid %d: %v", sp.Dir, sp.UID, err)
	}
	err = syscall.Exec(sp.Path, sp.Args, sp.Env)
	fail("run %s as uid %d: %v", sp.Path, sp.UID, err)
}

// probeReport is what the isolation probe prints: what a confined process
// finds itself to be.
type probeReport struct {
	UID    int      `json:"uid"`
	GID    int      `json:"gid"`
	Groups []int    `json:"groups"`
	NNP    bool     `json:"no_new_privs"`
	Cgroup string   `json:"cgroup"`
	Data   uint64   `json:"rlimit_data"`
	Procs  uint64   `json:"rlimit_nproc"`
	Denied []string `json:"denied,omitempty"` // the paths it could not reach, with why
}

// runProbe reports, as JSON on stdout, the process's credentials and
// limits and whether it reaches paths, and exits.
func runProbe(paths []string) {
	json.NewEncoder(os.Stdout).Encode(probeSelf(paths))
	os.Exit(0)
}

// probeSelf returns what this process finds itself to be.
func probeSelf(paths []string) probeReport {
	rep := probeReport{UID: os.Getuid(), GID: os.Getgid()}
	rep.Groups, _ = os.Getgroups()
	if rep.Groups == nil {
		rep.Groups = []int{}
	}
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "NoNewPrivs:"); ok {
				rep.NNP = strings.TrimSpace(v) == "1"
			}
		}
	}
	if b, err := os.ReadFile("/proc/self/cgroup"); err == nil {
		rep.Cgroup = string(b)
	}
	var rl unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_DATA, &rl) == nil {
		rep.Data = rl.Cur
	}
	if unix.Getrlimit(unix.RLIMIT_NPROC, &rl) == nil {
		rep.Procs = rl.Cur
	}
	for _, p := range paths {
		if _, err := os.Stat(p); err != nil {
			rep.Denied = append(rep.Denied, err.Error())
		}
	}
	return rep
}
