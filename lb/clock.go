package lb

import "time"

// Clock tells the time and makes timers. Health checks, the rotation timeout
// and the queue timeout read time only through it, so tests drive them with
// a fake clock instead of sleeping. Implementations must be safe for
// concurrent use.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// NewTimer returns a started timer that fires once after d.
	NewTimer(d time.Duration) Timer
}

// Timer is the part of time.Timer that the pool uses. A Timer is used by
// one goroutine at a time.
type Timer interface {
	// C is the channel on which the timer delivers the time it fired.
	C() <-chan time.Time
	// Stop stops the timer; it reports whether that prevented a firing.
	Stop() bool
	// Reset restarts the timer to fire after d.
	Reset(d time.Duration) bool
}

// SystemClock returns the Clock of package time.
func SystemClock() Clock { return systemClock{} }

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

func (systemClock) NewTimer(d time.Duration) Timer { return systemTimer{time.NewTimer(d)} }

type systemTimer struct{ t *time.Timer }

func (t systemTimer) C() <-chan time.Time        { return t.t.C }
func (t systemTimer) Stop() bool                 { return t.t.Stop() }
func (t systemTimer) Reset(d time.Duration) bool { return t.t.Reset(d) }
