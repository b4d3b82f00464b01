package store

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

// The benchmarks behind docs/benchmarks.md. Run them with
//
//	go test ./store/ -run '^$' -bench . -benchtime 1x -count 5
//
// Each reports its figures with b.ReportMetric; ns/op is only meaningful
// for BenchmarkPut and BenchmarkBatch.

// lanTimings gives members the production gossip timings (memberlist's LAN
// profile) and the default anti-entropy interval, so that convergence is
// measured as deployed: by gossip, with anti-entropy 10 s away.
func lanTimings(c *Config) {
	c.Profile = ProfileLAN
	c.AntiEntropyInterval = 10 * time.Second
}

// BenchmarkConvergence measures, for clusters of 3, 10 and 30 members, the
// time from a write on a random member until every member has committed
// it. Writes are issued one after another, each at a random moment after
// the previous one has reached everybody, 200 per run.
func BenchmarkConvergence(b *testing.B) {
	for _, n := range []int{3, 10, 30} {
		b.Run(fmt.Sprintf("members=%d", n), func(b *testing.B) {
			ms := startCluster(b, n, lanTimings)
			const writes = 200
			// Each member's watch reports when a key is committed there.
			type seen struct {
				key string
				at  time.Time
			}
			arrivals := make(chan seen, n*writes)
			var wg sync.WaitGroup
			ctx, cancel := context.WithCancel(context.Background())
			for _, m := range ms {
				w := m.st.Watch("bench")
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer w.Close()
					for {
						select {
						case <-ctx.Done():
							return
						case <-w.C():
						}
						now := time.Now()
						for _, r := range w.Next() {
							arrivals <- seen{r.Key, now}
						}
					}
				}()
			}
			defer func() { cancel(); wg.Wait() }()

			lat := make([]time.Duration, 0, writes)
			b.ResetTimer()
			for b.Loop() {
				for i := range writes {
					// Writes come at random moments, not in step with
					// the gossip ticks that the previous write ended on.
					time.Sleep(rand.N(250 * time.Millisecond))
					key := fmt.Sprintf("k%04d", i)
					start := time.Now()
					if _, err := ms[rand.N(n)].st.Put(context.Background(), "bench", key, i); err != nil {
						b.Fatal(err)
					}
					got := 0
					var last time.Time
					timeout := time.After(30 * time.Second)
					for got < n {
						select {
						case s := <-arrivals:
							if s.key != key {
								continue // a late duplicate of an earlier write
							}
							got++
							last = s.at
						case <-timeout:
							b.Fatalf("write %s reached %d of %d members in 30 s", key, got, n)
						}
					}
					lat = append(lat, last.Sub(start))
				}
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(pct(lat, 50).Milliseconds()), "p50-ms")
			b.ReportMetric(float64(pct(lat, 99).Milliseconds()), "p99-ms")
			b.ReportMetric(float64(lat[len(lat)-1].Milliseconds()), "max-ms")
		})
	}
}

func pct(sorted []time.Duration, p int) time.Duration {
	i := (len(sorted)*p + 99) / 100
	if i > 0 {
		i--
	}
	return sorted[i]
}

// BenchmarkAntiEntropyCatchUp measures one anti-entropy round that brings
// a member which missed 10,000 records (of 11,000) up to date with a peer.
func BenchmarkAntiEntropyCatchUp(b *testing.B) {
	const shared, missed = 1000, 10000
	ctx := context.Background()
	var total time.Duration
	for b.Loop() {
		b.StopTimer()
		src := startMember(b, "src", filepath.Join(b.TempDir(), "src"), ips.Next())
		dst := startMember(b, "dst", filepath.Join(b.TempDir(), "dst"), ips.Next())
		fill := func(st *Store, from, to int) {
			for lo := from; lo < to; lo += 1000 {
				ops := make([]Op, 0, 1000)
				for i := lo; i < min(lo+1000, to); i++ {
					ops = append(ops, Op{Bucket: fmt.Sprintf("b%d", i%7), Key: fmt.Sprintf("key-%06d", i),
						Value: map[string]any{"i": i, "name": "gear", "state": "started", "node": "node-17"}})
				}
				if _, err := st.Batch(ctx, ops); err != nil {
					b.Fatal(err)
				}
			}
		}
		fill(src.st, 0, shared+missed)
		recs, err := src.st.Dump()
		if err != nil {
			b.Fatal(err)
		}
		if _, err := dst.st.Merge(recs[:shared]); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		res, err := dst.st.SyncWith(ctx, src.addr)
		took := time.Since(start)
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		if res.Pulled != missed || dst.st.Digest() != src.st.Digest() {
			b.Fatalf("catch-up pulled %d records, want %d; digests equal: %v", res.Pulled, missed, dst.st.Digest() == src.st.Digest())
		}
		total += took
		src.stop()
		dst.stop()
		b.StartTimer()
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/catch-up")
}

// BenchmarkWrite measures write throughput of one started member with
// fsync on (the production setting): one Put per record, and Batches of
// 10 and 100 records.
func BenchmarkWrite(b *testing.B) {
	for _, size := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			m := startMember(b, "w", filepath.Join(b.TempDir(), "w"), ips.Next(), func(c *Config) { c.NoSync = false })
			ctx := context.Background()
			ops := make([]Op, size)
			n := 0
			for b.Loop() {
				for i := range ops {
					ops[i] = Op{Bucket: "gears", Key: fmt.Sprintf("gear-%08d", n), Value: map[string]any{"state": "started", "n": n}}
					n++
				}
				if _, err := m.st.Batch(ctx, ops); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
		})
	}
}
