package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"gearbox/internal/testutil"
)

// eventLog collects a Process's events.
type eventLog struct {
	mu sync.Mutex
	ev []ProcessEvent
}

func (l *eventLog) add(e ProcessEvent) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ev = append(l.ev, e)
}

func (l *eventLog) all() []ProcessEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]ProcessEvent(nil), l.ev...)
}

func (l *eventLog) count(k EventKind) int {
	n := 0
	for _, e := range l.all() {
		if e.Kind == k {
			n++
		}
	}
	return n
}

// delays returns the Delay of each EventExited.
func (l *eventLog) delays() []time.Duration {
	var out []time.Duration
	for _, e := range l.all() {
		if e.Kind == EventExited {
			out = append(out, e.Delay)
		}
	}
	return out
}

func startProcess(t *testing.T, cfg ProcessConfig) (*Process, *eventLog) {
	t.Helper()
	testutil.CheckNoLeaks(t, leakPatterns...)
	l := &eventLog{}
	cfg.OnEvent = l.add
	p, err := NewProcess(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p.Start()
	t.Cleanup(p.Stop)
	return p, l
}

var fastBackoff = Backoff{Initial: 50 * time.Millisecond, Max: 400 * time.Millisecond, ResetAfter: time.Second}

func TestBackoffNext(t *testing.T) {
	b := Backoff{Initial: time.Second, Max: 30 * time.Second, ResetAfter: time.Minute}
	tests := []struct {
		prev, up, want time.Duration
	}{
		{0, 0, time.Second},
		{time.Second, time.Second, 2 * time.Second},
		{16 * time.Second, 0, 30 * time.Second},
		{30 * time.Second, 59 * time.Second, 30 * time.Second},
		{30 * time.Second, time.Minute, time.Second},
	}
	for _, tt := range tests {
		if got := b.Next(tt.prev, tt.up); got != tt.want {
			t.Errorf("Next(%s, %s) = %s, want %s", tt.prev, tt.up, got, tt.want)
		}
	}
	if got := (Backoff{}).Next(0, 0); got != time.Second {
		t.Errorf("zero Backoff: first wait %s, want the default 1s", got)
	}
}

// A command that keeps crashing is relaunched after waits that double up
// to the maximum, and each end is reported with its exit status.
func TestProcessRestartsWithBackoff(t *testing.T) {
	out := &testutil.Buffer{}
	_, l := startProcess(t, ProcessConfig{Program: ShellCommand("echo run; exit 7", nil, ""), Output: out, Backoff: fastBackoff})
	testutil.WaitFor(t, 10*time.Second, "5 exits", func() bool { return l.count(EventExited) >= 5 })
	want := []time.Duration{50 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 400 * time.Millisecond}
	if got := l.delays()[:5]; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("restart delays %v, want %v", got, want)
	}
	for _, e := range l.all() {
		if e.Kind == EventExited && (e.Err == nil || e.Err.Error() != "exit status 7") {
			t.Errorf("exit reported with error %v, want exit status 7", e.Err)
		}
	}
	if n := strings.Count(out.String(), "run\n"); n < 5 {
		t.Errorf("output holds %d runs, want 5 or more:\n%s", n, out)
	}
	if !strings.Contains(out.String(), "gearbox: exited after") || !strings.Contains(out.String(), "exit status 7; restarting in 100ms") {
		t.Errorf("output lacks the supervisor's notes:\n%s", out)
	}
}

// A run that lasted ResetAfter or more starts the backoff over.
func TestProcessBackoffResetsAfterHealthyRun(t *testing.T) {
	count := filepath.Join(t.TempDir(), "count")
	// Runs 1 and 2 crash at once, run 3 lives 1.3 s (ResetAfter is 1 s),
	// run 4 crashes at once.
	script := fmt.Sprintf(`n=$(cat %[1]s 2>/dev/null || echo 0); n=$((n+1)); echo $n > %[1]s; [ $n -eq 3 ] && sleep 1.3; exit 1`, count)
	_, l := startProcess(t, ProcessConfig{Program: ShellCommand(script, nil, ""), Backoff: fastBackoff})
	testutil.WaitFor(t, 10*time.Second, "4 exits", func() bool { return l.count(EventExited) >= 4 })
	want := []time.Duration{50 * time.Millisecond, 100 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond}
	if got := l.delays()[:4]; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("restart delays %v, want %v (reset after the 1.3 s run)", got, want)
	}
}

