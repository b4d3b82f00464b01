package broker

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"gearbox/lb"
	"gearbox/store/state"
)

// brokerMetrics are the broker's Prometheus metrics (gearbox_broker_*),
// registered with Config.Metrics; every method is a no-op on nil.
type brokerMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	alerts   *prometheus.CounterVec
	events   *prometheus.CounterVec
	rollouts *prometheus.CounterVec
	acme     *prometheus.CounterVec
	leader   prometheus.GaugeFunc
}

func newBrokerMetrics(b *Broker, reg prometheus.Registerer) (*brokerMetrics, error) {
	if reg == nil {
		return nil, nil
	}
	m := &brokerMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gearbox_broker_api_requests_total",
			Help: "REST API requests this broker answered, by route (the API's pattern) and status code."}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "gearbox_broker_api_request_duration_seconds",
			Help: "Time to answer a REST API request, by route.", Buckets: lb.DurationBuckets}, []string{"route"}),
		alerts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gearbox_broker_alerts_total",
			Help: "Alerts this broker raised as leader, by kind (autoscale_up and _down are the autoscaler's decisions)."}, []string{"kind"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gearbox_broker_routing_events_total",
			Help: "Routing events this broker appended as leader, by action (add_public_endpoint: a gear placed)."}, []string{"action"}),
		rollouts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gearbox_broker_rollouts_total",
			Help: "Roll-outs this broker finished as leader, by outcome (done, failed)."}, []string{"outcome"}),
		acme: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gearbox_broker_acme_orders_total",
			Help: "ACME certificate orders this broker made as leader, by outcome (obtained, renewed, failed; failed includes aliases whose DNS does not point at the cluster)."}, []string{"outcome"}),
		leader: prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "gearbox_broker_leader",
			Help: "1 if this broker is the leader, else 0."}, func() float64 {
			if b.isLeader() {
				return 1
			}
			return 0
		}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.alerts, m.events, m.rollouts, m.acme, m.leader} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// instrument counts the requests h answers.
func (m *brokerMetrics) instrument(h http.Handler) http.Handler {
	if m == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		h.ServeHTTP(sw, r)
		route := r.Pattern // set by the mux that matched it
		if route == "" {
			route = "unmatched"
		}
		m.requests.WithLabelValues(route, strconv.Itoa(sw.code)).Inc()
		m.duration.WithLabelValues(route).Observe(time.Since(start).Seconds())
	})
}

// committed counts what a commit wrote.
func (m *brokerMetrics) committed(events []state.RoutingEvent, alerts []state.Alert) {
	if m == nil {
		return
	}
	for _, e := range events {
		m.events.WithLabelValues(e.Action).Inc()
	}
	for _, a := range alerts {
		m.alerts.WithLabelValues(a.Kind).Inc()
	}
}

// rolloutEnded counts a roll-out that ended with outcome.
func (m *brokerMetrics) rolloutEnded(outcome string) {
	if m != nil {
		m.rollouts.WithLabelValues(outcome).Inc()
	}
}

// acmeOrdered counts an ACME order that ended with outcome.
func (m *brokerMetrics) acmeOrdered(outcome string) {
	if m != nil {
		m.acme.WithLabelValues(outcome).Inc()
	}
}

// statusWriter notes the status code of an answer.
type statusWriter struct {
	http.ResponseWriter
	code  int
	wrote bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.code, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(p)
}

// Flush passes a flush on (followed feeds, git pushes).
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
