package schedule

import (
	"strings"
	"testing"
	"time"
)

func TestScheduleEvery(t *testing.T) {
	tests := []struct {
		d       time.Duration
		wantErr string
	}{
		{20 * time.Second, ""},
		{time.Second, ""},
		{1500 * time.Millisecond, ""},
		{999 * time.Millisecond, "every 999ms is shorter than the minimum, 1s"},
		{0, "shorter than the minimum, 1s"},
		{-time.Minute, "shorter than the minimum, 1s"},
		{time.Second + time.Microsecond, "every 1.000001s is not a whole number of milliseconds"},
	}
	for _, tc := range tests {
		t.Run(tc.d.String(), func(t *testing.T) {
			s, err := Every(tc.d)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, want an error with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.Interval() != tc.d || s.Expr() != "" || s.String() != "every "+tc.d.String() {
				t.Fatalf("got %v (%v, %q)", s, s.Interval(), s.Expr())
			}
		})
	}
}

func TestScheduleCron(t *testing.T) {
	tests := []struct {
		expr    string
		wantErr string
	}{
		{"*/5 * * * *", ""},
		{" 0 3 * * 1-5 ", ""},
		{"0 0 29 2 *", ""},
		{"@hourly", ""},
		{"@daily", ""},
		{"@midnight", ""},
		{"@weekly", ""},
		{"@monthly", ""},
		{"@yearly", ""},
		{"@annually", ""},
		{"0 12 * JAN,JUL SUN", ""},
		{"", "cron is empty"},
		{"  ", "cron is empty"},
		{"* * * *", "expected exactly 5 fields"},
		{"0 * * * * *", "expected exactly 5 fields"},
		{"60 * * * *", "above maximum (59)"},
		{"x * * * *", `cron "x * * * *"`},
		{"*/0 * * * *", "step of range should be a positive number"},
		{"0 0 31 2 *", `cron "0 0 31 2 *" matches no date`},
		{"0 0 31 4,6,9,11 *", "matches no date"},
		{"@every 5m", "use every: for intervals"},
		{"@reboot", "unrecognized descriptor"},
		{"TZ=Europe/Paris 0 3 * * *", "cron runs in UTC; TZ= and CRON_TZ= are not supported"},
		{"CRON_TZ=UTC * * * * *", "cron runs in UTC"},
		{"TZ=0", "cron runs in UTC"}, // robfig/cron#554: this panics the parser
	}
	for _, tc := range tests {
		t.Run(tc.expr, func(t *testing.T) {
			s, err := Cron(tc.expr)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, want an error with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := strings.TrimSpace(tc.expr)
			if s.Expr() != want || s.Interval() != 0 || s.String() != "cron "+want {
				t.Fatalf("got %v (%v, %q)", s, s.Interval(), s.Expr())
			}
		})
	}
}

func TestScheduleNext(t *testing.T) {
	paris := time.FixedZone("CEST", 2*3600)
	tests := []struct {
		name string
		spec Spec
		t    time.Time
		want string
	}{
		// every: multiples of the interval since the epoch, whoever asks.
		{"every: at a tick, the next one", every(t, 20*time.Second), at(t, "2026-03-29T12:00:00Z"), "2026-03-29T12:00:20Z"},
		{"every: 1 ms before a tick, that tick", every(t, 20*time.Second), at(t, "2026-03-29T12:00:19.999Z"), "2026-03-29T12:00:20Z"},
		{"every: 1 ns after a tick, the next", every(t, 20*time.Second), at(t, "2026-03-29T12:00:00.000000001Z"), "2026-03-29T12:00:20Z"},
		{"every 7s: epoch-aligned", every(t, 7*time.Second), time.UnixMilli(1_000_000), "1970-01-01T00:16:41Z"}, // 143 * 7 s
		{"every 1h30m: epoch-aligned, not hour-aligned", every(t, 90*time.Minute), at(t, "2026-03-29T12:00:00Z"), "2026-03-29T13:30:00Z"},
		{"every: location of t ignored", every(t, time.Hour), at(t, "2026-03-29T12:30:00Z").In(paris), "2026-03-29T13:00:00Z"},
		// cron, in UTC.
		{"cron: at a tick, the next one", cronSpec(t, "*/5 * * * *"), at(t, "2026-03-29T12:05:00Z"), "2026-03-29T12:10:00Z"},
		{"cron: just before a tick, that tick", cronSpec(t, "*/5 * * * *"), at(t, "2026-03-29T12:04:59.999Z"), "2026-03-29T12:05:00Z"},
		{"cron: in UTC whatever the location of t", cronSpec(t, "0 3 * * *"), at(t, "2026-03-29T02:00:00Z").In(paris), "2026-03-29T03:00:00Z"},
		// 2026-03-29 is Europe's change to summer time: in UTC, 24 h as always.
		{"cron: daily across a DST change", cronSpec(t, "0 3 * * *"), at(t, "2026-03-28T03:00:00Z"), "2026-03-29T03:00:00Z"},
		{"cron: descriptor", cronSpec(t, "@hourly"), at(t, "2026-03-29T12:00:00Z"), "2026-03-29T13:00:00Z"},
		{"cron: leap day", cronSpec(t, "0 0 29 2 *"), at(t, "2026-03-01T00:00:00Z"), "2028-02-29T00:00:00Z"},
		{"cron: dom or dow when both are given", cronSpec(t, "0 0 13 * 5"), at(t, "2026-03-01T00:00:00Z"), "2026-03-06T00:00:00Z"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.spec.Next(tc.t)
			if got.Location() != time.UTC || got.Format(time.RFC3339Nano) != tc.want {
				t.Fatalf("Next(%s) = %s (%s), want %s", tc.t.Format(time.RFC3339Nano), got.Format(time.RFC3339Nano), got.Location(), tc.want)
			}
		})
	}
	if got := (Spec{}).Next(time.Now()); !got.IsZero() || !(Spec{}).IsZero() {
		t.Errorf("zero Spec: Next = %v", got)
	}
}

// FuzzScheduleCron checks that no expression panics Cron (the parser has
// panicked on odd input, robfig/cron#554) and that an accepted one has
// ticks in UTC, each after the last.
func FuzzScheduleCron(f *testing.F) {
	for _, s := range []string{"*/5 * * * *", "@hourly", "TZ=0", "TZ=TZ=TZ=", "0 0 31 2 *", "1-5/2 */3 1,15 JAN-MAR MON-FRI", "@every 1s", "? ? ? ? ?"} {
		f.Add(s)
	}
	start := time.Date(2026, 3, 29, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, expr string) {
		s, err := Cron(expr)
		if err != nil {
			return
		}
		prev := start
		for range 5 {
			next := s.Next(prev)
			if next.IsZero() {
				return // five years away: the parser gives up
			}
			if !next.After(prev) || next.Location() != time.UTC || next.Second() != 0 || next.Nanosecond() != 0 {
				t.Fatalf("%q: Next(%s) = %s", expr, prev, next)
			}
			prev = next
		}
	})
}

func at(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func every(t *testing.T, d time.Duration) Spec {
	t.Helper()
	s, err := Every(d)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func cronSpec(t *testing.T, expr string) Spec {
	t.Helper()
	s, err := Cron(expr)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
