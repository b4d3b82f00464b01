package schedule

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestScheduleDue is the job scheduler's next-tick decision as a table:
// times are written HH:MM:SS on 2026-03-29 (UTC) unless a full RFC 3339
// time, tick ids as times, a rerun with a trailing "!".
func TestScheduleDue(t *testing.T) {
	type want struct {
		state     State
		due       string // "12:00:20 12:00:40!"
		skipped   Skipped
		abandoned int64
		next      string
	}
	every20 := every(t, 20*time.Second)
	fiveMin := cronSpec(t, "*/5 * * * *")
	daily3 := cronSpec(t, "0 3 * * *")
	ms := func(s string) int64 { return tm(t, s).UnixMilli() }
	tests := []struct {
		name    string
		spec    Spec
		st      State
		now     string
		catchUp int
		want    want
	}{
		// First sight: nothing before now was the job's; history starts now.
		{"every: first sight", every20, State{}, "12:00:05.250", 5,
			want{state: State{Done: ms("12:00:05.250")}, next: "12:00:20"}},
		{"every: first sight exactly at a tick", every20, State{}, "12:00:00", 5,
			want{state: State{Done: ms("12:00:00")}, next: "12:00:20"}},
		{"cron: first sight", fiveMin, State{}, "12:03:00", 5,
			want{state: State{Done: ms("12:03:00")}, next: "12:05:00"}},
		// Steady state.
		{"every: nothing due yet", every20, State{Done: ms("12:00:00")}, "12:00:19.999", 5,
			want{state: State{Done: ms("12:00:00")}, next: "12:00:20"}},
		{"every: clock exactly at a tick", every20, State{Done: ms("12:00:00")}, "12:00:20", 5,
			want{state: State{Done: ms("12:00:00")}, due: "12:00:20", next: "12:00:40"}},
		{"every: just after a tick", every20, State{Done: ms("12:00:00")}, "12:00:20.001", 5,
			want{state: State{Done: ms("12:00:00")}, due: "12:00:20", next: "12:00:40"}},
		{"every: history started between ticks", every20, State{Done: ms("12:00:05.250")}, "12:00:20", 5,
			want{state: State{Done: ms("12:00:05.250")}, due: "12:00:20", next: "12:00:40"}},
		{"cron: clock exactly at a tick", fiveMin, State{Done: ms("12:00:00")}, "12:05:00", 5,
			want{state: State{Done: ms("12:00:00")}, due: "12:05:00", next: "12:10:00"}},
		// A gap (fail-over, cluster down) within and beyond the limit.
		{"every: gap within the catch-up limit", every20, State{Done: ms("12:00:00")}, "12:01:05", 5,
			want{state: State{Done: ms("12:00:00")}, due: "12:00:20 12:00:40 12:01:00", next: "12:01:20"}},
		{"every: gap of exactly the catch-up limit", every20, State{Done: ms("12:00:00")}, "12:01:40", 5,
			want{state: State{Done: ms("12:00:00")}, due: "12:00:20 12:00:40 12:01:00 12:01:20 12:01:40", next: "12:02:00"}},
		{"every: gap beyond the catch-up limit", every20, State{Done: ms("12:00:00")}, "12:10:00", 5,
			want{
				state:   State{Done: ms("12:08:20")},
				due:     "12:08:40 12:09:00 12:09:20 12:09:40 12:10:00",
				skipped: Skipped{Count: 25, First: ms("12:00:20"), Last: ms("12:08:20")},
				next:    "12:10:20",
			}},
		{"every: catch-up below 1 counts as 1", every20, State{Done: ms("12:00:00")}, "12:01:05", 0,
			want{
				state:   State{Done: ms("12:00:40")},
				due:     "12:01:00",
				skipped: Skipped{Count: 2, First: ms("12:00:20"), Last: ms("12:00:40")},
				next:    "12:01:20",
			}},
		{"cron: gap within the catch-up limit", fiveMin, State{Done: ms("12:00:00")}, "12:10:00", 5,
			want{state: State{Done: ms("12:00:00")}, due: "12:05:00 12:10:00", next: "12:15:00"}},
		{"cron: gap beyond the catch-up limit", fiveMin, State{Done: ms("00:00:00")}, "12:00:00", 3,
			want{
				state:   State{Done: ms("11:45:00")},
				due:     "11:50:00 11:55:00 12:00:00",
				skipped: Skipped{Count: 141, First: ms("00:05:00"), Last: ms("11:45:00")},
				next:    "12:05:00",
			}},
		{"cron: catch-up limit of 1", fiveMin, State{Done: ms("12:00:00")}, "12:12:00", 1,
			want{
				state:   State{Done: ms("12:05:00")},
				due:     "12:10:00",
				skipped: Skipped{Count: 1, First: ms("12:05:00"), Last: ms("12:05:00")},
				next:    "12:15:00",
			}},
		{"cron: daily in UTC across a DST change", daily3, State{Done: ms("2026-03-27T03:00:00Z")}, "2026-03-30T03:00:00Z", 5,
			want{state: State{Done: ms("2026-03-27T03:00:00Z")}, due: "2026-03-28T03:00:00Z 2026-03-29T03:00:00Z 2026-03-30T03:00:00Z", next: "2026-03-31T03:00:00Z"}},
		// The last holder's clock was ahead of this one's: no tick twice.
		{"every: clock behind the last holder", every20, State{Done: ms("12:00:40")}, "12:00:35", 5,
			want{state: State{Done: ms("12:00:40")}, next: "12:01:00"}},
		{"cron: clock behind the last holder", fiveMin, State{Done: ms("12:05:00")}, "12:04:58", 5,
			want{state: State{Done: ms("12:05:00")}, next: "12:10:00"}},
		// A tick whose run was cut runs once more, first, and only once.
		{"every: interrupted tick re-run", every20, State{Done: ms("12:00:00"), Running: ms("12:00:20"), Attempts: 1}, "12:00:25", 5,
			want{state: State{Done: ms("12:00:00"), Running: ms("12:00:20"), Attempts: 1}, due: "12:00:20!", next: "12:00:40"}},
		{"every: interrupted tick re-run, then the ticks since", every20, State{Done: ms("12:00:00"), Running: ms("12:00:20"), Attempts: 1}, "12:01:01", 5,
			want{state: State{Done: ms("12:00:00"), Running: ms("12:00:20"), Attempts: 1}, due: "12:00:20! 12:00:40 12:01:00", next: "12:01:20"}},
		{"every: interrupted tick re-run, and a gap beyond the limit", every20, State{Done: ms("12:00:00"), Running: ms("12:00:20"), Attempts: 1}, "12:10:00", 2,
			want{
				state:   State{Done: ms("12:09:20"), Running: ms("12:00:20"), Attempts: 1},
				due:     "12:00:20! 12:09:40 12:10:00",
				skipped: Skipped{Count: 27, First: ms("12:00:40"), Last: ms("12:09:20")},
				next:    "12:10:20",
			}},
		{"every: interrupted tick with no history before it", every20, State{Running: ms("12:00:20"), Attempts: 1}, "12:00:30", 5,
			want{state: State{Running: ms("12:00:20"), Attempts: 1}, due: "12:00:20!", next: "12:00:40"}},
		{"every: tick cut twice is abandoned", every20, State{Done: ms("12:00:00"), Running: ms("12:00:20"), Attempts: 2}, "12:00:25", 5,
			want{state: State{Done: ms("12:00:20")}, abandoned: ms("12:00:20"), next: "12:00:40"}},
		{"every: tick cut twice is abandoned, the ticks since run", every20, State{Done: ms("12:00:00"), Running: ms("12:00:20"), Attempts: 2}, "12:00:45", 5,
			want{state: State{Done: ms("12:00:20")}, abandoned: ms("12:00:20"), due: "12:00:40", next: "12:01:00"}},
		{"cron: interrupted tick re-run", fiveMin, State{Done: ms("12:00:00"), Running: ms("12:05:00"), Attempts: 1}, "12:05:30", 5,
			want{state: State{Done: ms("12:00:00"), Running: ms("12:05:00"), Attempts: 1}, due: "12:05:00!", next: "12:10:00"}},
		// The zero Spec has no ticks.
		{"zero spec", Spec{}, State{Done: ms("12:00:00")}, "13:00:00", 5,
			want{state: State{Done: ms("12:00:00")}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Due(tc.spec, tc.st, tm(t, tc.now), tc.catchUp)
			var wantDue []Tick
			for _, f := range strings.Fields(tc.want.due) {
				s, rerun := strings.CutSuffix(f, "!")
				wantDue = append(wantDue, Tick{ID: ms(s), Rerun: rerun})
			}
			if !reflect.DeepEqual(got.Due, wantDue) {
				t.Errorf("due %v, want %v", formatTicks(got.Due), formatTicks(wantDue))
			}
			if got.State != tc.want.state {
				t.Errorf("state %s, want %s", formatState(got.State), formatState(tc.want.state))
			}
			if got.Skipped != tc.want.skipped {
				t.Errorf("skipped %d %s..%s, want %d %s..%s", got.Skipped.Count, formatID(got.Skipped.First), formatID(got.Skipped.Last),
					tc.want.skipped.Count, formatID(tc.want.skipped.First), formatID(tc.want.skipped.Last))
			}
			if got.Abandoned != tc.want.abandoned {
				t.Errorf("abandoned %s, want %s", formatID(got.Abandoned), formatID(tc.want.abandoned))
			}
			var wantNext time.Time
			if tc.want.next != "" {
				wantNext = tm(t, tc.want.next)
			}
			if !got.Next.Equal(wantNext) {
				t.Errorf("next %s, want %s", got.Next.Format(time.RFC3339Nano), wantNext.Format(time.RFC3339Nano))
			}
		})
	}
}

