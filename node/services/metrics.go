package services

import (
	"github.com/nats-io/nats-server/v2/server"
	"github.com/prometheus/client_golang/prometheus"
)

// Collector returns the embedded NATS server's own figures as Prometheus
// metrics (gearbox_nats_*), read from its Varz at each scrape; nothing
// while it does not run.
func (s *Server) Collector() prometheus.Collector { return natsCollector{s} }

type natsCollector struct{ s *Server }

var (
	natsConns    = prometheus.NewDesc("gearbox_nats_connections", "Client connections to the node's NATS server (the gears').", nil, nil)
	natsRoutes   = prometheus.NewDesc("gearbox_nats_routes", "Routes to the other nodes' NATS servers.", nil, nil)
	natsSubs     = prometheus.NewDesc("gearbox_nats_subscriptions", "Subscriptions on the node's NATS server.", nil, nil)
	natsMsgs     = prometheus.NewDesc("gearbox_nats_messages_total", "Messages through the node's NATS server, by direction (in, out).", []string{"direction"}, nil)
	natsBytes    = prometheus.NewDesc("gearbox_nats_bytes_total", "Bytes through the node's NATS server, by direction (in, out).", []string{"direction"}, nil)
	natsSlow     = prometheus.NewDesc("gearbox_nats_slow_consumers_total", "Clients disconnected for being slow consumers.", nil, nil)
	natsJSMemory = prometheus.NewDesc("gearbox_nats_jetstream_memory_bytes", "JetStream memory storage in use on this node.", nil, nil)
	natsJSStore  = prometheus.NewDesc("gearbox_nats_jetstream_storage_bytes", "JetStream file storage in use on this node.", nil, nil)
	natsJSAccts  = prometheus.NewDesc("gearbox_nats_jetstream_accounts", "Accounts (apps) with JetStream on this node.", nil, nil)
	natsJSAPI    = prometheus.NewDesc("gearbox_nats_jetstream_api_requests_total", "JetStream API requests, by result (total, errors).", []string{"result"}, nil)
)

func (c natsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{natsConns, natsRoutes, natsSubs, natsMsgs, natsBytes, natsSlow, natsJSMemory, natsJSStore, natsJSAccts, natsJSAPI} {
		ch <- d
	}
}

func (c natsCollector) Collect(ch chan<- prometheus.Metric) {
	srv := c.s.NATS()
	if srv == nil {
		return
	}
	v, err := srv.Varz(&server.VarzOptions{})
	if err != nil {
		return
	}
	gauge := func(d *prometheus.Desc, x float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, x, labels...)
	}
	counter := func(d *prometheus.Desc, x float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, x, labels...)
	}
	gauge(natsConns, float64(v.Connections))
	gauge(natsRoutes, float64(v.Routes))
	gauge(natsSubs, float64(v.Subscriptions))
	counter(natsMsgs, float64(v.InMsgs), "in")
	counter(natsMsgs, float64(v.OutMsgs), "out")
	counter(natsBytes, float64(v.InBytes), "in")
	counter(natsBytes, float64(v.OutBytes), "out")
	counter(natsSlow, float64(v.SlowConsumers))
	if st := v.JetStream.Stats; st != nil {
		gauge(natsJSMemory, float64(st.Memory))
		gauge(natsJSStore, float64(st.Store))
		gauge(natsJSAccts, float64(st.Accounts))
		counter(natsJSAPI, float64(st.API.Total), "total")
		counter(natsJSAPI, float64(st.API.Errors), "errors")
	}
}
