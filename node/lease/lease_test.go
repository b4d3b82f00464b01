package lease

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"gearbox/internal/testutil"
)

const testTTL = 600 * time.Millisecond

// startServer runs a one-server JetStream on a free loopback port.
func startServer(t *testing.T) *server.Server {
	t.Helper()
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	t.Cleanup(srv.Shutdown)
	return srv
}

// bucket opens the lease bucket over a connection of its own.
func bucket(t *testing.T, srv *server.Server) (*nats.Conn, jetstream.KeyValue) {
	t.Helper()
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "leases", TTL: testTTL, Storage: jetstream.MemoryStorage})
	if err != nil {
		t.Fatal(err)
	}
	return nc, kv
}

// record keeps the holds of every candidate, to check that none overlap.
type record struct {
	mu    sync.Mutex
	holds []hold
}

type hold struct {
	holder     string
	token      uint64
	start, end time.Time
	cause      error
}

func (r *record) run(name string) func(ctx context.Context, token uint64) {
	return func(ctx context.Context, token uint64) {
		h := hold{holder: name, token: token, start: time.Now()}
		<-ctx.Done()
		h.end, h.cause = time.Now(), context.Cause(ctx)
		r.mu.Lock()
		r.holds = append(r.holds, h)
		r.mu.Unlock()
	}
}

func (r *record) snapshot() []hold {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]hold(nil), r.holds...)
}

// check fails t if two holds overlap in time or tokens do not grow.
func (r *record) check(t *testing.T) {
	t.Helper()
	hs := r.snapshot()
	for i := 1; i < len(hs); i++ {
		if !hs[i].start.After(hs[i-1].end) {
			t.Errorf("holds overlap: %s (token %d) until %s, %s (token %d) from %s", hs[i-1].holder, hs[i-1].token,
				hs[i-1].end.Format("15:04:05.000"), hs[i].holder, hs[i].token, hs[i].start.Format("15:04:05.000"))
		}
		if hs[i].token <= hs[i-1].token {
			t.Errorf("token %d of %s is not above %d of %s", hs[i].token, hs[i].holder, hs[i-1].token, hs[i-1].holder)
		}
	}
}

// cand is a candidate running Run on a connection of its own: its
// cancel releases the lease, closing nc cuts it off as a partition would.
type cand struct {
	cancel context.CancelFunc
	nc     *nats.Conn
	done   chan struct{}
}

func TestOneHolderAtATimeAndFastReleaseHandOver(t *testing.T) {
	srv := startServer(t)
	r := &record{}
	holding := map[string]*cand{}
	var mu sync.Mutex
	var active []string
	track := func(name string) func(context.Context, uint64) {
		inner := r.run(name)
		return func(ctx context.Context, token uint64) {
			mu.Lock()
			active = append(active, name)
			mu.Unlock()
			inner(ctx, token)
		}
	}
	for _, name := range []string{"a", "b", "c"} {
		nc, kv := bucket(t, srv)
		ctx, cancel := context.WithCancel(context.Background())
		c := &cand{cancel: cancel, nc: nc, done: make(chan struct{})}
		go func() {
			defer close(c.done)
			Run(ctx, Config{KV: kv, Key: "app1", Holder: name, TTL: testTTL}, track(name))
		}()
		t.Cleanup(func() { cancel(); <-c.done })
		holding[name] = c
	}
	// Release the lease three times: each time another candidate takes
	// it, well before the TTL would have let it.
	for round := 1; round <= 3; round++ {
		var holder string
		testutil.WaitFor(t, 5*time.Second, fmt.Sprintf("round %d: a holder", round), func() bool {
			mu.Lock()
			defer mu.Unlock()
			if len(active) == round {
				holder = active[round-1]
				return true
			}
			return false
		})
		released := time.Now()
		holding[holder].cancel()
		<-holding[holder].done
		delete(holding, holder)
		if round == 3 {
			break
		}
		var took time.Duration
		testutil.WaitFor(t, 5*time.Second, fmt.Sprintf("round %d: another holder after %s released", round, holder), func() bool {
			mu.Lock()
			defer mu.Unlock()
			took = time.Since(released)
			return len(active) > round
		})
		if took >= testTTL {
			t.Errorf("round %d: the lease changed hands %s after its release, not before its TTL (%s)", round, took, testTTL)
		}
	}
	r.check(t)
	for _, h := range r.snapshot() {
		if h.cause != ErrReleased {
			t.Errorf("%s's hold ended with %v, want %v", h.holder, h.cause, ErrReleased)
		}
	}
}

