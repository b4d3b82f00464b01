package node

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

// Port ownership. Gears share the node's address, so a gear that binds
// the port the broker gave another gear (before that gear does, or while
// it restarts) would receive its traffic. The broker hands out ports at
// random (broker/cluster.go), so that they cannot be guessed; and before
// the node reports a gear started, and routes to it, it checks that the
// socket listening on the gear's port belongs to the gear's uid. The
// kernel says who owns each listening socket in /proc/net/tcp and
// /proc/net/tcp6 (in the node's network namespace, which gears share).
// When gears are not isolated they all run as the node's user, and the
// check cannot tell them apart: it is not made.

// procNetTCP are the kernel's tables of TCP sockets.
var procNetTCP = []string{"/proc/net/tcp", "/proc/net/tcp6"}

// tcpListen is the state of a listening socket in /proc/net/tcp.
const tcpListen = "0A"

// listener is one listening TCP socket: its address and its owner.
type listener struct {
	addr netip.AddrPort
	uid  int
}

// portListeners returns the uids of the sockets that listen on port and
// take connections to addr: bound to addr itself or to every address.
func portListeners(addr netip.Addr, port int) ([]int, error) {
	var uids []int
	for _, p := range procNetTCP {
		f, err := os.Open(p)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue // no IPv6
			}
			return nil, err
		}
		ls, err := parseProcNetTCP(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", p, err)
		}
		for _, l := range ls {
			if int(l.addr.Port()) == port && takes(l.addr.Addr(), addr) {
				uids = append(uids, l.uid)
			}
		}
	}
	return uids, nil
}

// takes reports whether a socket bound to bound receives connections to
// addr.
func takes(bound, addr netip.Addr) bool {
	bound, addr = bound.Unmap(), addr.Unmap()
	return bound.IsUnspecified() || bound == addr
}

// parseProcNetTCP returns the listening sockets of a /proc/net/tcp or
// tcp6 table. Addresses are hexadecimal words in the host's byte order,
// ports hexadecimal numbers.
func parseProcNetTCP(r io.Reader) ([]listener, error) {
	var out []listener
	sc := bufio.NewScanner(r)
	first := true
	for sc.Scan() {
		if first { // the header
			first = false
			continue
		}
		f := strings.Fields(sc.Text())
		if len(f) < 8 || f[3] != tcpListen {
			continue
		}
		ip, port, ok := strings.Cut(f[1], ":")
		if !ok {
			return nil, fmt.Errorf("bad local address %q", f[1])
		}
		raw, err := hex.DecodeString(ip)
		if err != nil || (len(raw) != 4 && len(raw) != 16) {
			return nil, fmt.Errorf("bad local address %q", f[1])
		}
		b := make([]byte, len(raw))
		for i := 0; i < len(raw); i += 4 {
			binary.NativeEndian.PutUint32(b[i:], binary.BigEndian.Uint32(raw[i:]))
		}
		a, _ := netip.AddrFromSlice(b)
		pn, err := strconv.ParseUint(port, 16, 16)
		if err != nil {
			return nil, fmt.Errorf("bad local port %q", f[1])
		}
		uid, err := strconv.Atoi(f[7])
		if err != nil {
			return nil, fmt.Errorf("bad uid %q", f[7])
		}
		out = append(out, listener{addr: netip.AddrPortFrom(a, uint16(pn)), uid: uid})
	}
	return out, sc.Err()
}

// portTakenError is why a gear's port does not count as the gear's: a
// socket of another uid listens on it.
type portTakenError struct {
	port int
	uid  int // the squatter's
	want int // the gear's
}

func (e *portTakenError) Error() string {
	return fmt.Sprintf("port %d is taken by a process of uid %d, not the gear's (uid %d): the gear is not started and gets no requests until its own process listens there",
		e.port, e.uid, e.want)
}

// checkPortOwner returns a *portTakenError if a socket that takes
// connections to addr:port belongs to a uid other than want.
func checkPortOwner(addr netip.Addr, port, want int) error {
	uids, err := portListeners(addr, port)
	if err != nil {
		return fmt.Errorf("check the owner of port %d: %w", port, err)
	}
	for _, uid := range uids {
		if uid != want {
			return &portTakenError{port: port, uid: uid, want: want}
		}
	}
	return nil
}
