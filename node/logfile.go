package node

import (
	"bytes"
	"fmt"
	"os"
	"sync"
	"time"
)

// logTimeFormat starts every line of a gear's log.
const logTimeFormat = "2006-01-02T15:04:05.000Z07:00"

// logFile is a gear's log: every line stamped with the time it was written
// (UTC), rotated by size. When the current file reaches maxBytes at the end
// of a line (or a line alone exceeds it), gear.log becomes gear.log.1,
// gear.log.1 becomes gear.log.2, and so on, keeping files files in all. It
// is safe for concurrent use; a line written by one writer in one Write
// call is never split by another's.
type logFile struct {
	path     string
	maxBytes int64
	files    int
	now      func() time.Time

	mu      sync.Mutex
	f       *os.File
	size    int64
	midLine bool // the last Write ended inside a line
	closed  bool
	err     error // the last error writing or rotating, for diagnostics
}

// openLogFile opens (appending) or creates the log at path.
func openLogFile(path string, maxBytes int64, files int, now func() time.Time) (*logFile, error) {
	l := &logFile{path: path, maxBytes: maxBytes, files: max(files, 1), now: now}
	if err := l.open(); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *logFile) open() error {
	// Never through a link: the node writes as root.
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|oNoFollow, 0o640)
	if err != nil {
		return fmt.Errorf("open gear log: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("open gear log: %w", err)
	}
	l.f, l.size, l.midLine = f, fi.Size(), false
	return nil
}

// Write stamps and appends p. Once the log is closed it fails; before, it
// reports all of p written even when the file cannot be written (the
// output is then lost), so that a full disk never stalls a gear on its
// output pipe.
func (l *logFile) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return 0, os.ErrClosed
	}
	n := len(p)
	if l.f == nil {
		if l.err = l.open(); l.err != nil {
			return n, nil
		}
	}
	var buf bytes.Buffer
	stamp := l.now().UTC().Format(logTimeFormat) + " "
	for len(p) > 0 {
		if !l.midLine {
			buf.WriteString(stamp)
		}
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			buf.Write(p)
			l.midLine = true
			break
		}
		buf.Write(p[:i+1])
		p = p[i+1:]
		l.midLine = false
	}
	w, err := l.f.Write(buf.Bytes())
	l.size += int64(w)
	if err != nil {
		l.err = err
		return n, nil
	}
	if l.size >= l.maxBytes && (!l.midLine || l.size >= 2*l.maxBytes) {
		if err := l.rotate(); err != nil {
			l.err = err
		}
	}
	return n, nil
}

// rotate shifts the files by one and starts an empty current file.
func (l *logFile) rotate() error {
	l.f.Close()
	l.f = nil
	var err error
	for i := l.files - 1; i >= 1 && err == nil; i-- {
		from := l.path
		if i > 1 {
			from = fmt.Sprintf("%s.%d", l.path, i-1)
		}
		if e := os.Rename(from, fmt.Sprintf("%s.%d", l.path, i)); e != nil && !os.IsNotExist(e) {
			err = fmt.Errorf("rotate gear log: %w", e)
		}
	}
	if l.files == 1 {
		if e := os.Truncate(l.path, 0); e != nil {
			err = fmt.Errorf("rotate gear log: %w", e)
		}
	}
	if e := l.open(); e != nil {
		return e
	}
	return err
}

// Close closes the file; later writes fail.
func (l *logFile) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}
