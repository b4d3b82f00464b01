package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"sort"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// On-disk layout: bucket "meta" holds the file's magic and bookkeeping;
// bucket "records" holds one nested bucket per record bucket, whose keys
// are record keys and whose values are JSON-encoded storedRecord.
var (
	metaBucket    = []byte("meta")
	recordsBucket = []byte("records")
	magicKey      = []byte("magic")
	lastSyncKey   = []byte("last_sync")
	forgottenKey  = []byte("forgotten")
	magicValue    = []byte("gearbox-state/1")
)

type storedRecord struct {
	Value   json.RawMessage `json:"v,omitempty"`
	Version Version         `json:"ver"`
	Deleted bool            `json:"d,omitempty"`
}

// db is the local half of the store: a bbolt file plus the in-memory digest
// tree. It merges records by last writer wins and knows nothing of the
// network. It is safe for concurrent use.
type db struct {
	path string
	bolt *bolt.DB
	// notify, if set, receives the records each write changed. It is
	// called in commit order, with writeMu held, so it must not block.
	notify func([]Record)

	// writeMu makes a commit, its digest tree update and its notification
	// one step. Without it two writers of one key could update the tree
	// (or watchers) in the opposite order to their commits, leaving the
	// tree describing an older version than the file holds.
	writeMu sync.Mutex
	// forgotten is the newest version of a record this member removed
	// because the cluster deleted it and forgot the delete: a tombstone
	// collected after the TTL, or a record a full resync dropped. A record
	// for a key held here in no form, and not newer than forgotten, may be
	// an old copy of one of those, so merge refuses it. Guarded by
	// writeMu; kept in the meta bucket.
	forgotten Version

	mu   sync.RWMutex // guards tree
	tree *tree
}

// openDB opens or creates the state file at path. A file that is not a
// bbolt database, a bbolt database that gearbox did not create, or a file
// locked by another process gives a clear error.
func openDB(path string, noSync bool) (d *db, err error) {
	// bbolt may panic on a file whose meta pages check out but whose other
	// pages are garbage, and a file truncated below the pages its meta
	// names faults (SIGBUS) when bbolt reads its mapping past the end of
	// the file. SetPanicOnFault turns that fault into a panic on this
	// goroutine, and load below reads every page in use, so a damaged
	// state file is an error here, never a crash later.
	var b *bolt.DB
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			if b != nil {
				b.Close()
			}
			why := fmt.Sprint(r)
			if _, fault := r.(interface{ Addr() uintptr }); fault {
				why = "a page lies past the end of the file (truncated?)"
			}
			d, err = nil, fmt.Errorf("open state db %s: file is corrupted: %s; move it away or point --data-dir elsewhere", path, why)
		}
	}()
	b, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, NoSync: noSync})
	if err != nil {
		switch {
		case errors.Is(err, berrors.ErrTimeout):
			return nil, fmt.Errorf("open state db %s: %w", path, ErrLocked)
		case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrVersionMismatch),
			errors.Is(err, berrors.ErrChecksum), errors.Is(err, berrors.ErrInvalidMapping):
			return nil, fmt.Errorf("open state db %s: not a gearbox state database (%v); move it away or point --data-dir elsewhere", path, err)
		}
		return nil, fmt.Errorf("open state db %s: %w", path, err)
	}
	d = &db{path: path, bolt: b, tree: newTree()}
	if err := d.init(); err != nil {
		b.Close()
		return nil, err
	}
	if err := d.load(); err != nil {
		b.Close()
		return nil, err
	}
	return d, nil
}

func (d *db) init() error {
	err := d.update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(metaBucket)
		if meta == nil {
			empty := true
			tx.ForEach(func([]byte, *bolt.Bucket) error { empty = false; return nil })
			if !empty {
				return ErrForeignFile
			}
			var err error
			if meta, err = tx.CreateBucket(metaBucket); err != nil {
				return err
			}
			if err := meta.Put(magicKey, magicValue); err != nil {
				return err
			}
		} else if !bytes.Equal(meta.Get(magicKey), magicValue) {
			return ErrForeignFile
		}
		if v := meta.Get(forgottenKey); v != nil {
			if err := json.Unmarshal(v, &d.forgotten); err != nil {
				return fmt.Errorf("decode %s: %w", forgottenKey, err)
			}
		}
		_, err := tx.CreateBucketIfNotExists(recordsBucket)
		return err
	})
	if err != nil {
		return fmt.Errorf("open state db %s: %w", d.path, err)
	}
	return nil
}

// load builds the digest tree from the file.
func (d *db) load() error {
	err := d.view(func(tx *bolt.Tx) error {
		return tx.Bucket(recordsBucket).ForEachBucket(func(name []byte) error {
			bucket := string(name)
			return tx.Bucket(recordsBucket).Bucket(name).ForEach(func(k, v []byte) error {
				var sr storedRecord
				if err := json.Unmarshal(v, &sr); err != nil {
					return fmt.Errorf("record %s/%s: %w", bucket, k, err)
				}
				d.tree.set(Summary{Bucket: bucket, Key: string(k), Version: sr.Version, Deleted: sr.Deleted})
				return nil
			})
		})
	})
	if err != nil {
		return fmt.Errorf("load state db %s: %w", d.path, err)
	}
	return nil
}

