package store

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Version is a hybrid logical clock value: wall-clock milliseconds, a logical
// counter that orders events within one millisecond (or while the wall clock
// lags a received version), and the name of the member that issued it. Two
// versions compare totally: wall, then logical, then member. The member name
// makes every version issued in a cluster unique, so a (bucket, key, version)
// triple identifies one value.
type Version struct {
	Wall    int64  `json:"w"`
	Logical uint32 `json:"l,omitempty"`
	Member  string `json:"m"`
}

// Compare returns -1, 0 or +1 as v is older than, equal to or newer than o.
func (v Version) Compare(o Version) int {
	switch {
	case v.Wall != o.Wall:
		if v.Wall < o.Wall {
			return -1
		}
		return 1
	case v.Logical != o.Logical:
		if v.Logical < o.Logical {
			return -1
		}
		return 1
	default:
		return strings.Compare(v.Member, o.Member)
	}
}

// Newer reports whether v is strictly newer than o.
func (v Version) Newer(o Version) bool { return v.Compare(o) > 0 }

// IsZero reports whether v was never set.
func (v Version) IsZero() bool { return v.Wall == 0 && v.Logical == 0 && v.Member == "" }

// Time returns the wall-clock part of v.
func (v Version) Time() time.Time { return time.UnixMilli(v.Wall) }

// String formats v as WALL.LOGICAL@MEMBER.
func (v Version) String() string {
	return strconv.FormatInt(v.Wall, 10) + "." + strconv.FormatUint(uint64(v.Logical), 10) + "@" + v.Member
}

// ParseVersion parses the form produced by String.
func ParseVersion(s string) (Version, error) {
	at := strings.IndexByte(s, '@')
	dot := strings.IndexByte(s, '.')
	if at < 0 || dot < 0 || dot > at {
		return Version{}, fmt.Errorf("parse version %q: want WALL.LOGICAL@MEMBER", s)
	}
	wall, err := strconv.ParseInt(s[:dot], 10, 64)
	if err != nil {
		return Version{}, fmt.Errorf("parse version %q: %w", s, err)
	}
	logical, err := strconv.ParseUint(s[dot+1:at], 10, 32)
	if err != nil {
		return Version{}, fmt.Errorf("parse version %q: %w", s, err)
	}
	return Version{Wall: wall, Logical: uint32(logical), Member: s[at+1:]}, nil
}

// Clock issues versions for one member. It is safe for concurrent use.
// Versions it issues are strictly increasing, also across a wall clock that
// steps back, and are always newer than every version it has observed.
//
// The logical counter never wraps: when it is at its maximum, the next
// version takes the following millisecond instead (logical 0). A peer can
// push the counter there only with a version it is allowed to send, whose
// wall time Admit keeps within a bounded skew of this clock, so the clock
// runs ahead of its wall clock by at most that skew plus a millisecond.
type Clock struct {
	member string
	now    func() time.Time

	mu   sync.Mutex
	last Version
}

// NewClock returns a clock for member. now may be nil (time.Now).
func NewClock(member string, now func() time.Time) *Clock {
	if now == nil {
		now = time.Now
	}
	return &Clock{member: member, now: now}
}

// Now returns a new version, newer than any issued or observed before.
func (c *Clock) Now() Version {
	c.mu.Lock()
	defer c.mu.Unlock()
	wall := c.now().UnixMilli()
	switch {
	case wall > c.last.Wall:
		c.last = Version{Wall: wall, Member: c.member}
	case c.last.Logical == math.MaxUint32:
		// Incrementing would wrap to 0 and issue a version older than
		// the last: move to the next millisecond instead.
		c.last = Version{Wall: c.last.Wall + 1, Member: c.member}
	default:
		c.last = Version{Wall: c.last.Wall, Logical: c.last.Logical + 1, Member: c.member}
	}
	return c.last
}

// Observe advances the clock past v, so that the next version issued is
// newer than v, whatever v is. It is for versions this member already
// holds (its own state file); versions received from peers go through
// Admit.
func (c *Clock) Observe(v Version) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.observe(v)
}

// Admit observes v, received from a peer, unless its wall time is more
// than maxAhead ahead of this clock's wall clock: then it leaves the clock
// alone and returns an error wrapping ErrClockSkew. Without the bound, one
// version from the far future (a peer with a broken clock, or a forged
// record) would drag every later version here past it, and a record
// written with it could never be overwritten.
func (c *Clock) Admit(v Version, maxAhead time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now().UnixMilli()
	if v.Wall > now+maxAhead.Milliseconds() {
		return fmt.Errorf("version %v is %d ms ahead of the local clock, more than %s: %w", v, v.Wall-now, maxAhead, ErrClockSkew)
	}
	c.observe(v)
	return nil
}

func (c *Clock) observe(v Version) {
	if v.Wall > c.last.Wall || (v.Wall == c.last.Wall && v.Logical > c.last.Logical) {
		c.last = Version{Wall: v.Wall, Logical: v.Logical, Member: c.member}
	}
}
