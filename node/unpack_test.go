package node

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// tarEntry is one entry of a test archive.
type tarEntry struct {
	name string
	typ  byte // default tar.TypeReg
	body string
	link string
	mode int64 // default 0644
	size int64 // overrides len(body) in the header when not 0
}

func tarFile(name, body string) tarEntry { return tarEntry{name: name, body: body} }
func tarDir(name string) tarEntry        { return tarEntry{name: name, typ: tar.TypeDir, mode: 0o755} }
func tarSymlink(name, target string) tarEntry {
	return tarEntry{name: name, typ: tar.TypeSymlink, link: target}
}

// tarGz builds a gzip-compressed tar archive of entries.
func tarGz(t testing.TB, entries ...tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.link, Mode: e.mode, Format: tar.FormatPAX}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatalf("write header %s: %v", e.name, err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatalf("write %s: %v", e.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// gzipBomb is an archive with one file of n zero bytes: a few KiB
// compressed.
func gzipBomb(t testing.TB, n int64) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	tw := tar.NewWriter(zw)
	if err := tw.WriteHeader(&tar.Header{Name: "zeros", Typeflag: tar.TypeReg, Mode: 0o644, Size: n}); err != nil {
		t.Fatal(err)
	}
	zeros := make([]byte, 1<<16)
	for left := n; left > 0; {
		k := min(left, int64(len(zeros)))
		tw.Write(zeros[:k])
		left -= k
	}
	tw.Close()
	zw.Close()
	return buf.Bytes()
}

// lyingSize is an archive whose header claims more bytes than follow.
func lyingSize(t testing.TB, size int64) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	var hdr bytes.Buffer
	tw := tar.NewWriter(&hdr)
	tw.WriteHeader(&tar.Header{Name: "big", Typeflag: tar.TypeReg, Mode: 0o644, Size: size})
	tw.Flush()
	zw.Write(hdr.Bytes()[:512])
	zw.Close()
	return buf.Bytes()
}

// sandbox is a directory holding only the destination: anything else
// that appears in it, or next to it, was written outside dest.
type sandbox struct {
	outer, inner, dest string
}

func newSandbox(t testing.TB) sandbox {
	outer := t.TempDir()
	inner := filepath.Join(outer, "in")
	if err := os.Mkdir(inner, 0o755); err != nil {
		t.Fatal(err)
	}
	return sandbox{outer: outer, inner: inner, dest: filepath.Join(inner, "app")}
}

// check fails if anything but dest (present or not, per wantDest) exists
// in the sandbox.
func (s sandbox) check(t testing.TB, wantDest bool) {
	t.Helper()
	names := func(d string) []string {
		ents, err := os.ReadDir(d)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range ents {
			out = append(out, e.Name())
		}
		return out
	}
	if got := names(s.outer); !slices.Equal(got, []string{"in"}) {
		t.Fatalf("written outside dest: %s holds %v", s.outer, got)
	}
	want := []string(nil)
	if wantDest {
		want = []string{"app"}
	}
	if got := names(s.inner); !slices.Equal(got, want) {
		t.Fatalf("%s holds %v, want %v", s.inner, got, want)
	}
}

