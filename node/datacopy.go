package node

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"gearbox/store"
	"gearbox/store/internalapi"
	"gearbox/store/state"
)

// Planned moves carry a gear's data directory. A gear that replaces
// another (Gear.Replaces, set by a drain's evacuation) copies the other
// gear's data/ from its node over the internal API before it first
// starts, as a tar stream (GearDataPath). Once the other gear is stopped
// (Replacement.Final), it merges the directory again, file by file: what
// the other gear changed since the copy is taken, unless this gear has
// changed that file too (it has served since, its version wins); what the
// other gear deleted is deleted, unless this gear changed it. A file is
// "changed" when its type, size, modification time or link target
// differ from the copy's. The state of the copy is kept in the gear's
// directory (copy.json), out of the gear's reach, and the gear's status
// reports it (GearStatus.DataCopy).
//
// Only regular files, directories and symbolic links travel; with
// isolation, only what the gear's uid owns (a hard link to another's
// file stays behind). The other gear's node reads its tree through an
// os.Root, so no link leads it outside.

// DataCopyTimeout bounds one copy or merge of a data directory.
const DataCopyTimeout = 15 * time.Minute

// copyStateFile, in a gear's directory, records the copy of the data of
// the gear it replaces.
const copyStateFile = "copy.json"

// fileMeta is what a copy remembers of one entry of a data directory.
type fileMeta struct {
	Type  string `json:"type"` // "f", "d" or "l"
	Size  int64  `json:"size,omitempty"`
	MTime int64  `json:"mtime,omitempty"` // Unix nanoseconds, files only
	Link  string `json:"link,omitempty"`
}

// copyState is the record of a gear's data copy.
type copyState struct {
	Gear   string              `json:"gear"` // the gear copied from
	Base   map[string]fileMeta `json:"base,omitempty"`
	Copied bool                `json:"copied,omitempty"`
	Merged bool                `json:"merged,omitempty"`
	Err    string              `json:"err,omitempty"`
}

// status is what the gear's status reports of c.
func (c copyState) status() string {
	switch {
	case c.Err != "":
		return state.DataCopyFailed + ": " + c.Err
	case c.Merged:
		return state.DataMerged
	case c.Copied:
		return state.DataCopied
	}
	return ""
}

// copyData brings the gear's data directory up to what spec asks: the
// first copy from the gear it replaces, then the final merge.
func (g *gear) copyData(spec *state.Gear) {
	r := spec.Replaces
	if r == nil || r.Gear == "" || r.Node == "" {
		return
	}
	file := filepath.Join(g.dir, copyStateFile)
	var cs copyState
	if b, err := os.ReadFile(file); err == nil {
		json.Unmarshal(b, &cs)
	}
	if cs.Gear != r.Gear {
		cs = copyState{Gear: r.Gear}
	}
	before := cs
	ctx, cancel := context.WithTimeout(g.s.ctx, DataCopyTimeout)
	defer cancel()
	data := filepath.Join(g.dir, "data")
	switch {
	case cs.Err != "":
	case !cs.Copied:
		g.note("copying the data directory of gear %s from node %s", r.Gear, r.Node)
		start := time.Now()
		base, n, err := g.s.pullData(ctx, r, data, g.uid, nil)
		if err != nil {
			cs.Err = "copy from gear " + r.Gear + ": " + err.Error()
			g.log.Error().Err(err).Str("from", r.Gear).Str("node", r.Node).Msg("data directory not copied; the gear starts without it")
			break
		}
		cs.Copied, cs.Base = true, base
		g.log.Info().Str("from", r.Gear).Str("node", r.Node).Int("entries", len(base)).Int64("bytes", n).Dur("took", time.Since(start)).Msg("data directory copied")
	}
	if r.Final && cs.Copied && !cs.Merged && cs.Err == "" {
		start := time.Now()
		stats := &mergeStats{}
		_, _, err := g.s.pullData(ctx, r, data, g.uid, &mergeInto{base: cs.Base, stats: stats})
		if err != nil {
			cs.Err = "final merge from gear " + r.Gear + ": " + err.Error()
			g.log.Error().Err(err).Str("from", r.Gear).Msg("data directory not merged")
		} else {
			cs.Merged = true
			g.log.Info().Str("from", r.Gear).Int("updated", stats.updated).Int("deleted", stats.deleted).Int("kept", stats.kept).
				Dur("took", time.Since(start)).Msg("data directory merged")
			if stats.kept > 0 {
				g.note("merge of gear %s's data: %d file(s) changed on both gears kept as this gear wrote them", r.Gear, stats.kept)
			}
		}
	}
	if cs.Copied != before.Copied || cs.Merged != before.Merged || cs.Err != before.Err {
		if b, err := json.Marshal(cs); err == nil {
			if err := writeFileAtomic(file, b, 0o600); err != nil {
				g.log.Warn().Err(err).Msg("record the data copy failed")
			}
		}
	}
	g.setDataCopy(cs.status())
}

