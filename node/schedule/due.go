// Package schedule decides when an HA job's ticks are due. Due is the
// pure function that the holder of an app's job lease calls with the
// job's Spec, its recorded State and the time; it says which ticks to run
// now, which were skipped past the catch-up limit (to be logged), and when
// to look again.
//
// It keeps no state and reads no clock, store or NATS: the caller records
// State (in the app's KV bucket, by compare-and-set under its lease) and
// passes the time in. Times are UTC. A tick's id is the Unix time in
// milliseconds of its scheduled time, so every holder computes the same id
// for the same tick; it is what the job's process gets as
// GEARBOX_JOB_TICK.
//
// It imports the standard library and github.com/robfig/cron/v3 only.
package schedule

import (
	"strconv"
	"time"
)

// MaxAttempts is how many times one tick is started: once, and once more
// if the first run was cut (its holder died or lost the lease before it
// recorded the tick finished). A tick cut twice is abandoned and logged.
const MaxAttempts = 2

// DefaultCatchUp is the catch-up limit a holder passes to Due unless
// configured otherwise: how many missed ticks it runs, back to back, when
// it finds more due than one. Five covers a fail-over of a few seconds
// even for a job every second, and keeps a job every minute from running
// an hour's ticks at once after a cluster was down for an hour.
const DefaultCatchUp = 5

// State is what the holder records of a job, as JSON in the app's KV
// bucket, so that the next holder resumes where it left off. The zero
// State is a job never seen before.
//
// The holder writes it by compare-and-set: Plan.State before it runs
// anything, Started before each tick runs and Finished after, whatever
// the job's exit status (a job that fails has run; only a run cut short
// by the holder's end is run again).
type State struct {
	// Done is the id (Unix ms, UTC) through which ticks are settled:
	// every tick scheduled at or before it finished, was skipped past
	// the catch-up limit, or was abandoned, and is not run again. 0: no
	// history yet.
	Done int64 `json:"done"`
	// Running is the id of the tick started and not recorded finished:
	// under a new holder, a run that was cut. 0: none.
	Running int64 `json:"running,omitempty"`
	// Attempts is how many times Running was started (1 or 2).
	Attempts int `json:"attempts,omitempty"`
}

// Started returns the state to record before t runs.
func (s State) Started(t Tick) State {
	if s.Running == t.ID {
		s.Attempts++
	} else {
		s.Running, s.Attempts = t.ID, 1
	}
	return s
}

// Finished returns the state to record once t's run has ended.
func (s State) Finished(t Tick) State {
	s.Done = max(s.Done, t.ID)
	if s.Running == t.ID {
		s.Running, s.Attempts = 0, 0
	}
	return s
}

// Tick is one scheduled run of a job.
type Tick struct {
	// ID is the Unix time in milliseconds (UTC) of the tick's scheduled
	// time, the same for every holder.
	ID int64
	// Rerun is set on a tick whose first run was cut: it runs this once
	// more, with the same ID.
	Rerun bool
}

// Time returns t's scheduled time, in UTC.
func (t Tick) Time() time.Time { return time.UnixMilli(t.ID).UTC() }

// String returns t's id in decimal: the value of GEARBOX_JOB_TICK.
func (t Tick) String() string { return strconv.FormatInt(t.ID, 10) }

// Skipped is a run of missed ticks that Due does not run: more were due
// than the catch-up limit, and these are the oldest.
type Skipped struct {
	// Count is how many ticks were skipped; 0 none.
	Count int64
	// First and Last are the ids of the first and the last skipped.
	First, Last int64
}

// Plan is Due's answer.
type Plan struct {
	// State is the state to record (by compare-and-set) before any tick
	// of Due runs, when it differs from the State given to Due: it
	// settles the ticks skipped and abandoned here and, on a job's first
	// sight, starts its history at now.
	State State
	// Due are the ticks to run now, one after the other, oldest first:
	// first a cut tick to run again (Rerun), then at most catchUp ticks
	// scheduled after the last settled one and at or before now.
	Due []Tick
	// Skipped are the missed ticks past the catch-up limit: not run, to
	// be logged.
	Skipped Skipped
	// Abandoned is the id of a tick cut twice, not started again: to be
	// logged. 0: none.
	Abandoned int64
	// Next is the scheduled time of the first tick after now and after
	// every tick of Due: call Due again then, or once the ticks of Due
	// have run. Zero: the schedule has no tick ahead.
	Next time.Time
}

