package store

import (
	"encoding/binary"
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
)

var mergeSeed = flag.Uint64("merge.seed", 0, "seed for TestMergeProperties (0: random)")

// writeGen produces write sets as several members would: each member has
// its own clock, wall clocks are coarse so that different members issue
// versions with equal wall times, and members sometimes observe each
// other's versions, so that later writes causally follow earlier ones.
type writeGen struct {
	rnd     *rand.Rand
	clocks  []*Clock
	buckets []string
	keys    []string
}

func newWriteGen(rnd *rand.Rand) *writeGen {
	g := &writeGen{rnd: rnd, buckets: []string{"apps", "gears"}, keys: []string{"k0", "k1", "k2", "k3", "k4"}}
	for i := range 4 {
		// Wall time wanders over a few milliseconds, backwards too.
		g.clocks = append(g.clocks, NewClock(fmt.Sprintf("m%d", i), func() time.Time {
			return time.UnixMilli(1_000 + rnd.Int64N(3))
		}))
	}
	return g
}

func (g *writeGen) writes(n int) []Record {
	out := make([]Record, 0, n)
	for range n {
		c := g.clocks[g.rnd.IntN(len(g.clocks))]
		if len(out) > 0 && g.rnd.IntN(3) == 0 {
			c.Observe(out[g.rnd.IntN(len(out))].Version)
		}
		r := Record{
			Bucket:  g.buckets[g.rnd.IntN(len(g.buckets))],
			Key:     g.keys[g.rnd.IntN(len(g.keys))],
			Version: c.Now(),
		}
		if g.rnd.IntN(4) == 0 {
			r.Deleted = true
		} else {
			r.Value = []byte(`{"n":` + strconv.Itoa(g.rnd.IntN(1000)) + `}`)
		}
		out = append(out, r)
	}
	return out
}

// lww is the reference model of merge: per key, the record with the
// newest version.
func lww(recs []Record) []Record {
	m := make(map[string]Record)
	for _, r := range recs {
		id := Ref{r.Bucket, r.Key}.id()
		if cur, ok := m[id]; !ok || r.Version.Newer(cur.Version) {
			if r.Deleted {
				r.Value = nil
			}
			m[id] = r
		}
	}
	out := make([]Record, 0, len(m))
	for _, r := range m {
		out = append(out, r)
	}
	sortRecords(out)
	return out
}

