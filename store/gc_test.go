package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"gearbox/internal/testutil"
)

var gcEpoch = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

// fakeTime makes a member use clk and a one-hour tombstone TTL. Its
// background anti-entropy finds no peer (tests do not join these members),
// and tombstone collection runs only when the test calls collectOnce.
func fakeTime(clk *fakeClock) memberOpts {
	return func(c *Config) {
		c.Now = clk.Now
		c.TombstoneTTL = time.Hour
		c.GCInterval = 24 * time.Hour
		c.AntiEntropyInterval = time.Hour
	}
}

func TestTombstonesAreCollectedAfterTTL(t *testing.T) {
	clk := newFakeClock(gcEpoch)
	st := newTestStore(t, "m1", fakeTime(clk))
	ctx := context.Background()
	mustPut := func(key string) {
		t.Helper()
		if _, err := st.Put(ctx, "apps", key, key); err != nil {
			t.Fatal(err)
		}
	}
	mustDelete := func(key string) {
		t.Helper()
		if _, err := st.Delete(ctx, "apps", key); err != nil {
			t.Fatal(err)
		}
	}
	mustPut("early")
	mustDelete("early") // deleted at 0:00
	mustPut("live")     // never deleted
	clk.Advance(30 * time.Minute)
	mustPut("late")
	mustDelete("late")         // deleted at 0:30
	mustDelete("never-stored") // a delete of a missing key leaves a tombstone too
	w := st.Watch()
	defer w.Close()

	tests := []struct {
		at        time.Duration // since the epoch
		collected uint64        // total so far
		held      []string      // keys held afterwards, tombstones included
	}{
		{59 * time.Minute, 0, []string{"early", "late", "live", "never-stored"}},
		{time.Hour, 0, []string{"early", "late", "live", "never-stored"}},
		{time.Hour + time.Millisecond, 1, []string{"late", "live", "never-stored"}},
		{90*time.Minute + time.Millisecond, 3, []string{"live"}},
		{100 * time.Hour, 3, []string{"live"}},
	}
	for _, tt := range tests {
		clk.Set(gcEpoch.Add(tt.at))
		st.collectOnce()
		if got := st.Stats().Collected; got != tt.collected {
			t.Fatalf("at +%s: collected %d tombstones, want %d", tt.at, got, tt.collected)
		}
		var held []string
		for _, r := range mustDump(t, st) {
			held = append(held, r.Key)
		}
		if fmt.Sprint(held) != fmt.Sprint(tt.held) {
			t.Fatalf("at +%s: store holds %v, want %v", tt.at, held, tt.held)
		}
	}
	// The digest tree forgot the tombstones too.
	rebuilt := newTestStore(t, "rebuilt", fakeTime(clk))
	mustMerge(t, rebuilt, mustDump(t, st))
	if st.Digest() != rebuilt.Digest() {
		t.Fatal("digest after collection does not match the records held")
	}
	// Watchers saw the deletes when they happened; collection is not news.
	if got := w.Next(); len(got) != 0 {
		t.Fatalf("collection notified watchers: %+v", got)
	}
}

// gcCluster is three members that share a fake clock and are not joined:
// anti-entropy happens only when the test calls sync.
type gcCluster struct {
	t       *testing.T
	clk     *fakeClock
	a, b, p *testMember
}

func newGCCluster(t *testing.T) *gcCluster {
	testutil.CheckNoLeaks(t, leakPatterns...)
	clk := newFakeClock(gcEpoch)
	start := func(name string) *testMember {
		return startMember(t, name, filepath.Join(t.TempDir(), name), ips.Next(), fakeTime(clk))
	}
	return &gcCluster{t: t, clk: clk, a: start("a"), b: start("b"), p: start("p")}
}