func (d *db) close() error { return d.bolt.Close() }

// view and update run bbolt transactions; on a closed file they return
// ErrClosed.
func (d *db) view(fn func(*bolt.Tx) error) error { return closedErr(d.bolt.View(fn)) }

func (d *db) update(fn func(*bolt.Tx) error) error { return closedErr(d.bolt.Update(fn)) }

func closedErr(err error) error {
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return ErrClosed
	}
	return err
}

// get returns the record for bucket/key, tombstones included.
func (d *db) get(bucket, key string) (Record, bool, error) {
	var rec Record
	var found bool
	err := d.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(recordsBucket).Bucket([]byte(bucket))
		if b == nil {
			return nil
		}
		v := b.Get([]byte(key))
		if v == nil {
			return nil
		}
		var sr storedRecord
		if err := json.Unmarshal(v, &sr); err != nil {
			return fmt.Errorf("decode %s/%s: %w", bucket, key, err)
		}
		rec = Record{Bucket: bucket, Key: key, Value: sr.Value, Version: sr.Version, Deleted: sr.Deleted}
		found = true
		return nil
	})
	return rec, found, err
}

// getMany returns the records named by refs that exist, tombstones included.
func (d *db) getMany(refs []Ref) ([]Record, error) {
	out := make([]Record, 0, len(refs))
	err := d.view(func(tx *bolt.Tx) error {
		for _, r := range refs {
			b := tx.Bucket(recordsBucket).Bucket([]byte(r.Bucket))
			if b == nil {
				continue
			}
			v := b.Get([]byte(r.Key))
			if v == nil {
				continue
			}
			var sr storedRecord
			if err := json.Unmarshal(v, &sr); err != nil {
				return fmt.Errorf("decode %s/%s: %w", r.Bucket, r.Key, err)
			}
			out = append(out, Record{Bucket: r.Bucket, Key: r.Key, Value: sr.Value, Version: sr.Version, Deleted: sr.Deleted})
		}
		return nil
	})
	return out, err
}

// list returns the live records of bucket sorted by key.
func (d *db) list(bucket string) ([]Record, error) {
	var out []Record
	err := d.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(recordsBucket).Bucket([]byte(bucket))
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			var sr storedRecord
			if err := json.Unmarshal(v, &sr); err != nil {
				return fmt.Errorf("decode %s/%s: %w", bucket, k, err)
			}
			if !sr.Deleted {
				out = append(out, Record{Bucket: bucket, Key: string(k), Value: sr.Value, Version: sr.Version})
			}
			return nil
		})
	})
	return out, err
}

// dump returns every record, tombstones included, sorted by bucket and key.
func (d *db) dump() ([]Record, error) {
	var out []Record
	err := d.view(func(tx *bolt.Tx) error {
		return tx.Bucket(recordsBucket).ForEachBucket(func(name []byte) error {
			return tx.Bucket(recordsBucket).Bucket(name).ForEach(func(k, v []byte) error {
				var sr storedRecord
				if err := json.Unmarshal(v, &sr); err != nil {
					return err
				}
				out = append(out, Record{Bucket: string(name), Key: string(k), Value: sr.Value, Version: sr.Version, Deleted: sr.Deleted})
				return nil
			})
		})
	})
	return out, err
}

