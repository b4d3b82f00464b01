package node

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"gearbox/lb"
	"gearbox/store/state"
)

// nodeMetrics counts what the node does; the Supervisor's collector
// reports them with what it reads at each scrape (gears by state from
// the statuses it wrote, memory per gear from their cgroups).
type nodeMetrics struct {
	restarts      atomic.Uint64 // gear processes that ended and were started again
	buildsOK      atomic.Uint64 // deployments prepared (unpacked, built)
	buildsFailed  atomic.Uint64 // deployments whose preparation failed
	handoverFails atomic.Uint64 // new processes that failed beside the running one
}

var (
	nodeGears     = prometheus.NewDesc("gearbox_node_gears", "Gears this node runs, by state as it reports them.", []string{"state"}, nil)
	nodeRestarts  = prometheus.NewDesc("gearbox_node_gear_restarts_total", "Gear processes that ended on their own and were started again.", nil, nil)
	nodeBuilds    = prometheus.NewDesc("gearbox_node_builds_total", "Deployments this node prepared (fetched, unpacked, built), by result (ok, failed).", []string{"result"}, nil)
	nodeHandovers = prometheus.NewDesc("gearbox_node_handover_failures_total", "New processes of an app's only gear that failed beside the running one.", nil, nil)
	nodeMemory    = prometheus.NewDesc("gearbox_node_gear_memory_bytes", "Memory a gear's processes use (its cgroup's), by gear and app.", []string{"gear", "app"}, nil)
)

// Collector returns the node's Prometheus metrics (gearbox_node_*).
func (s *Supervisor) Collector() prometheus.Collector { return nodeCollector{s} }

type nodeCollector struct{ s *Supervisor }

func (c nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{nodeGears, nodeRestarts, nodeBuilds, nodeHandovers, nodeMemory} {
		ch <- d
	}
}

func (c nodeCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	counter(nodeRestarts, s.metrics.restarts.Load())
	counter(nodeBuilds, s.metrics.buildsOK.Load(), "ok")
	counter(nodeBuilds, s.metrics.buildsFailed.Load(), "failed")
	counter(nodeHandovers, s.metrics.handoverFails.Load())
	byState := map[string]int{}
	for _, st := range []string{state.GearStarted, state.GearStopped, state.GearCrashing} {
		byState[st] = 0
	}
	apps := map[string]string{}
	if recs, err := s.st.List(state.BucketGears); err == nil {
		for _, r := range recs {
			var g state.Gear
			if r.Decode(&g) == nil && g.Node == s.name {
				apps[g.ID] = g.App
			}
		}
	}
	if recs, err := s.st.List(state.BucketGearStatus); err == nil {
		for _, r := range recs {
			var st state.GearStatus
			if r.Decode(&st) != nil || st.Node != s.name {
				continue
			}
			byState[st.State]++
			if mem, ok := s.gearMemory(st.ID); ok {
				ch <- prometheus.MustNewConstMetric(nodeMemory, prometheus.GaugeValue, float64(mem), st.ID, apps[st.ID])
			}
		}
	}
	for st, n := range byState {
		ch <- prometheus.MustNewConstMetric(nodeGears, prometheus.GaugeValue, float64(n), st)
	}
}

// gearMemory reads the memory the processes of gear id use from its
// cgroup, when gears have cgroups.
func (s *Supervisor) gearMemory(id string) (int64, bool) {
	iso := s.iso
	if iso == nil || iso.cg == nil || !s.validID(id) {
		return 0, false
	}
	for _, dir := range iso.cg.dirs(id) {
		for _, f := range []string{"memory.current", "memory.usage_in_bytes"} {
			b, err := os.ReadFile(filepath.Join(dir, f))
			if err != nil {
				continue
			}
			if n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil {
				return n, true
			}
		}
	}
	return 0, false
}

// lbMetrics are the metrics of the node's LB gears' load balancers, by
// app and gear, counted on the request path (lb.Metrics).
type lbMetrics struct {
	responses *prometheus.CounterVec
	duration  *prometheus.HistogramVec
}

// newLBMetrics registers the LB gears' metrics with reg.
func newLBMetrics(reg prometheus.Registerer) (*lbMetrics, error) {
	m := &lbMetrics{
		responses: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gearbox_lb_responses_total",
			Help: "Answers an LB gear's load balancer gave, by app, gear and status class."}, []string{"app", "gear", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "gearbox_lb_request_duration_seconds",
			Help: "Time from a request's headers to its answer at an LB gear, by app and gear.", Buckets: lb.DurationBuckets}, []string{"app", "gear"}),
	}
	for _, c := range []prometheus.Collector{m.responses, m.duration} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
