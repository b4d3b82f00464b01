package store

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gearbox/internal/testutil"
)

// What a member keeps on disk only it can read: the data directory,
// state.db, and serf's snapshot, which serf itself writes readable by all
// and which therefore lives in a directory of its own (a node opens the
// data directory to its gears' uids, for them to reach their own). A
// snapshot an earlier version kept beside state.db is moved in.
func TestDataFilesArePrivate(t *testing.T) {
	testutil.CheckNoLeaks(t, leakPatterns...)
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	// An old snapshot, readable by all, where an earlier version kept it.
	old := filepath.Join(dir, "serf.snapshot")
	if err := os.WriteFile(old, []byte("alive: m00 127.0.0.1:7946\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chmod(old, 0o644)
	// A node opens the data directory to other uids (search only).
	os.Chmod(dir, 0o701)

	m := startMember(t, "m00", dir, ips.Next())
	testutil.WaitFor(t, 5*time.Second, "serf's snapshot written", func() bool {
		_, err := os.Stat(filepath.Join(dir, "serf", "serf.snapshot"))
		return err == nil
	})
	m.stop()
	if b, err := os.ReadFile(filepath.Join(dir, "serf", "serf.snapshot")); err != nil || !strings.HasPrefix(string(b), "alive: m00") {
		t.Errorf("the snapshot moved in: %q, %v; want the old one's lines first", b, err)
	}
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Errorf("the old snapshot is still in the data directory: %v", err)
	}
	for path, want := range map[string]fs.FileMode{
		"state.db":           0o600,
		"serf":               0o700 | fs.ModeDir,
		"serf/serf.snapshot": 0o600,
	} {
		fi, err := os.Stat(filepath.Join(dir, path))
		if err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		if got := fi.Mode() & (fs.ModePerm | fs.ModeDir); got != want {
			t.Errorf("%s: mode %s, want %s", path, got, want)
		}
	}
}

// A data directory the store creates is the member's only.
func TestDataDirCreatedPrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new")
	st, err := New(LocalConfig("m00", dir, "127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("data dir: %v, %v; want mode 0700", fi.Mode(), err)
	}
}
