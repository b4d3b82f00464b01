package testutil

import (
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestIPsWrapAndStayInBlock(t *testing.T) {
	p := NewIPs(7, 249)
	got := []string{p.Next(), p.Next(), p.Next()}
	want := []string{"127.0.7.249", "127.0.7.250", "127.0.7.249"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("got %v, want %v", got, want)
	}
}

// recorder is a testing.TB that notes failures instead of stopping.
type recorder struct {
	testing.TB
	mu     sync.Mutex
	failed []string
}

func (r *recorder) Helper()                   {}
func (r *recorder) Errorf(f string, a ...any) { r.note("error") }
func (r *recorder) Fatalf(f string, a ...any) { r.note("fatal"); runtime.Goexit() }
func (r *recorder) note(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failed = append(r.failed, s)
}

// inGoroutine runs f to its end, which may be a runtime.Goexit.
func inGoroutine(f func()) {
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	<-done
}

func TestWaitForFailsAfterTimeout(t *testing.T) {
	r := &recorder{TB: t}
	inGoroutine(func() { WaitFor(r, 30*time.Millisecond, "never", func() bool { return false }) })
	if len(r.failed) != 1 || r.failed[0] != "fatal" {
		t.Fatalf("WaitFor on a condition that never holds: %v", r.failed)
	}
	r = &recorder{TB: t}
	inGoroutine(func() { WaitFor(r, time.Second, "at once", func() bool { return true }) })
	if len(r.failed) != 0 {
		t.Fatalf("WaitFor on a condition that holds: %v", r.failed)
	}
}

func TestGoroutineLeftRunningIsReported(t *testing.T) {
	const pattern = "testutil.leakyLoop"
	before := Goroutines(pattern)
	stop := make(chan struct{})
	started := make(chan struct{})
	go func() { close(started); leakyLoop(stop) }()
	<-started
	// A goroutine of the test itself is left out whatever it runs.
	if n := len(Goroutines(pattern)); n != len(before) {
		t.Fatalf("a test goroutine was counted: %d, want %d", n, len(before))
	}
	close(stop)
	r := &recorder{TB: t}
	WaitGoroutinesEnd(r, before, time.Second, pattern)
	if len(r.failed) != 0 {
		t.Fatalf("an ended goroutine was reported: %v", r.failed)
	}
	stop2 := make(chan struct{})
	startLeak(stop2)
	r = &recorder{TB: t}
	// A goroutine that has not run yet shows only startLeak's wrapper of
	// leakyLoop, and the line that says startLeak created it: a package
	// pattern, as the tests use, matches both.
	WaitGoroutinesEnd(r, before, 50*time.Millisecond, pattern, "testutil.startLeak")
	if len(r.failed) != 1 {
		t.Errorf("a goroutine left running was not reported: %v", r.failed)
	}
	// It ends before the test does, so that a next run starts clean.
	close(stop2)
	WaitGoroutinesEnd(t, before, time.Second, pattern, "testutil.startLeak")
}
