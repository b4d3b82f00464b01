package node

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Process groups, through Linux's /proc.

func sysProcAttr() *syscall.SysProcAttr {
	// Pdeathsig takes the leader down with the node if the node dies
	// without stopping its gears; the rest of the group is found through
	// the pid file at the next start (killOrphans).
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// signalGroup sends sig to every process of group pgid.
func signalGroup(pgid int, sig syscall.Signal) {
	if pgid > 0 {
		syscall.Kill(-pgid, sig)
	}
}

// groupAlive reports whether group pgid has a process that is not a
// zombie. Zombies count for kill(2), and an orphan's zombie lingers when
// nobody reaps it (as in some containers), yet it holds nothing.
func groupAlive(pgid int) bool {
	if err := syscall.Kill(-pgid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	return len(groupMembers(pgid)) > 0
}

// groupMembers returns the pids of the processes of group pgid that are
// not zombies.
func groupMembers(pgid int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, pg, ok := procStat(pid)
		if ok && pg == pgid && st != "Z" {
			out = append(out, pid)
		}
	}
	return out
}

// procStat returns the state and process group of pid from
// /proc/PID/stat.
func procStat(pid int) (state string, pgrp int, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", 0, false
	}
	// "pid (comm) state ppid pgrp ...": comm may hold spaces and parens.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 > len(b) {
		return "", 0, false
	}
	f := strings.Fields(string(b[i+2:]))
	if len(f) < 3 {
		return "", 0, false
	}
	pg, err := strconv.Atoi(f[2])
	if err != nil {
		return "", 0, false
	}
	return f[0], pg, true
}

// hasEnv reports whether process pid's environment holds the entry kv.
func hasEnv(pid int, kv string) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil {
		return false
	}
	for _, e := range bytes.Split(b, []byte{0}) {
		if string(e) == kv {
			return true
		}
	}
	return false
}

// killOrphans kills what is left of the process group noted in pidFile by
// an earlier run of this node (one that died without stopping its gears),
// and removes the file. Only processes whose environment holds marker are
// killed, so that a reused group id hits nobody else. It returns how many
// processes it killed, once they are gone (or after 5 s).
func killOrphans(pidFile, marker string) (int, error) {
	b, err := os.ReadFile(pidFile)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read pid file: %w", err)
	}
	defer os.Remove(pidFile)
	pgid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pgid <= 1 {
		return 0, nil
	}
	var killed []int
	for _, pid := range groupMembers(pgid) {
		if hasEnv(pid, marker) && syscall.Kill(pid, syscall.SIGKILL) == nil {
			killed = append(killed, pid)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, pid := range killed {
		for time.Now().Before(deadline) {
			if st, _, ok := procStat(pid); !ok || st == "Z" {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return len(killed), nil
}

// killUIDProcs kills the processes that run as uid and whose environment
// holds the entry marker, and returns how many it killed, once they are
// gone (or after 5 s).
func killUIDProcs(uid int, marker string) int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	var killed []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || procUID(pid) != uid || !hasEnv(pid, marker) {
			continue
		}
		if syscall.Kill(pid, syscall.SIGKILL) == nil {
			killed = append(killed, pid)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, pid := range killed {
		for time.Now().Before(deadline) {
			if st, _, ok := procStat(pid); !ok || st == "Z" {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return len(killed)
}

// procUID returns the real uid of process pid, or -1.
func procUID(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Uid:"); ok {
			if f := strings.Fields(v); len(f) > 0 {
				if uid, err := strconv.Atoi(f[0]); err == nil {
					return uid
				}
			}
		}
	}
	return -1
}

// killPID kills process pid.
func killPID(pid int) { syscall.Kill(pid, syscall.SIGKILL) }
