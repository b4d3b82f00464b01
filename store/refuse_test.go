package store

import (
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/serf/serf"

	"gearbox/internal/testutil"
)

// These tests attack a member with records it must refuse (see Merge),
// over the paths a peer's records take: a gossip event (handleEvents, as
// serf delivers it), an anti-entropy pull (SyncWith from the receiver),
// and an anti-entropy push (SyncWith from the sender, which posts to the
// receiver's internal API).

const refuseSecret = "refuse-test-secret"

// gossip hands to m, as serf would, the sealed events a member broadcasts
// for recs.
func gossip(t *testing.T, m *testMember, recs ...Record) {
	t.Helper()
	var events []serf.Event
	for _, r := range recs {
		payload, err := m.st.encode(kindRecord, r)
		if err != nil {
			t.Fatal(err)
		}
		events = append(events, serf.UserEvent{Name: eventName, Payload: payload})
	}
	m.st.handleEvents(events)
}

// ownEvents waits until m has received n gossip events. Serf hands a
// member its own events too, a moment after it sends them; these tests
// move a fake clock hours ahead, and an own event that arrived only then
// would be taken for a replay.
func ownEvents(t *testing.T, m *testMember, n uint64) {
	t.Helper()
	testutil.WaitFor(t, 10*time.Second, m.cfg.Name+" to receive its own events", func() bool {
		return m.st.Stats().EventsReceived >= n
	}, func() string { return fmt.Sprintf("%+v", m.st.Stats()) })
}

func mustSync(t *testing.T, from, to *testMember) SyncResult {
	t.Helper()
	res, err := from.st.SyncWith(context.Background(), to.addr)
	if err != nil {
		t.Fatalf("%s syncs with %s: %v", from.cfg.Name, to.cfg.Name, err)
	}
	return res
}

func mustGetRecord(t *testing.T, m *testMember, bucket, key string) Record {
	t.Helper()
	r, err := m.st.GetRecord(bucket, key)
	if err != nil {
		t.Fatalf("%s: get %s/%s: %v", m.cfg.Name, bucket, key, err)
	}
	return r
}

// TestRecordFromTheFutureIsRefused has a peer whose clock runs ahead send
// a record to a member by each path. Ten minutes ahead, past the default
// one-minute skew, the record is refused, the member's clock does not
// jump, and the member's own later write wins; thirty seconds ahead it is
// taken, as clocks a little apart must be.
func TestRecordFromTheFutureIsRefused(t *testing.T) {
	paths := []struct {
		name    string
		deliver func(t *testing.T, ahead, m *testMember)
	}{
		{"gossip event", func(t *testing.T, ahead, m *testMember) {
			gossip(t, m, mustGetRecord(t, ahead, "users", "alice"))
		}},
		{"anti-entropy pull", func(t *testing.T, ahead, m *testMember) { mustSync(t, m, ahead) }},
		{"anti-entropy push", func(t *testing.T, ahead, m *testMember) { mustSync(t, ahead, m) }},
	}
	tests := []struct {
		ahead time.Duration
		taken bool
	}{
		{10 * time.Minute, false},
		{30 * time.Second, true},
	}
	for _, p := range paths {
		for _, tt := range tests {
			t.Run(p.name+"/"+tt.ahead.String()+" ahead", func(t *testing.T) {
				testutil.CheckNoLeaks(t, leakPatterns...)
				clk := newFakeClock(gcEpoch)
				aheadClk := newFakeClock(gcEpoch.Add(tt.ahead))
				start := func(name string, clk *fakeClock) *testMember {
					return startMember(t, name, filepath.Join(t.TempDir(), name), ips.Next(), fakeTime(clk), withSecret(refuseSecret))
				}
				m, ahead := start("m", clk), start("ahead", aheadClk)
				ctx := context.Background()
				if _, err := m.st.Put(ctx, "users", "alice", "before"); err != nil {
					t.Fatal(err)
				}
				if _, err := ahead.st.Put(ctx, "users", "alice", "from the future"); err != nil {
					t.Fatal(err)
				}

				p.deliver(t, ahead, m)
				var got string
				if _, err := m.st.Get("users", "alice", &got); err != nil {
					t.Fatal(err)
				}
				if want := map[bool]string{true: "from the future", false: "before"}[tt.taken]; got != want {
					t.Fatalf("after the record %s ahead arrived: %q, want %q", tt.ahead, got, want)
				}
				if refused := m.st.Stats().Refused; (refused > 0) == tt.taken {
					t.Fatalf("Stats().Refused = %d, want refused=%v", refused, !tt.taken)
				}

				// A second later the member writes again: its write wins.
				// Had its clock jumped to the refused version, the version
				// would be ten minutes ahead too.
				clk.Advance(time.Second)
				v, err := m.st.Put(ctx, "users", "alice", "after")
				if err != nil {
					t.Fatal(err)
				}
				if !tt.taken && v.Wall != clk.Now().UnixMilli() {
					t.Fatalf("write after the refused record got version %v, want wall %d: the clock jumped", v, clk.Now().UnixMilli())
				}
				if _, err := m.st.Get("users", "alice", &got); err != nil || got != "after" {
					t.Fatalf("the member's own later write lost: %q, %v", got, err)
				}
				// And the record from the future, sent again, stays refused.
				p.deliver(t, ahead, m)
				if _, err := m.st.Get("users", "alice", &got); err != nil || got != "after" {
					t.Fatalf("after the record from the future arrived again: %q, %v", got, err)
				}
			})
		}
	}
}

