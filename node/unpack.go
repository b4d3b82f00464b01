package node

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// DefaultMaxDeploySize is the default cap, in bytes, on a deployment
// archive: on its compressed size, on its unpacked size and on the sum of
// the sizes its entries declare (--max-deploy-size, 512 MiB).
const DefaultMaxDeploySize int64 = 512 << 20

// MaxArchiveEntries caps the number of entries of a deployment archive, so
// that an archive of empty files cannot exhaust the node's inodes.
const MaxArchiveEntries = 100_000

// maxEntries is MaxArchiveEntries, lowered by tests.
var maxEntries = MaxArchiveEntries

// maxSymlinkHops bounds how many links Unpack follows while checking
// where a symbolic link leads, as the kernel's ELOOP limit does.
const maxSymlinkHops = 255

var (
	// ErrUnsafeArchive is wrapped by the errors of Unpack for an archive
	// entry it refuses: an absolute path, a ".." component, a link that
	// leads out of the tree, a hard link, a device, fifo or socket.
	ErrUnsafeArchive = errors.New("unsafe archive")
	// ErrArchiveTooLarge is wrapped by the errors of Unpack for an
	// archive over its size limit or with too many entries.
	ErrArchiveTooLarge = errors.New("archive too large")
)

// ArchiveError is an archive entry that Unpack refused.
type ArchiveError struct {
	Entry  string // the entry's name as the archive spells it
	Reason string // why it was refused
	Err    error  // ErrUnsafeArchive or ErrArchiveTooLarge
}

func (e *ArchiveError) Error() string {
	return fmt.Sprintf("archive entry %q: %s", e.Entry, e.Reason)
}

func (e *ArchiveError) Unwrap() error { return e.Err }

func unsafeEntry(name, format string, args ...any) error {
	return &ArchiveError{Entry: name, Reason: fmt.Sprintf(format, args...), Err: ErrUnsafeArchive}
}

