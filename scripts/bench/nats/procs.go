//go:build linux

package main

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is one server process that the benchmark started: a gearbox member
// or a standalone nats-server. Its output goes to a log file in the work
// directory.
type proc struct {
	name string
	log  string
	cmd  *exec.Cmd
	done chan struct{}
}

// procs keeps every process the benchmark started, so that all of them are
// stopped on the way out, whatever failed.
type procs struct {
	mu   sync.Mutex
	list []*proc
}

// start runs bin with args, env (KEY=VALUE) added to an environment
// without GEARBOX_* variables, its output in logPath. The process gets
// SIGKILL if the benchmark dies without stopping it.
func (ps *procs) start(name, logPath string, env []string, bin string, args ...string) (*proc, error) {
	out, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("create log of %s: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(cleanEnv(), env...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		out.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, log: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		cmd.Wait()
		out.Close()
		close(p.done)
	}()
	ps.mu.Lock()
	ps.list = append(ps.list, p)
	ps.mu.Unlock()
	return p, nil
}

// cleanEnv is the benchmark's environment without GEARBOX_* variables, so
// that members see only the flags they are given.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GEARBOX_") {
			env = append(env, kv)
		}
	}
	return env
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// alive returns an error naming the process and its log if it exited.
func (p *proc) alive() error {
	select {
	case <-p.done:
		return fmt.Errorf("%s exited (%s): see %s", p.name, p.cmd.ProcessState, p.log)
	default:
		return nil
	}
}

// stop stops every process of ps, all at once: SIGTERM (gearbox members
// leave the cluster gracefully), SIGKILL to those still running after
// grace.
func (ps *procs) stop(grace time.Duration) {
	ps.mu.Lock()
	list := ps.list
	ps.list = nil
	ps.mu.Unlock()
	stopProcs(list, grace)
}

// stopProcs stops list: SIGTERM, then SIGKILL after grace.
func stopProcs(list []*proc, grace time.Duration) {
	for _, p := range list {
		p.cmd.Process.Signal(syscall.SIGTERM)
	}
	deadline := time.After(grace)
	for _, p := range list {
		select {
		case <-p.done:
		case <-deadline:
			p.cmd.Process.Kill()
			<-p.done
		}
	}
	for _, p := range list {
		p.cmd.Process.Kill()
		<-p.done
	}
}

// forget removes list from ps once the caller has stopped them.
func (ps *procs) forget(list []*proc) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	var keep []*proc
	for _, p := range ps.list {
		gone := false
		for _, q := range list {
			gone = gone || p == q
		}
		if !gone {
			keep = append(keep, p)
		}
	}
	ps.list = keep
}

// clockTick is the kernel's clock tick, the unit of /proc/PID/stat's CPU
// times (USER_HZ, 100 on Linux).
const clockTick = 10 * time.Millisecond

// cpuTime returns the CPU time (user + system, all threads) that the
// processes have used so far.
func cpuTime(list []*proc) time.Duration {
	var sum time.Duration
	for _, p := range list {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.pid()))
		if err != nil {
			continue
		}
		// Fields after the command, which is in parentheses and may hold
		// spaces: state is field 3, utime 14, stime 15.
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) < 13 {
			continue
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		k, _ := strconv.ParseInt(f[12], 10, 64)
		sum += time.Duration(u+k) * clockTick
	}
	return sum
}

// memory is a process's resident memory, from /proc/PID/status, in KiB.
type memory struct {
	RSS, Anon, File int64
}

// readMemory returns pid's VmRSS, RssAnon and RssFile.
func readMemory(pid int) (memory, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memory{}, err
	}
	defer f.Close()
	var m memory
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			m.RSS = n
		case "RssAnon":
			m.Anon = n
		case "RssFile":
			m.File = n
		}
	}
	if m.RSS == 0 {
		return m, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
	}
	return m, sc.Err()
}

// portsFree returns an error if anything accepts connections on one of
// addrs (host:port): a leftover of an earlier run, or someone else's.
func portsFree(addrs ...string) error {
	var errs []error
	for _, a := range addrs {
		c, err := net.DialTimeout("tcp", a, 200*time.Millisecond)
		if err == nil {
			c.Close()
			errs = append(errs, fmt.Errorf("%s is in use", a))
		}
	}
	return errors.Join(errs...)
}
