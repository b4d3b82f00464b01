package store

import (
	"errors"
	"math"
	"sync"
	"testing"
	"time"
)

func TestVersionCompareIsATotalOrder(t *testing.T) {
	// Sorted oldest first: wall decides, then logical, then member.
	ordered := []Version{
		{},
		{Wall: 1, Member: "a"},
		{Wall: 1, Member: "b"},
		{Wall: 1, Logical: 1, Member: "a"},
		{Wall: 1, Logical: 2, Member: ""},
		{Wall: 1, Logical: 2, Member: "a"},
		{Wall: 2, Member: "a"},
		{Wall: 2, Logical: 7, Member: "z"},
		{Wall: 1 << 40, Member: "a"},
	}
	for i, a := range ordered {
		for j, b := range ordered {
			want := 0
			switch {
			case i < j:
				want = -1
			case i > j:
				want = 1
			}
			if got := a.Compare(b); got != want {
				t.Errorf("%v.Compare(%v) = %d, want %d", a, b, got, want)
			}
			if got := a.Newer(b); got != (want > 0) {
				t.Errorf("%v.Newer(%v) = %v, want %v", a, b, got, want > 0)
			}
		}
	}
	if !(Version{}).IsZero() || (Version{Member: "a"}).IsZero() {
		t.Error("IsZero is wrong")
	}
}

func TestVersionStringRoundTrip(t *testing.T) {
	tests := []struct {
		v    Version
		want string
	}{
		{Version{}, "0.0@"},
		{Version{Wall: 1700000000123, Logical: 4, Member: "node-1"}, "1700000000123.4@node-1"},
		{Version{Wall: 5, Logical: 4294967295, Member: "m"}, "5.4294967295@m"},
		{Version{Wall: 5, Member: "host.example.com"}, "5.0@host.example.com"},
		{Version{Wall: 5, Member: "a@b"}, "5.0@a@b"},
		{Version{Wall: -3, Member: "m"}, "-3.0@m"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := tt.v.String(); got != tt.want {
				t.Fatalf("String() = %q, want %q", got, tt.want)
			}
			back, err := ParseVersion(tt.want)
			if err != nil {
				t.Fatalf("ParseVersion(%q): %v", tt.want, err)
			}
			if back != tt.v {
				t.Fatalf("ParseVersion(%q) = %+v, want %+v", tt.want, back, tt.v)
			}
		})
	}
}

func TestParseVersionRejectsBadInput(t *testing.T) {
	for _, in := range []string{
		"",
		"garbage",
		"12",
		"12.3",
		"12@m",
		"12@m.3",
		".3@m",
		"12.@m",
		"x.3@m",
		"12.x@m",
		"12.-1@m",
		"12.4294967296@m",
		"99999999999999999999.0@m",
	} {
		if v, err := ParseVersion(in); err == nil {
			t.Errorf("ParseVersion(%q) = %+v, want an error", in, v)
		}
	}
}

func TestClockIsMonotonicWhenWallClockStepsBack(t *testing.T) {
	base := time.UnixMilli(1_700_000_000_000)
	wall := newFakeClock(base)
	c := NewClock("m1", wall.Now)
	// Wall clock: forward, stuck, back an hour, stuck, forward but still
	// behind, then past the high-water mark.
	steps := []time.Duration{0, time.Millisecond, time.Millisecond, -time.Hour, -time.Hour, -time.Minute, time.Second}
	prev := c.Now()
	if prev.Wall != base.UnixMilli() || prev.Logical != 0 || prev.Member != "m1" {
		t.Fatalf("first version %v, want %d.0@m1", prev, base.UnixMilli())
	}
	for _, d := range steps {
		wall.Set(base.Add(d))
		for range 3 {
			v := c.Now()
			if !v.Newer(prev) {
				t.Fatalf("after the wall clock moved to %+v: version %v is not newer than %v", d, v, prev)
			}
			if v.Member != "m1" {
				t.Fatalf("version %v issued for the wrong member", v)
			}
			prev = v
		}
	}
	// Once the wall clock is ahead again, versions follow it.
	if want := base.Add(time.Second).UnixMilli(); prev.Wall != want {
		t.Fatalf("last version %v, want wall %d", prev, want)
	}
}

func TestClockIssuesUniqueVersionsConcurrently(t *testing.T) {
	c := NewClock("m1", func() time.Time { return time.UnixMilli(42) })
	const goroutines, each = 4, 1000
	out := make(chan Version, goroutines*each)
	var wg sync.WaitGroup
	for range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				out <- c.Now()
			}
		}()
	}
	wg.Wait()
	close(out)
	seen := make(map[Version]bool)
	for v := range out {
		if seen[v] {
			t.Fatalf("version %v issued twice", v)
		}
		seen[v] = true
	}
}