// Unpack extracts the gzip-compressed tar archive read from r into dest,
// which must not exist or be an empty directory; its parent must exist.
//
// The archive is unpacked into a temporary directory next to dest and
// renamed to dest only once every entry is in place, so that on any error
// dest is left as it was. Unpack refuses absolute paths, ".." components,
// symbolic links that lead out of the tree (also through other links),
// writing through a symbolic link, hard links, devices, fifos and sockets;
// it refuses sparse files (whose declared size costs nothing in the
// archive), an archive whose entries declare more than limit bytes in all
// and one of more than MaxArchiveEntries entries; it stops once more than
// limit bytes were read from r or unpacked from the gzip stream. limit
// <= 0 means DefaultMaxDeploySize.
//
// r is read twice: a first pass checks every header (names, types, sizes,
// the number of entries) and the gzip checksum without writing anything,
// so that such an archive is refused before a byte reaches the disk; the
// second pass writes the entries.
//
// Files are created 0644, or 0755 when the archive gives them any
// execute bit; directories 0755. Owners, times, setuid, setgid and sticky
// bits of the archive are ignored.
func Unpack(r io.ReadSeeker, dest string, limit int64) (err error) {
	if limit <= 0 {
		limit = DefaultMaxDeploySize
	}
	dest = filepath.Clean(dest)
	existed, err := emptyOrAbsent(dest)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dest), "."+filepath.Base(dest)+".unpack-*")
	if err != nil {
		return fmt.Errorf("unpack into %s: %w", dest, err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	if err := os.Chmod(tmp, 0o755); err != nil {
		return fmt.Errorf("unpack into %s: %w", dest, err)
	}
	start, err := r.Seek(0, io.SeekCurrent)
	if err != nil {
		return fmt.Errorf("unpack: archive: %w", err)
	}
	if err := walk(r, limit, nil); err != nil {
		return err
	}
	if _, err := r.Seek(start, io.SeekStart); err != nil {
		return fmt.Errorf("unpack: rewind archive: %w", err)
	}
	if err := extract(r, tmp, limit); err != nil {
		return err
	}
	if existed {
		// Only an empty directory is removed: a concurrent writer that
		// filled it meanwhile makes the rename fail rather than lose data.
		if err := os.Remove(dest); err != nil {
			return fmt.Errorf("unpack into %s: replace empty directory: %w", dest, err)
		}
	}
	if err := os.Rename(tmp, dest); err != nil {
		return fmt.Errorf("unpack into %s: %w", dest, err)
	}
	return nil
}

// emptyOrAbsent reports whether dir exists; it fails unless dir is absent
// or an empty directory.
func emptyOrAbsent(dir string) (bool, error) {
	fi, err := os.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("unpack into %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return false, fmt.Errorf("unpack into %s: it exists and is not a directory", dir)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return false, fmt.Errorf("unpack into %s: %w", dir, err)
	}
	if len(ents) > 0 {
		return false, fmt.Errorf("unpack into %s: the directory is not empty", dir)
	}
	return true, nil
}

// countingReader fails once more than max bytes were read through it.
type countingReader struct {
	r    io.Reader
	n    int64
	max  int64
	what string
}

func (c *countingReader) Read(p []byte) (int, error) {
	if c.n > c.max {
		return 0, c.tooLarge()
	}
	if rem := c.max + 1 - c.n; int64(len(p)) > rem {
		p = p[:rem]
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.n > c.max {
		return n, c.tooLarge()
	}
	return n, err
}

func (c *countingReader) tooLarge() error {
	return fmt.Errorf("%w: the %s is larger than the limit of %d bytes", ErrArchiveTooLarge, c.what, c.max)
}

// extract unpacks the archive into root, an empty directory.
func extract(r io.Reader, root string, limit int64) error {
	var links []string // symbolic links, checked once every entry is in place
	err := walk(r, limit, func(tr *tar.Reader, hdr *tar.Header, rel string) error {
		if err := extractEntry(tr, hdr, root, rel); err != nil {
			return err
		}
		if hdr.Typeflag == tar.TypeSymlink {
			links = append(links, rel)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, l := range links {
		if err := confined(root, l); err != nil {
			return err
		}
	}
	return nil
}

// walk reads the archive from r, checks every header and calls visit, if
// it is not nil, for each entry but the root directory, with rel its
// clean slash path. Without visit the entries' data is only read through.
// It fails at the first header refused, when the sizes the entries
// declare add up to more than limit, or when more than limit bytes were
// read from r or unpacked from the gzip stream; it reads the gzip stream
// to its end, so that its checksum is verified.
func walk(r io.Reader, limit int64, visit func(tr *tar.Reader, hdr *tar.Header, rel string) error) error {
	zr, err := gzip.NewReader(&countingReader{r: r, max: limit, what: "compressed archive"})
	if err != nil {
		return fmt.Errorf("unpack: not a gzip-compressed archive: %w", err)
	}
	unzipped := &countingReader{r: zr, max: limit, what: "unpacked archive"}
	tr := tar.NewReader(unzipped)
	var declared int64 // the sizes of the entries so far
	for n := 0; ; n++ {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("unpack: read archive: %w", err)
		}
		if n >= maxEntries {
			return &ArchiveError{Entry: hdr.Name, Reason: fmt.Sprintf("the archive has more than %d entries", maxEntries), Err: ErrArchiveTooLarge}
		}
		if err := checkType(hdr); err != nil {
			return err
		}
		if hdr.Typeflag == tar.TypeXGlobalHeader {
			continue
		}
		// The sum, not each size alone: the data of an entry need not be
		// in the archive (a sparse file's holes, a header that lies), so
		// what was read so far does not bound what would be written.
		if hdr.Size > limit-declared || hdr.Size > limit-unzipped.n {
			return &ArchiveError{Entry: hdr.Name, Reason: fmt.Sprintf("its %d bytes take the archive over the limit of %d bytes", hdr.Size, limit), Err: ErrArchiveTooLarge}
		}
		declared += hdr.Size
		rel, err := entryPath(hdr.Name)
		if err != nil {
			return err
		}
		if rel == "" || visit == nil {
			continue // the archive's root directory itself, or a check only
		}
		if err := visit(tr, hdr, rel); err != nil {
			return err
		}
	}
	if _, err := io.Copy(io.Discard, unzipped); err != nil {
		return fmt.Errorf("unpack: read archive: %w", err)
	}
	return nil
}

// checkType refuses the entry types Unpack does not write: hard links,
// devices, fifos, sparse files and any type it does not know.
func checkType(hdr *tar.Header) error {
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return unsafeEntry(hdr.Name, "sparse files are not supported (PAX record %s); archive the file without --sparse", k)
		}
	}
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeDir, tar.TypeSymlink:
		return nil
	case tar.TypeXGlobalHeader:
		return nil // git archive's commit id; walk skips it
	case tar.TypeGNUSparse:
		return unsafeEntry(hdr.Name, "sparse files are not supported (GNU sparse entry); archive the file without --sparse")
	case tar.TypeLink:
		return unsafeEntry(hdr.Name, "hard links are not supported (link to %q); archive the file itself, e.g. tar --hard-dereference", hdr.Linkname)
	case tar.TypeChar, tar.TypeBlock:
		return unsafeEntry(hdr.Name, "device files are not allowed")
	case tar.TypeFifo:
		return unsafeEntry(hdr.Name, "fifos are not allowed")
	default:
		return unsafeEntry(hdr.Name, "unsupported entry type %q", hdr.Typeflag)
	}
}

// entryPath validates an entry's name and returns it as a clean slash
// path relative to the root ("" for the root itself).
func entryPath(name string) (string, error) {
	if name == "" {
		return "", unsafeEntry(name, "empty name")
	}
	if strings.ContainsRune(name, 0) {
		return "", unsafeEntry(name, "the name holds a NUL byte")
	}
	if strings.HasPrefix(name, "/") || filepath.IsAbs(name) {
		return "", unsafeEntry(name, "absolute paths are not allowed")
	}
	for _, c := range strings.Split(name, "/") {
		if c == ".." {
			return "", unsafeEntry(name, "'..' path components are not allowed")
		}
	}
	rel := path.Clean(name)
	if rel == "." {
		return "", nil
	}
	return rel, nil
}

// extractEntry creates one entry at rel under root.
func extractEntry(tr *tar.Reader, hdr *tar.Header, root, rel string) error {
	if err := checkType(hdr); err != nil {
		return err
	}
	if err := makeParents(root, rel, hdr.Name); err != nil {
		return err
	}
	target := filepath.Join(root, filepath.FromSlash(rel))
	fi, err := os.Lstat(target)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		fi = nil
	case err != nil:
		return fmt.Errorf("unpack: entry %q: %w", hdr.Name, err)
	}
	if hdr.Typeflag == tar.TypeDir {
		if fi != nil && fi.IsDir() {
			return os.Chmod(target, 0o755)
		}
		if fi != nil {
			return unsafeEntry(hdr.Name, "a directory replaces a file of the same name")
		}
		if err := os.Mkdir(target, 0o755); err != nil {
			return fmt.Errorf("unpack: entry %q: %w", hdr.Name, err)
		}
		return os.Chmod(target, 0o755) // past the umask
	}
	if fi != nil {
		if fi.IsDir() {
			return unsafeEntry(hdr.Name, "a file replaces a directory of the same name")
		}
		// A later entry of the same name wins, as with tar. The old
		// entry is removed, never opened: it may be a symbolic link.
		if err := os.Remove(target); err != nil {
			return fmt.Errorf("unpack: entry %q: %w", hdr.Name, err)
		}
	}
	if hdr.Typeflag == tar.TypeSymlink {
		if err := checkLinkTarget(hdr.Name, rel, hdr.Linkname); err != nil {
			return err
		}
		if err := os.Symlink(hdr.Linkname, target); err != nil {
			return fmt.Errorf("unpack: entry %q: %w", hdr.Name, err)
		}
		return nil
	}
	mode := os.FileMode(0o644)
	if hdr.Mode&0o111 != 0 {
		mode = 0o755
	}
	f, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("unpack: entry %q: %w", hdr.Name, err)
	}
	if _, err := io.Copy(f, tr); err != nil {
		f.Close()
		if errors.Is(err, ErrArchiveTooLarge) {
			return &ArchiveError{Entry: hdr.Name, Reason: err.Error(), Err: ErrArchiveTooLarge}
		}
		return fmt.Errorf("unpack: entry %q: %w", hdr.Name, err)
	}
	if err := f.Chmod(mode); err != nil { // past the umask
		f.Close()
		return fmt.Errorf("unpack: entry %q: %w", hdr.Name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("unpack: entry %q: %w", hdr.Name, err)
	}
	return nil
}

