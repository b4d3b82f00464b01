package node

import (
	"encoding/json"
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
