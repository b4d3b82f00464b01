package store

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestWatchIsLosslessUnderABurst writes 10,000 records from several
// goroutines while one watcher keeps up and another reads only after the
// burst. Both must see every write to keys with one writer, in order, and
// the final version of every key.
func TestWatchIsLosslessUnderABurst(t *testing.T) {
	st := newTestStore(t, "m1")
	ctx := context.Background()
	fast, slow := st.Watch("apps"), st.Watch("apps")
	defer fast.Close()
	defer slow.Close()

	const writers, perWriter = 4, 2500
	const ownKeys, sharedKeys = 50, 20
	burstDone := make(chan struct{})
	collect := func(w *Watch, wait <-chan struct{}) <-chan []Record {
		out := make(chan []Record, 1)
		go func() {
			<-wait
			var seen []Record
			for {
				select {
				case <-w.C():
					seen = append(seen, w.Next()...)
				case <-burstDone:
					// Writes are committed and queued before Put returns.
					seen = append(seen, w.Next()...)
					out <- seen
					return
				}
			}
		}()
		return out
	}
	started := make(chan struct{})
	close(started)
	fastSeen := collect(fast, started)
	slowSeen := collect(slow, burstDone)

	var wg sync.WaitGroup
	for g := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWriter {
				// Even writes go to this writer's own keys, odd ones to
				// keys all writers fight over, every tenth to a bucket
				// nobody watches.
				bucket, key := "apps", fmt.Sprintf("w%d-k%02d", g, i/2%ownKeys)
				switch {
				case i%10 == 9:
					bucket = "other"
				case i%2 == 1:
					key = fmt.Sprintf("shared-%02d", i%sharedKeys)
				}
				var err error
				if i%7 == 6 {
					_, err = st.Delete(ctx, bucket, key)
				} else {
					_, err = st.Put(ctx, bucket, key, i)
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(burstDone)

	final := make(map[string]Version)
	for _, r := range mustDump(t, st) {
		if r.Bucket == "apps" {
			final[r.Key] = r.Version
		}
	}
	// Writes to a writer's own keys come one after another, so each one
	// changes the state and must be seen.
	ownWrites := 0
	for i := range perWriter {
		if i%2 == 0 && i%10 != 9 {
			ownWrites++
		}
	}
	for name, ch := range map[string]<-chan []Record{"fast": fastSeen, "slow": slowSeen} {
		var seen []Record
		select {
		case seen = <-ch:
		case <-time.After(30 * time.Second):
			t.Fatalf("%s watcher did not finish", name)
		}
		last := make(map[string]Version)
		own := 0
		for _, r := range seen {
			if r.Bucket != "apps" {
				t.Fatalf("%s watcher on apps saw bucket %q", name, r.Bucket)
			}
			if prev, ok := last[r.Key]; ok && !r.Version.Newer(prev) {
				t.Fatalf("%s watcher saw %s at %v after %v", name, r.Key, r.Version, prev)
			}
			last[r.Key] = r.Version
			if r.Key[0] == 'w' {
				own++
			}
		}
		if own != writers*ownWrites {
			t.Errorf("%s watcher saw %d writes to single-writer keys, want %d", name, own, writers*ownWrites)
		}
		if len(last) != len(final) {
			t.Errorf("%s watcher saw %d keys, the store holds %d", name, len(last), len(final))
		}
		for k, v := range final {
			if last[k] != v {
				t.Errorf("%s watcher's last version of %s is %v, the store holds %v", name, k, last[k], v)
			}
		}
	}
}

func TestWatchCloseEndsItsChannel(t *testing.T) {
	st := newTestStore(t, "m1")
	ctx := context.Background()

	t.Run("ranging reader ends", func(t *testing.T) {
		w := st.Watch()
		done := make(chan int)
		go func() {
			n := 0
			for range w.C() {
				n += len(w.Next())
			}
			done <- n
		}()
		if _, err := st.Put(ctx, "apps", "a", 1); err != nil {
			t.Fatal(err)
		}
		w.Close()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("a reader ranging over C did not end after Close")
		}
		w.Close() // twice is fine
		if _, err := st.Put(ctx, "apps", "b", 1); err != nil {
			t.Fatal(err)
		}
		if got := w.Next(); len(got) != 0 {
			t.Fatalf("closed watch queued %v", got)
		}
	})

	t.Run("close during writes", func(t *testing.T) {
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := st.Put(ctx, "apps", fmt.Sprint(i%10), i); err != nil {
					t.Error(err)
					return
				}
			}
		}()
		defer func() {
			close(stop)
			wg.Wait()
		}()
		for range 200 {
			w := st.Watch("apps")
			<-w.C()
			w.Close()
			waitClosed(t, w)
		}
	})
}

// waitClosed fails the test unless w's channel is closed, after at most
// the one signal that may have been pending.
func waitClosed(t *testing.T, w *Watch) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for range 2 {
		select {
		case _, ok := <-w.C():
			if !ok {
				return
			}
		case <-timeout:
			t.Fatal("watch channel still open after Close")
		}
	}
	t.Fatal("watch channel still signalled after Close")
}
