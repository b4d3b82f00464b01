package store

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"gearbox/internal/testutil"
)

func TestClusterConvergesAfterWritesEverywhere(t *testing.T) {
	ms := startCluster(t, 5)
	ctx := context.Background()
	var wg sync.WaitGroup
	for i, m := range ms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 200; j++ {
				if _, err := m.st.Put(ctx, "apps", fmt.Sprintf("m%d-k%03d", i, j), map[string]int{"n": j}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	testutil.WaitFor(t, 30*time.Second, "digests to converge", func() bool { return converged(ms) })
	sameContents(t, ms)
	for _, m := range ms {
		recs, err := m.st.List("apps")
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != 1000 {
			t.Fatalf("%s lists %d apps, want 1000", m.cfg.Name, len(recs))
		}
	}
}

func TestConcurrentWritersAgreeOnWinner(t *testing.T) {
	ms := startCluster(t, 5)
	ctx := context.Background()
	for round := 0; round < 20; round++ {
		key := fmt.Sprintf("contended-%d", round)
		var wg sync.WaitGroup
		versions := make([]Version, 2)
		for i, m := range ms[:2] {
			wg.Add(1)
			go func() {
				defer wg.Done()
				v, err := m.st.Put(ctx, "apps", key, m.cfg.Name)
				if err != nil {
					t.Error(err)
				}
				versions[i] = v
			}()
		}
		wg.Wait()
		winner, want := versions[0], ms[0].cfg.Name
		if versions[1].Newer(winner) {
			winner, want = versions[1], ms[1].cfg.Name
		}
		testutil.WaitFor(t, 20*time.Second, "every member to hold the newer write of "+key, func() bool {
			for _, m := range ms {
				var got string
				v, err := m.st.Get("apps", key, &got)
				if err != nil || v != winner || got != want {
					return false
				}
			}
			return true
		})
	}
}

func TestDeletePropagatesAndStaysDeleted(t *testing.T) {
	ms := startCluster(t, 5)
	ctx := context.Background()
	if _, err := ms[0].st.Put(ctx, "domains", "dev", "v1"); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "put to spread", func() bool {
		for _, m := range ms {
			if _, err := m.st.Get("domains", "dev", nil); err != nil {
				return false
			}
		}
		return true
	})
	if _, err := ms[3].st.Delete(ctx, "domains", "dev"); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "delete to spread", func() bool {
		for _, m := range ms {
			if _, err := m.st.Get("domains", "dev", nil); err == nil {
				return false
			}
		}
		return converged(ms)
	})
	// Several anti-entropy rounds later nobody has resurrected the record.
	for _, m := range ms {
		before := m.st.Stats().SyncRounds
		testutil.WaitFor(t, 10*time.Second, "two more anti-entropy rounds", func() bool { return m.st.Stats().SyncRounds >= before+2 })
	}
	for _, m := range ms {
		if _, err := m.st.Get("domains", "dev", nil); err == nil {
			t.Fatalf("%s resurrected the deleted record", m.cfg.Name)
		}
	}
}

func TestStoppedMemberCatchesUpByAntiEntropy(t *testing.T) {
	ms := startCluster(t, 3)
	ctx := context.Background()
	down := ms[2]
	dir, ip := down.cfg.DataDir, down.cfg.BindAddr
	if _, err := ms[0].st.Put(ctx, "apps", "before", 1); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "first write everywhere", func() bool { return converged(ms) })
	down.stop()
	testutil.WaitFor(t, 20*time.Second, "m02 seen failed", func() bool {
		for _, m := range ms[0].st.Members() {
			if m.Name == "m02" {
				return m.Status == StatusFailed
			}
		}
		return false
	})
	// 600 writes: more than serf's event buffer (512), so no replay of
	// gossip could carry them all.
	for i := 0; i < 600; i++ {
		if _, err := ms[i%2].st.Put(ctx, "apps", fmt.Sprintf("while-down-%03d", i), i); err != nil {
			t.Fatal(err)
		}
	}
	testutil.WaitFor(t, 20*time.Second, "live members to converge", func() bool { return converged(ms[:2]) })

	back := startMember(t, "m02", dir, ip)
	if got := back.st.Len(); got != 1 {
		t.Fatalf("restarted member holds %d records from its data dir, want 1", got)
	}
	if _, err := back.st.Join([]string{ms[0].gossipAddr()}); err != nil {
		t.Fatal(err)
	}
	all := []*testMember{ms[0], ms[1], back}
	testutil.WaitFor(t, 20*time.Second, "restarted member to converge", func() bool { return converged(all) })
	sameContents(t, all)
	// A record or two may still reach it by gossip (a rebroadcast in
	// flight at the join); anti-entropy must have pulled more than the
	// most that gossip's buffer could have carried.
	if st := back.st.Stats(); st.SyncPulled <= 600-512 {
		t.Fatalf("restarted member pulled %d records by anti-entropy (and received %d events), want more than %d",
			st.SyncPulled, st.EventsReceived, 600-512)
	}
}

