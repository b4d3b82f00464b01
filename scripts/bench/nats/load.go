//go:build linux

package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// load is what one measurement does, the same on every side.
type load struct {
	// Msgs messages of Size bytes go through the queue; each producer
	// keeps at most Window publishes waiting for their acks.
	Msgs, Size, Window int
	// Batch is how many messages each consumer asks for at a time.
	Batch int
	// PacedMsgs messages go through the queue at PacedRate messages/s
	// (all producers together) for the latency below saturation.
	PacedMsgs int
	PacedRate float64
	// KVWorkers per client each make KVPuts puts, then KVGets gets, of
	// values of Size bytes over KVKeys keys.
	KVWorkers, KVPuts, KVGets, KVKeys int
}

// result is one measurement on one side.
type result struct {
	ops     int
	elapsed time.Duration
	lat     []time.Duration // sorted
	cpu     time.Duration   // CPU the side's servers used meanwhile
}

func (r result) rate() float64 { return float64(r.ops) / r.elapsed.Seconds() }

// pct returns the p-th percentile (0 to 100) of the latencies, nearest
// rank.
func (r result) pct(p float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	i := int(float64(len(r.lat))*p/100+0.5) - 1
	return r.lat[min(max(i, 0), len(r.lat)-1)]
}

// cpuPerOp is the servers' CPU time per operation.
func (r result) cpuPerOp() time.Duration { return r.cpu / time.Duration(max(r.ops, 1)) }

// The queue: a work-queue stream with one durable pull consumer shared by
// the consumers, as README's "Cluster services" describes an app's queue.
const (
	queueStream   = "benchq"
	queueSubject  = "benchq.work"
	queueConsumer = "workers"
)

// runQueue sends n messages through the queue: a producer on each server
// publishes its share with JetStream's asynchronous publish (at most
// l.Window waiting for acks), a consumer on each server fetches from the
// shared durable consumer and acks each message. The time is from the
// first publish to the last message's arrival; each message's latency is
// from just before its publish call to its arrival at a consumer. With
// rate 0 the producers publish as fast as the window lets them, so that
// the latencies are mostly the time messages wait in the stream; with a
// rate (messages/s, all producers together) they keep to it.
func runQueue(ctx context.Context, c *cluster, l load, n int, rate float64) (result, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	js0, err := jetstream.New(c.pub[0])
	if err != nil {
		return result{}, err
	}
	js0.DeleteStream(ctx, queueStream) // left by an interrupted run
	if _, err := js0.CreateStream(ctx, jetstream.StreamConfig{Name: queueStream, Subjects: []string{queueSubject},
		Retention: jetstream.WorkQueuePolicy, Storage: jetstream.FileStorage, Replicas: 3}); err != nil {
		return result{}, fmt.Errorf("create stream: %w", err)
	}
	defer func() {
		dctx, dcancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer dcancel()
		js0.DeleteStream(dctx, queueStream)
	}()
	if _, err := js0.CreateOrUpdateConsumer(ctx, queueStream, jetstream.ConsumerConfig{Durable: queueConsumer,
		AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
		return result{}, fmt.Errorf("create consumer: %w", err)
	}

	rec := &receiver{seen: make([]bool, n), lat: make([]time.Duration, 0, n), done: make(chan struct{})}
	for _, nc := range c.sub {
		js, err := jetstream.New(nc)
		if err != nil {
			return result{}, err
		}
		cons, err := js.Consumer(ctx, queueStream, queueConsumer)
		if err != nil {
			return result{}, fmt.Errorf("look up consumer: %w", err)
		}
		cc, err := cons.Consume(rec.handle, jetstream.PullMaxMessages(l.Batch))
		if err != nil {
			return result{}, fmt.Errorf("consume: %w", err)
		}
		defer cc.Stop()
	}

	var pubErrs atomic.Int64
	var firstErr error
	var errOnce sync.Once
	fail := func(err error) {
		pubErrs.Add(1)
		errOnce.Do(func() { firstErr = err })
	}
	cpu0 := cpuTime(c.procs)
	start := time.Now()
	var wg sync.WaitGroup
	next := 0
	for i, nc := range c.pub {
		count := n / len(c.pub)
		if i < n%len(c.pub) {
			count++
		}
		first := next
		next += count
		wg.Go(func() {
			js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(l.Window),
				jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, _ *nats.Msg, err error) { fail(err) }))
			if err != nil {
				fail(err)
				return
			}
			var every time.Duration // between two publishes of this producer
			if rate > 0 {
				every = time.Duration(float64(time.Second) * float64(len(c.pub)) / rate)
			}
			offset := every * time.Duration(i) / time.Duration(len(c.pub))
			for k := range count {
				if every > 0 {
					if d := time.Until(start.Add(offset + every*time.Duration(k))); d > 0 {
						time.Sleep(d)
					}
				}
				b := make([]byte, max(l.Size, 16))
				binary.LittleEndian.PutUint64(b, uint64(time.Now().UnixNano()))
				binary.LittleEndian.PutUint64(b[8:], uint64(first+k))
				if _, err := js.PublishAsync(queueSubject, b); err != nil {
					fail(err)
				}
			}
			select {
			case <-js.PublishAsyncComplete():
			case <-ctx.Done():
				fail(ctx.Err())
			}
		})
	}
	wg.Wait()
	if e := pubErrs.Load(); e > 0 {
		return result{}, fmt.Errorf("%d publishes failed, the first: %w", e, firstErr)
	}
	select {
	case <-rec.done:
	case <-ctx.Done():
		rec.mu.Lock()
		defer rec.mu.Unlock()
		return result{}, fmt.Errorf("%d of %d messages consumed: %w", rec.unique, n, ctx.Err())
	}
	elapsed := time.Since(start)
	cpu := cpuTime(c.procs) - cpu0
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.dups > 0 {
		logf("%s: %d messages delivered more than once", c.name, rec.dups)
	}
	slices.Sort(rec.lat)
	return result{ops: n, elapsed: elapsed, lat: rec.lat, cpu: cpu}, nil
}