func TestUnpackRefuses(t *testing.T) {
	defer func(n int) { maxEntries = n }(maxEntries)
	maxEntries = 50
	const limit = 1 << 20
	many := make([]tarEntry, 51)
	for i := range many {
		many[i] = tarFile("f"+strings.Repeat("x", i), "")
	}
	good := tarGz(t, tarFile("a", "hello"))
	tests := []struct {
		name    string
		archive []byte
		want    error
		text    string
	}{
		{"absolute path", tarGz(t, tarFile("/etc/passwd", "x")), ErrUnsafeArchive, "absolute"},
		{"dot-dot escape", tarGz(t, tarFile("../evil", "x")), ErrUnsafeArchive, "'..'"},
		{"dot-dot inside", tarGz(t, tarFile("a/../../evil", "x")), ErrUnsafeArchive, "'..'"},
		{"absolute symlink", tarGz(t, tarSymlink("l", "/etc")), ErrUnsafeArchive, "absolute"},
		{"escaping symlink", tarGz(t, tarSymlink("l", "../..")), ErrUnsafeArchive, "leads out"},
		{"write through escaping symlink", tarGz(t, tarSymlink("l", "../.."), tarFile("l/evil", "x")), ErrUnsafeArchive, "leads out"},
		{"write through inner symlink", tarGz(t, tarDir("d/"), tarSymlink("l", "d"), tarFile("l/x", "x")), ErrUnsafeArchive, "through the symbolic link"},
		{"escape through a link chain", tarGz(t, tarSymlink("s", "."), tarSymlink("t", "s/s/s/..")), ErrUnsafeArchive, "leads out"},
		{"hard link", tarGz(t, tarFile("a", "x"), tarEntry{name: "b", typ: tar.TypeLink, link: "a"}), ErrUnsafeArchive, "hard links"},
		{"escaping hard link", tarGz(t, tarEntry{name: "b", typ: tar.TypeLink, link: "/etc/passwd"}), ErrUnsafeArchive, "hard links"},
		{"char device", tarGz(t, tarEntry{name: "null", typ: tar.TypeChar}), ErrUnsafeArchive, "device"},
		{"block device", tarGz(t, tarEntry{name: "sda", typ: tar.TypeBlock}), ErrUnsafeArchive, "device"},
		{"fifo", tarGz(t, tarEntry{name: "p", typ: tar.TypeFifo}), ErrUnsafeArchive, "fifo"},
		{"gzip bomb", gzipBomb(t, 4*limit), ErrArchiveTooLarge, "limit"},
		{"size header over limit", lyingSize(t, 4*limit), ErrArchiveTooLarge, "limit"},
		{"compressed over limit", bytes.Repeat([]byte{0x1f}, limit+10), nil, ""},
		{"too many entries", tarGz(t, many...), ErrArchiveTooLarge, "more than 50 entries"},
		{"not gzip", []byte("plain text, not an archive"), nil, "gzip"},
		{"truncated gzip", good[:len(good)-6], nil, ""},
		{"corrupt checksum", append(good[:len(good)-8:len(good)-8], 0, 0, 0, 0, 5, 0, 0, 0), nil, "checksum"},
		{"empty input", nil, nil, "gzip"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sb := newSandbox(t)
			err := Unpack(bytes.NewReader(tc.archive), sb.dest, limit)
			if err == nil {
				t.Fatal("Unpack succeeded, want an error")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("got %q, want it to mention %q", err, tc.text)
			}
			sb.check(t, false)
		})
	}
}

func TestUnpackNamesEntry(t *testing.T) {
	sb := newSandbox(t)
	err := Unpack(bytes.NewReader(tarGz(t, tarFile("ok", "x"), tarFile("sub/../../x", "y"))), sb.dest, 0)
	var ae *ArchiveError
	if !errors.As(err, &ae) || ae.Entry != "sub/../../x" {
		t.Fatalf("got %v, want an ArchiveError naming sub/../../x", err)
	}
	if want := `archive entry "sub/../../x"`; !strings.Contains(err.Error(), want) {
		t.Fatalf("got %q, want it to contain %q", err, want)
	}
}

func TestUnpackLeavesDestUnchanged(t *testing.T) {
	sb := newSandbox(t)
	if err := os.Mkdir(sb.dest, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := Unpack(bytes.NewReader(tarGz(t, tarFile("a", "x"), tarFile("/b", "y"))), sb.dest, 0); err == nil {
		t.Fatal("Unpack succeeded, want an error")
	}
	sb.check(t, true)
	if ents, _ := os.ReadDir(sb.dest); len(ents) != 0 {
		t.Fatalf("dest holds %v after a failed unpack", ents)
	}

	// A directory that is not empty is refused before anything is read.
	os.WriteFile(filepath.Join(sb.dest, "keep"), []byte("k"), 0o644)
	err := Unpack(bytes.NewReader(tarGz(t, tarFile("a", "x"))), sb.dest, 0)
	if err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("got %v, want a not-empty error", err)
	}
	sb.check(t, true)
	if b, _ := os.ReadFile(filepath.Join(sb.dest, "keep")); string(b) != "k" {
		t.Fatalf("keep = %q", b)
	}
}

