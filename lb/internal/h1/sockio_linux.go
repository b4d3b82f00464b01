package h1

import (
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"
)

// SocketIO returns the reader and writer that a proxy's buffers use on
// c: on Linux, read(2) and write(2) made as raw system calls through the
// connection's RawConn, so that the runtime does not count them as system
// calls. A proxy makes several short ones per request, on non-blocking
// sockets, and each counted one costs an entry and exit of the scheduler's
// system call state, and lets the runtime's monitor thread hand the
// goroutine's processor to another thread while it runs, and wake up
// every 20 µs to see to it. A read or write that would block returns to
// the poller as net.Conn's do: each waits only after a call found nothing
// to read or no room to write, so no readiness is missed.
func SocketIO(c net.Conn) (io.Reader, io.Writer) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return c, c
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return c, c
	}
	r, w := &rawReader{rc: rc}, &rawWriter{rc: rc}
	r.fn, w.fn = r.read, w.write
	return r, w
}

// rawReader reads a socket with raw read(2) calls.
type rawReader struct {
	rc    syscall.RawConn
	fn    func(fd uintptr) bool // r.read, made once
	p     []byte
	n     int
	errno syscall.Errno
}

func (r *rawReader) read(fd uintptr) bool {
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(unsafe.SliceData(r.p))), uintptr(len(r.p)))
		if e == syscall.EINTR {
			continue
		}
		r.n, r.errno = int(n), e
		return e != syscall.EAGAIN
	}
}

func (r *rawReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	r.p, r.n, r.errno = p, 0, 0
	err := r.rc.Read(r.fn)
	r.p = nil
	switch {
	case err != nil:
		return 0, err
	case r.errno != 0:
		return 0, os.NewSyscallError("read", r.errno)
	case r.n == 0:
		return 0, io.EOF
	}
	return r.n, nil
}

// rawWriter writes a socket with raw write(2) calls.
type rawWriter struct {
	rc    syscall.RawConn
	fn    func(fd uintptr) bool // w.write, made once
	p     []byte
	n     int
	errno syscall.Errno
}

func (w *rawWriter) write(fd uintptr) bool {
	for len(w.p) > 0 {
		n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(unsafe.SliceData(w.p))), uintptr(len(w.p)))
		switch e {
		case 0:
			w.n += int(n)
			w.p = w.p[n:]
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			w.errno = e
			return true
		}
	}
	return true
}

func (w *rawWriter) Write(p []byte) (int, error) {
	w.p, w.n, w.errno = p, 0, 0
	err := w.rc.Write(w.fn)
	w.p = nil
	switch {
	case err != nil:
		return w.n, err
	case w.errno != 0:
		return w.n, os.NewSyscallError("write", w.errno)
	}
	return w.n, nil
}
