package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// openDir opens a store on dir without starting it.
func openDir(t testing.TB, dir string, opts ...memberOpts) (*Store, error) {
	t.Helper()
	cfg := LocalConfig("m1", dir, "127.0.0.1")
	cfg.Logger = testLogger(t)
	for _, o := range opts {
		o(&cfg)
	}
	return New(cfg)
}

func TestRestartKeepsAllData(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	st, err := openDir(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	var newest Version
	for i := range 300 {
		v, err := st.Put(ctx, fmt.Sprintf("b%d", i%3), fmt.Sprintf("key-%03d", i), map[string]int{"i": i})
		if err != nil {
			t.Fatal(err)
		}
		newest = v
	}
	if _, err := st.Batch(ctx, []Op{{Bucket: "b0", Key: "key-000", Delete: true}, {Bucket: "b1", Key: "key-001", Value: "rewritten"}}); err != nil {
		t.Fatal(err)
	}
	// A record from a peer whose clock runs ahead, within MaxClockSkew.
	remote := Version{Wall: time.Now().Add(30 * time.Second).UnixMilli(), Logical: 3, Member: "peer"}
	mustMerge(t, st, []Record{{Bucket: "b2", Key: "remote", Value: []byte(`"x"`), Version: remote}})
	before := mustDump(t, st)
	digest := st.Digest()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	// Reopen with a wall clock that went back a day: the data is all there
	// and new versions are still newer than every stored one.
	st, err = openDir(t, dir, func(c *Config) { c.Now = func() time.Time { return time.Now().Add(-24 * time.Hour) } })
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if d := diffRecords(mustDump(t, st), before); d != "" {
		t.Fatalf("after restart: %s", d)
	}
	if st.Digest() != digest {
		t.Fatalf("digest after restart %s, before %s", st.Digest(), digest)
	}
	if st.Len() != len(before) {
		t.Fatalf("Len after restart %d, want %d", st.Len(), len(before))
	}
	if _, err := st.Get("b0", "key-000", nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted record after restart: %v, want ErrNotFound", err)
	}
	var s string
	if _, err := st.Get("b1", "key-001", &s); err != nil || s != "rewritten" {
		t.Fatalf("rewritten record after restart: %q, %v", s, err)
	}
	v, err := st.Put(ctx, "b0", "after-restart", 1)
	if err != nil {
		t.Fatal(err)
	}
	if !v.Newer(remote) || !v.Newer(newest) {
		t.Fatalf("version %v issued after restart is not newer than stored %v and %v", v, remote, newest)
	}
}

// populatedStateFile returns the path of a state file holding records.
func populatedStateFile(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	st, err := openDir(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	ops := make([]Op, 0, 100)
	for i := range 3000 {
		ops = append(ops, Op{Bucket: fmt.Sprintf("b%d", i%5), Key: fmt.Sprintf("key-%05d", i), Value: strings.Repeat("v", 100)})
		if len(ops) == cap(ops) {
			if _, err := st.Batch(context.Background(), ops); err != nil {
				t.Fatal(err)
			}
			ops = ops[:0]
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "state.db")
}

func TestCorruptStateFileGivesClearError(t *testing.T) {
	real := populatedStateFile(t)
	good, err := os.ReadFile(real)
	if err != nil {
		t.Fatal(err)
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rnd.Uint32())
		}
		return b
	}
	flipped := func(at int) []byte {
		b := append([]byte(nil), good...)
		copy(b[at:], random(4096))
		return b
	}
	tests := []struct {
		name    string
		content []byte
		// mayOpen: the damage may spare everything the store reads, in
		// which case New succeeds and must return every record.
		mayOpen bool
	}{
		{"a few random bytes", random(100), false},
		{"random pages", random(64 << 10), false},
		{"text file", []byte("this is not a database\n"), false},
		{"first meta page only", good[:4096], false},
		{"truncated to a tenth", good[:len(good)/10], false},
		// bbolt grows the file ahead of use, so a cut may spare every
		// page in use; it must never lose records silently or crash.
		{"truncated to a quarter", good[:len(good)/4], true},
		{"truncated to a half", good[:len(good)/2], true},
		{"truncated to three quarters", good[:len(good)*3/4], true},
		{"truncated mid-page", good[:len(good)/2+1234], true},
		{"both meta pages overwritten", append(random(8192), good[8192:]...), false},
		{"data page overwritten", flipped(len(good) / 3), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "state.db")
			if err := os.WriteFile(path, tt.content, 0o600); err != nil {
				t.Fatal(err)
			}
			st, err := openDir(t, dir)
			if err == nil {
				defer st.Close()
				if !tt.mayOpen {
					t.Fatalf("New opened a damaged state file (%d records)", st.Len())
				}
				recs, err := st.Dump()
				if err != nil || len(recs) != 3000 {
					t.Fatalf("New opened a damaged state file without error, and it holds %d of 3000 records (%v)", len(recs), err)
				}
				return
			}
			t.Logf("New: %v", err)
			if !strings.Contains(err.Error(), path) {
				t.Fatalf("error does not name the file: %v", err)
			}
			if errors.Is(err, ErrLocked) || errors.Is(err, ErrForeignFile) {
				t.Fatalf("damaged file reported as %v", err)
			}
			// A failed open must not keep the file: once it is moved away,
			// a new store starts there.
			if err := os.Rename(path, path+".bad"); err != nil {
				t.Fatal(err)
			}
			st, err = openDir(t, dir)
			if err != nil {
				t.Fatalf("new state file after moving the damaged one away: %v", err)
			}
			st.Close()
		})
	}
}