func TestLostGossipIsRepaired(t *testing.T) {
	ms := startCluster(t, 3)
	// Records merged into one member without any broadcast: the others can
	// only learn them through anti-entropy.
	var recs []Record
	clock := NewClock("elsewhere", nil)
	for i := 0; i < 1000; i++ {
		recs = append(recs, Record{Bucket: "gears", Key: fmt.Sprintf("g%04d", i), Value: []byte(`{"ok":true}`), Version: clock.Now()})
	}
	if _, err := ms[1].st.Merge(recs); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 20*time.Second, "anti-entropy to spread unannounced records", func() bool { return converged(ms) })
	sameContents(t, ms)
}

func TestLargeRecordIsAnnouncedAndPulled(t *testing.T) {
	ms := startCluster(t, 3)
	big := strings.Repeat("x", 64<<10)
	if _, err := ms[0].st.Put(context.Background(), "deployments", "big", big); err != nil {
		t.Fatal(err)
	}
	if ms[0].st.Stats().Announced != 1 {
		t.Fatalf("a 64 KiB record was not announced: %+v", ms[0].st.Stats())
	}
	testutil.WaitFor(t, 10*time.Second, "large record everywhere", func() bool {
		for _, m := range ms {
			var got string
			if _, err := m.st.Get("deployments", "big", &got); err != nil || got != big {
				return false
			}
		}
		return true
	})
}

func TestWatchSeesLocalAndRemoteChanges(t *testing.T) {
	ms := startCluster(t, 2)
	w := ms[1].st.Watch("apps")
	defer w.Close()
	ctx := context.Background()
	if _, err := ms[0].st.Put(ctx, "apps", "a", 1); err != nil {
		t.Fatal(err)
	}
	if _, err := ms[0].st.Put(ctx, "other", "x", 1); err != nil {
		t.Fatal(err)
	}
	var seen []Record
	deadline := time.After(10 * time.Second)
	next := func(want int) {
		t.Helper()
		for len(seen) < want {
			select {
			case <-w.C():
				seen = append(seen, w.Next()...)
			case <-deadline:
				t.Fatalf("watch saw %d changes, want %d: %+v", len(seen), want, seen)
			}
		}
	}
	// Wait for the remote put before deleting: a delete issued before the
	// put arrives races it, and whichever has the older version is never
	// applied here, so the watch would see one change, not two.
	next(1)
	if _, err := ms[1].st.Delete(ctx, "apps", "a"); err != nil {
		t.Fatal(err)
	}
	next(2)
	for _, r := range seen {
		if r.Bucket != "apps" {
			t.Fatalf("watch on apps saw bucket %q", r.Bucket)
		}
	}
	if !seen[len(seen)-1].Deleted {
		t.Fatalf("last change seen is not the delete: %+v", seen)
	}
}

// A member that died is forced out by RemoveMember: every other member
// forgets it. An alive member is refused.
func TestRemoveMemberForgetsADeadMember(t *testing.T) {
	ms := startCluster(t, 3)
	if err := ms[0].st.RemoveMember("m01"); err == nil || !strings.Contains(err.Error(), "alive") {
		t.Errorf("remove an alive member: %v, want refused", err)
	}
	ms[2].stop()
	status := func(m *testMember, name string) string {
		for _, mm := range m.st.Members() {
			if mm.Name == name {
				return mm.Status
			}
		}
		return "absent"
	}
	testutil.WaitFor(t, 30*time.Second, "m02 failed on m00", func() bool { return status(ms[0], "m02") == StatusFailed })
	if err := ms[0].st.RemoveMember("m02"); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 20*time.Second, "m02 forgotten by m00 and m01", func() bool {
		return status(ms[0], "m02") == "absent" && status(ms[1], "m02") == "absent"
	}, func() string { return status(ms[0], "m02") + " " + status(ms[1], "m02") })
	if err := ms[0].st.RemoveMember("nobody"); err != nil {
		t.Errorf("remove an unknown member: %v", err)
	}
}