func TestScheduleState(t *testing.T) {
	tick := Tick{ID: 1_000}
	st := State{Done: 500}.Started(tick)
	if want := (State{Done: 500, Running: 1_000, Attempts: 1}); st != want {
		t.Fatalf("Started: %+v, want %+v", st, want)
	}
	if st = st.Started(Tick{ID: 1_000, Rerun: true}); st.Attempts != 2 {
		t.Fatalf("Started again: %+v, want 2 attempts", st)
	}
	if st = st.Finished(tick); st != (State{Done: 1_000}) {
		t.Fatalf("Finished: %+v", st)
	}
	// Finishing never moves Done back (a skip settled ticks after it).
	if st = (State{Done: 9_000, Running: 1_000, Attempts: 1}).Finished(tick); st != (State{Done: 9_000}) {
		t.Fatalf("Finished behind Done: %+v", st)
	}
	if tick.String() != "1000" || !tick.Time().Equal(time.UnixMilli(1_000)) || tick.Time().Location() != time.UTC {
		t.Fatalf("tick %s at %s", tick, tick.Time())
	}
}

// TestScheduleDueMatchesEnumeration checks Due's counting (arithmetic for
// every, a ring of the last ticks for cron) against stepping through the
// ticks one Next at a time.
func TestScheduleDueMatchesEnumeration(t *testing.T) {
	specs := []Spec{
		every(t, time.Second), every(t, 20*time.Second), every(t, 7*time.Second), every(t, 90*time.Minute),
		cronSpec(t, "*/5 * * * *"), cronSpec(t, "0 * * * *"), cronSpec(t, "7,11 3-5 * * 1-5"),
	}
	r := rand.New(rand.NewPCG(1, 2))
	base := time.Date(2026, 3, 29, 0, 0, 0, 0, time.UTC).UnixMilli()
	for _, spec := range specs {
		for range 300 {
			done := base + r.Int64N(int64(3*time.Hour/time.Millisecond))
			now := time.UnixMilli(done + r.Int64N(int64(6*time.Hour/time.Millisecond))).UTC()
			catchUp := 1 + r.IntN(8)
			var all []int64
			for at := time.UnixMilli(done); ; {
				if at = spec.Next(at); at.After(now) {
					break
				}
				all = append(all, at.UnixMilli())
			}
			got := Due(spec, State{Done: done}, now, catchUp)
			var ids []int64
			for _, tick := range got.Due {
				ids = append(ids, tick.ID)
			}
			keep := min(len(all), catchUp)
			wantDue := all[len(all)-keep:]
			var wantSkipped Skipped
			if len(all) > keep {
				wantSkipped = Skipped{Count: int64(len(all) - keep), First: all[0], Last: all[len(all)-keep-1]}
			}
			if !reflect.DeepEqual(ids, nilIfEmpty(wantDue)) || got.Skipped != wantSkipped {
				t.Fatalf("%s, done %d, now %s, catch-up %d: due %v skipped %+v, want %v %+v",
					spec, done, now, catchUp, ids, got.Skipped, wantDue, wantSkipped)
			}
			if want := spec.Next(now); !got.Next.Equal(want) {
				t.Fatalf("%s: next %s, want %s", spec, got.Next, want)
			}
		}
	}
}