// lateAnswerKV is a bucket whose next renewal, once armed, is applied
// but answered too late: the holder sees an error, the entry moved on.
type lateAnswerKV struct {
	jetstream.KeyValue
	armed chan struct{} // closed: the next Update's answer is lost
	lost  chan struct{} // closed once an answer was lost
	once  sync.Once
}

func (kv *lateAnswerKV) Update(ctx context.Context, key string, value []byte, rev uint64) (uint64, error) {
	n, err := kv.KeyValue.Update(ctx, key, value, rev)
	select {
	case <-kv.armed:
		if err == nil {
			kv.once.Do(func() { close(kv.lost) })
			return 0, context.DeadlineExceeded
		}
	default:
	}
	return n, err
}

// A holder whose last renewal was applied but whose answer it never got
// still releases the lease: the entry is its own, at a revision it did
// not see.
func TestReleaseAfterALateRenewal(t *testing.T) {
	srv := startServer(t)
	_, inner := bucket(t, srv)
	kv := &lateAnswerKV{KeyValue: inner, armed: make(chan struct{}), lost: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	held := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		Run(ctx, Config{KV: kv, Key: "app1", Holder: "a", TTL: testTTL}, func(ctx context.Context, _ uint64) {
			close(held)
			<-ctx.Done()
		})
	}()
	select {
	case <-held:
	case <-time.After(5 * time.Second):
		t.Fatal("the lease was not taken within 5 s")
	}
	close(kv.armed)
	select {
	case <-kv.lost:
	case <-time.After(5 * time.Second):
		t.Fatal("no renewal within 5 s")
	}
	cancel()
	<-done
	gctx, gcancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer gcancel()
	if e, err := inner.Get(gctx, "app1"); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatalf("after the release the lease is %v (%v), want it deleted", e, err)
	}
}

func TestCutOffHolderFencesBeforeAnotherTakesOver(t *testing.T) {
	srv := startServer(t)
	r := &record{}
	var mu sync.Mutex
	starts := map[string]time.Time{}
	cands := map[string]*cand{}
	for _, name := range []string{"a", "b"} {
		nc, kv := bucket(t, srv)
		ctx, cancel := context.WithCancel(context.Background())
		c := &cand{cancel: cancel, nc: nc, done: make(chan struct{})}
		inner := r.run(name)
		go func() {
			defer close(c.done)
			Run(ctx, Config{KV: kv, Key: "app1", Holder: name, TTL: testTTL}, func(ctx context.Context, token uint64) {
				mu.Lock()
				starts[name] = time.Now()
				mu.Unlock()
				inner(ctx, token)
			})
		}()
		t.Cleanup(func() { cancel(); <-c.done })
		cands[name] = c
	}
	var first string
	testutil.WaitFor(t, 5*time.Second, "a holder", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for n := range starts {
			first = n
		}
		return first != ""
	})
	other := map[string]string{"a": "b", "b": "a"}[first]
	// Cut the holder off: it cannot renew, the entry expires, the other
	// takes over, and the holds must not overlap.
	cands[first].nc.Close()
	testutil.WaitFor(t, 5*time.Second, other+" takes over from "+first, func() bool {
		mu.Lock()
		defer mu.Unlock()
		_, ok := starts[other]
		return ok
	})
	hs := r.snapshot()
	if len(hs) != 1 || hs[0].holder != first || hs[0].cause != ErrFenced {
		t.Fatalf("holds ended: %+v; want %s's, fenced", hs, first)
	}
	mu.Lock()
	gap := starts[other].Sub(hs[0].end)
	mu.Unlock()
	if gap <= 0 {
		t.Errorf("%s took the lease %s before %s stopped", other, -gap, first)
	}
	if took := starts[other].Sub(hs[0].start); took > 3*testTTL {
		t.Errorf("%s took over %s after %s's hold began; want within about the TTL (%s)", other, took, first, testTTL)
	}
}

func TestConfigErrors(t *testing.T) {
	srv := startServer(t)
	_, kv := bucket(t, srv)
	for _, c := range []Config{
		{Key: "k", Holder: "h"},
		{KV: kv, Holder: "h"},
		{KV: kv, Key: "k"},
		{KV: kv, Key: "k", Holder: "h", TTL: time.Second, Fence: 2 * time.Second},
	} {
		if err := Run(context.Background(), c, func(context.Context, uint64) {}); err == nil {
			t.Errorf("Run(%+v) = nil, want an error", c)
		}
	}
}