func (c *gcCluster) sync(from, to *testMember) SyncResult {
	c.t.Helper()
	res, err := from.st.SyncWith(context.Background(), to.addr)
	if err != nil {
		c.t.Fatalf("%s syncs with %s: %v", from.cfg.Name, to.cfg.Name, err)
	}
	return res
}

func (c *gcCluster) all() []*testMember { return []*testMember{c.a, c.b, c.p} }

// TestCollectedDeleteDoesNotResurrect covers a member, p, that was away
// for longer than the tombstone TTL and still holds a record the others
// deleted and then forgot. Whichever side syncs first, the record must
// stay deleted, and p's full resync drops it.
func TestCollectedDeleteDoesNotResurrect(t *testing.T) {
	tests := []struct {
		name string
		// collectFirst: a and b collect the tombstone before p returns.
		collectFirst bool
		// pFirst: p syncs before the others sync with it.
		pFirst bool
	}{
		{"returning member syncs first", true, true},
		{"others sync with the returning member first", true, false},
		{"tombstone not yet collected when the member returns", false, true},
		{"tombstone not yet collected, others first", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newGCCluster(t)
			ctx := context.Background()
			a, b, p := c.a, c.b, c.p

			// 0:00 everyone holds "doomed" and "kept".
			if _, err := a.st.Put(ctx, "apps", "doomed", "v1"); err != nil {
				t.Fatal(err)
			}
			if _, err := a.st.Put(ctx, "apps", "kept", "v1"); err != nil {
				t.Fatal(err)
			}
			c.sync(p, a)
			c.sync(b, a)
			c.sync(a, b)
			if _, err := p.st.Get("apps", "doomed", nil); err != nil {
				t.Fatalf("p did not get the record before going away: %v", err)
			}

			// 0:01 a deletes it; b hears of it, p is away.
			c.clk.Advance(time.Minute)
			if _, err := a.st.Delete(ctx, "apps", "doomed"); err != nil {
				t.Fatal(err)
			}
			c.sync(b, a)

			// 2:01 a and b are in step; their tombstone is past the TTL.
			c.clk.Advance(2 * time.Hour)
			c.sync(a, b)
			c.sync(b, a)
			if tt.collectFirst {
				a.st.collectOnce()
				b.st.collectOnce()
				if a.st.Len() != 1 || b.st.Len() != 1 {
					t.Fatalf("tombstone not collected: a holds %d records, b %d", a.st.Len(), b.st.Len())
				}
			}

			// p comes back, writes something new, and syncs, or is synced
			// with.
			w := p.st.Watch("apps")
			defer w.Close()
			if _, err := p.st.Put(ctx, "apps", "fresh", "from p"); err != nil {
				t.Fatal(err)
			}
			w.Next()
			if tt.pFirst {
				res := c.sync(p, a)
				if !res.Full {
					t.Fatalf("p's first round after 2 h away was not a full resync: %+v", res)
				}
				if tt.collectFirst && res.Dropped != 1 {
					t.Fatalf("full resync dropped %d records, want 1: %+v", res.Dropped, res)
				}
			} else {
				c.sync(a, p)
				c.sync(b, p)
				for _, m := range []*testMember{a, b} {
					if _, err := m.st.Get("apps", "doomed", nil); !errors.Is(err, ErrNotFound) {
						t.Fatalf("%s took the deleted record back from p: %v", m.cfg.Name, err)
					}
				}
				res := c.sync(p, b)
				if !res.Full {
					t.Fatalf("p's first own round after 2 h away was not a full resync: %+v", res)
				}
			}
			// p's watch hears that the record is gone.
			var gone bool
			for _, r := range w.Next() {
				if r.Key == "doomed" {
					gone = r.Deleted
				}
			}
			if !gone {
				t.Fatal("p's watch did not see the record go")
			}

			// Everyone collects, then several rounds in every direction.
			for _, m := range c.all() {
				m.st.collectOnce()
			}
			for range 2 {
				for _, x := range c.all() {
					for _, y := range c.all() {
						if x != y {
							c.sync(x, y)
						}
					}
				}
			}
			for _, m := range c.all() {
				if _, err := m.st.Get("apps", "doomed", nil); !errors.Is(err, ErrNotFound) {
					t.Errorf("%s holds the deleted record: %v", m.cfg.Name, err)
				}
				for _, key := range []string{"kept", "fresh"} {
					if _, err := m.st.Get("apps", key, nil); err != nil {
						t.Errorf("%s lost %q: %v", m.cfg.Name, key, err)
					}
				}
			}
			if !converged(c.all()) {
				t.Fatal("members did not converge")
			}
			sameContents(t, c.all())
		})
	}
}