// TestScheduleJobHolders plays the protocol a holder follows, with
// holders cut at random (before a tick starts, while it runs, before the
// finish is recorded) and clocks that differ between holders, and checks
// what the issue asks: no tick runs twice except the one re-run of a cut
// tick, with the same id; none is skipped silently (each tick up to the
// end is finished, logged as skipped or logged as abandoned).
func TestScheduleJobHolders(t *testing.T) {
	for _, spec := range []Spec{every(t, 20*time.Second), cronSpec(t, "* * * * *")} {
		t.Run(spec.String(), func(t *testing.T) {
			r := rand.New(rand.NewPCG(3, 4))
			start := time.Date(2026, 3, 29, 12, 0, 0, 0, time.UTC)
			clock := start
			var st State // the record in KV
			runs := map[int64]int{}
			reruns := map[int64]int{}
			finished := map[int64]bool{}
			logged := map[int64]string{} // skipped or abandoned
			skew := time.Duration(0)
			var first time.Time // the job's first sight: its history starts there
			for step := 0; step < 3000; step++ {
				clock = clock.Add(time.Duration(r.Int64N(int64(3 * spec.period()))))
				if r.IntN(20) == 0 { // a new holder, its clock up to 2 s off
					skew = time.Duration(r.Int64N(int64(4*time.Second))) - 2*time.Second
				}
				if r.IntN(200) == 0 { // the cluster was down a while
					clock = clock.Add(time.Duration(10+r.IntN(20)) * spec.period())
				}
				p := Due(spec, st, clock.Add(skew), 3)
				if st == (State{}) {
					first = time.UnixMilli(p.State.Done)
				}
				st = p.State
				if p.Skipped.Count > 0 {
					n := 0
					for at := time.UnixMilli(p.Skipped.First - 1); ; n++ {
						at = spec.Next(at)
						if at.UnixMilli() > p.Skipped.Last {
							break
						}
						logged[at.UnixMilli()] = "skipped"
					}
					if int64(n) != p.Skipped.Count {
						t.Fatalf("skipped %+v holds %d ticks", p.Skipped, n)
					}
				}
				if p.Abandoned != 0 {
					logged[p.Abandoned] = "abandoned"
				}
				for _, tick := range p.Due {
					if r.IntN(10) == 0 {
						break // cut before this tick started
					}
					st = st.Started(tick)
					runs[tick.ID]++
					if tick.Rerun {
						reruns[tick.ID]++
					}
					if r.IntN(8) == 0 {
						break // cut while it ran: Running stays recorded
					}
					st = st.Finished(tick)
					finished[tick.ID] = true
				}
			}
			for id, n := range runs {
				if n > MaxAttempts || n-reruns[id] > 1 {
					t.Errorf("tick %s ran %d times (%d re-runs)", formatID(id), n, reruns[id])
				}
				if finished[id] && logged[id] != "" {
					t.Errorf("tick %s finished and %s", formatID(id), logged[id])
				}
			}
			var total, reran int
			end := time.UnixMilli(st.Done)
			for at := first; ; total++ {
				if at = spec.Next(at); at.After(end) {
					break
				}
				id := at.UnixMilli()
				if !finished[id] && logged[id] == "" {
					t.Errorf("tick %s neither finished nor logged", formatID(id))
				}
				if reruns[id] > 0 {
					reran++
				}
			}
			abandoned := 0
			for _, why := range logged {
				if why == "abandoned" {
					abandoned++
				}
			}
			t.Logf("%d ticks: %d run, %d re-run, %d logged (%d abandoned)", total, len(finished), reran, len(logged), abandoned)
			if total < 1000 || reran == 0 || abandoned == 0 || len(logged) == abandoned {
				t.Fatalf("the play did not cover the cases: %d ticks, %d re-run, %d logged", total, reran, len(logged))
			}
		})
	}
}

