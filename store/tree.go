package store

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"hash/fnv"
	"sort"
	"strconv"
)

// The digest tree splits the key space into 4096 leaves by a hash of
// bucket and key, addressed by three hex digits ("a3f"). A leaf's digest is
// the XOR of the hashes of its records' (bucket, key, version, deleted); an
// inner node ("a3", "a", "") is the XOR of its leaves. XOR makes the digest
// independent of the order in which writes were applied, and lets a write
// update it in O(1): XOR the old record's hash out and the new one's in.
//
// Anti-entropy walks the tree from the root's 16 children down to the
// differing leaves, so it costs one small request when two members agree
// and grows with the difference, not with the state.
const (
	leafDigits = 3
	leafCount  = 1 << (4 * leafDigits)
)

type digest [16]byte

func (d *digest) xor(o digest) {
	a := binary.LittleEndian.Uint64(d[:8]) ^ binary.LittleEndian.Uint64(o[:8])
	b := binary.LittleEndian.Uint64(d[8:]) ^ binary.LittleEndian.Uint64(o[8:])
	binary.LittleEndian.PutUint64(d[:8], a)
	binary.LittleEndian.PutUint64(d[8:], b)
}

func (d digest) String() string { return hex.EncodeToString(d[:]) }

func leafOf(bucket, key string) int {
	h := fnv.New64a()
	h.Write([]byte(bucket))
	h.Write([]byte{0})
	h.Write([]byte(key))
	return int(h.Sum64() >> (64 - 4*leafDigits))
}

func leafName(i int) string {
	s := strconv.FormatInt(int64(i), 16)
	for len(s) < leafDigits {
		s = "0" + s
	}
	return s
}

func hashSummary(s Summary) digest {
	h := sha256.New()
	h.Write([]byte(s.Bucket))
	h.Write([]byte{0})
	h.Write([]byte(s.Key))
	h.Write([]byte{0})
	h.Write([]byte(s.Version.String()))
	if s.Deleted {
		h.Write([]byte{1})
	} else {
		h.Write([]byte{0})
	}
	var d digest
	copy(d[:], h.Sum(nil))
	return d
}

// tree is the in-memory digest tree plus an index of every record's summary
// by leaf. It is not safe for concurrent use; db guards it.
type tree struct {
	leaves [leafCount]digest
	index  [leafCount]map[string]Summary
}

func newTree() *tree {
	t := &tree{}
	for i := range t.index {
		t.index[i] = make(map[string]Summary)
	}
	return t
}

// set replaces whatever the tree held for s's key with s.
func (t *tree) set(s Summary) {
	leaf := leafOf(s.Bucket, s.Key)
	id := Ref{s.Bucket, s.Key}.id()
	if old, ok := t.index[leaf][id]; ok {
		t.leaves[leaf].xor(hashSummary(old))
	}
	t.index[leaf][id] = s
	t.leaves[leaf].xor(hashSummary(s))
}

// remove drops s's key from the tree (tombstone collection).
func (t *tree) remove(bucket, key string) {
	leaf := leafOf(bucket, key)
	id := Ref{bucket, key}.id()
	if old, ok := t.index[leaf][id]; ok {
		t.leaves[leaf].xor(hashSummary(old))
		delete(t.index[leaf], id)
	}
}

func (t *tree) get(bucket, key string) (Summary, bool) {
	s, ok := t.index[leafOf(bucket, key)][Ref{bucket, key}.id()]
	return s, ok
}

// node returns the digest of the inner node or leaf named by prefix (0 to 3
// hex digits). ok is false for a malformed prefix.
func (t *tree) node(prefix string) (digest, bool) {
	if len(prefix) > leafDigits {
		return digest{}, false
	}
	lo, n := 0, leafCount
	if prefix != "" {
		v, err := strconv.ParseUint(prefix, 16, 16)
		if err != nil {
			return digest{}, false
		}
		shift := 4 * (leafDigits - len(prefix))
		lo, n = int(v)<<shift, 1<<shift
	}
	var d digest
	for i := lo; i < lo+n; i++ {
		d.xor(t.leaves[i])
	}
	return d, true
}

// children returns the digests of the 16 children of an inner node.
func (t *tree) children(prefix string) ([]string, bool) {
	if len(prefix) >= leafDigits {
		return nil, false
	}
	out := make([]string, 16)
	for c := 0; c < 16; c++ {
		d, ok := t.node(prefix + strconv.FormatInt(int64(c), 16))
		if !ok {
			return nil, false
		}
		out[c] = d.String()
	}
	return out, true
}

// summaries returns the summaries in the leaves that start with prefix,
// sorted by bucket and key.
func (t *tree) summaries(prefix string) ([]Summary, bool) {
	if len(prefix) > leafDigits {
		return nil, false
	}
	lo, n := 0, leafCount
	if prefix != "" {
		v, err := strconv.ParseUint(prefix, 16, 16)
		if err != nil {
			return nil, false
		}
		shift := 4 * (leafDigits - len(prefix))
		lo, n = int(v)<<shift, 1<<shift
	}
	var out []Summary
	for i := lo; i < lo+n; i++ {
		for _, s := range t.index[i] {
			out = append(out, s)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Bucket != out[j].Bucket {
			return out[i].Bucket < out[j].Bucket
		}
		return out[i].Key < out[j].Key
	})
	return out, true
}

func (t *tree) count() int {
	n := 0
	for i := range t.index {
		n += len(t.index[i])
	}
	return n
}