// writeFileAtomic writes b to path through a temporary file.
func writeFileAtomic(path string, b []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// mergeInto makes pullData merge (see the comment above) instead of
// copying everything.
type mergeInto struct {
	base  map[string]fileMeta
	stats *mergeStats
}

type mergeStats struct{ updated, deleted, kept int }

// pullData reads the data directory of the gear r names from its node
// into dir, giving what it writes to uid (0: left as is). With m nil it
// writes every entry and returns what it wrote and the bytes; with m it
// merges.
func (s *Supervisor) pullData(ctx context.Context, r *state.Replacement, dir string, uid int, m *mergeInto) (map[string]fileMeta, int64, error) {
	var addr string
	for _, mem := range s.st.Members() {
		if mem.Name == r.Node && mem.Status == store.StatusAlive {
			addr = mem.InternalAddr
		}
	}
	if addr == "" {
		return nil, 0, fmt.Errorf("node %s is not alive", r.Node)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, internalapi.URL(addr, internalapi.GearDataPath(r.Gear)), nil)
	if err != nil {
		return nil, 0, err
	}
	resp, err := s.deploys.http.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, 0, fmt.Errorf("GET %s: %s", req.URL.Path, resp.Status)
	}
	zr, err := gzip.NewReader(resp.Body)
	if err != nil {
		return nil, 0, fmt.Errorf("read archive: %w", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, 0, err
	}
	defer root.Close()
	return unpackData(tar.NewReader(zr), root, uid, m)
}

// unpackData writes the entries of tr into root (see pullData).
func unpackData(tr *tar.Reader, root *os.Root, uid int, m *mergeInto) (map[string]fileMeta, int64, error) {
	wrote := map[string]fileMeta{}
	seen := map[string]bool{}
	var bytes int64
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, bytes, fmt.Errorf("read archive: %w", err)
		}
		name, ok := cleanEntry(hdr.Name)
		if !ok {
			continue
		}
		src, ok := headerMeta(hdr)
		if !ok {
			continue
		}
		seen[name] = true
		if m != nil {
			b, inBase := m.base[name]
			if inBase && b == src {
				continue // the other gear left it as copied
			}
			cur, curOK := lstatMeta(root, name)
			if !(inBase && curOK && cur == b) && !(!inBase && !curOK) {
				if src.Type != "d" {
					m.stats.kept++ // this gear changed it too: its version stays
				}
				continue
			}
			if src.Type != "d" {
				m.stats.updated++
			}
		}
		n, err := writeEntry(root, name, hdr, tr, uid)
		if err != nil {
			return nil, bytes, fmt.Errorf("write %s: %w", name, err)
		}
		bytes += n
		wrote[name] = src
	}
	if m != nil {
		// What the other gear deleted since the copy goes too, deepest
		// first, unless this gear changed it.
		var gone []string
		for name := range m.base {
			if !seen[name] {
				gone = append(gone, name)
			}
		}
		sort.Slice(gone, func(i, j int) bool { return len(gone[i]) > len(gone[j]) })
		for _, name := range gone {
			if cur, ok := lstatMeta(root, name); ok && cur == m.base[name] {
				if err := root.Remove(name); err == nil && cur.Type != "d" {
					m.stats.deleted++
				}
			}
		}
	}
	return wrote, bytes, nil
}

// cleanEntry returns the archive entry name as a path inside the data
// directory, and false for one that is not (absolute, "..", the root).
func cleanEntry(name string) (string, bool) {
	name = path.Clean(strings.TrimSuffix(name, "/"))
	if name == "." || name == "" || path.IsAbs(name) || name == ".." || strings.HasPrefix(name, "../") {
		return "", false
	}
	return name, true
}

// headerMeta is what a copy remembers of hdr, and false for an entry of
// a type that does not travel.
func headerMeta(hdr *tar.Header) (fileMeta, bool) {
	switch hdr.Typeflag {
	case tar.TypeReg:
		return fileMeta{Type: "f", Size: hdr.Size, MTime: hdr.ModTime.UnixNano()}, true
	case tar.TypeDir:
		return fileMeta{Type: "d"}, true
	case tar.TypeSymlink:
		return fileMeta{Type: "l", Link: hdr.Linkname}, true
	}
	return fileMeta{}, false
}

// lstatMeta is what a copy would remember of name in root, and false when
// there is nothing there.
func lstatMeta(root *os.Root, name string) (fileMeta, bool) {
	fi, err := root.Lstat(name)
	if err != nil {
		return fileMeta{}, false
	}
	switch {
	case fi.Mode().IsRegular():
		return fileMeta{Type: "f", Size: fi.Size(), MTime: fi.ModTime().UnixNano()}, true
	case fi.IsDir():
		return fileMeta{Type: "d"}, true
	case fi.Mode()&fs.ModeSymlink != 0:
		link, err := root.Readlink(name)
		if err != nil {
			return fileMeta{}, false
		}
		return fileMeta{Type: "l", Link: link}, true
	}
	return fileMeta{Type: "other"}, true
}

