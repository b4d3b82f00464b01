//go:build linux

package e2e

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"gearbox/broker/client"
)

// TestMetricsEndToEnd scrapes /metrics of one member with every role
// (the real binary) on --metrics-addr with its token: each component's
// figures are there and count what was done (API calls, requests through
// the router and the app's LB gear, DNS queries), and the exposition
// passes promtool check metrics (Debian's prometheus package; skipped
// without it, which .ci/run installs).
func TestMetricsEndToEnd(t *testing.T) {
	const ip = "127.0.0.97"
	m := startMember(t, "all1", ip, append(secretEnv("e2e-metrics-secret"), adminEnv, "GEARBOX_METRICS_TOKEN=scrape-token-1"),
		"--log-format", "json", "serve", "--name", "all1", "--bind", ip, "--data-dir", gearDataDir(t), "--role", "all",
		"--domain", "apps.example.com", "--http-addr", ip+":8080", "--router-addr", ip+":8081", "--dns-addr", ip+":5353",
		"--metrics-addr", ip+":9464", "--gear-uid-range", "197000-197999")
	logs := func() string { return m.output.String() }
	admin := &client.Client{BaseURL: "http://" + ip + ":7480", User: "admin", Password: "adminpass1"}
	waitAliveNodes(t, admin, 1, 60*time.Second, logs)
	ctx := context.Background()
	if _, _, err := admin.CreateDomain(ctx, "e2e"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := admin.CreateApp(ctx, "e2e", "web", client.AppOptions{Scale: true}); err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Timeout: 5 * time.Second}
	get := func(addr string) int {
		req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
		req.Host = "web-e2e.apps.example.com"
		resp, err := hc.Do(req)
		if err != nil {
			return 0
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	waitUntil(t, 60*time.Second, "the app answers through the router", logs, func() bool { return get(ip+":8081") == 200 })
	for range 20 {
		get(ip + ":8081")
	}
	// The name server knows the app's name once its table caught up
	// with the placement (an NXDOMAIN before that is counted as such).
	q := new(dns.Msg)
	q.SetQuestion("web-e2e.apps.example.com.", dns.TypeA)
	waitUntil(t, 30*time.Second, "the app's name in DNS", logs, func() bool {
		r, _, err := (&dns.Client{Timeout: 2 * time.Second}).Exchange(q, ip+":5353")
		return err == nil && r.Rcode == dns.RcodeSuccess && len(r.Answer) > 0
	})

	scrape := func(token string) (int, string) {
		req, _ := http.NewRequest("GET", "http://"+ip+":9464/metrics", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := scrape(""); code != http.StatusUnauthorized {
		t.Errorf("scrape without the token: %d, want 401", code)
	}
	if code, _ := scrape("wrong"); code != http.StatusUnauthorized {
		t.Errorf("scrape with a wrong token: %d, want 401", code)
	}
	var body string
	wants := []string{
		"gearbox_build_info{",
		"gearbox_store_records ",
		"gearbox_store_writes_total ",
		"gearbox_store_antientropy_rounds_total ",
		`gearbox_broker_api_requests_total{code="201",route="POST /broker/rest/domains"} 1`,
		`gearbox_broker_api_request_duration_seconds_bucket{route="POST /broker/rest/domains/{ns}/applications",le="+Inf"} 1`,
		`gearbox_broker_routing_events_total{action="add_public_endpoint"}`,
		"gearbox_broker_leader 1",
		`gearbox_node_gears{state="started"} 1`,
		`gearbox_node_builds_total{result="ok"}`,
		`gearbox_router_responses_total{app="e2e/web",code="2xx"}`,
		`gearbox_router_request_duration_seconds_count{app="e2e/web"}`,
		`gearbox_router_backends{app="e2e/web",state="up"} 1`,
		`gearbox_lb_responses_total{app="e2e/web",code="2xx",gear=`,
		`gearbox_dns_queries_total{qtype="A",rcode="NOERROR"}`,
		"gearbox_nats_connections ",
		"go_goroutines ",
		"process_resident_memory_bytes ",
	}
	waitUntil(t, 30*time.Second, "every component's metrics", func() string { return "\n" + body + logs() }, func() bool {
		_, body = scrape("scrape-token-1")
		for _, w := range wants {
			if !strings.Contains(body, w) {
				return false
			}
		}
		return true
	})
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, `gearbox_router_responses_total{app="e2e/web",code="2xx"}`) {
			if f := strings.Fields(line); len(f) != 2 || parseFloat(f[1]) < 21 {
				t.Errorf("router counted %q, want at least the 21 requests sent", line)
			}
		}
	}
	if _, err := exec.LookPath("promtool"); err != nil {
		t.Skip("promtool (Debian package prometheus) is not installed: the exposition's lint is skipped")
	}
	cmd := exec.Command("promtool", "check", "metrics")
	cmd.Stdin = bytes.NewBufferString(body)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

// parseFloat reads a sample's value; -1 if it is not a number.
func parseFloat(s string) float64 {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return -1
	}
	return v
}
