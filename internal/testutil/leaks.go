package testutil

import (
	"bytes"
	"runtime"
	"strings"
	"testing"
	"time"
)

// LeakTimeout is how long CheckNoLeaks waits, at the end of a test, for the
// goroutines it watches to end. Closing a cluster member can take seconds
// on a loaded machine (serf's and memberlist's loops end on their next
// tick), so it is generous: a real leak never ends.
const LeakTimeout = 20 * time.Second

// Goroutines returns the stacks, by goroutine id, of the running goroutines
// whose stack contains one of patterns (such as "gearbox/store." or
// "hashicorp/serf"). Goroutines of the test itself (those whose stack runs
// or was started by test code) are left out: the check is about the code
// under test.
func Goroutines(patterns ...string) map[string]string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	out := make(map[string]string)
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		stack := string(g)
		if strings.Contains(stack, "_test.go") || strings.Contains(stack, "testing.tRunner") {
			continue
		}
		matched := false
		for _, p := range patterns {
			if strings.Contains(stack, p) {
				matched = true
				break
			}
		}
		if !matched {
			continue
		}
		// "goroutine 42 [select]:"
		id, _, _ := strings.Cut(strings.TrimPrefix(stack, "goroutine "), " ")
		out[id] = stack
	}
	return out
}

// WaitGoroutinesEnd waits until no goroutine matching patterns runs that
// is not in before (a result of Goroutines), and fails the test if one
// still does after timeout.
func WaitGoroutinesEnd(t testing.TB, before map[string]string, timeout time.Duration, patterns ...string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var leaked []string
		for id, stack := range Goroutines(patterns...) {
			if _, ok := before[id]; !ok {
				leaked = append(leaked, stack)
			}
		}
		if len(leaked) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%d goroutines outlived Close, for example:\n%s", len(leaked), leaked[0])
			return
		}
		time.Sleep(2 * PollInterval)
	}
}

// CheckNoLeaks notes the goroutines matching patterns that run now and,
// when the test ends, waits up to LeakTimeout until every one started
// since then has ended: nothing the test started may outlive its Close.
// Call it before starting anything, so that its cleanup runs last.
func CheckNoLeaks(t testing.TB, patterns ...string) {
	t.Helper()
	if len(patterns) == 0 {
		panic("testutil.CheckNoLeaks: no patterns")
	}
	before := Goroutines(patterns...)
	t.Cleanup(func() { WaitGoroutinesEnd(t, before, LeakTimeout, patterns...) })
}