// period is the spacing of spec's ticks, for the play above.
func (s Spec) period() time.Duration {
	if s.every != 0 {
		return s.every
	}
	return s.Next(time.Unix(0, 0)).Sub(time.Unix(0, 0))
}

func nilIfEmpty(s []int64) []int64 {
	if len(s) == 0 {
		return nil
	}
	return s
}

// tm reads "HH:MM:SS[.fff]" on 2026-03-29 UTC, or an RFC 3339 time.
func tm(t *testing.T, s string) time.Time {
	t.Helper()
	if !strings.Contains(s, "T") {
		s = "2026-03-29T" + s + "Z"
	}
	return at(t, s)
}

func formatID(id int64) string {
	if id == 0 {
		return "0"
	}
	t := time.UnixMilli(id).UTC()
	return strings.Replace(t.Format("2006-01-02T15:04:05.000Z"), "2026-03-29T", "", 1)
}

func formatTicks(ticks []Tick) string {
	var s []string
	for _, tick := range ticks {
		f := formatID(tick.ID)
		if tick.Rerun {
			f += "!"
		}
		s = append(s, f)
	}
	return "[" + strings.Join(s, " ") + "]"
}

func formatState(s State) string {
	return fmt.Sprintf("{done %s running %s attempts %d}", formatID(s.Done), formatID(s.Running), s.Attempts)
}
