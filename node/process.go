package node

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"
)

// Program is what a Process supervises: a command (Command) or an
// in-process server. Launch is called from one goroutine at a time.
type Program interface {
	// Launch starts one run of the program, its output going to out, and
	// returns once it is under way (not necessarily ready).
	Launch(out io.Writer) (Run, error)
}

// Run is one run of a Program. Its methods are safe for concurrent use.
type Run interface {
	// PID is the run's process id (also its process group id), or 0 for
	// a run inside this process.
	PID() int
	// Done is closed when the run has ended and everything it started is
	// gone.
	Done() <-chan struct{}
	// Err says why the run ended (nil: it exited cleanly); valid once Done
	// is closed.
	Err() error
	// Stop ends the run, gracefully first and by force after grace, and
	// returns once Done is closed. It is safe to call twice.
	Stop(grace time.Duration)
}

// ProcessConfig configures a Process. Program is required; every other
// zero field takes its default.
type ProcessConfig struct {
	// Program is what runs. Required.
	Program Program
	// Output receives the program's output and the supervisor's notes
	// (lines starting "gearbox:"). It must be safe for concurrent use.
	// Default: discarded.
	Output io.Writer
	// Ready probes whether a run is ready, typically whether its port
	// answers; it is called every ReadyInterval after each launch until it
	// returns nil, and must return by ctx's end. Default nil: a run is
	// ready as soon as it is launched.
	Ready func(ctx context.Context) error
	// ReadyInterval is the time between two readiness probes. Default
	// 250 ms.
	ReadyInterval time.Duration
	// Backoff spaces relaunches after a run ends on its own or fails to
	// launch. Default DefaultBackoff.
	Backoff Backoff
	// StopGrace is how long Stop waits between SIGTERM and SIGKILL.
	// Default 10 s.
	StopGrace time.Duration
	// OnEvent is told of each change, in order, from the Process's own
	// goroutine: it must return promptly and must not call Stop. It is
	// never called after Stop has returned. Default: nobody is told.
	OnEvent func(ProcessEvent)
	// Now is the clock that uptimes are measured with. Default time.Now.
	Now func() time.Time
}

// EventKind says what a ProcessEvent reports.
type EventKind int

// Kinds of ProcessEvent.
const (
	// EventLaunched: a run was launched; PID is set.
	EventLaunched EventKind = iota + 1
	// EventReady: the run answered its readiness probe.
	EventReady
	// EventExited: the run ended on its own after Uptime, with Err; the
	// next launch follows after Delay.
	EventExited
	// EventLaunchFailed: launching failed with Err; it is tried again
	// after Delay.
	EventLaunchFailed
	// EventStopped: Stop ended the process; this is the last event.
	EventStopped
)

var eventNames = map[EventKind]string{EventLaunched: "launched", EventReady: "ready", EventExited: "exited",
	EventLaunchFailed: "launch failed", EventStopped: "stopped"}

// String names the kind, as in logs.
func (k EventKind) String() string {
	if s, ok := eventNames[k]; ok {
		return s
	}
	return fmt.Sprintf("EventKind(%d)", int(k))
}

// ProcessEvent is a change in a supervised process.
type ProcessEvent struct {
	Kind EventKind
	// PID of the current run (EventLaunched, EventReady, EventExited).
	PID int
	// Err is why a run ended (EventExited; nil for a clean exit) or could
	// not be launched (EventLaunchFailed).
	Err error
	// Uptime is how long the run lasted (EventExited).
	Uptime time.Duration
	// Delay is the wait before the next launch (EventExited,
	// EventLaunchFailed).
	Delay time.Duration
	// Launches counts the launches so far, this one included.
	Launches int
	// Ends counts the ends (EventExited, EventLaunchFailed) within the
	// backoff's CrashWindow, this one included, since the last run that
	// lasted ResetAfter.
	Ends int
	// Crashing says that Ends is past the backoff's CrashLimit: Delay is
	// its CrashWait.
	Crashing bool
}

// Process keeps a Program running: it launches it, probes it until ready,
// relaunches it with backoff whenever it ends on its own, and stops it on
// Stop. Create it with NewProcess, then Start it. Its methods are safe for
// concurrent use.
type Process struct {
	cfg    ProcessConfig
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	started bool
}

// NewProcess validates cfg and returns a Process that is not running yet.
func NewProcess(cfg ProcessConfig) (*Process, error) {
	if cfg.Program == nil {
		return nil, fmt.Errorf("process config: Program is required")
	}
	if err := cfg.Backoff.validate(); err != nil {
		return nil, fmt.Errorf("process config: %w", err)
	}
	cfg.Backoff = cfg.Backoff.withDefaults()
	if cfg.Output == nil {
		cfg.Output = io.Discard
	}
	if cfg.ReadyInterval <= 0 {
		cfg.ReadyInterval = DefaultReadyInterval
	}
	if cfg.StopGrace <= 0 {
		cfg.StopGrace = DefaultStopGrace
	}
	if cfg.OnEvent == nil {
		cfg.OnEvent = func(ProcessEvent) {}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	p := &Process{cfg: cfg, done: make(chan struct{})}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	return p, nil
}

// Start launches the program and supervises it from a goroutine of its
// own until Stop. Starting twice does nothing more.
func (p *Process) Start() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.started || p.ctx.Err() != nil {
		return
	}
	p.started = true
	go p.loop()
}