// TestFullResyncTrustsOnlyAPeerInStep checks what a member back after more
// than the TTL does with records its peer lacks: with a peer that synced
// recently it drops old ones (the cluster deleted and forgot them) and
// pushes new ones; with a peer that has never synced, or synced only with
// the returning member itself, it drops nothing.
func TestFullResyncTrustsOnlyAPeerInStep(t *testing.T) {
	const (
		recently = iota
		never
		onlyWithStale
	)
	tests := []struct {
		name        string
		peerSynced  int
		wantDropped int
	}{
		{"peer in step", recently, 2},
		{"peer never synced", never, 0},
		{"peer synced only with the returning member", onlyWithStale, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newGCCluster(t)
			ctx := context.Background()
			stale, peer := c.p, c.a
			// 0:00 stale holds two records nobody else has, and syncs.
			for _, k := range []string{"old-1", "old-2"} {
				if _, err := stale.st.Put(ctx, "gears", k, 1); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := stale.st.Delete(ctx, "gears", "old-tombstone"); err != nil {
				t.Fatal(err)
			}
			c.sync(stale, c.b)
			if err := c.b.st.Close(); err != nil { // b and its copy go away
				t.Fatal(err)
			}
			// 3:00 stale returns and writes; peer has synced recently or never.
			c.clk.Advance(3 * time.Hour)
			if _, err := stale.st.Put(ctx, "gears", "new", 1); err != nil {
				t.Fatal(err)
			}
			switch tt.peerSynced {
			case recently:
				// As after a round with members not part of this test.
				if err := peer.st.db.setLastSync(c.clk.Now().Add(-time.Minute)); err != nil {
					t.Fatal(err)
				}
			case onlyWithStale:
				res := c.sync(peer, stale)
				if res.Pulled != 1 {
					t.Fatalf("peer pulled %d records from the stale member, want only the new one: %+v", res.Pulled, res)
				}
			}
			w := stale.st.Watch("gears")
			defer w.Close()
			res := c.sync(stale, peer)
			if !res.Full || res.Dropped != tt.wantDropped {
				t.Fatalf("full resync: %+v, want Full and %d dropped", res, tt.wantDropped)
			}
			var deleted []string
			for _, r := range w.Next() {
				if !r.Deleted {
					t.Fatalf("watch saw %+v, want only deletes", r)
				}
				deleted = append(deleted, r.Key)
			}
			if len(deleted) != tt.wantDropped {
				t.Fatalf("watch saw deletes of %v, want %d", deleted, tt.wantDropped)
			}
			if _, err := peer.st.Get("gears", "new", nil); err != nil {
				t.Fatalf("record written after the return was not pushed: %v", err)
			}
			for _, k := range []string{"old-1", "old-2"} {
				_, err := stale.st.Get("gears", k, nil)
				if kept := err == nil; kept != (tt.wantDropped == 0) {
					t.Errorf("%s: kept=%v (%v), want kept=%v", k, kept, err, tt.wantDropped == 0)
				}
			}
			if !stale.st.LastSync().Equal(c.clk.Now().Truncate(time.Millisecond)) {
				t.Fatalf("LastSync %v after the full resync, want %v", stale.st.LastSync(), c.clk.Now())
			}
		})
	}
}
