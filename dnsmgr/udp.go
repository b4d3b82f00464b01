package dnsmgr

import (
	"errors"
	"net"
	"runtime"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// UDP is served by a loop of this package rather than miekg/dns's server,
// for one reason: miekg/dns reads and writes one packet per system call,
// and on a busy server the system calls are most of the cost. This loop
// reads up to udpBatch queries with one recvmmsg and sends their replies
// with one sendmmsg (golang.org/x/net; one packet per call where the
// system has no such calls). Queries are still unpacked and replies packed
// by miekg/dns, and answered by the same handler as over TCP.

// udpBatch is how many packets one read takes at most.
const udpBatch = 64

// udpBufSize is the receive buffer of one packet: larger queries are cut,
// and fail to unpack.
const udpBufSize = dns.MaxMsgSize

// batchConn is what ipv4.PacketConn and ipv6.PacketConn share.
type batchConn interface {
	ReadBatch(ms []ipv4.Message, flags int) (int, error)
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
}

func newBatchConn(c *net.UDPConn) batchConn {
	if a, ok := c.LocalAddr().(*net.UDPAddr); ok && a.IP.To4() != nil {
		return ipv4.NewPacketConn(c)
	}
	return ipv6.NewPacketConn(c)
}

// A socket bound to every address (":53") must send each reply from the
// address its query came to, or the client drops it: as miekg/dns does,
// it asks the kernel for each packet's destination (IP_PKTINFO,
// IPV6_PKTINFO) and sets it as the reply's source. A socket bound to one
// address needs none of it.

// oobSize is the room the destination and interface take in a packet's
// control data.
var oobSize = max(len(ipv4.NewControlMessage(ipv4.FlagDst|ipv4.FlagInterface)),
	len(ipv6.NewControlMessage(ipv6.FlagDst|ipv6.FlagInterface)))

// wantDst turns on the packets' destination in c's control data, and
// reports whether c needs it: whether it is bound to every address.
func wantDst(c *net.UDPConn) bool {
	if a, ok := c.LocalAddr().(*net.UDPAddr); !ok || !a.IP.IsUnspecified() {
		return false
	}
	// One of the two fails, for the family the socket is not.
	ipv6.NewPacketConn(c).SetControlMessage(ipv6.FlagDst|ipv6.FlagInterface, true)
	ipv4.NewPacketConn(c).SetControlMessage(ipv4.FlagDst|ipv4.FlagInterface, true)
	return true
}

// replySource returns the control data that sends a reply from the
// destination of the query whose control data is oob; nil if oob has
// none.
func replySource(oob []byte) []byte {
	var dst net.IP
	if cm := new(ipv6.ControlMessage); cm.Parse(oob) == nil && cm.Dst != nil {
		dst = cm.Dst
	} else if cm := new(ipv4.ControlMessage); cm.Parse(oob) == nil && cm.Dst != nil {
		dst = cm.Dst
	}
	switch {
	case dst == nil:
		return nil
	case dst.To4() == nil:
		return (&ipv6.ControlMessage{Src: dst}).Marshal()
	default:
		return (&ipv4.ControlMessage{Src: dst}).Marshal()
	}
}

// serveUDP answers the queries that reach c until c is closed.
func (s *Server) serveUDP(c *net.UDPConn) {
	bc := newBatchConn(c)
	h := handler{s, false}
	local := c.LocalAddr()
	dst := wantDst(c)
	in := make([]ipv4.Message, udpBatch)
	for i := range in {
		in[i].Buffers = [][]byte{make([]byte, udpBufSize)}
		if dst {
			in[i].OOB = make([]byte, oobSize)
		}
	}
	out := make([]ipv4.Message, udpBatch)
	replies := make([]udpReply, udpBatch)
	for i := range replies {
		replies[i].local = local
		replies[i].buf = make([]byte, 0, 512)
		out[i].Buffers = make([][]byte, 1)
	}
	for {
		n, err := bc.ReadBatch(in, 0)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.logUDPError(err, "dns udp read failed")
			// A persistent error must not spin the loop.
			time.Sleep(10 * time.Millisecond)
			continue
		}
		k := 0
		for i := range n {
			r := &replies[k]
			r.buf, r.remote = r.buf[:0], in[i].Addr
			h.servePacket(r, in[i].Buffers[0][:in[i].N])
			if len(r.buf) == 0 {
				continue
			}
			out[k].Buffers[0], out[k].Addr = r.buf, in[i].Addr
			if dst {
				out[k].OOB = replySource(in[i].OOB[:in[i].NN])
			}
			k++
		}
		for sent := 0; sent < k; {
			m, err := bc.WriteBatch(out[sent:k], 0)
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				// The first reply failed (such as a client gone):
				// skip it, send the others.
				s.logUDPError(err, "dns udp write failed")
				m = max(m, 1)
			}
			sent += m
		}
		for i := range k {
			// Keep the buffers of ordinary size for the next batch;
			// let large ones go.
			if cap(replies[i].buf) > 4096 {
				replies[i].buf = make([]byte, 0, 512)
			}
			out[i].Addr, out[i].OOB = nil, nil
		}
	}
}

