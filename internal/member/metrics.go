package member

import (
	"crypto/subtle"
	"errors"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"gearbox/lb"
)

// newRegistry returns the member's Prometheus registry, with the Go
// runtime's and the process's metrics and the member's build.
func newRegistry(name string, roles []string) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	info := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "gearbox_build_info",
		Help: "1, labelled with the member's version, name and roles."}, []string{"version", "member", "roles"})
	version := "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		version = bi.Main.Version
	}
	info.WithLabelValues(version, name, strings.Join(roles, ",")).Set(1)
	reg.MustRegister(info)
	return reg
}

// metricsHandler serves reg's metrics; with token not empty, only to
// requests that carry it as a bearer token (Prometheus's
// authorization.credentials_file).
func metricsHandler(reg *prometheus.Registry, token string) http.Handler {
	h := promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		if token != "" {
			got := r.Header.Get("Authorization")
			if subtle.ConstantTimeCompare([]byte(got), []byte("Bearer "+token)) != 1 {
				w.Header().Set("WWW-Authenticate", `Bearer realm="gearbox metrics"`)
				http.Error(w, "unauthorized: send the metrics token (--metrics-token-file) as a bearer token", http.StatusUnauthorized)
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}

// startMetrics serves the member's metrics on --metrics-addr, if set.
func (m *Member) startMetrics() error {
	addr := m.cfg.Roles.MetricsAddr
	if addr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return errors.Join(errors.New("listen for metrics (--metrics-addr)"), err)
	}
	srv := &http.Server{Handler: metricsHandler(m.metrics, m.cfg.Roles.MetricsToken), ReadTimeout: 10 * time.Second,
		MaxHeaderBytes: 64 << 10}
	// Scrapers are few and ask little: a scrape's answer is written
	// within a minute, a handful of connections per address.
	lb.GuardServer(srv, lb.Limits{HeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute, WriteTimeout: time.Minute,
		MaxConns: 64, MaxConnsPerClient: 16, Logger: m.log})
	m.wg.Go(func() { srv.Serve(ln) })
	m.metricsSrv = srv
	m.log.Info().Str("addr", ln.Addr().String()).Bool("token", m.cfg.Roles.MetricsToken != "").Msg("metrics listening")
	return nil
}