// TestLogicalCounterAtMaxDoesNotWrap gossips to a member a record whose
// logical counter is at its maximum. The member's next write to the key
// must win: were its counter to wrap to 0 at the same wall time, its
// write would sort before the record and be lost everywhere.
func TestLogicalCounterAtMaxDoesNotWrap(t *testing.T) {
	clk := newFakeClock(gcEpoch)
	m := startMember(t, "m", filepath.Join(t.TempDir(), "m"), ips.Next(), fakeTime(clk), withSecret(refuseSecret))
	maxed := Record{Bucket: "users", Key: "alice", Value: []byte(`"maxed"`),
		Version: Version{Wall: clk.Now().UnixMilli(), Logical: math.MaxUint32, Member: "peer"}}
	gossip(t, m, maxed)
	if got := mustGetRecord(t, m, "users", "alice"); got.Version != maxed.Version {
		t.Fatalf("record with the counter at its maximum was not taken: %v", got.Version)
	}
	v, err := m.st.Put(context.Background(), "users", "alice", "mine")
	if err != nil {
		t.Fatal(err)
	}
	if !v.Newer(maxed.Version) {
		t.Fatalf("write after %v got version %v, which is older", maxed.Version, v)
	}
	var got string
	if _, err := m.st.Get("users", "alice", &got); err != nil || got != "mine" {
		t.Fatalf("the member's own later write lost: %q, %v", got, err)
	}
}

// TestOldCopyDoesNotUndoACollectedDelete deletes a user, lets the TTL pass
// and the tombstone be collected, then brings back an old copy of the
// user: a replayed sealed gossip event (captured from the wire), or a peer
// that still holds the copy and never heard of the delete, pulled from or
// pushing. The user stays deleted; a new write of the key is still taken.
func TestOldCopyDoesNotUndoACollectedDelete(t *testing.T) {
	tests := []struct {
		name   string
		attack func(t *testing.T, a, fresh, holder *testMember, replay []byte)
		target func(a, fresh *testMember) *testMember
	}{
		{"gossip replay to a member that collected the tombstone", func(t *testing.T, a, fresh, holder *testMember, replay []byte) {
			a.st.handleEvents([]serf.Event{serf.UserEvent{Name: eventName, Payload: replay}})
		}, func(a, fresh *testMember) *testMember { return a }},
		{"gossip replay to a member that never held the user", func(t *testing.T, a, fresh, holder *testMember, replay []byte) {
			fresh.st.handleEvents([]serf.Event{serf.UserEvent{Name: eventName, Payload: replay}})
		}, func(a, fresh *testMember) *testMember { return fresh }},
		{"anti-entropy pull from a peer holding an old copy", func(t *testing.T, a, fresh, holder *testMember, replay []byte) {
			mustSync(t, a, holder)
		}, func(a, fresh *testMember) *testMember { return a }},
		{"anti-entropy push from a peer holding an old copy", func(t *testing.T, a, fresh, holder *testMember, replay []byte) {
			mustSync(t, holder, a)
		}, func(a, fresh *testMember) *testMember { return a }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			testutil.CheckNoLeaks(t, leakPatterns...)
			clk := newFakeClock(gcEpoch)
			start := func(name string) *testMember {
				return startMember(t, name, filepath.Join(t.TempDir(), name), ips.Next(), fakeTime(clk), withSecret(refuseSecret))
			}
			a, holder := start("a"), start("holder")
			ctx := context.Background()

			// 0:00 a creates alice; the sealed event it broadcasts is
			// recorded. holder gets a copy and is then cut off.
			if _, err := a.st.Put(ctx, "users", "alice", "alice v1"); err != nil {
				t.Fatal(err)
			}
			alice := mustGetRecord(t, a, "users", "alice")
			replay, err := a.st.encode(kindRecord, alice)
			if err != nil {
				t.Fatal(err)
			}
			mustMerge(t, holder.st, []Record{alice})

			// 0:01 a deletes alice; 2:01 the tombstone is collected.
			clk.Advance(time.Minute)
			if _, err := a.st.Delete(ctx, "users", "alice"); err != nil {
				t.Fatal(err)
			}
			ownEvents(t, a, 2)
			clk.Advance(2 * time.Hour)
			a.st.collectOnce()
			if a.st.Len() != 0 {
				t.Fatalf("tombstone not collected: a holds %d records", a.st.Len())
			}
			fresh := start("fresh")

			target := tt.target(a, fresh)
			refused := target.st.Stats().Refused
			tt.attack(t, a, fresh, holder, replay)
			if _, err := target.st.Get("users", "alice", nil); !errors.Is(err, ErrNotFound) {
				t.Fatalf("%s: the deleted user came back: %v", target.cfg.Name, err)
			}
			if target.st.Stats().Refused == refused {
				t.Fatalf("%s: the old copy was not counted as refused", target.cfg.Name)
			}

			// A new alice, written now, is taken as any write.
			clk.Advance(time.Second)
			if _, err := holder.st.Put(ctx, "users", "alice", "alice v2"); err != nil {
				t.Fatal(err)
			}
			alice2 := mustGetRecord(t, holder, "users", "alice")
			gossip(t, target, alice2)
			var got string
			if _, err := target.st.Get("users", "alice", &got); err != nil || got != "alice v2" {
				t.Fatalf("%s: a new write of the deleted key was not taken: %q, %v", target.cfg.Name, got, err)
			}
		})
	}
}

