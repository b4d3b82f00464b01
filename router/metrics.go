package router

import (
	"github.com/prometheus/client_golang/prometheus"

	"gearbox/lb"
)

// metrics are the router's Prometheus metrics: what its listeners answer
// each app (counted on the request path by lb.FastServer), and, read
// from the pools at each scrape, their backends, sessions and retries.
type metrics struct {
	responses *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	r         *Router

	backends, sessions, retries, noBackend *prometheus.Desc
}

func newMetrics(r *Router) *metrics {
	return &metrics{
		r: r,
		responses: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gearbox_router_responses_total",
			Help: "Answers the router gave to requests for an app, by status class."}, []string{"app", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "gearbox_router_request_duration_seconds",
			Help: "Time from a request's headers to its answer, by app.", Buckets: lb.DurationBuckets}, []string{"app"}),
		backends: prometheus.NewDesc("gearbox_router_backends", "The app's LB gears in the router's pool, by state (up, down, ...).",
			[]string{"app", "state"}, nil),
		sessions: prometheus.NewDesc("gearbox_router_sessions", "Requests in flight to the app.", []string{"app"}, nil),
		retries: prometheus.NewDesc("gearbox_router_retries_total", "Attempts after the first, of requests that reached no LB gear.",
			[]string{"app"}, nil),
		noBackend: prometheus.NewDesc("gearbox_router_no_backend_total", "Requests answered 503 for want of an LB gear up.",
			[]string{"app"}, nil),
	}
}

// register registers m with reg.
func (m *metrics) register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.responses, m.duration, m} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// forApp returns the lb.Metrics of app's pool.
func (m *metrics) forApp(app string) *lb.Metrics {
	if m == nil {
		return nil
	}
	return lb.NewMetrics(m.responses, m.duration, app)
}

// forget drops the series of an app no longer routed.
func (m *metrics) forget(app string) {
	if m == nil {
		return
	}
	m.duration.DeleteLabelValues(app)
	m.responses.DeletePartialMatch(prometheus.Labels{"app": app})
}

func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.backends
	ch <- m.sessions
	ch <- m.retries
	ch <- m.noBackend
}

func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	for app, ref := range m.r.table.Load().apps {
		st := ref.pool.Status()
		states := map[string]int{}
		for _, b := range st.Backends {
			states[b.State]++
		}
		for s, n := range states {
			ch <- prometheus.MustNewConstMetric(m.backends, prometheus.GaugeValue, float64(n), app, s)
		}
		ch <- prometheus.MustNewConstMetric(m.sessions, prometheus.GaugeValue, float64(st.Sessions), app)
		ch <- prometheus.MustNewConstMetric(m.retries, prometheus.CounterValue, float64(st.Retries), app)
		ch <- prometheus.MustNewConstMetric(m.noBackend, prometheus.CounterValue, float64(st.NoBackend), app)
	}
}