// merge applies recs by last writer wins in one transaction and returns
// the records that changed the state (newer than what was held), in the
// order given. Merging a record that is not newer is a no-op, so merge is
// idempotent, and the outcome does not depend on the order of calls.
//
// A record for a key held in no form (neither live nor tombstone) whose
// version is not newer than the newest delete this member has forgotten
// is refused and returned in forgotten: it may be an old copy of a record
// whose tombstone was collected, and taking it would undo that delete.
// Until a tombstone is first collected nothing is refused this way.
func (d *db) merge(recs []Record) (applied, forgotten []Record, err error) {
	if len(recs) == 0 {
		return nil, nil, nil
	}
	d.writeMu.Lock()
	defer d.writeMu.Unlock()
	err = d.update(func(tx *bolt.Tx) error {
		applied, forgotten = applied[:0], forgotten[:0]
		root := tx.Bucket(recordsBucket)
		for _, r := range recs {
			b, err := root.CreateBucketIfNotExists([]byte(r.Bucket))
			if err != nil {
				return fmt.Errorf("create bucket %s: %w", r.Bucket, err)
			}
			if cur := b.Get([]byte(r.Key)); cur != nil {
				var sr storedRecord
				if err := json.Unmarshal(cur, &sr); err != nil {
					return fmt.Errorf("decode %s/%s: %w", r.Bucket, r.Key, err)
				}
				if !r.Version.Newer(sr.Version) {
					continue
				}
			} else if !d.forgotten.IsZero() && !r.Version.Newer(d.forgotten) {
				forgotten = append(forgotten, r)
				continue
			}
			sr := storedRecord{Value: r.Value, Version: r.Version, Deleted: r.Deleted}
			if r.Deleted {
				sr.Value = nil
			}
			v, err := json.Marshal(sr)
			if err != nil {
				return fmt.Errorf("encode %s/%s: %w", r.Bucket, r.Key, err)
			}
			if err := b.Put([]byte(r.Key), v); err != nil {
				return fmt.Errorf("write %s/%s: %w", r.Bucket, r.Key, err)
			}
			if r.Deleted {
				r.Value = nil
			}
			applied = append(applied, r)
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	d.mu.Lock()
	for _, r := range applied {
		d.tree.set(r.Summary())
	}
	d.mu.Unlock()
	if d.notify != nil && len(applied) > 0 {
		d.notify(applied)
	}
	return applied, forgotten, nil
}

// collect removes tombstones whose version is older than cutoff and
// returns how many it removed.
func (d *db) collect(cutoff time.Time) (int, error) {
	c := cutoff.UnixMilli()
	var victims []Summary
	d.mu.RLock()
	for i := range d.tree.index {
		for _, s := range d.tree.index[i] {
			if s.Deleted && s.Version.Wall < c {
				victims = append(victims, s)
			}
		}
	}
	d.mu.RUnlock()
	return d.drop(victims, true, false)
}

// drop removes the records named by victims, provided they still hold the
// version given (a newer write in between wins). With onlyTombstones,
// live records are left alone. With notify, the records removed are
// reported as tombstones that carry the removed record's version. The
// newest version removed raises the forgotten mark (see merge), in the
// same transaction.
func (d *db) drop(victims []Summary, onlyTombstones, notify bool) (int, error) {
	if len(victims) == 0 {
		return 0, nil
	}
	d.writeMu.Lock()
	defer d.writeMu.Unlock()
	var removed []Summary
	var mark Version
	err := d.update(func(tx *bolt.Tx) error {
		removed, mark = removed[:0], d.forgotten
		root := tx.Bucket(recordsBucket)
		for _, s := range victims {
			b := root.Bucket([]byte(s.Bucket))
			if b == nil {
				continue
			}
			cur := b.Get([]byte(s.Key))
			if cur == nil {
				continue
			}
			var sr storedRecord
			if err := json.Unmarshal(cur, &sr); err != nil {
				return err
			}
			if sr.Version != s.Version || (onlyTombstones && !sr.Deleted) {
				continue
			}
			if err := b.Delete([]byte(s.Key)); err != nil {
				return err
			}
			removed = append(removed, s)
			if s.Version.Newer(mark) {
				mark = s.Version
			}
		}
		if mark == d.forgotten {
			return nil
		}
		v, err := json.Marshal(mark)
		if err != nil {
			return err
		}
		return tx.Bucket(metaBucket).Put(forgottenKey, v)
	})
	if err != nil {
		return 0, fmt.Errorf("drop records: %w", err)
	}
	d.forgotten = mark
	d.mu.Lock()
	for _, s := range removed {
		d.tree.remove(s.Bucket, s.Key)
	}
	d.mu.Unlock()
	if notify && d.notify != nil && len(removed) > 0 {
		gone := make([]Record, len(removed))
		for i, s := range removed {
			gone[i] = Record{Bucket: s.Bucket, Key: s.Key, Version: s.Version, Deleted: true}
		}
		d.notify(gone)
	}
	return len(removed), nil
}

// lastSync returns when anti-entropy last completed, zero if never.
func (d *db) lastSync() time.Time {
	var t time.Time
	d.view(func(tx *bolt.Tx) error {
		if v := tx.Bucket(metaBucket).Get(lastSyncKey); len(v) == 8 {
			t = time.UnixMilli(int64(binary.BigEndian.Uint64(v)))
		}
		return nil
	})
	return t
}

func (d *db) setLastSync(t time.Time) error {
	return d.update(func(tx *bolt.Tx) error {
		var v [8]byte
		binary.BigEndian.PutUint64(v[:], uint64(t.UnixMilli()))
		return tx.Bucket(metaBucket).Put(lastSyncKey, v[:])
	})
}

// Tree accessors, each under the read lock.

func (d *db) summary(bucket, key string) (Summary, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.tree.get(bucket, key)
}

func (d *db) children(prefix string) ([]string, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.tree.children(prefix)
}

func (d *db) summaries(prefixes []string) ([]Summary, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	var out []Summary
	for _, p := range prefixes {
		s, ok := d.tree.summaries(p)
		if !ok {
			return nil, fmt.Errorf("bad digest prefix %q", p)
		}
		out = append(out, s...)
	}
	return out, nil
}

// rootDigest is the digest of the whole state.
func (d *db) rootDigest() string {
	d.mu.RLock()
	defer d.mu.RUnlock()
	r, _ := d.tree.node("")
	return r.String()
}

func (d *db) count() int {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.tree.count()
}

// fileSize reports the state file's size in bytes.
func (d *db) fileSize() int64 {
	fi, err := os.Stat(d.path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

func sortRecords(rs []Record) {
	sort.Slice(rs, func(i, j int) bool {
		if rs[i].Bucket != rs[j].Bucket {
			return rs[i].Bucket < rs[j].Bucket
		}
		return rs[i].Key < rs[j].Key
	})
}
