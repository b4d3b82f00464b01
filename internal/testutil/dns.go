package testutil

import (
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// ServeDNS serves zone (name with its final dot -> an IP, for an A
// record, or a name with its final dot, for a CNAME) on addr over UDP and
// TCP until the test ends; other names are NXDOMAIN. An A query of a
// CNAME gets the chain and the target's A record, as a recursive server
// answers.
func ServeDNS(t testing.TB, addr string, zone map[string]string) {
	t.Helper()
	h := dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		name := strings.ToLower(q.Question[0].Name)
		if _, ok := zone[name]; !ok {
			m.Rcode = dns.RcodeNameError
		}
		for v, ok := zone[name]; ok; v, ok = zone[name] {
			hdr := dns.RR_Header{Name: name, Class: dns.ClassINET, Ttl: 5}
			if strings.HasSuffix(v, ".") {
				hdr.Rrtype = dns.TypeCNAME
				m.Answer = append(m.Answer, &dns.CNAME{Hdr: hdr, Target: v})
				name = v
				continue
			}
			if q.Question[0].Qtype == dns.TypeA {
				hdr.Rrtype = dns.TypeA
				m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: net.ParseIP(v)})
			}
			break
		}
		w.WriteMsg(m)
	})
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait) // after the servers' shutdowns, which run first
	for _, network := range []string{"udp", "tcp"} {
		started := make(chan error, 1)
		srv := &dns.Server{Addr: addr, Net: network, Handler: h, NotifyStartedFunc: func() { started <- nil }}
		wg.Go(func() {
			if err := srv.ListenAndServe(); err != nil {
				started <- err
			}
		})
		if err := <-started; err != nil {
			t.Fatalf("test DNS on %s/%s: %v", addr, network, err)
		}
		t.Cleanup(func() { srv.Shutdown() })
	}
}
