package broker

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"
)

// BenchmarkAppCreate measures the latency of creating a scalable app
// (placement, ports, routing events, one fsynced batch, the response) on a
// 3-member cluster: a broker and two nodes, in process. 200 apps per run:
//
//	go test ./broker/ -run '^$' -bench AppCreate -benchtime 1x -count 5
func BenchmarkAppCreate(b *testing.B) {
	c := newCluster(b, clusterOpts{nodes: []nodeSpec{{name: "n1", zone: "z1", maxGears: 100000}, {name: "n2", zone: "z2", maxGears: 100000}}})
	who := c.user(b, "bench", url.Values{"max_gears": {"100000"}})
	c.domain(b, who, "bench")
	const apps = 200
	var lat []time.Duration
	run := 0
	for b.Loop() {
		run++
		for i := range apps {
			start := time.Now()
			r := c.do(b, "POST", "/broker/rest/domains/bench/applications", who,
				url.Values{"name": {fmt.Sprintf("a%dx%d", run, i)}, "scale": {"true"}})
			lat = append(lat, time.Since(start))
			if r.code != http.StatusCreated {
				b.Fatalf("create app: %d %s", r.code, r.text())
			}
		}
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[(len(lat)*99+99)/100-1].Microseconds())/1000, "p99-ms")
}
