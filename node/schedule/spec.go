package schedule

import (
	"fmt"
	"strings"
	"time"

	// robfig/cron/v3 rather than a parser of our own: it is the cron
	// parser Kubernetes' CronJob controller uses, it reads the standard
	// five fields and the @hourly-style descriptors, and cron's corners
	// (day-of-month OR day-of-week, ranges with steps, names of months
	// and days) are easy to get subtly wrong by hand.
	"github.com/robfig/cron/v3"
)

// MinEvery is the shortest interval an every schedule may have. Shorter
// intervals would make the job's state record, which the holder writes
// twice per tick, the busiest key of the app's bucket.
const MinEvery = time.Second

// Spec is when a job's ticks are: every Interval, or at the times a cron
// expression matches, in UTC. Build one with Every or Cron. The zero Spec
// has no ticks.
type Spec struct {
	every time.Duration
	expr  string
	cron  cron.Schedule
}

// Every returns the schedule of ticks at the multiples of d since the
// Unix epoch (UTC): every holder, whenever it starts, agrees on them. d
// must be at least MinEvery and a whole number of milliseconds, since a
// tick's id is its time in milliseconds.
func Every(d time.Duration) (Spec, error) {
	if d < MinEvery {
		return Spec{}, fmt.Errorf("every %s is shorter than the minimum, %s", d, MinEvery)
	}
	if d%time.Millisecond != 0 {
		return Spec{}, fmt.Errorf("every %s is not a whole number of milliseconds", d)
	}
	return Spec{every: d}, nil
}

// Cron returns the schedule of a standard five-field cron expression
// (minute hour day-of-month month day-of-week, as in crontab(5)) or of a
// descriptor (@yearly, @annually, @monthly, @weekly, @daily, @midnight,
// @hourly), read in UTC. Refused: @every (use Every, whose ticks are
// anchored to the epoch; @every's are not), a TZ= or CRON_TZ= prefix
// (schedules are in UTC, so that no tick is doubled or lost at a change
// of daylight saving time), and expressions that match no date.
func Cron(expr string) (Spec, error) {
	expr = strings.TrimSpace(expr)
	switch {
	case expr == "":
		return Spec{}, fmt.Errorf("cron is empty")
	case strings.HasPrefix(expr, "TZ=") || strings.HasPrefix(expr, "CRON_TZ="):
		return Spec{}, fmt.Errorf("cron %q: cron runs in UTC; TZ= and CRON_TZ= are not supported", expr)
	case strings.HasPrefix(expr, "@every"):
		return Spec{}, fmt.Errorf("cron %q: use every: for intervals", expr)
	}
	sched, err := parseStandard(expr)
	if err != nil {
		return Spec{}, fmt.Errorf("cron %q: %w (want 5 fields: minute hour day-of-month month day-of-week, or @hourly, @daily, @weekly, @monthly, @yearly)", expr, err)
	}
	// cron's Next gives up after five years. From the epoch, even a
	// 29 February is found in two.
	if sched.Next(time.Unix(0, 0).UTC()).IsZero() {
		return Spec{}, fmt.Errorf("cron %q matches no date", expr)
	}
	return Spec{expr: expr, cron: sched}, nil
}

// parseStandard is cron.ParseStandard, with a panic of the parser (it
// has had some on odd input) turned into an error.
func parseStandard(expr string) (s cron.Schedule, err error) {
	defer func() {
		if r := recover(); r != nil {
			s, err = nil, fmt.Errorf("cannot be parsed")
		}
	}()
	return cron.ParseStandard(expr)
}

// IsZero reports whether s is the zero Spec, which has no ticks.
func (s Spec) IsZero() bool { return s.every == 0 && s.cron == nil }

// Interval returns the interval of an every schedule, 0 for cron.
func (s Spec) Interval() time.Duration { return s.every }

// Expr returns the expression of a cron schedule, "" for every.
func (s Spec) Expr() string { return s.expr }

// String returns "every 20s" or "cron */5 * * * *" (for logs).
func (s Spec) String() string {
	switch {
	case s.every != 0:
		return "every " + s.every.String()
	case s.cron != nil:
		return "cron " + s.expr
	}
	return "never"
}

// Next returns the time of the first tick strictly after t, in UTC. It
// returns the zero time when there is none (the zero Spec; a cron date
// more than five years away).
func (s Spec) Next(t time.Time) time.Time {
	switch {
	case s.every != 0:
		iv := s.every.Milliseconds()
		return time.UnixMilli((floorDiv(t.UnixMilli(), iv) + 1) * iv).UTC()
	case s.cron != nil:
		return s.cron.Next(t.UTC())
	}
	return time.Time{}
}

// floorDiv is a/b rounded down (b > 0), for times before the epoch too.
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}
