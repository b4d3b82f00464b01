//go:build !linux

package node

import (
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"syscall"
)

// Stand-ins for what the node needs of Linux (see platform.go). New
// refuses to make a node here (checkPlatform), so none of these is
// reached by a node.

// checkPlatform reports why a node cannot run on this system.
func checkPlatform() error { return unsupportedOS(runtime.GOOS) }

// Open flags: none of them here.
const (
	oNoFollow = 0
	oNonBlock = 0
)

// statOf reports that this system does not say who owns fi.
func statOf(fs.FileInfo) (inode, bool) { return inode{}, false }

// runLauncher fails: a gear's process is not confined here.
func runLauncher() {
	fmt.Fprintf(os.Stderr, "gearbox: confine gear process: %v\n", checkPlatform())
	os.Exit(127)
}

// probeSelf returns the process's uid and gid only.
func probeSelf(paths []string) probeReport {
	rep := probeReport{UID: os.Getuid(), GID: os.Getgid(), Groups: []int{}}
	for _, p := range paths {
		if _, err := os.Stat(p); err != nil {
			rep.Denied = append(rep.Denied, err.Error())
		}
	}
	return rep
}

// Process groups and /proc: nothing is followed here.

func sysProcAttr() *syscall.SysProcAttr { return nil }

func launcherAttr() *syscall.SysProcAttr { return nil }

func signalGroup(pgid int, sig syscall.Signal) {}

func groupAlive(pgid int) bool { return false }

func killPID(pid int) {
	if p, err := os.FindProcess(pid); err == nil {
		p.Kill()
	}
}

func killOrphans(pidFile, marker string) (int, error) { return 0, nil }

func killUIDProcs(uid int, marker string) int { return 0 }

func procStat(pid int) (state string, pgrp int, ok bool) { return "", 0, false }
