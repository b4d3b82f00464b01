package node

import (
	"encoding/json"
	"os"
	"os/exec"
)

// A confined process is started in two steps. The node starts its own
// binary again (/proc/self/exe) under the name launcherName, as root; that
// launcher, started in a mount namespace of its own, reads what to run
// from a pipe on fd 3, moves itself into the run's cgroups, sets the
// rlimits, mounts a private /proc that shows it only its own uid's
// processes (privateProc), drops to the gear's uid and gid with no
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

// privateProcFailed starts the message of a launcher that could not give
// its gear a private /proc, so that the probe can say why it failed.
const privateProcFailed = "give the gear a private /proc"

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
	cmd.SysProcAttr = launcherAttr()
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
	// PID is the process's pid. Visible are the pids that /proc lists to
	// it, ParentVisible whether /proc shows its parent (the node), and
	// ProcSelf whether it reads its own /proc/self/status.
	PID           int   `json:"pid"`
	Visible       []int `json:"visible_pids"`
	ParentVisible bool  `json:"parent_visible"`
	ProcSelf      bool  `json:"proc_self"`
}

// runProbe reports, as JSON on stdout, the process's credentials and
// limits and whether it reaches paths, and exits.
func runProbe(paths []string) {
	json.NewEncoder(os.Stdout).Encode(probeSelf(paths))
	os.Exit(0)
}
