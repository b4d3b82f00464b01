package store

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Record is one versioned entry of the replicated state. Deleted records
// (tombstones) keep their version so that a delete wins over older writes
// everywhere, and are collected after the tombstone TTL.
type Record struct {
	Bucket  string          `json:"b"`
	Key     string          `json:"k"`
	Value   json.RawMessage `json:"v,omitempty"`
	Version Version         `json:"ver"`
	Deleted bool            `json:"d,omitempty"`
}

// Decode unmarshals the record's value into v.
func (r Record) Decode(v any) error {
	if r.Deleted {
		return fmt.Errorf("decode %s/%s: %w", r.Bucket, r.Key, ErrNotFound)
	}
	if err := json.Unmarshal(r.Value, v); err != nil {
		return fmt.Errorf("decode %s/%s: %w", r.Bucket, r.Key, err)
	}
	return nil
}

// Summary is a record without its value: what anti-entropy compares.
type Summary struct {
	Bucket  string  `json:"b"`
	Key     string  `json:"k"`
	Version Version `json:"ver"`
	Deleted bool    `json:"d,omitempty"`
}

// Summary returns r without its value.
func (r Record) Summary() Summary {
	return Summary{Bucket: r.Bucket, Key: r.Key, Version: r.Version, Deleted: r.Deleted}
}

// Ref names a record.
type Ref struct {
	Bucket string `json:"b"`
	Key    string `json:"k"`
}

func (r Ref) id() string { return r.Bucket + "\x00" + r.Key }

// validName reports whether a bucket or key may be stored. Buckets starting
// with "_" are reserved for the store itself.
func validRef(bucket, key string) error {
	switch {
	case bucket == "" || key == "":
		return fmt.Errorf("%w: bucket and key must not be empty", ErrInvalidRecord)
	case strings.HasPrefix(bucket, "_"):
		return fmt.Errorf("%w: bucket %q is reserved", ErrInvalidRecord, bucket)
	case strings.ContainsRune(bucket, 0) || strings.ContainsRune(key, 0):
		return fmt.Errorf("%w: bucket and key must not contain NUL", ErrInvalidRecord)
	}
	return nil
}
