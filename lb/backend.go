package lb

import (
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Backend is a server the pool balances requests over: a web gear for an LB
// gear, an LB gear for a router.
type Backend struct {
	// ID names the backend (a gear id); it is what the affinity cookie
	// designates. Required, unique in a pool.
	ID string `json:"id"`
	// Addr is the backend's host:port. Required.
	Addr string `json:"addr"`
	// Local marks the web gear that shares its node and gear with the LB:
	// the one SetRotation takes out of rotation.
	Local bool `json:"local"`
	// HealthPath is the path active checks GET on this backend; empty
	// for Config.HealthPath. Backends running different versions of an
	// app (a roll-out) may answer on different paths.
	HealthPath string `json:"health_path,omitempty"`
	// Ready says that the backend's node reports it started: while it
	// is down, one passing check brings it up (not Config.Rise), and
	// while no backend may take a request it is tried before the pool
	// answers 503. Changing it keeps the backend's state.
	Ready bool `json:"ready,omitempty"`
}

// sameBackend reports whether a and b are the same backend for
// SetBackends: all but Ready equal.
func sameBackend(a, b Backend) bool {
	a.Ready, b.Ready = false, false
	return a == b
}

// checkBackends reports the first problem in a list of backends.
func checkBackends(list []Backend) error {
	seen := make(map[string]bool, len(list))
	for i, b := range list {
		if b.ID == "" {
			return fmt.Errorf("backend %d has no ID", i)
		}
		if seen[b.ID] {
			return fmt.Errorf("backend ID %q appears twice", b.ID)
		}
		seen[b.ID] = true
		host, port, err := net.SplitHostPort(b.Addr)
		if err != nil {
			return fmt.Errorf("backend %q: address %q: %w", b.ID, b.Addr, err)
		}
		if n, err := strconv.Atoi(port); host == "" || err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("backend %q: address %q is not host:port", b.ID, b.Addr)
		}
	}
	return nil
}

// CheckResult is the outcome of one active health check.
type CheckResult struct {
	// Time is when the check started.
	Time time.Time `json:"time,omitzero"`
	// OK says whether the check passed.
	OK bool `json:"ok"`
	// Status is the HTTP status the backend answered, 0 if none.
	Status int `json:"status,omitempty"`
	// Error says why there was no answer.
	Error string `json:"error,omitempty"`
	// Duration is how long the check took.
	Duration time.Duration `json:"duration_ns"`
}

// backend is a Backend with its state. The fields read on the request path
// are atomics; the health counters change under mu.
type backend struct {
	Backend
	cookie    string // affinity cookie value
	setCookie string // Set-Cookie header value that names this backend
	checkURL  string

	healthy  atomic.Bool
	draining atomic.Bool
	ready    atomic.Bool // the current Backend.Ready
	// fastRise: it became ready while down; its next passing check
	// brings it up.
	fastRise atomic.Bool
	inflight atomic.Int64
	total    atomic.Uint64 // requests sent, retried ones included
	errors   atomic.Uint64 // failed connections and failed responses
	checks   atomic.Uint64 // active checks done
	lastPick atomic.Uint64 // Pool.next when last picked, for leastconn's ties

	mu        sync.Mutex
	passed    int // checks passed in a row while down
	failed    int // checks failed in a row while up
	last      CheckResult
	since     time.Time // when healthy last changed, or when added
	why       string    // what last changed healthy
	drained   chan struct{}
	drainDone bool
}

// acquire counts a request against b. It fails when b started draining
// meanwhile: the increment comes before the check, and Drain sets draining
// before it reads inflight, so either Drain sees this request or this
// request sees the drain.
func (b *backend) acquire() bool {
	b.inflight.Add(1)
	if b.draining.Load() {
		b.release()
		return false
	}
	b.total.Add(1)
	return true
}

// release ends a request counted by acquire.
func (b *backend) release() {
	if b.inflight.Add(-1) == 0 && b.draining.Load() {
		b.signalDrained()
	}
}

// drain stops new requests to b and returns a channel closed once none is
// in flight.
func (b *backend) drain() <-chan struct{} {
	b.mu.Lock()
	if !b.draining.Load() {
		b.drained = make(chan struct{})
		b.drainDone = false
		b.draining.Store(true)
	}
	ch := b.drained
	b.mu.Unlock()
	if b.inflight.Load() == 0 {
		b.signalDrained()
	}
	return ch
}

func (b *backend) signalDrained() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.draining.Load() && !b.drainDone && b.inflight.Load() == 0 {
		close(b.drained)
		b.drainDone = true
	}
}

// resume ends a drain; it reports whether b was draining.
func (b *backend) resume() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.draining.Swap(false)
}

// transition is a change of a backend's health.
type transition int

const (
	unchanged transition = iota
	wentUp
	wentDown
)

// record applies a check result and returns the change it made.
func (b *backend) record(res CheckResult, rise, fall int) transition {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.last = res
	b.checks.Add(1)
	if b.healthy.Load() {
		if res.OK {
			b.failed = 0
			return unchanged
		}
		b.failed++
		if b.failed < fall {
			return unchanged
		}
		b.setHealthy(false, res.Time, "check failed")
		return wentDown
	}
	if !res.OK {
		b.passed = 0
		return unchanged
	}
	b.passed++
	if b.passed < rise {
		return unchanged
	}
	b.setHealthy(true, res.Time, "check passed")
	return wentUp
}

// markDown takes b down at once after a failed connection; it reports
// whether b was up.
func (b *backend) markDown(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.passed = 0
	if !b.healthy.Load() {
		return false
	}
	b.setHealthy(false, now, "connection failed")
	return true
}

// markUp brings b up at once after the passed check res; it reports
// whether b was down.
func (b *backend) markUp(res CheckResult, why string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.healthy.Load() {
		return false
	}
	b.last = res
	b.checks.Add(1)
	b.setHealthy(true, res.Time, why)
	return true
}

func (b *backend) setHealthy(up bool, now time.Time, why string) {
	b.healthy.Store(up)
	b.passed, b.failed = 0, 0
	b.since, b.why = now, why
}
