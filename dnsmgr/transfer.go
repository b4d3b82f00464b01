package dnsmgr

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Zone transfers. Secondaries listed in Config.AllowTransfer may take the
// whole zone by AXFR over TCP; IXFR is answered with the whole zone too
// (RFC 1995 allows it: this server keeps no history), and over UDP with
// the SOA alone, which tells the secondary the serial and sends it to TCP.
// Everyone else gets REFUSED, as does AXFR over UDP. There is no TSIG: the
// list of addresses is the only access control.

// transferChunk is how many records go in one message of a transfer:
// miekg/dns sends them uncompressed, and 200 records of the longest names
// this zone has stay well under 64 KiB.
const transferChunk = 200

// isTransfer reports whether req asks for a zone transfer.
func isTransfer(req *dns.Msg) bool {
	return !req.Response && req.Opcode == dns.OpcodeQuery && len(req.Question) == 1 &&
		(req.Question[0].Qtype == dns.TypeAXFR || req.Question[0].Qtype == dns.TypeIXFR)
}

// refusalLogBurst is how many refused zone transfers are logged a minute;
// the "refused" field of each counts them all.
const refusalLogBurst = 10

// transferAllowed reports whether addr may transfer the zone.
func (s *Server) transferAllowed(addr net.Addr) bool {
	var ip netip.Addr
	switch a := addr.(type) {
	case *net.TCPAddr:
		ip, _ = netip.AddrFromSlice(a.IP)
	case *net.UDPAddr:
		ip, _ = netip.AddrFromSlice(a.IP)
	}
	ip = ip.Unmap()
	for _, p := range s.allow {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// transfer answers a zone transfer request.
func (s *Server) transfer(w dns.ResponseWriter, req *dns.Msg, t *Table, tcp bool) {
	q := req.Question[0]
	remote := w.RemoteAddr()
	log := s.log.With().Str("remote", remote.String()).Str("type", dns.TypeToString[q.Qtype]).Logger()
	refuse := func(why string) {
		n := s.refused.Add(1)
		s.refusals.Info().Str("remote", remote.String()).Str("type", dns.TypeToString[q.Qtype]).
			Str("reason", why).Int64("refused", n).Msg("zone transfer refused")
		m := new(dns.Msg)
		m.SetRcode(req, dns.RcodeRefused)
		w.WriteMsg(m)
	}
	switch {
	case !strings.EqualFold(q.Name, t.zone) || q.Qclass != dns.ClassINET:
		refuse("not this zone")
		return
	case !s.transferAllowed(remote):
		refuse("address not in --dns-allow-transfer")
		return
	case !tcp && q.Qtype == dns.TypeAXFR:
		refuse("AXFR over UDP")
		return
	case !tcp:
		m := new(dns.Msg)
		m.SetReply(req)
		m.Authoritative = true
		m.Answer = []dns.RR{t.soa}
		w.WriteMsg(m)
		return
	}
	rrs := t.Records()
	ch := make(chan *dns.Envelope, len(rrs)/transferChunk+1)
	for len(rrs) > 0 {
		n := min(len(rrs), transferChunk)
		ch <- &dns.Envelope{RR: rrs[:n]}
		rrs = rrs[n:]
	}
	close(ch)
	if err := new(dns.Transfer).Out(w, req, ch); err != nil {
		log.Warn().Err(err).Uint32("serial", t.serial).Msg("zone transfer failed")
		return
	}
	log.Info().Uint32("serial", t.serial).Msg("zone transferred")
}

// notifyInterval spaces rounds of NOTIFY: each may make every secondary
// transfer the whole zone, and a busy cluster changes it many times a
// second.
const notifyInterval = time.Second

// notifyLoop sends NOTIFY to the secondaries after each change of the
// serial, a round at most every notifyInterval; changes during a round or
// the wait after it make one more round, with the serial of then.
func (s *Server) notifyLoop(ctx context.Context) {
	if len(s.notify) == 0 {
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.notifyC:
		}
		next := time.Now().Add(notifyInterval)
		s.notifyOnce(ctx)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Until(next)):
		}
	}
}

// notifyOnce sends NOTIFY with the current SOA to every secondary at
// once, each retried on no answer, and waits for all.
func (s *Server) notifyOnce(ctx context.Context) {
	t := s.table.Load()
	var wg sync.WaitGroup
	for _, target := range s.notify {
		wg.Go(func() { s.notifyTarget(ctx, t, target) })
	}
	wg.Wait()
}

// notifyTarget sends one NOTIFY to target, retrying after 1 s, 2 s, 4 s...
// up to NotifyRetries times until it gets an answer.
func (s *Server) notifyTarget(ctx context.Context, t *Table, target netip.AddrPort) {
	m := new(dns.Msg)
	m.SetNotify(t.zone)
	m.Authoritative = true
	m.Answer = []dns.RR{t.soa}
	c := &dns.Client{Net: "udp", Timeout: s.cfg.NotifyTimeout}
	// Send from the address DNS listens on: secondaries take NOTIFY
	// only from their primary's address.
	if host, _, err := net.SplitHostPort(s.Addr()); err == nil {
		if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() {
			c.Dialer = &net.Dialer{LocalAddr: &net.UDPAddr{IP: ip}, Timeout: s.cfg.NotifyTimeout}
		}
	}
	log := s.log.With().Str("secondary", target.String()).Uint32("serial", t.serial).Logger()
	retries := max(s.cfg.NotifyRetries, 0)
	wait := time.Second
	for attempt := 0; ; attempt++ {
		r, _, err := c.ExchangeContext(ctx, m, target.String())
		switch {
		case err == nil && r.Rcode == dns.RcodeSuccess:
			log.Debug().Msg("notify sent")
			return
		case err == nil:
			// An answer, even a refusal, is final: sending again would
			// get the same.
			log.Warn().Str("rcode", dns.RcodeToString[r.Rcode]).Msg("notify refused by secondary")
			return
		case ctx.Err() != nil:
			return
		case attempt >= retries:
			log.Warn().Err(err).Int("attempts", attempt+1).Msg("notify got no answer")
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait *= 2
	}
}
