package store

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Collector returns the store's Prometheus metrics (gearbox_store_*),
// read from its counters at each scrape: records, writes, gossip events,
// anti-entropy rounds and lag, records pulled and pushed, refused
// records, serf's queues and the members by status.
func (s *Store) Collector() prometheus.Collector { return storeCollector{s} }

type storeCollector struct{ s *Store }

var (
	storeRecords   = prometheus.NewDesc("gearbox_store_records", "Records held, tombstones excluded.", nil, nil)
	storeWrites    = prometheus.NewDesc("gearbox_store_writes_total", "Records this member wrote.", nil, nil)
	storeEvents    = prometheus.NewDesc("gearbox_store_gossip_events_total", "Gossip events of records, by direction (sent, received).", []string{"direction"}, nil)
	storeSync      = prometheus.NewDesc("gearbox_store_antientropy_rounds_total", "Anti-entropy rounds with a peer.", nil, nil)
	storeLag       = prometheus.NewDesc("gearbox_store_antientropy_lag_seconds", "Time since the last anti-entropy round that completed.", nil, nil)
	storeMerged    = prometheus.NewDesc("gearbox_store_merged_records_total", "Records taken from peers, by how (announce, antientropy).", []string{"via"}, nil)
	storePushed    = prometheus.NewDesc("gearbox_store_pushed_records_total", "Records pushed to peers by anti-entropy.", nil, nil)
	storeRefused   = prometheus.NewDesc("gearbox_store_refused_records_total", "Records received and refused (from the future, replays, older than a forgotten delete).", nil, nil)
	storeRejected  = prometheus.NewDesc("gearbox_store_rejected_events_total", "Gossip events that were not sealed with the cluster secret.", nil, nil)
	storeQueue     = prometheus.NewDesc("gearbox_store_gossip_queue", "Messages waiting in serf's queues, by queue (event, query, intent).", []string{"queue"}, nil)
	storeMembers   = prometheus.NewDesc("gearbox_store_members", "Cluster members as this member sees them, by status.", []string{"status"}, nil)
	storeCollected = prometheus.NewDesc("gearbox_store_collected_tombstones_total", "Tombstones collected after their TTL.", nil, nil)
)

func (c storeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{storeRecords, storeWrites, storeEvents, storeSync, storeLag, storeMerged, storePushed,
		storeRefused, storeRejected, storeQueue, storeMembers, storeCollected} {
		ch <- d
	}
}

func (c storeCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	st := s.Stats()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge(storeRecords, float64(s.Len()))
	counter(storeWrites, st.Writes)
	counter(storeEvents, st.EventsSent, "sent")
	counter(storeEvents, st.EventsReceived, "received")
	counter(storeSync, st.SyncRounds)
	if last := s.LastSync(); !last.IsZero() {
		gauge(storeLag, time.Since(last).Seconds())
	}
	counter(storeMerged, st.Pulled, "announce")
	counter(storeMerged, st.SyncPulled, "antientropy")
	counter(storePushed, st.SyncPushed)
	counter(storeRefused, st.Refused)
	counter(storeRejected, st.Rejected)
	counter(storeCollected, st.Collected)
	if s.serf != nil {
		stats := s.serf.Stats()
		for _, q := range []string{"event", "query", "intent"} {
			n, _ := strconv.Atoi(stats[q+"_queue"])
			gauge(storeQueue, float64(n), q)
		}
	}
	byStatus := map[string]int{}
	for _, m := range s.Members() {
		byStatus[m.Status]++
	}
	for status, n := range byStatus {
		gauge(storeMembers, float64(n), status)
	}
}