// Ready is reported only once the probe passes, after each launch.
func TestProcessReadyAfterProbePasses(t *testing.T) {
	var mu sync.Mutex
	probes := 0
	ready := func(ctx context.Context) error {
		mu.Lock()
		defer mu.Unlock()
		probes++
		if probes < 4 {
			return errors.New("not yet")
		}
		return nil
	}
	_, l := startProcess(t, ProcessConfig{Program: ShellCommand("exec sleep 300", nil, ""), Ready: ready,
		ReadyInterval: 10 * time.Millisecond, StopGrace: time.Second})
	testutil.WaitFor(t, 5*time.Second, "ready", func() bool { return l.count(EventReady) == 1 })
	mu.Lock()
	n := probes
	mu.Unlock()
	if n != 4 {
		t.Errorf("ready after %d probes, want 4", n)
	}
	ev := l.all()
	if ev[0].Kind != EventLaunched || ev[0].PID <= 0 || ev[1].Kind != EventReady {
		t.Errorf("events %+v, want launched (with a pid) then ready", ev)
	}
}

// Stop sends SIGTERM to the whole group and, to what ignores it, SIGKILL
// after the grace period.
func TestProcessStopKillsGroupAfterGrace(t *testing.T) {
	out := &testutil.Buffer{}
	// The shell and its children ignore SIGTERM.
	script := `trap "" TERM; sleep 30 & echo child $!; sleep 30 & echo child $!; wait`
	p, l := startProcess(t, ProcessConfig{Program: ShellCommand(script, nil, ""), Output: out, StopGrace: 300 * time.Millisecond})
	testutil.WaitFor(t, 5*time.Second, "two children", func() bool { return strings.Count(out.String(), "child ") == 2 })
	pids := []int{l.all()[0].PID}
	for _, m := range regexp.MustCompile(`child (\d+)`).FindAllStringSubmatch(out.String(), -1) {
		pid, _ := strconv.Atoi(m[1])
		pids = append(pids, pid)
	}
	for _, pid := range pids {
		if processGone(pid) {
			t.Fatalf("pid %d gone before Stop", pid)
		}
	}
	start := time.Now()
	stopped := make(chan struct{})
	go func() {
		p.Stop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("Stop did not return within 10s: processes that ignore SIGTERM were not killed")
	}
	took := time.Since(start)
	if took < 300*time.Millisecond {
		t.Errorf("Stop took %s: processes that ignore SIGTERM were killed before the 300ms grace", took)
	}
	for _, pid := range pids {
		if !processGone(pid) {
			t.Errorf("pid %d still runs after Stop", pid)
		}
	}
	if ev := l.all(); ev[len(ev)-1].Kind != EventStopped {
		t.Errorf("last event %v, want stopped", ev[len(ev)-1].Kind)
	}
}

// A process that heeds SIGTERM stops without waiting for the grace period.
func TestProcessStopIsPromptOnSIGTERM(t *testing.T) {
	p, l := startProcess(t, ProcessConfig{Program: ShellCommand("sleep 300 & wait", nil, ""), StopGrace: 10 * time.Second})
	testutil.WaitFor(t, 5*time.Second, "launch", func() bool { return l.count(EventLaunched) == 1 })
	start := time.Now()
	p.Stop()
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Stop took %s", took)
	}
	if l.count(EventExited) != 0 {
		t.Errorf("a stopped run was reported as exited: %+v", l.all())
	}
}

// What a leader leaves behind when it exits is killed before the next run.
func TestProcessLeaderExitTakesGroupDown(t *testing.T) {
	out := &testutil.Buffer{}
	_, l := startProcess(t, ProcessConfig{Program: ShellCommand("sleep 300 & echo child $!; exit 3", nil, ""), Output: out,
		Backoff: Backoff{Initial: time.Minute}})
	testutil.WaitFor(t, 10*time.Second, "exit", func() bool { return l.count(EventExited) == 1 })
	m := regexp.MustCompile(`child (\d+)`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("no child pid in output %q", out)
	}
	pid, _ := strconv.Atoi(m[1])
	if !processGone(pid) {
		t.Errorf("child %d outlived its leader's exit", pid)
	}
}

