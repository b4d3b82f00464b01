package node

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
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
	f.Add(sparseArchive(f, "pax-0.1", 2, 1<<15))
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

// rawHeader is the 512-byte tar header block of an entry of type typ and
// format f, whose data is size bytes; patch, if not nil, edits the block
// before its checksum is computed. It writes headers that tar.Writer
// refuses or rewrites (PAX extended headers of any content, GNU sparse
// entries).
func rawHeader(t testing.TB, name string, typ byte, f tar.Format, size int64, patch func(b []byte)) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: size, Format: f}); err != nil {
		t.Fatal(err)
	}
	tw.Flush()
	b := slices.Clone(buf.Bytes()[:512])
	b[156] = typ
	if patch != nil {
		patch(b)
	}
	copy(b[148:156], "        ")
	var sum int64
	for _, c := range b {
		sum += int64(c)
	}
	copy(b[148:156], fmt.Sprintf("%06o\x00 ", sum))
	return b
}

// padded is b followed by zeros up to a multiple of 512 bytes.
func padded(b []byte) []byte {
	return append(b, make([]byte, -len(b)&511)...)
}

// paxRecords is the data of a PAX extended header holding kv, pairs of
// keys and values.
func paxRecords(kv ...string) []byte {
	var out []byte
	for i := 0; i < len(kv); i += 2 {
		rec := " " + kv[i] + "=" + kv[i+1] + "\n"
		n := len(rec)
		for len(strconv.Itoa(n))+len(rec) != n {
			n = len(strconv.Itoa(n)) + len(rec)
		}
		out = append(out, strconv.Itoa(n)+rec...)
	}
	return out
}

// sparseArchive is a gzip-compressed tar archive of n sparse files, each
// declaring size bytes (all zeros but the first) while holding one byte
// of data, in the GNU sparse format named by format: "pax-0.0",
// "pax-0.1", "pax-1.0" or "gnu" (the old type 'S').
func sparseArchive(t testing.TB, format string, n int, size int64) []byte {
	t.Helper()
	var raw []byte
	for i := range n {
		name := fmt.Sprintf("f%02d", i)
		real := strconv.FormatInt(size, 10)
		var recs []byte
		data, phys := []byte{1}, int64(1) // the data, and its size in the archive
		switch format {
		case "pax-0.0":
			recs = paxRecords("GNU.sparse.size", real, "GNU.sparse.numblocks", "1", "GNU.sparse.offset", "0", "GNU.sparse.numbytes", "1")
		case "pax-0.1":
			recs = paxRecords("GNU.sparse.size", real, "GNU.sparse.numblocks", "1", "GNU.sparse.map", "0,1")
		case "pax-1.0":
			recs = paxRecords("GNU.sparse.major", "1", "GNU.sparse.minor", "0", "GNU.sparse.name", name, "GNU.sparse.realsize", real)
			data, phys = append(padded([]byte("1\n0\n1\n")), data...), 512+1 // the map, then the data
		case "gnu":
			raw = append(raw, rawHeader(t, name, tar.TypeGNUSparse, tar.FormatGNU, 1, func(b []byte) {
				copy(b[386:], "00000000000\x00")              // offset of the first fragment
				copy(b[398:], "00000000001\x00")              // its length
				copy(b[483:], fmt.Sprintf("%011o\x00", size)) // the file's real size
			})...)
			raw = append(raw, padded(data)...)
			continue
		default:
			t.Fatalf("unknown sparse format %q", format)
		}
		raw = append(raw, rawHeader(t, "PaxHeaders/"+name, tar.TypeXHeader, tar.FormatUSTAR, int64(len(recs)), nil)...)
		raw = append(raw, padded(recs)...)
		raw = append(raw, rawHeader(t, name, tar.TypeReg, tar.FormatUSTAR, phys, nil)...)
		raw = append(raw, padded(data)...)
	}
	raw = append(raw, make([]byte, 1024)...)
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(raw)
	zw.Close()
	return buf.Bytes()
}

// watchedReader reads an archive a byte at a time and, before each read,
// measures the bytes of the files under dir, keeping the peak: what
// Unpack wrote before it refused the archive, even though it removes
// everything when it does.
type watchedReader struct {
	r    *bytes.Reader
	dir  string
	peak int64
}

func (w *watchedReader) Read(p []byte) (int, error) {
	var n int64
	filepath.WalkDir(w.dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	w.peak = max(w.peak, n)
	if len(p) > 1 {
		p = p[:1]
	}
	return w.r.Read(p)
}

func (w *watchedReader) Seek(off int64, whence int) (int64, error) { return w.r.Seek(off, whence) }

// The attack of issue #12 (item 9): an archive of a few KiB whose entries
// are sparse files, each declaring half the limit, so that every
// entry passes a check of its own size and the node writes n times the
// limit. Every GNU sparse format is refused, before anything is written.
func TestUnpackRefusesSparse(t *testing.T) {
	const limit = 1 << 20
	for _, format := range []string{"pax-0.0", "pax-0.1", "pax-1.0", "gnu"} {
		t.Run(format, func(t *testing.T) {
			archive := sparseArchive(t, format, 20, limit/2)
			sb := newSandbox(t)
			w := &watchedReader{r: bytes.NewReader(archive), dir: sb.outer}
			err := Unpack(w, sb.dest, limit)
			if !errors.Is(err, ErrUnsafeArchive) || !strings.Contains(err.Error(), "sparse files are not supported") {
				t.Fatalf("Unpack of a %d-byte archive of sparse files: %v (wrote up to %d bytes), want a sparse ErrUnsafeArchive", len(archive), err, w.peak)
			}
			if w.peak != 0 {
				t.Fatalf("%d bytes written before the archive was refused", w.peak)
			}
			sb.check(t, false)
		})
	}
}

// An archive whose entries are each under the limit but declare more
// than it in all is refused before any entry is written, not once the
// entry that crosses the limit comes.
func TestUnpackRefusesDeclaredSum(t *testing.T) {
	const limit = 1 << 20
	zeros := strings.Repeat("\x00", limit/8)
	var entries []tarEntry
	for i := range 12 {
		entries = append(entries, tarFile(fmt.Sprintf("f%02d", i), zeros))
	}
	sb := newSandbox(t)
	w := &watchedReader{r: bytes.NewReader(tarGz(t, entries...)), dir: sb.outer}
	err := Unpack(w, sb.dest, limit)
	if !errors.Is(err, ErrArchiveTooLarge) {
		t.Fatalf("Unpack: %v, want ErrArchiveTooLarge", err)
	}
	if w.peak != 0 {
		t.Fatalf("%d bytes written before the archive was refused", w.peak)
	}
	sb.check(t, false)
}
