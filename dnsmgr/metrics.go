package dnsmgr

import (
	"sync/atomic"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// The query types and response codes that queries are counted by; others
// count as "other".
var (
	countedTypes  = []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeCNAME, dns.TypeNS, dns.TypeSOA, dns.TypeTXT, dns.TypeSRV, dns.TypeMX, dns.TypeANY, dns.TypeAXFR, dns.TypeIXFR}
	countedRcodes = []int{dns.RcodeSuccess, dns.RcodeFormatError, dns.RcodeServerFailure, dns.RcodeNameError, dns.RcodeNotImplemented, dns.RcodeRefused}
)

// queryCounts counts the queries answered, by type and response code: an
// array of atomic counters, so that a query costs one add.
type queryCounts struct {
	n [12][7]atomic.Uint64 // [type index][rcode index]; the last of each is "other"
}

// count counts one answer of code to a query of type qtype.
func (q *queryCounts) count(qtype uint16, code int) {
	ti, ci := len(countedTypes), len(countedRcodes)
	for i, t := range countedTypes {
		if t == qtype {
			ti = i
			break
		}
	}
	for i, c := range countedRcodes {
		if c == code {
			ci = i
			break
		}
	}
	q.n[ti][ci].Add(1)
}

var dnsQueries = prometheus.NewDesc("gearbox_dns_queries_total",
	"Queries the name server answered, by query type and response code (rate() gives answers per second).", []string{"qtype", "rcode"}, nil)

// Collector returns the name server's Prometheus metrics (gearbox_dns_*).
func (s *Server) Collector() prometheus.Collector { return dnsCollector{s} }

type dnsCollector struct{ s *Server }

func (c dnsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- dnsQueries }

func (c dnsCollector) Collect(ch chan<- prometheus.Metric) {
	for ti := range c.s.queries.n {
		qtype := "other"
		if ti < len(countedTypes) {
			qtype = dns.TypeToString[countedTypes[ti]]
		}
		for ci := range c.s.queries.n[ti] {
			v := c.s.queries.n[ti][ci].Load()
			if v == 0 {
				continue
			}
			rcode := "other"
			if ci < len(countedRcodes) {
				rcode = dns.RcodeToString[countedRcodes[ci]]
			}
			ch <- prometheus.MustNewConstMetric(dnsQueries, prometheus.CounterValue, float64(v), qtype, rcode)
		}
	}
}