func TestForeignBoltFileIsRefused(t *testing.T) {
	tests := []struct {
		name string
		fill func(tx *bolt.Tx) error
	}{
		{"other application's buckets", func(tx *bolt.Tx) error {
			b, err := tx.CreateBucket([]byte("users"))
			if err != nil {
				return err
			}
			return b.Put([]byte("alice"), []byte("x"))
		}},
		{"meta bucket without our magic", func(tx *bolt.Tx) error {
			b, err := tx.CreateBucket([]byte("meta"))
			if err != nil {
				return err
			}
			return b.Put([]byte("magic"), []byte("someone-else/1"))
		}},
		{"empty meta bucket", func(tx *bolt.Tx) error {
			_, err := tx.CreateBucket([]byte("meta"))
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "state.db")
			b, err := bolt.Open(path, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := b.Update(tt.fill); err != nil {
				t.Fatal(err)
			}
			if err := b.Close(); err != nil {
				t.Fatal(err)
			}
			before, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			st, err := openDir(t, dir)
			if err == nil {
				st.Close()
				t.Fatal("New adopted a foreign bbolt file")
			}
			if !errors.Is(err, ErrForeignFile) || !strings.Contains(err.Error(), path) {
				t.Fatalf("got %v, want ErrForeignFile naming %s", err, path)
			}
			after, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if string(after) != string(before) {
				t.Fatal("New modified the foreign file")
			}
		})
	}
}

func TestSecondOpenOfADirIsLocked(t *testing.T) {
	dir := t.TempDir()
	st, err := openDir(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	start := time.Now()
	second, err := openDir(t, dir)
	took := time.Since(start)
	if err == nil {
		second.Close()
		t.Fatal("a second store opened the same data dir")
	}
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("got %v, want ErrLocked", err)
	}
	if !strings.Contains(err.Error(), filepath.Join(dir, "state.db")) {
		t.Fatalf("error does not name the file: %v", err)
	}
	if took > 5*time.Second {
		t.Fatalf("ErrLocked took %s", took)
	}
	// Once the first store is closed, the dir opens.
	st.Close()
	st, err = openDir(t, dir)
	if err != nil {
		t.Fatalf("open after the holder closed: %v", err)
	}
	st.Close()
}

func TestInvalidRecordsAreRefused(t *testing.T) {
	st := newTestStore(t, "m1")
	ctx := context.Background()
	tests := []struct {
		bucket, key string
	}{
		{"", "k"},
		{"apps", ""},
		{"", ""},
		{"_meta", "k"},
		{"_", "k"},
		{"apps\x00x", "k"},
		{"apps", "k\x00"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q/%q", tt.bucket, tt.key), func(t *testing.T) {
			calls := map[string]func() error{
				"Put": func() error { _, err := st.Put(ctx, tt.bucket, tt.key, 1); return err },
				"Delete": func() error {
					_, err := st.Delete(ctx, tt.bucket, tt.key)
					return err
				},
				"Batch": func() error {
					_, err := st.Batch(ctx, []Op{{Bucket: "apps", Key: "fine", Value: 1}, {Bucket: tt.bucket, Key: tt.key, Value: 1}})
					return err
				},
				"Merge": func() error {
					_, err := st.Merge([]Record{{Bucket: tt.bucket, Key: tt.key, Value: []byte("1"), Version: Version{Wall: 1, Member: "x"}}})
					return err
				},
			}
			for name, call := range calls {
				if err := call(); !errors.Is(err, ErrInvalidRecord) {
					t.Errorf("%s: got %v, want ErrInvalidRecord", name, err)
				}
			}
		})
	}
	if st.Len() != 0 {
		t.Fatalf("invalid writes left %d records (a batch with one bad op must write nothing)", st.Len())
	}
}

func TestGetMissingAndDeleted(t *testing.T) {
	st := newTestStore(t, "m1")
	ctx := context.Background()
	if _, err := st.Get("apps", "never", nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get of a missing key: %v, want ErrNotFound", err)
	}
	if _, err := st.Put(ctx, "apps", "gone", 1); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Delete(ctx, "apps", "gone"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.GetRecord("apps", "gone"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetRecord of a deleted key: %v, want ErrNotFound", err)
	}
	if recs, err := st.List("apps"); err != nil || len(recs) != 0 {
		t.Fatalf("List after delete: %v, %v", recs, err)
	}
	if st.Len() != 1 {
		t.Fatalf("Len %d, want 1 (the tombstone)", st.Len())
	}
}

func TestOperationsAfterCloseFail(t *testing.T) {
	st := newTestStore(t, "m1")
	ctx := context.Background()
	if _, err := st.Put(ctx, "apps", "a", 1); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	calls := map[string]func() error{
		"Put":    func() error { _, err := st.Put(ctx, "apps", "b", 1); return err },
		"Delete": func() error { _, err := st.Delete(ctx, "apps", "a"); return err },
		"Batch":  func() error { _, err := st.Batch(ctx, []Op{{Bucket: "apps", Key: "b", Value: 1}}); return err },
		"Get":    func() error { _, err := st.Get("apps", "a", nil); return err },
		"List":   func() error { _, err := st.List("apps"); return err },
		"Dump":   func() error { _, err := st.Dump(); return err },
		"Merge": func() error {
			_, err := st.Merge([]Record{{Bucket: "apps", Key: "c", Value: []byte("1"), Version: Version{Wall: 1, Member: "x"}}})
			return err
		},
		"Start": func() error { return st.Start(ctx) },
		"SyncWith": func() error {
			_, err := st.SyncWith(ctx, "127.0.0.1:1")
			return err
		},
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close: got %v, want ErrClosed", name, err)
		}
	}
}
