package node

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"gearbox/store/internalapi"
	"gearbox/store/state"
)

// Bounds of a log request.
const (
	// DefaultLogTail is how many of a gear's last lines a log request
	// gets when it does not ask (tail=N).
	DefaultLogTail = 100
	// MaxLogTail caps tail=N: a request for more gets this many.
	MaxLogTail = 10000
	// MaxLogLine caps a line as served, its time stamp included; the rest
	// of a longer line is replaced by " [...]".
	MaxLogLine = 16 << 10
)

// logWriteTimeout bounds each batch of lines written to a log request, so
// that a reader that stopped reading cannot hold the node's Close.
const logWriteTimeout = 10 * time.Second

// LogHandler serves the logs of the gears this node runs, for the internal
// API (mount it there: its mutual TLS admits only members with the
// cluster secret):
//
//	GET internalapi.GearLogsPath(ID)?tail=N&follow=1
//
// answers text/plain: the gear's last N lines (DefaultLogTail when tail is
// not given, at most MaxLogTail), read across its rotated files as needed,
// each as written to the log: an RFC 3339 UTC time stamp, a space, the
// line. Empty lines are never sent. With follow=1 an empty line then marks
// the end of the tail, and new lines follow as the gear writes them, on
// into the next file when the log rotates, until the client goes, the
// gear leaves this node or the node closes.
//
// A gear that this node does not run (by its gear record) is 404; a bad
// tail or follow is 400.
//
// It also serves, under the same prefix,
//
//	GET internalapi.GearLBStatusPath(ID)?format=json
//
// the status page of LB gear ID's load balancer, which the load balancer
// does not serve on its own port (see lbConfig); 404 if it does not run
// here.
func (s *Supervisor) LogHandler() http.Handler {
	return http.HandlerFunc(s.serveLogs)
}

func (s *Supervisor) serveLogs(w http.ResponseWriter, r *http.Request) {
	if id, ok := internalapi.GearLBStatusID(r.URL.Path); ok {
		s.serveLBStatus(w, r, id)
		return
	}
	if id, ok := internalapi.GearDataID(r.URL.Path); ok {
		s.serveGearData(w, r, id)
		return
	}
	id, ok := internalapi.GearLogsID(r.URL.Path)
	if !ok || !gearIDRE.MatchString(id) {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	q := r.URL.Query()
	tail := DefaultLogTail
	if v := q.Get("tail"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			http.Error(w, fmt.Sprintf("tail %q: want a whole number of lines, 0 or more", v), http.StatusBadRequest)
			return
		}
		tail = min(n, MaxLogTail)
	}
	follow := false
	if v := q.Get("follow"); v != "" {
		var err error
		if follow, err = strconv.ParseBool(v); err != nil {
			http.Error(w, fmt.Sprintf("follow %q: want 1 or 0", v), http.StatusBadRequest)
			return
		}
	}
	if !s.runsGear(id) {
		http.Error(w, fmt.Sprintf("gear %s is not on node %s", id, s.name), http.StatusNotFound)
		return
	}
	if !s.track() {
		http.Error(w, "node is stopping", http.StatusServiceUnavailable)
		return
	}
	defer s.wg.Done()
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	defer context.AfterFunc(s.ctx, cancel)()

	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	out := newLogStream(w)
	out.deadline()
	path := filepath.Join(s.gearDir(id), "logs", "gear.log")
	cur, pos := s.writeTail(out, path, tail, follow)
	if !follow {
		if cur != nil {
			cur.Close()
		}
		out.flush()
		return
	}
	out.marker()
	if out.flush() != nil {
		if cur != nil {
			cur.Close()
		}
		return
	}
	s.followLog(ctx, id, path, cur, pos, out)
}

// runsGear reports whether gear id's record places it on this node.
func (s *Supervisor) runsGear(id string) bool {
	var g state.Gear
	_, err := s.st.Get(state.BucketGears, id, &g)
	return err == nil && g.Node == s.name
}

// track adds a request to the Supervisor's WaitGroup, so that Close waits
// for it, and reports false once the Supervisor is closed.
func (s *Supervisor) track() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Add(1)
	return true
}

// writeTail writes the last n lines of the log at path (and its rotated
// files path.1, path.2, ...) to out, oldest first. It returns the open
// current file (nil if there is none) and the offset up to which it was
// read, where following goes on; when follow is set, a last line not yet
// ended is kept in out for following to complete.
func (s *Supervisor) writeTail(out *logStream, path string, n int, follow bool) (*os.File, int64) {
	type part struct {
		f        *os.File
		off, end int64
	}
	var parts []part // newest first
	var cur *os.File
	var pos int64
	need := n
	for i := 0; i < s.cfg.LogFiles && (i == 0 || need > 0); i++ {
		name := path
		if i > 0 {
			name = fmt.Sprintf("%s.%d", path, i)
		}
		f, err := os.Open(name)
		if err != nil {
			continue
		}
		fi, err := f.Stat()
		// A rotation between two opens can show one file under two
		// names: it is read once.
		if err != nil || slices.ContainsFunc(parts, func(p part) bool {
			pfi, err := p.f.Stat()
			return err == nil && os.SameFile(pfi, fi)
		}) {
			f.Close()
			continue
		}
		off, got, err := tailStart(f, fi.Size(), need)
		if err != nil {
			off, got = fi.Size(), 0
		}
		need -= got
		parts = append(parts, part{f: f, off: off, end: fi.Size()})
		if i == 0 {
			cur, pos = f, fi.Size()
		}
	}
	for i := len(parts) - 1; i >= 0; i-- {
		p := parts[i]
		io.Copy(out, io.NewSectionReader(p.f, p.off, p.end-p.off))
		if p.f != cur || !follow {
			out.endPartial()
		}
		if p.f != cur {
			p.f.Close()
		}
	}
	return cur, pos
}