// A program that cannot be launched is retried with backoff.
func TestProcessLaunchFailureRetries(t *testing.T) {
	_, l := startProcess(t, ProcessConfig{Program: Command{Path: "/nonexistent/gearbox-test"}, Backoff: fastBackoff})
	testutil.WaitFor(t, 5*time.Second, "3 launch failures", func() bool { return l.count(EventLaunchFailed) >= 3 })
	ev := l.all()
	if ev[0].Err == nil || ev[0].Delay != 50*time.Millisecond || ev[1].Delay != 100*time.Millisecond {
		t.Errorf("launch failures %+v, want errors with delays 50ms, 100ms", ev[:2])
	}
}

// A command gets only the environment it is given.
func TestCommandEnvironmentIsItsOwn(t *testing.T) {
	t.Setenv("GEARBOX_NODE_TEST_SECRET", "leaked")
	out := &testutil.Buffer{}
	_, l := startProcess(t, ProcessConfig{Program: ShellCommand("env; exec sleep 300", []string{"FOO=bar"}, ""), Output: out})
	testutil.WaitFor(t, 5*time.Second, "output", func() bool { return strings.Contains(out.String(), "FOO=bar") })
	if strings.Contains(out.String(), "GEARBOX_NODE_TEST_SECRET") || strings.Contains(out.String(), "HOME="+os.Getenv("HOME")+"\n") {
		t.Errorf("the node's environment reached the command:\n%s", out)
	}
	_ = l
}

func TestStopBeforeStart(t *testing.T) {
	p, err := NewProcess(ProcessConfig{Program: ShellCommand("exit 0", nil, "")})
	if err != nil {
		t.Fatal(err)
	}
	p.Stop()
	p.Stop()
	p.Start()
	select {
	case <-p.Done():
	default:
		t.Error("Done not closed after Stop")
	}
}

// Past CrashLimit ends within CrashWindow a process is crashing: it waits
// CrashWait before each launch.
func TestProcessCrashLoopBacksOff(t *testing.T) {
	b := Backoff{Initial: 10 * time.Millisecond, Max: 20 * time.Millisecond, ResetAfter: time.Minute,
		CrashLimit: 3, CrashWindow: time.Minute, CrashWait: 300 * time.Millisecond}
	_, l := startProcess(t, ProcessConfig{Program: ShellCommand("exit 2", nil, ""), Backoff: b})
	testutil.WaitFor(t, 10*time.Second, "5 exits", func() bool { return l.count(EventExited) >= 5 })
	var exits []ProcessEvent
	for _, e := range l.all() {
		if e.Kind == EventExited {
			exits = append(exits, e)
		}
	}
	for i, e := range exits[:5] {
		crashing := i >= 3
		if e.Ends != i+1 || e.Crashing != crashing {
			t.Errorf("exit %d: ends %d crashing %v, want %d %v", i+1, e.Ends, e.Crashing, i+1, crashing)
		}
		if crashing && e.Delay != b.CrashWait {
			t.Errorf("exit %d: next launch in %s, want the crash wait %s", i+1, e.Delay, b.CrashWait)
		}
	}
}

// Ends older than the window are forgotten, and so are all of them after
// a run that lasted ResetAfter.
func TestCrashCount(t *testing.T) {
	b := Backoff{ResetAfter: time.Minute, CrashLimit: 2, CrashWindow: 10 * time.Minute}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var c crashCount
	steps := []struct {
		at       time.Duration
		up       time.Duration
		n        int
		crashing bool
	}{
		{0, 0, 1, false},
		{time.Minute, 0, 2, false},
		{2 * time.Minute, 0, 3, true},
		{10*time.Minute + time.Second, 0, 3, true}, // the first end left the window
		{11 * time.Minute, 0, 3, true},             // and the second
		{15 * time.Minute, 2 * time.Minute, 1, false},
	}
	for _, s := range steps {
		n, crashing := c.add(b, t0.Add(s.at), s.up)
		if n != s.n || crashing != s.crashing {
			t.Errorf("end at %s (up %s): %d ends, crashing %v; want %d, %v", s.at, s.up, n, crashing, s.n, s.crashing)
		}
	}
	if n, crashing := (&crashCount{}).add(Backoff{ResetAfter: time.Minute, CrashLimit: -1, CrashWindow: time.Minute}, t0, 0); n != 1 || crashing {
		t.Errorf("no limit: %d ends, crashing %v", n, crashing)
	}
}