// logUDPError logs err at most once a second.
func (s *Server) logUDPError(err error, msg string) {
	now := time.Now().UnixNano()
	last := s.lastUDPError.Load()
	if now-last > int64(time.Second) && s.lastUDPError.CompareAndSwap(last, now) {
		s.log.Warn().Err(err).Msg(msg)
	}
}

// servePacket answers the packet b as miekg/dns's server does: nothing
// for a packet too short to have a header or that is a response, FORMERR
// for one that does not unpack, else the handler's reply. Every reply
// goes by the rate limit first: one limited is dropped before the packet
// is even unpacked, or sent empty with TC set when it slips.
func (h handler) servePacket(w dns.ResponseWriter, b []byte) {
	if len(b) < 12 || b[2]&0x80 != 0 {
		return
	}
	verdict := rateAllow
	if !h.tcp {
		verdict = h.s.limit(w.RemoteAddr())
	}
	if verdict == rateDrop {
		return
	}
	req := new(dns.Msg)
	err := req.Unpack(b)
	switch {
	case verdict == rateSlip && err == nil:
		w.WriteMsg(truncated(req))
		return
	case verdict == rateSlip:
		return
	case err != nil:
		m := new(dns.Msg)
		m.Id = uint16(b[0])<<8 | uint16(b[1])
		m.Response = true
		m.Opcode = int(b[2]>>3) & 0xf
		m.Rcode = dns.RcodeFormatError
		w.WriteMsg(m)
		return
	}
	h.ServeDNS(w, req)
}

// udpReply is the dns.ResponseWriter of one UDP query of a batch: it
// keeps the reply for the batch's sendmmsg.
type udpReply struct {
	local, remote net.Addr
	buf           []byte
}

var _ dns.ResponseWriter = (*udpReply)(nil)

func (r *udpReply) LocalAddr() net.Addr  { return r.local }
func (r *udpReply) RemoteAddr() net.Addr { return r.remote }

// WriteMsg packs m as the reply.
func (r *udpReply) WriteMsg(m *dns.Msg) error {
	b, err := m.PackBuffer(r.buf[:0])
	if err != nil {
		return err
	}
	r.buf = b
	return nil
}

// Write sets b as the reply.
func (r *udpReply) Write(b []byte) (int, error) {
	r.buf = append(r.buf[:0], b...)
	return len(b), nil
}

func (r *udpReply) Close() error        { return nil }
func (r *udpReply) TsigStatus() error   { return nil }
func (r *udpReply) TsigTimersOnly(bool) {}
func (r *udpReply) Hijack()             {}

// udpReaders is how many goroutines read the UDP socket: one per CPU Go
// uses, so that one answers while another waits in a system call.
func udpReaders() int { return runtime.GOMAXPROCS(0) }