// makeParents creates the missing directories above rel and refuses to
// go through a symbolic link or a file: every entry is written where its
// name says, which is what makes the link checks sound.
func makeParents(root, rel, name string) error {
	dir := root
	parts := strings.Split(rel, "/")
	for _, c := range parts[:len(parts)-1] {
		dir = filepath.Join(dir, c)
		fi, err := os.Lstat(dir)
		if errors.Is(err, fs.ErrNotExist) {
			if err := os.Mkdir(dir, 0o755); err != nil {
				return fmt.Errorf("unpack: entry %q: %w", name, err)
			}
			if err := os.Chmod(dir, 0o755); err != nil {
				return fmt.Errorf("unpack: entry %q: %w", name, err)
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("unpack: entry %q: %w", name, err)
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return unsafeEntry(name, "it would be written through the symbolic link %q", relTo(root, dir))
		}
		if !fi.IsDir() {
			return unsafeEntry(name, "its parent %q is not a directory", relTo(root, dir))
		}
	}
	return nil
}

func relTo(root, p string) string {
	r, err := filepath.Rel(root, p)
	if err != nil {
		return p
	}
	return filepath.ToSlash(r)
}

// checkLinkTarget refuses, early and by name, a symbolic link whose
// target is absolute or climbs out of the tree as written. Links that
// escape through other links are caught by confined.
func checkLinkTarget(name, rel, target string) error {
	if target == "" {
		return unsafeEntry(name, "symbolic link with an empty target")
	}
	if strings.HasPrefix(target, "/") || filepath.IsAbs(target) {
		return unsafeEntry(name, "symbolic link to the absolute path %q", target)
	}
	if p := path.Join(path.Dir(rel), target); p == ".." || strings.HasPrefix(p, "../") {
		return unsafeEntry(name, "symbolic link to %q leads out of the tree", target)
	}
	return nil
}

// confined checks that following the symbolic link at rel stays under
// root, resolving every link on the way as the kernel would. Components
// that do not exist are taken as plain directories: nothing in the tree
// can make them links later without a new deployment.
func confined(root, rel string) error {
	p := filepath.Join(root, filepath.FromSlash(rel))
	if fi, err := os.Lstat(p); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		return nil // replaced by a later entry of the same name
	}
	target, err := os.Readlink(p)
	if err != nil {
		return fmt.Errorf("unpack: entry %q: %w", rel, err)
	}
	parts := strings.Split(rel, "/")
	cur := parts[: len(parts)-1 : len(parts)-1] // resolved, each a directory or absent
	pending := strings.Split(target, "/")
	for hops := 0; len(pending) > 0; {
		c := pending[0]
		pending = pending[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(cur) == 0 {
				return unsafeEntry(rel, "symbolic link to %q leads out of the tree", target)
			}
			cur = cur[:len(cur)-1]
			continue
		}
		p := filepath.Join(root, filepath.FromSlash(path.Join(append(cur, c)...)))
		fi, err := os.Lstat(p)
		if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			cur = append(cur, c)
			continue
		}
		if hops++; hops > maxSymlinkHops {
			return unsafeEntry(rel, "symbolic link to %q: too many levels of links", target)
		}
		next, err := os.Readlink(p)
		if err != nil {
			return fmt.Errorf("unpack: entry %q: %w", rel, err)
		}
		if strings.HasPrefix(next, "/") {
			return unsafeEntry(rel, "symbolic link to %q leads out of the tree", target)
		}
		pending = append(strings.Split(next, "/"), pending...)
	}
	return nil
}
