package node

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Command is a Program that runs an executable as a child process, the
// leader of a process group of its own: stopping it signals the whole
// group, so that what the command started (a shell's children, a server's
// workers) goes with it. A process that leaves the group (setsid, or a
// daemon's double fork) escapes this; only a cgroup can contain those.
//
// When the leader ends on its own, what is left of its group gets SIGTERM
// and, 2 s later, SIGKILL: a command must run in the foreground, as under
// any supervisor, and its leftovers must not hold the gear's port against
// the next run.
type Command struct {
	// Path is the executable; a name without a slash is looked up in the
	// node's PATH. Required.
	Path string
	// Args is the argument list, Args[0] included, as in exec.Cmd.
	// Default: just Path.
	Args []string
	// Env is the process's whole environment: nothing of the node's own
	// environment (which may hold the cluster secret) is passed on.
	// Default: empty.
	Env []string
	// Dir is the working directory. Default: the node's.
	Dir string

	// jail, if set, confines the command (launch.go). Gears' commands get
	// their gear's.
	jail *jail
}

// ShellCommand returns a Command that runs script with /bin/sh -c, as
// gearbox.yml and Procfile commands are run.
func ShellCommand(script string, env []string, dir string) Command {
	return Command{Path: "/bin/sh", Args: []string{"sh", "-c", script}, Env: env, Dir: dir}
}

var _ Program = Command{}

// uid returns the uid the command runs as: its jail's, or the node's.
func (c Command) uid() int {
	if c.jail != nil {
		return c.jail.uid
	}
	return os.Getuid()
}

// stragglerGrace is how long the rest of a process group has, after its
// leader ended on its own, between SIGTERM and SIGKILL.
const stragglerGrace = 2 * time.Second

// Launch starts the command with stdout and stderr going to out.
func (c Command) Launch(out io.Writer) (Run, error) {
	if c.Path == "" {
		return nil, errors.New("start command: Path is required")
	}
	path := c.Path
	if !strings.Contains(path, "/") {
		p, err := exec.LookPath(path)
		if err != nil {
			return nil, fmt.Errorf("start %s: %w", path, err)
		}
		path = p
	}
	args := c.Args
	if len(args) == 0 {
		args = []string{c.Path}
	}
	env := c.Env
	if env == nil {
		env = []string{} // nil would pass the node's environment on
	}
	// The child writes to a pipe of ours rather than to a pipe that
	// exec.Cmd copies from, so that Wait returns when the leader exits
	// even if others of its group still hold the pipe.
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("start %s: create output pipe: %w", c.Path, err)
	}
	cmd := &exec.Cmd{Path: path, Args: args, Env: env, Dir: c.Dir, Stdout: w, Stderr: w, SysProcAttr: sysProcAttr()}
	started, cleanup := func() error { return nil }, func() {}
	if c.jail != nil {
		started, cleanup, err = c.jail.wrap(cmd, path, args, env, c.Dir)
		if err != nil {
			r.Close()
			w.Close()
			return nil, fmt.Errorf("start %s: %w", c.Path, err)
		}
	}
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		cleanup()
		return nil, fmt.Errorf("start %s: %w", c.Path, err)
	}
	w.Close()
	started()
	run := &cmdRun{cmd: cmd, pid: cmd.Process.Pid, out: r, done: make(chan struct{}), copied: make(chan struct{}),
		stopping: make(chan struct{}), cleanup: cleanup}
	go func() {
		io.Copy(out, r)
		close(run.copied)
	}()
	go run.wait()
	return run, nil
}

// cmdRun is one run of a Command.
type cmdRun struct {
	cmd      *exec.Cmd
	pid      int
	out      *os.File
	done     chan struct{} // closed when the group is gone and output copied
	copied   chan struct{} // closed when the output copy ended
	stopping chan struct{} // closed by Stop
	stopOnce sync.Once
	cleanup  func() // kills what is left in the run's cgroup and removes it
	err      error  // set before done is closed
}

func (r *cmdRun) PID() int              { return r.pid }
func (r *cmdRun) Done() <-chan struct{} { return r.done }
func (r *cmdRun) Err() error {
	<-r.done
	return r.err
}

// Stop sends SIGTERM to the group, and SIGKILL once grace has passed.
func (r *cmdRun) Stop(grace time.Duration) {
	r.stopOnce.Do(func() { close(r.stopping) })
	signalGroup(r.pid, syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-r.done:
		return
	case <-t.C:
	}
	signalGroup(r.pid, syscall.SIGKILL)
	<-r.done
}

func (r *cmdRun) wait() {
	err := r.cmd.Wait()
	// The leader is gone. The rest of its group must not outlive it: it
	// would hold the gear's port and the output pipe. During a Stop, Stop
	// escalates; otherwise this does.
	if groupAlive(r.pid) {
		stopping := false
		select {
		case <-r.stopping:
			stopping = true
		default:
			signalGroup(r.pid, syscall.SIGTERM)
		}
		deadline := time.Now().Add(stragglerGrace)
		killed := false
		for groupAlive(r.pid) {
			if !stopping && !killed && time.Now().After(deadline) {
				signalGroup(r.pid, syscall.SIGKILL)
				killed = true
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// What left the group but not the cgroup goes now.
	r.cleanup()
	// Every writer of the pipe is gone, unless one left the group (and
	// there is no cgroup): do not wait for that one.
	t := time.NewTimer(time.Second)
	select {
	case <-r.copied:
	case <-t.C:
	}
	t.Stop()
	r.out.Close()
	<-r.copied
	r.err = err
	close(r.done)
}