// Stop ends the current run (SIGTERM to its process group, SIGKILL after
// the grace period) and the supervision, and returns once both are over.
// It is safe to call twice, and before Start.
func (p *Process) Stop() {
	p.mu.Lock()
	p.cancel()
	if !p.started {
		p.started = true
		close(p.done)
	}
	p.mu.Unlock()
	<-p.done
}

// Done is closed once the Process has stopped.
func (p *Process) Done() <-chan struct{} { return p.done }

func (p *Process) note(format string, args ...any) {
	fmt.Fprintf(p.cfg.Output, "gearbox: "+format+"\n", args...)
}

func (p *Process) loop() {
	defer close(p.done)
	var delay time.Duration
	var ends crashCount
	b := p.cfg.Backoff
	for launches := 1; ; launches++ {
		start := p.cfg.Now()
		run, err := p.cfg.Program.Launch(p.cfg.Output)
		if err != nil {
			delay = b.Next(delay, 0)
			n, crashing := ends.add(b, p.cfg.Now(), 0)
			what := ""
			if crashing {
				delay = b.CrashWait
				what = fmt.Sprintf("; %d ends in %s, crashing", n, b.CrashWindow)
			}
			p.note("start failed: %v%s; retrying in %s", err, what, delay)
			p.cfg.OnEvent(ProcessEvent{Kind: EventLaunchFailed, Err: err, Delay: delay, Launches: launches, Ends: n, Crashing: crashing})
		} else {
			pid := run.PID()
			if pid > 0 {
				p.note("started pid %d", pid)
			}
			p.cfg.OnEvent(ProcessEvent{Kind: EventLaunched, PID: pid, Launches: launches})
			if !p.watch(run, launches) {
				p.cfg.OnEvent(ProcessEvent{Kind: EventStopped, PID: pid, Launches: launches})
				return
			}
			now := p.cfg.Now()
			up := now.Sub(start)
			delay = b.Next(delay, up)
			n, crashing := ends.add(b, now, up)
			if crashing {
				delay = b.CrashWait
			}
			what := ""
			if err := run.Err(); err != nil {
				what = ": " + err.Error()
			}
			if crashing {
				what += fmt.Sprintf("; %d ends in %s, crashing", n, b.CrashWindow)
			}
			p.note("exited after %s%s; restarting in %s", up.Round(time.Millisecond), what, delay)
			p.cfg.OnEvent(ProcessEvent{Kind: EventExited, PID: pid, Err: run.Err(), Uptime: up, Delay: delay, Launches: launches, Ends: n, Crashing: crashing})
		}
		t := time.NewTimer(delay)
		select {
		case <-p.ctx.Done():
			t.Stop()
			p.cfg.OnEvent(ProcessEvent{Kind: EventStopped, Launches: launches})
			return
		case <-t.C:
		}
	}
}

// crashCount remembers when a process's recent runs ended.
type crashCount []time.Time

// add records an end at now of a run that lasted up, and returns how many
// ends the backoff's CrashWindow holds and whether that is past its
// CrashLimit. A run that lasted ResetAfter forgets the earlier ends.
func (c *crashCount) add(b Backoff, now time.Time, up time.Duration) (int, bool) {
	if up >= b.ResetAfter {
		*c = (*c)[:0]
	}
	kept := (*c)[:0]
	for _, t := range *c {
		if now.Sub(t) < b.CrashWindow {
			kept = append(kept, t)
		}
	}
	*c = append(kept, now)
	return len(*c), b.CrashLimit > 0 && len(*c) > b.CrashLimit
}

// watch follows run until it ends on its own (true) or Stop ends it
// (false), probing it until ready meanwhile.
func (p *Process) watch(run Run, launches int) bool {
	probeCtx, cancelProbe := context.WithCancel(p.ctx)
	results := make(chan error, 1)
	probing := false
	t := time.NewTimer(0)
	// A probe in flight is waited for, so that no goroutine outlives the
	// run it probes.
	defer func() {
		t.Stop()
		cancelProbe()
		if probing {
			<-results
		}
	}()
	var probe <-chan time.Time
	if p.cfg.Ready == nil {
		p.cfg.OnEvent(ProcessEvent{Kind: EventReady, PID: run.PID(), Launches: launches})
	} else {
		probe = t.C
	}
	for {
		select {
		case <-p.ctx.Done():
			run.Stop(p.cfg.StopGrace)
			return false
		case <-run.Done():
			return true
		case <-probe:
			probing = true
			go func() { results <- p.cfg.Ready(probeCtx) }()
		case err := <-results:
			probing = false
			if err == nil {
				probe = nil
				p.cfg.OnEvent(ProcessEvent{Kind: EventReady, PID: run.PID(), Launches: launches})
				continue
			}
			t.Reset(p.cfg.ReadyInterval)
		}
	}
}