// Due returns what the holder of a job with schedule spec and recorded
// state st does at now. catchUp (below 1: 1) is the most ticks scheduled
// since the last settled one that run; older ones are skipped.
//
// A job seen for the first time (zero st) runs nothing: ticks before now
// were not its own. Its first tick is the first after now, and its
// history starts at now, so that a holder that takes over after that
// tick runs it. Ticks start in order, so starting one settles those
// before it; a holder whose clock is behind the last holder's runs no
// tick twice, as only ticks after the recorded ones are due.
//
// The caller runs the ticks of one job one at a time and calls Due when
// none of its runs is in progress: a Running tick in st is taken to be a
// run that was cut.
func Due(spec Spec, st State, now time.Time, catchUp int) Plan {
	now = now.UTC()
	catchUp = max(catchUp, 1)
	p := Plan{State: st}
	cursor := max(st.Done, st.Running)
	switch {
	case st.Running == 0:
	case st.Attempts < MaxAttempts:
		p.Due = append(p.Due, Tick{ID: st.Running, Rerun: true})
	default:
		p.Abandoned = st.Running
		p.State = State{Done: cursor}
	}
	if cursor == 0 {
		p.State = State{Done: now.UnixMilli()}
		p.Next = spec.Next(now)
		return p
	}
	count, kept, skipped := between(spec, cursor, now, catchUp)
	if count > int64(len(kept)) {
		p.Skipped = skipped
		p.State.Done = max(p.State.Done, skipped.Last)
	}
	for _, id := range kept {
		p.Due = append(p.Due, Tick{ID: id})
	}
	from := now
	if c := time.UnixMilli(cursor); c.After(now) {
		from = c
	}
	p.Next = spec.Next(from)
	return p
}

// between counts the ticks of spec scheduled after the id after and at or
// before now, and returns the last keep of them, oldest first, and those
// before them as skipped. For every it is arithmetic; for cron it steps
// through the gap's ticks, at most one a minute: a year's in about 0.4 s
// (measured), once, by a holder that takes over a job dormant that long.
func between(spec Spec, after int64, now time.Time, keep int) (count int64, kept []int64, skipped Skipped) {
	through := now.UnixMilli()
	if iv := spec.every.Milliseconds(); iv > 0 {
		first := (floorDiv(after, iv) + 1) * iv
		last := floorDiv(through, iv) * iv
		if last < first {
			return 0, nil, Skipped{}
		}
		count = (last-first)/iv + 1
		k := min(count, int64(keep))
		for id := last - (k-1)*iv; id <= last; id += iv {
			kept = append(kept, id)
		}
		if count > k {
			skipped = Skipped{Count: count - k, First: first, Last: kept[0] - iv}
		}
		return count, kept, skipped
	}
	if spec.cron == nil {
		return 0, nil, Skipped{}
	}
	// ring holds the last keep+1 ticks, the kept ones and the last
	// skipped one before them: tick number i at i%size.
	size := int64(keep) + 1
	var ring []int64
	var first int64
	for t := time.UnixMilli(after).UTC(); ; {
		t = spec.cron.Next(t)
		if t.IsZero() || t.After(now) {
			break
		}
		id := t.UnixMilli()
		if count == 0 {
			first = id
		}
		if int64(len(ring)) < size {
			ring = append(ring, id)
		} else {
			ring[count%size] = id
		}
		count++
	}
	start := 0
	if count > size {
		start = int(count % size)
	}
	ordered := make([]int64, 0, len(ring))
	ordered = append(ordered, ring[start:]...)
	ordered = append(ordered, ring[:start]...)
	if count > int64(keep) {
		return count, ordered[1:], Skipped{Count: count - int64(keep), First: first, Last: ordered[0]}
	}
	return count, ordered, Skipped{}
}