func TestUnpack(t *testing.T) {
	archive := tarGz(t,
		tarDir("./"),
		tarDir("./bin/"),
		tarEntry{name: "./bin/server", body: "#!/bin/sh\necho hi\n", mode: 0o4755}, // setuid dropped
		tarFile("./public/index.html", "<h1>hi</h1>"),                              // parent without its own entry
		tarEntry{name: "./public/sticky/", typ: tar.TypeDir, mode: 0o1777},
		tarFile("./gearbox.yml", "web: bin/server\n"),
		tarSymlink("./current", "public"),
		tarSymlink("./public/up", "../bin/server"),
		tarSymlink("./dangling", "nothing/here"),
		tarFile("./twice", "first"),
		tarFile("./twice", "second"),
	)
	for _, existing := range []bool{false, true} {
		sb := newSandbox(t)
		if existing {
			if err := os.Mkdir(sb.dest, 0o700); err != nil {
				t.Fatal(err)
			}
		}
		if err := Unpack(bytes.NewReader(archive), sb.dest, 0); err != nil {
			t.Fatalf("Unpack (dest existed: %v): %v", existing, err)
		}
		sb.check(t, true)
		wantFile := func(rel, body string, mode fs.FileMode) {
			t.Helper()
			p := filepath.Join(sb.dest, rel)
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != body {
				t.Fatalf("%s = %q, want %q", rel, b, body)
			}
			fi, _ := os.Stat(p)
			if fi.Mode() != mode {
				t.Fatalf("%s mode %v, want %v", rel, fi.Mode(), mode)
			}
		}
		wantFile("bin/server", "#!/bin/sh\necho hi\n", 0o755)
		wantFile("public/index.html", "<h1>hi</h1>", 0o644)
		wantFile("gearbox.yml", "web: bin/server\n", 0o644)
		wantFile("twice", "second", 0o644)
		wantFile("current/index.html", "<h1>hi</h1>", 0o644) // through the in-tree link
		wantFile("public/up", "#!/bin/sh\necho hi\n", 0o755)
		for _, d := range []string{".", "bin", "public", "public/sticky"} {
			fi, err := os.Stat(filepath.Join(sb.dest, d))
			if err != nil {
				t.Fatal(err)
			}
			if want := fs.ModeDir | 0o755; fi.Mode() != want {
				t.Fatalf("%s mode %v, want %v", d, fi.Mode(), want)
			}
		}
		if l, err := os.Readlink(filepath.Join(sb.dest, "current")); err != nil || l != "public" {
			t.Fatalf("current -> %q, %v", l, err)
		}
		if l, err := os.Readlink(filepath.Join(sb.dest, "dangling")); err != nil || l != "nothing/here" {
			t.Fatalf("dangling -> %q, %v", l, err)
		}
	}
}

func TestUnpackAtLimit(t *testing.T) {
	// The limit counts the unpacked tar stream (headers included), so an
	// archive is accepted with a limit of its own unpacked size.
	archive := gzipBomb(t, 10_000)
	zr, _ := gzip.NewReader(bytes.NewReader(archive))
	var raw bytes.Buffer
	raw.ReadFrom(zr)
	n := int64(raw.Len())
	sb := newSandbox(t)
	if err := Unpack(bytes.NewReader(archive), sb.dest, n); err != nil {
		t.Fatalf("Unpack at limit %d: %v", n, err)
	}
	sb2 := newSandbox(t)
	if err := Unpack(bytes.NewReader(archive), sb2.dest, n-1); !errors.Is(err, ErrArchiveTooLarge) {
		t.Fatalf("Unpack at limit %d: %v, want ErrArchiveTooLarge", n-1, err)
	}
	sb2.check(t, false)
}

func FuzzUnpack(f *testing.F) {
	f.Add(tarGz(f, tarDir("d/"), tarFile("d/a", "x"), tarSymlink("l", "d/a")))
	f.Add(tarGz(f, tarFile("/abs", "x")))
	f.Add(tarGz(f, tarFile("../up", "x")))
	f.Add(tarGz(f, tarSymlink("l", "../.."), tarFile("l/evil", "x")))
	f.Add(tarGz(f, tarSymlink("s", "."), tarSymlink("t", "s/s/s/.."), tarFile("t/x", "x")))
	f.Add(tarGz(f, tarFile("a", "x"), tarEntry{name: "b", typ: tar.TypeLink, link: "a"}))
	f.Add(tarGz(f, tarEntry{name: "null", typ: tar.TypeChar}))
	f.Add(gzipBomb(f, 1<<17))
	f.Add([]byte("not gzip"))
	f.Fuzz(func(t *testing.T, archive []byte) {
		sb := newSandbox(t)
		err := Unpack(bytes.NewReader(archive), sb.dest, 1<<16)
		sb.check(t, err == nil)
		if err != nil {
			return
		}
		// Every link in the tree resolves inside it.
		filepath.WalkDir(sb.dest, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.Type()&fs.ModeSymlink == 0 {
				return nil
			}
			rel, _ := filepath.Rel(sb.dest, p)
			if err := confined(sb.dest, filepath.ToSlash(rel)); err != nil {
				t.Fatalf("link %s: %v", rel, err)
			}
			return nil
		})
	})
}