// writeEntry writes the entry hdr (its content read from r) as name in
// root, owned by uid when uid is not 0, and returns the bytes written.
func writeEntry(root *os.Root, name string, hdr *tar.Header, r io.Reader, uid int) (int64, error) {
	perm := fs.FileMode(hdr.Mode).Perm()
	if dir := path.Dir(name); dir != "." {
		if err := root.MkdirAll(dir, 0o700); err != nil {
			return 0, err
		}
	}
	var n int64
	switch hdr.Typeflag {
	case tar.TypeDir:
		if fi, err := root.Lstat(name); err != nil || !fi.IsDir() {
			root.RemoveAll(name)
			if err := root.Mkdir(name, 0o700); err != nil {
				return 0, err
			}
		}
		if err := root.Chmod(name, perm|0o700); err != nil {
			return 0, err
		}
	case tar.TypeSymlink:
		root.RemoveAll(name)
		if err := root.Symlink(hdr.Linkname, name); err != nil {
			return 0, err
		}
	case tar.TypeReg:
		// A directory or link in the way goes; the file is written anew.
		if fi, err := root.Lstat(name); err == nil && !fi.Mode().IsRegular() {
			root.RemoveAll(name)
		} else if err == nil {
			root.Remove(name)
		}
		f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
		if err != nil {
			return 0, err
		}
		n, err = io.Copy(f, r)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return n, err
		}
		if err := root.Chmod(name, perm); err != nil {
			return n, err
		}
		if err := root.Chtimes(name, hdr.ModTime, hdr.ModTime); err != nil {
			return n, err
		}
	}
	if uid != 0 {
		if err := root.Lchown(name, uid, uid); err != nil {
			return n, err
		}
	}
	return n, nil
}

// serveGearData answers r with the data directory of gear id as a
// gzip-compressed tar archive (GearDataPath), or 404 if the gear does not
// run here.
func (s *Supervisor) serveGearData(w http.ResponseWriter, r *http.Request, id string) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if !gearIDRE.MatchString(id) || !s.runsGear(id) {
		http.Error(w, fmt.Sprintf("gear %s is not on node %s", id, s.name), http.StatusNotFound)
		return
	}
	if !s.track() {
		http.Error(w, "node is stopping", http.StatusServiceUnavailable)
		return
	}
	defer s.wg.Done()
	root, err := os.OpenRoot(filepath.Join(s.gearDir(id), "data"))
	if err != nil {
		http.Error(w, fmt.Sprintf("gear %s has no data directory here", id), http.StatusNotFound)
		return
	}
	defer root.Close()
	uid := 0
	if s.iso.on() {
		uid = s.iso.uids.lookup(id)
	}
	w.Header().Set("Content-Type", "application/gzip")
	w.Header().Set("Cache-Control", "no-store")
	zw, _ := gzip.NewWriterLevel(w, gzip.BestSpeed)
	tw := tar.NewWriter(zw)
	if err := packData(r.Context(), root, tw, uid); err != nil {
		s.log.Warn().Err(err).Str("gear", id).Msg("serve gear data failed")
		// A cut stream, not a short archive taken for the whole.
		panic(http.ErrAbortHandler)
	}
	if err := tw.Close(); err != nil {
		panic(http.ErrAbortHandler)
	}
	if err := zw.Close(); err != nil {
		panic(http.ErrAbortHandler)
	}
}

// packData writes the tree of root to tw: regular files, directories and
// symbolic links, and with uid not 0 only what uid owns.
func packData(ctx context.Context, root *os.Root, tw *tar.Writer, uid int) error {
	return fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			if p == "." {
				return err
			}
			return nil // gone meanwhile
		}
		if p == "." {
			return nil
		}
		fi, err := root.Lstat(p)
		if err != nil {
			return nil
		}
		if st, ok := statOf(fi); ok && uid != 0 && st.uid != uid {
			if fi.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		hdr := &tar.Header{Name: p, Mode: int64(fi.Mode().Perm()), ModTime: fi.ModTime(), Format: tar.FormatPAX}
		switch {
		case fi.IsDir():
			hdr.Typeflag, hdr.Name = tar.TypeDir, p+"/"
			return tw.WriteHeader(hdr)
		case fi.Mode()&fs.ModeSymlink != 0:
			link, err := root.Readlink(p)
			if err != nil {
				return nil
			}
			hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, link
			return tw.WriteHeader(hdr)
		case fi.Mode().IsRegular():
			f, err := root.Open(p)
			if err != nil {
				return nil
			}
			defer f.Close()
			ofi, err := f.Stat()
			if err != nil || !ofi.Mode().IsRegular() || !os.SameFile(fi, ofi) {
				return nil // replaced meanwhile
			}
			hdr.Typeflag, hdr.Size, hdr.ModTime = tar.TypeReg, ofi.Size(), ofi.ModTime()
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
			// A file that shrinks meanwhile is padded: the header said
			// its size.
			_, err = io.CopyN(tw, io.MultiReader(f, zeros{}), ofi.Size())
			return err
		}
		return nil
	})
}

// zeros reads as an endless run of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
