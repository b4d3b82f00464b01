package testutil

import (
	"testing"
	"time"
)

// PollInterval is how often WaitFor checks its condition.
const PollInterval = 10 * time.Millisecond

// WaitFor polls cond until it holds, and fails the test after timeout with
// what it waited for; detail, when given, says what was last seen.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool, detail ...func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			msg := ""
			for _, d := range detail {
				msg += ": " + d()
			}
			t.Fatalf("timed out after %s waiting for %s%s", timeout, what, msg)
		}
		time.Sleep(PollInterval)
	}
}
