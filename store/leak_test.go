package store_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"gearbox/internal/testutil"
	"gearbox/store"
	"gearbox/store/storetest"
)

// TestNoGoroutineOutlivesClose runs a cluster through gossip, announced
// pulls and anti-entropy, closes it, and checks that no goroutine of the
// store, serf or memberlist is left.
func TestNoGoroutineOutlivesClose(t *testing.T) {
	before := testutil.Goroutines(storetest.LeakPatterns...)
	ms := storetest.Cluster(t, store.IPs, 3)
	ctx := context.Background()
	for i := range 50 {
		if _, err := ms[i%3].Store.Put(ctx, "apps", fmt.Sprint(i), i); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ms[0].Store.Put(ctx, "apps", "big", strings.Repeat("x", 8<<10)); err != nil {
		t.Fatal(err)
	}
	w := ms[1].Store.Watch()
	defer w.Close()
	testutil.WaitFor(t, 20*time.Second, "convergence", func() bool { return storetest.Converged(ms) })
	running := 0
	for id := range testutil.Goroutines(storetest.LeakPatterns...) {
		if _, ok := before[id]; !ok {
			running++
		}
	}
	// Three members each run at least serf's and the store's loops: the
	// check below would pass vacuously if it matched none of them.
	if running < 3*4 {
		t.Fatalf("only %d store goroutines found while the cluster runs", running)
	}
	// One member leaves gracefully, the others just close.
	if err := ms[2].Store.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		m.Close()
	}
	testutil.WaitGoroutinesEnd(t, before, testutil.LeakTimeout, storetest.LeakPatterns...)
}
