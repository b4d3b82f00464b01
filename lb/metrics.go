package lb

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the Prometheus metrics that a FastServer counts a pool's
// requests into: resolved once per pool (the app's labels already set),
// so that a request costs two atomic adds and no lookup. A nil *Metrics
// counts nothing.
type Metrics struct {
	// Duration observes each answered request's time, from its headers
	// read to its answer written, in seconds.
	Duration prometheus.Observer
	// Responses counts answers by status class: Responses[2] the 2xx.
	Responses [6]prometheus.Counter
}

// NewMetrics returns the Metrics of one app: the children of vecs
// labelled by labels, vecs being a counter of answers with a label
// "code" (a status class: 1xx to 5xx) after labels, and a histogram of
// durations.
func NewMetrics(responses *prometheus.CounterVec, duration *prometheus.HistogramVec, labels ...string) *Metrics {
	m := &Metrics{Duration: duration.WithLabelValues(labels...)}
	for c := 1; c <= 5; c++ {
		m.Responses[c] = responses.WithLabelValues(append(labels, string(rune('0'+c))+"xx")...)
	}
	return m
}

// observe counts one answer of status code after d.
func (m *Metrics) observe(code int, d time.Duration) {
	if m == nil || code < 100 || code > 599 {
		return
	}
	m.Responses[code/100].Inc()
	m.Duration.Observe(d.Seconds())
}

// DurationBuckets are the buckets of request duration histograms, in
// seconds: 1 ms to 10 s.
var DurationBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