// CrashLogLines is how many lines of its log a crashing gear's status
// carries; each is cut to crashLineBytes.
const (
	CrashLogLines  = 10
	crashLineBytes = 300
)

// lastLines returns the last n lines of the file at path (not of its
// rotated files), each cut to crashLineBytes, or nil.
func lastLines(path string, n int) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil
	}
	off, _, err := tailStart(f, fi.Size(), n)
	if err != nil {
		return nil
	}
	b, err := io.ReadAll(io.NewSectionReader(f, off, min(fi.Size()-off, int64(n*4096))))
	if err != nil {
		return nil
	}
	var out []string
	for _, l := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		if len(l) > crashLineBytes {
			l = l[:crashLineBytes] + "..."
		}
		out = append(out, strings.ToValidUTF8(l, "?"))
	}
	return out
}

// tailStart returns the offset at which the last n lines of f's first size
// bytes start, and how many lines (up to n) that is: fewer when the file
// holds fewer.
func tailStart(f io.ReaderAt, size int64, n int) (off int64, lines int, err error) {
	if n <= 0 || size == 0 {
		return size, 0, nil
	}
	buf := make([]byte, 32<<10)
	pos := size
	for pos > 0 {
		k := min(int64(len(buf)), pos)
		pos -= k
		if _, err := f.ReadAt(buf[:k], pos); err != nil && !errors.Is(err, io.EOF) {
			return 0, 0, err
		}
		for i := k - 1; i >= 0; i-- {
			// Each newline but the file's last one starts a line.
			if buf[i] != '\n' || pos+i == size-1 {
				continue
			}
			if lines++; lines == n {
				return pos + i + 1, n, nil
			}
		}
	}
	return 0, lines + 1, nil
}

// followLog streams what is appended to the log at path, starting at pos
// in cur (the current file, or nil if there was none), until ctx ends, out
// fails or the gear leaves this node. It closes the file it holds.
func (s *Supervisor) followLog(ctx context.Context, id, path string, cur *os.File, pos int64, out *logStream) {
	defer func() {
		if cur != nil {
			cur.Close()
		}
	}()
	t := time.NewTicker(s.cfg.LogPollInterval)
	defer t.Stop()
	read := func() {
		n, _ := io.Copy(out, io.NewSectionReader(cur, pos, 1<<62))
		pos += n
	}
	for {
		out.deadline()
		// The log rotates by renaming gear.log and starting a new one:
		// what the old file got last is read before the new one.
		if fi, err := os.Stat(path); err == nil {
			switch cfi, cerr := fileStat(cur); {
			case cur == nil:
				cur, pos = openOrNil(path), 0
			case cerr != nil || !os.SameFile(fi, cfi):
				read()
				out.endPartial()
				cur.Close()
				cur, pos = openOrNil(path), 0
			case fi.Size() < pos:
				// Truncated in place (a log of one file).
				out.endPartial()
				pos = 0
			}
		}
		if cur != nil {
			read()
		}
		if out.flush() != nil || !s.runsGear(id) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func fileStat(f *os.File) (os.FileInfo, error) {
	if f == nil {
		return nil, os.ErrInvalid
	}
	return f.Stat()
}

func openOrNil(path string) *os.File {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	return f
}

// logStream writes log lines to a response: whole lines only, each cut at
// MaxLogLine, empty ones dropped. Its Write takes bytes of a log file in
// any split.
type logStream struct {
	w    *bufio.Writer
	rc   *http.ResponseController
	line []byte // the line being read, up to MaxLogLine
	cut  bool   // line was cut: the rest of it is dropped
	err  error  // the first write error
}

func newLogStream(w http.ResponseWriter) *logStream {
	return &logStream{w: bufio.NewWriterSize(w, 32<<10), rc: http.NewResponseController(w)}
}

// Write takes log bytes and writes the lines they end.
func (ls *logStream) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		chunk := p
		if i >= 0 {
			chunk = p[:i]
		}
		if !ls.cut {
			if room := MaxLogLine - len(ls.line); len(chunk) > room {
				ls.line = append(ls.line, chunk[:room]...)
				ls.cut = true
			} else {
				ls.line = append(ls.line, chunk...)
			}
		}
		if i < 0 {
			break
		}
		ls.endLine()
		p = p[i+1:]
	}
	return n, ls.err
}

// endLine writes the line read so far, if it is not empty.
func (ls *logStream) endLine() {
	if len(ls.line) > 0 && ls.err == nil {
		ls.w.Write(ls.line)
		if ls.cut {
			ls.w.WriteString(" [...]")
		}
		ls.err = ls.w.WriteByte('\n')
	}
	ls.line, ls.cut = ls.line[:0], false
}

// endPartial writes a line that its file ended without a newline.
func (ls *logStream) endPartial() { ls.endLine() }

// marker writes the empty line that ends the tail of a followed log.
func (ls *logStream) marker() {
	if ls.err == nil {
		ls.err = ls.w.WriteByte('\n')
	}
}

// deadline gives the writes that follow logWriteTimeout to complete.
func (ls *logStream) deadline() {
	ls.rc.SetWriteDeadline(time.Now().Add(logWriteTimeout))
}

// flush sends what is buffered to the client.
func (ls *logStream) flush() error {
	if ls.err != nil {
		return ls.err
	}
	ls.deadline()
	if ls.err = ls.w.Flush(); ls.err == nil {
		if err := ls.rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
			ls.err = err
		}
	}
	return ls.err
}