// newTestStore opens a store on a temporary directory without starting
// it: no network, Merge and the local API only. It is closed in cleanup.
func newTestStore(t testing.TB, name string, opts ...memberOpts) *Store {
	t.Helper()
	cfg := LocalConfig(name, t.TempDir(), "127.0.0.1")
	cfg.Logger = testLogger(t)
	for _, o := range opts {
		o(&cfg)
	}
	st, err := New(cfg)
	if err != nil {
		t.Fatalf("new store %s: %v", name, err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func mustMerge(t testing.TB, st *Store, recs []Record) []Record {
	t.Helper()
	applied, err := st.Merge(recs)
	if err != nil {
		t.Fatalf("merge into %s: %v", st.Name(), err)
	}
	return applied
}

func mustDump(t testing.TB, st *Store) []Record {
	t.Helper()
	recs, err := st.Dump()
	if err != nil {
		t.Fatalf("dump %s: %v", st.Name(), err)
	}
	return recs
}

// diffRecords describes the first difference between two sorted record
// lists, or returns "" when they are identical.
func diffRecords(got, want []Record) string {
	for i := range min(len(got), len(want)) {
		g, w := got[i], want[i]
		if g.Bucket != w.Bucket || g.Key != w.Key || g.Version != w.Version || g.Deleted != w.Deleted || string(g.Value) != string(w.Value) {
			return fmt.Sprintf("record %d: got %s/%s %v deleted=%v %s, want %s/%s %v deleted=%v %s",
				i, g.Bucket, g.Key, g.Version, g.Deleted, g.Value, w.Bucket, w.Key, w.Version, w.Deleted, w.Value)
		}
	}
	if len(got) != len(want) {
		return fmt.Sprintf("got %d records, want %d", len(got), len(want))
	}
	return ""
}

// shuffled returns a copy of recs in random order.
func shuffled(rnd *rand.Rand, recs []Record) []Record {
	out := slices.Clone(recs)
	rnd.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// withDuplicates returns recs in random order with some records repeated.
func withDuplicates(rnd *rand.Rand, recs []Record) []Record {
	out := slices.Clone(recs)
	for range rnd.IntN(len(recs) + 1) {
		out = append(out, recs[rnd.IntN(len(recs))])
	}
	return shuffled(rnd, out)
}

// TestMergeProperties applies random write sets to separate stores in
// different orders, with duplicates and in different groupings, and checks
// that every store ends with the same records and the same digest as last
// writer wins predicts: merge is commutative, associative and idempotent.
func TestMergeProperties(t *testing.T) {
	seed := *mergeSeed
	if seed == 0 {
		seed = rand.Uint64()
	}
	iterations := 150
	if testing.Short() {
		iterations = 20
	}
	for it := range iterations {
		itSeed := seed + uint64(it)
		rnd := rand.New(rand.NewPCG(itSeed, 0))
		writes := newWriteGen(rnd).writes(1 + rnd.IntN(60))
		want := lww(writes)
		fail := func(format string, args ...any) {
			t.Helper()
			t.Fatalf("seed %d (rerun with -merge.seed=%d, iteration %d): %s", itSeed, seed, it, fmt.Sprintf(format, args...))
		}

		// All at once, in random order.
		batch := newTestStore(t, "batch")
		mustMerge(t, batch, shuffled(rnd, writes))

		// One at a time, another order, with duplicates.
		single := newTestStore(t, "single")
		for _, r := range withDuplicates(rnd, writes) {
			mustMerge(t, single, []Record{r})
		}

		// Three random groups X, Y, Z (duplicates across groups allowed),
		// merged as (X ⊔ Y) ⊔ Z and as X ⊔ (Y ⊔ Z), states carried from
		// store to store by their dumps.
		var x, y, z []Record
		for _, r := range withDuplicates(rnd, writes) {
			switch rnd.IntN(3) {
			case 0:
				x = append(x, r)
			case 1:
				y = append(y, r)
			default:
				z = append(z, r)
			}
		}
		xy := newTestStore(t, "xy")
		mustMerge(t, xy, x)
		mustMerge(t, xy, y)
		left := newTestStore(t, "left")
		mustMerge(t, left, z)
		mustMerge(t, left, shuffled(rnd, mustDump(t, xy)))

		yz := newTestStore(t, "yz")
		mustMerge(t, yz, z)
		mustMerge(t, yz, y)
		right := newTestStore(t, "right")
		mustMerge(t, right, shuffled(rnd, mustDump(t, yz)))
		mustMerge(t, right, x)

		stores := []*Store{batch, single, left, right}
		for _, st := range stores {
			if d := diffRecords(mustDump(t, st), want); d != "" {
				fail("store %s differs from last writer wins over %d writes: %s", st.Name(), len(writes), d)
			}
			if st.Digest() != batch.Digest() {
				fail("store %s has digest %s, store batch %s", st.Name(), st.Digest(), batch.Digest())
			}
		}

		// Idempotent: merging the writes or a peer's state again changes
		// nothing.
		before := batch.Digest()
		if applied := mustMerge(t, batch, withDuplicates(rnd, writes)); len(applied) != 0 {
			fail("merging the same writes again applied %d records", len(applied))
		}
		if applied := mustMerge(t, batch, mustDump(t, right)); len(applied) != 0 {
			fail("merging an equal state applied %d records", len(applied))
		}
		if batch.Digest() != before {
			fail("digest changed on a repeated merge")
		}
		for _, st := range stores {
			st.Close()
		}
		for _, st := range []*Store{xy, yz} {
			st.Close()
		}
	}
}

func TestMergeLastWriterWins(t *testing.T) {
	v := func(wall int64, logical uint32, member string) Version {
		return Version{Wall: wall, Logical: logical, Member: member}
	}
	put := func(ver Version, val string) Record {
		return Record{Bucket: "apps", Key: "k", Value: []byte(`"` + val + `"`), Version: ver}
	}
	del := func(ver Version) Record { return Record{Bucket: "apps", Key: "k", Version: ver, Deleted: true} }
	tests := []struct {
		name    string
		steps   [][]Record // merged one batch after another
		want    Record
		applied []int // records applied by each step
	}{
		{"older put after newer put", [][]Record{{put(v(2, 0, "a"), "new")}, {put(v(1, 0, "a"), "old")}}, put(v(2, 0, "a"), "new"), []int{1, 0}},
		{"older logical after newer", [][]Record{{put(v(2, 5, "a"), "new")}, {put(v(2, 4, "z"), "old")}}, put(v(2, 5, "a"), "new"), []int{1, 0}},
		{"member breaks a tie", [][]Record{{put(v(2, 0, "b"), "b")}, {put(v(2, 0, "a"), "a")}}, put(v(2, 0, "b"), "b"), []int{1, 0}},
		{"newer put replaces", [][]Record{{put(v(1, 0, "a"), "old")}, {put(v(1, 1, "a"), "new")}}, put(v(1, 1, "a"), "new"), []int{1, 1}},
		{"newer tombstone beats put", [][]Record{{put(v(1, 0, "a"), "x")}, {del(v(2, 0, "b"))}}, del(v(2, 0, "b")), []int{1, 1}},
		{"older put after tombstone", [][]Record{{del(v(2, 0, "b"))}, {put(v(1, 9, "z"), "x")}}, del(v(2, 0, "b")), []int{1, 0}},
		{"newer put beats tombstone", [][]Record{{del(v(2, 0, "b"))}, {put(v(3, 0, "a"), "back")}}, put(v(3, 0, "a"), "back"), []int{1, 1}},
		{"same batch, older last", [][]Record{{put(v(2, 0, "a"), "new"), put(v(1, 0, "a"), "old")}}, put(v(2, 0, "a"), "new"), []int{1}},
		{"same batch, tombstone first", [][]Record{{del(v(5, 0, "a")), put(v(4, 0, "a"), "old"), put(v(3, 0, "a"), "older")}}, del(v(5, 0, "a")), []int{1}},
		{"same record twice", [][]Record{{put(v(1, 0, "a"), "x")}, {put(v(1, 0, "a"), "x")}}, put(v(1, 0, "a"), "x"), []int{1, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := newTestStore(t, "m")
			for i, step := range tt.steps {
				if got := len(mustMerge(t, st, step)); got != tt.applied[i] {
					t.Fatalf("step %d applied %d records, want %d", i, got, tt.applied[i])
				}
			}
			got, ok, err := st.db.get("apps", "k")
			if err != nil || !ok {
				t.Fatalf("get: %+v, %v, %v", got, ok, err)
			}
			if d := diffRecords([]Record{got}, []Record{tt.want}); d != "" {
				t.Fatal(d)
			}
			_, err = st.Get("apps", "k", nil)
			if tt.want.Deleted != (err != nil) {
				t.Fatalf("Get after merge: %v, want deleted=%v", err, tt.want.Deleted)
			}
		})
	}
}

// TestConcurrentMergesKeepDigestInStep merges competing versions of a few
// keys from several goroutines at once. The in-memory digest tree must end
// up describing exactly what the file holds, or anti-entropy would chase a
// difference it can never repair.
func TestConcurrentMergesKeepDigestInStep(t *testing.T) {
	st := newTestStore(t, "m")
	const goroutines, rounds = 4, 1000
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(uint64(g), 1))
			for i := range rounds {
				r := Record{
					Bucket:  "apps",
					Key:     "k" + strconv.Itoa(rnd.IntN(3)),
					Version: Version{Wall: int64(i), Logical: uint32(rnd.IntN(4)), Member: "m" + strconv.Itoa(g)},
					Value:   []byte(`1`),
				}
				if _, err := st.Merge([]Record{r}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	rebuilt := newTestStore(t, "rebuilt")
	mustMerge(t, rebuilt, mustDump(t, st))
	if st.Digest() != rebuilt.Digest() {
		t.Fatalf("digest tree %s does not match the records held (%s)", st.Digest(), rebuilt.Digest())
	}
	for _, r := range mustDump(t, st) {
		sm, ok := st.db.summary(r.Bucket, r.Key)
		if !ok || sm != r.Summary() {
			t.Fatalf("digest tree holds %+v for %s/%s, the file %v", sm, r.Bucket, r.Key, r.Version)
		}
	}
}

// FuzzMerge decodes the input as a list of writes from four members and
// checks that merging them one by one, all at once in reverse, and split
// in two halves merged into separate stores and combined, gives the state
// last writer wins predicts. `go test` runs the seed corpus only; fuzz
// with `go test ./store/ -run '^$' -fuzz FuzzMerge`.
func FuzzMerge(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0, 0, 0, 1})
	f.Add([]byte{0, 0, 0, 1, 1, 0, 0, 2})                   // same key, same wall, two members
	f.Add([]byte{0, 0, 5, 1, 0x80, 0, 0, 0, 1, 0, 5, 7})    // put, delete, put again
	f.Add([]byte{2, 3, 9, 4, 3, 3, 1, 5, 0x82, 3, 9, 0, 1}) // wall clock going back
	f.Add(binary.BigEndian.AppendUint64(nil, 0x0102030405060708))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 4*200 {
			data = data[:4*200]
		}
		// Each 4 bytes is one write: member and delete flag, key, wall
		// time (per member clock, which keeps versions monotonic), value.
		var clocks [4]*Clock
		var walls [4]int64
		for i := range clocks {
			clocks[i] = NewClock("m"+strconv.Itoa(i), func() time.Time { return time.UnixMilli(walls[i]) })
		}
		var writes []Record
		for len(data) >= 4 {
			m := int(data[0] & 3)
			walls[m] = int64(data[2] % 16)
			r := Record{Bucket: "b" + strconv.Itoa(int(data[1]>>4)%2), Key: "k" + strconv.Itoa(int(data[1]&7)), Version: clocks[m].Now()}
			if data[0]&0x80 != 0 {
				r.Deleted = true
			} else {
				r.Value = []byte(strconv.Itoa(int(data[3])))
			}
			writes = append(writes, r)
			data = data[4:]
		}
		want := lww(writes)

		one := newTestStore(t, "one")
		for _, r := range writes {
			mustMerge(t, one, []Record{r})
		}
		reversed := slices.Clone(writes)
		slices.Reverse(reversed)
		all := newTestStore(t, "all")
		mustMerge(t, all, reversed)
		half := newTestStore(t, "half")
		other := newTestStore(t, "other")
		mustMerge(t, half, writes[:len(writes)/2])
		mustMerge(t, other, reversed[:len(writes)-len(writes)/2])
		mustMerge(t, half, mustDump(t, other))

		for _, st := range []*Store{one, all, half} {
			if d := diffRecords(mustDump(t, st), want); d != "" {
				t.Fatalf("store %s: %s", st.Name(), d)
			}
			if st.Digest() != one.Digest() {
				t.Fatalf("store %s digest %s, store one %s", st.Name(), st.Digest(), one.Digest())
			}
		}
	})
}