// receiver collects the messages the consumers get.
type receiver struct {
	mu     sync.Mutex
	seen   []bool
	unique int
	dups   int
	lat    []time.Duration
	done   chan struct{}
}

func (r *receiver) handle(m jetstream.Msg) {
	now := time.Now().UnixNano()
	m.Ack()
	d := m.Data()
	if len(d) < 16 {
		return
	}
	sent, idx := int64(binary.LittleEndian.Uint64(d)), binary.LittleEndian.Uint64(d[8:])
	r.mu.Lock()
	defer r.mu.Unlock()
	if idx >= uint64(len(r.seen)) || r.seen[idx] {
		r.dups++
		return
	}
	r.seen[idx] = true
	r.unique++
	r.lat = append(r.lat, time.Duration(now-sent))
	if r.unique == len(r.seen) {
		close(r.done)
	}
}

// The cache: a key-value bucket.
const kvBucket = "benchkv"

// runKV creates an R3 bucket and measures puts, then gets (direct gets,
// the client's default for buckets), from a client on each server, each
// with l.KVWorkers workers making one call at a time.
func runKV(ctx context.Context, c *cluster, l load, puts, gets int) (put, get result, err error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	js0, err := jetstream.New(c.pub[0])
	if err != nil {
		return result{}, result{}, err
	}
	js0.DeleteKeyValue(ctx, kvBucket)
	if _, err := js0.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: kvBucket, Replicas: 3,
		Storage: jetstream.FileStorage, History: 1}); err != nil {
		return result{}, result{}, fmt.Errorf("create bucket: %w", err)
	}
	defer func() {
		dctx, dcancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer dcancel()
		js0.DeleteKeyValue(dctx, kvBucket)
	}()
	var kvs []jetstream.KeyValue
	for _, nc := range c.pub {
		js, err := jetstream.New(nc)
		if err != nil {
			return result{}, result{}, err
		}
		kv, err := js.KeyValue(ctx, kvBucket)
		if err != nil {
			return result{}, result{}, fmt.Errorf("open bucket: %w", err)
		}
		kvs = append(kvs, kv)
	}
	// As many keys as the puts write, so that every get finds its key.
	keys := make([]string, min(l.KVKeys, len(kvs)*l.KVWorkers*puts))
	for i := range keys {
		keys[i] = fmt.Sprintf("key.%d", i)
	}
	value := make([]byte, l.Size)
	put, err = kvPhase(ctx, c, kvs, l.KVWorkers, puts, keys, func(ctx context.Context, kv jetstream.KeyValue, key string) error {
		_, err := kv.Put(ctx, key, value)
		return err
	})
	if err != nil {
		return result{}, result{}, fmt.Errorf("put: %w", err)
	}
	get, err = kvPhase(ctx, c, kvs, l.KVWorkers, gets, keys, func(ctx context.Context, kv jetstream.KeyValue, key string) error {
		_, err := kv.Get(ctx, key)
		return err
	})
	if err != nil {
		return put, result{}, fmt.Errorf("get: %w", err)
	}
	return put, get, nil
}

// kvPhase runs op perWorker times in each of workers goroutines per
// client. Worker g of all G takes keys g, g+G, g+2G, ... (modulo the
// number of keys), so that the puts write every key before the gets.
func kvPhase(ctx context.Context, c *cluster, kvs []jetstream.KeyValue, workers, perWorker int, keys []string,
	op func(context.Context, jetstream.KeyValue, string) error) (result, error) {
	total := len(kvs) * workers
	lats := make([][]time.Duration, total)
	errs := make([]error, total)
	cpu0 := cpuTime(c.procs)
	start := time.Now()
	var wg sync.WaitGroup
	for ci, kv := range kvs {
		for w := range workers {
			g := ci*workers + w
			wg.Go(func() {
				lat := make([]time.Duration, 0, perWorker)
				for j := range perWorker {
					t := time.Now()
					if err := op(ctx, kv, keys[(g+j*total)%len(keys)]); err != nil {
						errs[g] = err
						return
					}
					lat = append(lat, time.Since(t))
				}
				lats[g] = lat
			})
		}
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu := cpuTime(c.procs) - cpu0
	if err := errors.Join(errs...); err != nil {
		return result{}, err
	}
	all := slices.Concat(lats...)
	slices.Sort(all)
	return result{ops: len(all), elapsed: elapsed, lat: all, cpu: cpu}, nil
}