// TestMemberBackAfterLongAbsenceConverges restarts a member, p, after
// three tombstone TTLs away. While it was away a record was written that
// is older than the TTL by the time p returns, and another was deleted
// and the delete forgotten; p also collects a tombstone of its own when
// it returns. p's full resync must take the old record it never had (the
// refusal of old copies is about keys a member forgot, not about age
// alone), and drop the deleted one; a member that joins fresh takes
// everything too.
func TestMemberBackAfterLongAbsenceConverges(t *testing.T) {
	testutil.CheckNoLeaks(t, leakPatterns...)
	clk := newFakeClock(gcEpoch)
	ctx := context.Background()
	dirs := map[string]string{}
	start := func(name string) *testMember {
		if dirs[name] == "" {
			dirs[name] = filepath.Join(t.TempDir(), name)
		}
		return startMember(t, name, dirs[name], ips.Next(), fakeTime(clk), withSecret(refuseSecret))
	}
	put := func(m *testMember, key string) {
		t.Helper()
		if _, err := m.st.Put(ctx, "users", key, key); err != nil {
			t.Fatal(err)
		}
	}
	del := func(m *testMember, key string) {
		t.Helper()
		if _, err := m.st.Delete(ctx, "users", key); err != nil {
			t.Fatal(err)
		}
	}
	a, b, p := start("a"), start("b"), start("p")

	// 0:00 everyone holds "kept" and "doomed", and p's tombstone of
	// "p-gone".
	put(a, "kept")
	put(a, "doomed")
	del(p, "p-gone")
	ownEvents(t, p, 1)
	mustSync(t, p, a)
	mustSync(t, b, a)
	p.stop()

	// 0:30 a writes "while-away"; 0:40 it deletes "doomed".
	clk.Advance(30 * time.Minute)
	put(a, "while-away")
	clk.Advance(10 * time.Minute)
	del(a, "doomed")
	ownEvents(t, a, 4)
	mustSync(t, b, a)

	// 2:00 a and b collect: "doomed" and "p-gone" are forgotten.
	clk.Set(gcEpoch.Add(2 * time.Hour))
	mustSync(t, a, b)
	a.st.collectOnce()
	b.st.collectOnce()

	// 3:00 p returns and collects its own tombstone first; a member
	// joins fresh.
	clk.Set(gcEpoch.Add(3 * time.Hour))
	p = start("p")
	p.st.collectOnce()
	if p.st.Stats().Collected != 1 {
		t.Fatalf("p collected %d tombstones on its return, want 1", p.st.Stats().Collected)
	}
	fresh := start("fresh")
	res := mustSync(t, p, a)
	if !res.Full || res.Dropped != 1 || res.Pulled != 1 {
		t.Fatalf("p's first round back: %+v, want a full resync that pulls 1 record and drops 1", res)
	}
	mustSync(t, fresh, b)

	all := []*testMember{a, b, p, fresh}
	for range 2 {
		for _, x := range all {
			for _, y := range all {
				if x != y {
					mustSync(t, x, y)
				}
			}
		}
	}
	for _, m := range all {
		for _, key := range []string{"kept", "while-away"} {
			if _, err := m.st.Get("users", key, nil); err != nil {
				t.Errorf("%s lacks %q: %v", m.cfg.Name, key, err)
			}
		}
		for _, key := range []string{"doomed", "p-gone"} {
			if _, err := m.st.Get("users", key, nil); !errors.Is(err, ErrNotFound) {
				t.Errorf("%s holds the deleted %q: %v", m.cfg.Name, key, err)
			}
		}
	}
	if !converged(all) {
		t.Fatal("members did not converge")
	}
	sameContents(t, all)
}
