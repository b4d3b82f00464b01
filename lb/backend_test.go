package lb

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gearbox/internal/testutil"
)

// TestDrainRace races requests against Drain: once the drained channel is
// closed, no request may be counted against the backend any more.
func TestDrainRace(t *testing.T) {
	for range 10 {
		b := &backend{}
		b.healthy.Store(true)
		var drained atomic.Pointer[<-chan struct{}]
		var acquired, late, tries atomic.Int64
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					ch := drained.Load()
					tries.Add(1)
					if b.acquire() {
						acquired.Add(1)
						if ch != nil {
							select {
							case <-*ch:
								late.Add(1)
							default:
							}
						}
						b.release()
					}
				}
			})
		}
		testutil.WaitFor(t, 5*time.Second, "requests", func() bool { return acquired.Load() > 100 })
		ch := b.drain()
		drained.Store(&ch)
		select {
		case <-ch:
		case <-time.After(5 * time.Second):
			t.Fatal("never drained")
		}
		before, triesBefore := acquired.Load(), tries.Load()
		testutil.WaitFor(t, 5*time.Second, "tries after the drain", func() bool { return tries.Load() > triesBefore+1000 })
		close(stop)
		wg.Wait()
		if n := late.Load(); n != 0 || acquired.Load() != before {
			t.Fatalf("%d requests counted after the drain ended (%d after it)", n, acquired.Load()-before)
		}
		if n := b.inflight.Load(); n != 0 {
			t.Fatalf("%d in flight after the test", n)
		}
	}
}