func TestClockObserveAdvancesPastRemoteVersion(t *testing.T) {
	const now = 1_000
	tests := []struct {
		name   string
		remote Version
		want   Version // the next version issued after observing remote
	}{
		{"remote ahead in wall time", Version{Wall: now + 500, Logical: 3, Member: "peer"}, Version{Wall: now + 500, Logical: 4, Member: "me"}},
		{"remote same wall, higher logical", Version{Wall: now, Logical: 9, Member: "peer"}, Version{Wall: now, Logical: 10, Member: "me"}},
		{"remote same wall and logical, higher member", Version{Wall: now, Logical: 0, Member: "zzz"}, Version{Wall: now, Logical: 1, Member: "me"}},
		{"remote behind", Version{Wall: now - 500, Logical: 9, Member: "peer"}, Version{Wall: now, Logical: 1, Member: "me"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewClock("me", func() time.Time { return time.UnixMilli(now) })
			first := c.Now() // now.0@me
			c.Observe(tt.remote)
			got := c.Now()
			if got != tt.want {
				t.Fatalf("after observing %v, Now() = %v, want %v", tt.remote, got, tt.want)
			}
			if !got.Newer(tt.remote) || !got.Newer(first) {
				t.Fatalf("version %v is not newer than the observed %v and the previous %v", got, tt.remote, first)
			}
		})
	}
}

func TestClockAdmitRefusesVersionsTooFarAhead(t *testing.T) {
	const now = 1_000_000
	const skew = time.Minute
	tests := []struct {
		name     string
		remote   Version
		admitted bool
	}{
		{"behind", Version{Wall: now - 500, Member: "peer"}, true},
		{"ahead within the skew", Version{Wall: now + 30_000, Logical: 2, Member: "peer"}, true},
		{"ahead by exactly the skew", Version{Wall: now + 60_000, Member: "peer"}, true},
		{"a millisecond past the skew", Version{Wall: now + 60_001, Member: "peer"}, false},
		{"ten minutes ahead", Version{Wall: now + 600_000, Member: "peer"}, false},
		{"at the end of time", Version{Wall: math.MaxInt64, Logical: math.MaxUint32, Member: "peer"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewClock("me", func() time.Time { return time.UnixMilli(now) })
			first := c.Now()
			err := c.Admit(tt.remote, skew)
			if admitted := err == nil; admitted != tt.admitted {
				t.Fatalf("Admit(%v) = %v, want admitted=%v", tt.remote, err, tt.admitted)
			}
			next := c.Now()
			if tt.admitted {
				if !next.Newer(tt.remote) {
					t.Fatalf("after admitting %v, Now() = %v, not newer", tt.remote, next)
				}
				return
			}
			if !errors.Is(err, ErrClockSkew) {
				t.Fatalf("Admit(%v) = %v, want ErrClockSkew", tt.remote, err)
			}
			// A refused version leaves the clock where it was.
			if want := (Version{Wall: first.Wall, Logical: first.Logical + 1, Member: "me"}); next != want {
				t.Fatalf("after refusing %v, Now() = %v, want %v", tt.remote, next, want)
			}
		})
	}
}

// TestClockLogicalCounterDoesNotWrap observes a version whose logical
// counter is at its maximum: the next version must still be newer, by
// taking the next millisecond, not wrap to logical 0 at the same wall time
// (which would sort before the observed version, so that a write made
// after it loses to it).
func TestClockLogicalCounterDoesNotWrap(t *testing.T) {
	const now = 1_000
	for _, observe := range []string{"Observe", "Admit"} {
		t.Run(observe, func(t *testing.T) {
			c := NewClock("me", func() time.Time { return time.UnixMilli(now) })
			remote := Version{Wall: now, Logical: math.MaxUint32, Member: "peer"}
			if observe == "Observe" {
				c.Observe(remote)
			} else if err := c.Admit(remote, time.Minute); err != nil {
				t.Fatal(err)
			}
			prev := remote
			for i := range 3 {
				v := c.Now()
				if !v.Newer(prev) {
					t.Fatalf("version %d after observing %v: %v is not newer than %v", i, remote, v, prev)
				}
				if want := (Version{Wall: now + 1, Logical: uint32(i), Member: "me"}); v != want {
					t.Fatalf("version %d = %v, want %v", i, v, want)
				}
				prev = v
			}
		})
	}
}
