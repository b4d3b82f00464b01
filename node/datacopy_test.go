package node

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// pack is packData of dir into an archive.
func pack(t *testing.T, dir string) *bytes.Buffer {
	t.Helper()
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := packData(context.Background(), root, tw, 0); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return &buf
}

// unpack is unpackData of archive into dir.
func unpack(t *testing.T, archive *bytes.Buffer, dir string, m *mergeInto) map[string]fileMeta {
	t.Helper()
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	wrote, _, err := unpackData(tar.NewReader(archive), root, 0, m)
	if err != nil {
		t.Fatal(err)
	}
	return wrote
}

func write(t *testing.T, path, content string, mtime time.Time) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		return "<" + err.Error() + ">"
	}
	return string(b)
}

// A data directory is copied with its files, directories, links, modes
// and times; the final merge takes what the old gear changed since, keeps
// what the new gear changed, and deletes what the old gear deleted
// unless the new gear changed it.
func TestDataCopyAndMerge(t *testing.T) {
	old, fresh := t.TempDir(), t.TempDir()
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC)
	for name, content := range map[string]string{
		"sessions/a": "a1", "sessions/b": "b1", "uploads/c.png": "c1", "d": "d1", "e": "e1", "f": "f1",
	} {
		write(t, filepath.Join(old, name), content, t0)
	}
	if err := os.Symlink("uploads/c.png", filepath.Join(old, "latest")); err != nil {
		t.Fatal(err)
	}
	base := unpack(t, pack(t, old), fresh, nil)
	for name, want := range map[string]string{"sessions/a": "a1", "uploads/c.png": "c1", "f": "f1", "latest": "c1"} {
		if got := read(t, filepath.Join(fresh, name)); got != want {
			t.Errorf("copied %s = %q, want %q", name, got, want)
		}
	}
	fi, err := os.Stat(filepath.Join(fresh, "sessions/a"))
	if err != nil || fi.Mode().Perm() != 0o640 || !fi.ModTime().Equal(t0) {
		t.Errorf("copied file: %v %v, want mode 0640 and time %v", err, fi, t0)
	}
	if link, err := os.Readlink(filepath.Join(fresh, "latest")); err != nil || link != "uploads/c.png" {
		t.Errorf("copied link: %q %v", link, err)
	}
	if m := base["sessions"]; m.Type != "d" || base["latest"].Link != "uploads/c.png" || base["d"].Size != 2 {
		t.Errorf("copy manifest %+v", base)
	}

	t1 := t0.Add(time.Minute)
	// The old gear, still serving: changes a and d, adds g, deletes e and f.
	write(t, filepath.Join(old, "sessions/a"), "a2", t1)
	write(t, filepath.Join(old, "d"), "d2-old", t1)
	write(t, filepath.Join(old, "g"), "g2", t1)
	os.Remove(filepath.Join(old, "e"))
	os.Remove(filepath.Join(old, "f"))
	// The new gear, serving too: changes b, d and f.
	write(t, filepath.Join(fresh, "sessions/b"), "b2-new", t1)
	write(t, filepath.Join(fresh, "d"), "d2-new", t1.Add(time.Second))
	write(t, filepath.Join(fresh, "f"), "f2-new", t1)

	stats := &mergeStats{}
	unpack(t, pack(t, old), fresh, &mergeInto{base: base, stats: stats})
	for name, want := range map[string]string{
		"sessions/a":    "a2",     // changed on the old gear only
		"sessions/b":    "b2-new", // changed on the new gear only
		"d":             "d2-new", // changed on both: the new gear's stays
		"g":             "g2",     // new on the old gear
		"uploads/c.png": "c1",
		"f":             "f2-new", // deleted there, changed here: kept
	} {
		if got := read(t, filepath.Join(fresh, name)); got != want {
			t.Errorf("merged %s = %q, want %q", name, got, want)
		}
	}
	if _, err := os.Lstat(filepath.Join(fresh, "e")); !os.IsNotExist(err) {
		t.Errorf("e, deleted on the old gear, is still here: %v", err)
	}
	if stats.updated != 2 || stats.deleted != 1 || stats.kept != 1 {
		t.Errorf("merge stats %+v, want 2 updated, 1 deleted, 1 kept", *stats)
	}
}

// Entries that would land outside the data directory are skipped, and a
// link in the old gear's directory that leads outside it is copied as a
// link, not followed.
func TestDataCopyStaysInside(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, name := range []string{"../escape", "/abs", "ok"} {
		tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o600, Size: 1})
		tw.Write([]byte("x"))
	}
	tw.Close()
	parent := t.TempDir()
	dir := filepath.Join(parent, "data")
	os.Mkdir(dir, 0o700)
	wrote := unpack(t, &buf, dir, nil)
	if len(wrote) != 1 || read(t, filepath.Join(dir, "ok")) != "x" {
		t.Errorf("wrote %v", wrote)
	}
	if _, err := os.Stat(filepath.Join(parent, "escape")); !os.IsNotExist(err) {
		t.Errorf("an entry escaped the directory: %v", err)
	}

	secret := filepath.Join(parent, "secret")
	write(t, secret, "do not copy", time.Now())
	old := t.TempDir()
	if err := os.Symlink(secret, filepath.Join(old, "link")); err != nil {
		t.Fatal(err)
	}
	archive := pack(t, old)
	if bytes.Contains(archive.Bytes(), []byte("do not copy")) {
		t.Error("the archive holds the content of a file outside the directory")
	}
}
