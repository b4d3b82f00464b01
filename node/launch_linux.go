package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// The launcher and the isolation probe on Linux, where gears run: what
// they do needs prctl(2), rlimits and /proc.

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
	if err := privateProc(sp.Parent); err != nil {
		fail("%s: %v", privateProcFailed, err)
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

// launcherAttr is how the node starts a launcher: as any command
// (sysProcAttr), and in a mount namespace of its own, where the launcher
// mounts the gear's private /proc (privateProc).
func launcherAttr() *syscall.SysProcAttr {
	a := sysProcAttr()
	a.Cloneflags = syscall.CLONE_NEWNS
	return a
}

// privateProc mounts, in the launcher's own mount namespace, a /proc
// that shows each process only the processes of its own uid
// (hidepid=invisible): the gear sees its own processes and none of the
// node's or other gears' (their command lines, environments, open
// files). The node, as root, still sees every process.
//
// Why a private /proc rather than a PID namespace per gear: a PID
// namespace alone hides nothing (/proc would still be the host's, so it
// must be remounted anyway), and it would make the gear's first process
// PID 1, which ignores the signals it does not handle (the node's
// SIGTERM) and must reap every orphan of the gear. With a private /proc
// the gear stays an ordinary process of the node's process tree, and the
// node's process-group signals, pid files and /proc walks work as before.
//
// Only hidepid=invisible is tried, with no fall back to hidepid=2: it
// came with Linux 5.8, together with a proc instance per mount; before
// that, every proc mount of a PID namespace shares one superblock, so
// hidepid=2 either did nothing or turned hiding on for the host's /proc
// too. Where it fails, the launcher fails and the gear does not run
// (the node's probe finds this at start and refuses to isolate).
func privateProc(parent int) error {
	// A launcher started in the node's own mount namespace would mount
	// over the host's /proc: refuse.
	own, err := os.Readlink("/proc/self/ns/mnt")
	if err != nil {
		return fmt.Errorf("read own mount namespace: %w", err)
	}
	node, err := os.Readlink("/proc/" + strconv.Itoa(parent) + "/ns/mnt")
	if err != nil {
		return fmt.Errorf("read the node's mount namespace: %w", err)
	}
	if own == node {
		return errors.New("not in a mount namespace of its own")
	}
	// Slave, not private: mounts and unmounts on the host still reach
	// the gear (an unmounted disk is not kept busy by a running gear), and
	// nothing mounted here reaches the host.
	if err := unix.Mount("none", "/", "", unix.MS_REC|unix.MS_SLAVE, ""); err != nil {
		return fmt.Errorf("keep mounts from propagating to the host: %w", err)
	}
	if err := unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "hidepid=invisible"); err != nil {
		return fmt.Errorf("mount proc with hidepid=invisible (Linux 5.8 or later): %w", err)
	}
	return nil
}

// probeSelf returns what this process finds itself to be.
func probeSelf(paths []string) probeReport {
	rep := probeReport{UID: os.Getuid(), GID: os.Getgid(), PID: os.Getpid(), Visible: []int{}}
	rep.Groups, _ = os.Getgroups()
	if rep.Groups == nil {
		rep.Groups = []int{}
	}
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		rep.ProcSelf = true
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
	if ents, err := os.ReadDir("/proc"); err == nil {
		for _, e := range ents {
			if pid, err := strconv.Atoi(e.Name()); err == nil {
				rep.Visible = append(rep.Visible, pid)
			}
		}
	}
	_, err := os.Stat("/proc/" + strconv.Itoa(os.Getppid()))
	rep.ParentVisible = err == nil
	for _, p := range paths {
		if _, err := os.Stat(p); err != nil {
			rep.Denied = append(rep.Denied, err.Error())
		}
	}
	return rep
}
