// Command httpsserver serves HTTPS as a gearbox router does, for
// scripts/bench/https.sh: lb.FastRouter over a TLS listener whose
// certificate store/tlscert picks by SNI, routing every host to one pool
// of the given backends configured as a router configures an app's pool
// (the lb package defaults, leastconn, no affinity cookie: LB gears set
// it), with kept-alive connections to the backends, counting into the
// Prometheus metrics a router keeps (router/metrics.go).
//
//	httpsserver -addr 127.0.0.31:18443 -cert cert.pem -key key.pem -backends 127.0.0.11:18081,127.0.0.12:18082
//
// Warnings and errors go to stderr. It stops on SIGINT or SIGTERM.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"gearbox/lb"
	"gearbox/store/tlscert"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:18443", "host:port to listen on")
	backends := flag.String("backends", "127.0.0.1:18081", "comma-separated host:port list of backends")
	cert := flag.String("cert", "", "PEM certificate file")
	key := flag.String("key", "", "PEM key file")
	flag.Parse()
	if err := run(*addr, strings.Split(*backends, ","), *cert, *key); err != nil {
		fmt.Fprintln(os.Stderr, "httpsserver:", err)
		os.Exit(1)
	}
}

func run(addr string, backends []string, certFile, keyFile string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	wildcard, err := tlscert.LoadFiles(certFile, keyFile)
	if err != nil {
		return err
	}
	var certs tlscert.Set
	certs.Update(nil, wildcard)

	log := zerolog.New(os.Stderr).Level(zerolog.WarnLevel).With().Timestamp().Logger()
	cfg := lb.DefaultConfig()
	cfg.NoAffinity, cfg.NoStatus = true, true
	cfg.Logger = log
	responses := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gearbox_router_responses_total", Help: "h"}, []string{"app", "code"})
	duration := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "gearbox_router_request_duration_seconds", Help: "h",
		Buckets: lb.DurationBuckets}, []string{"app"})
	prometheus.NewRegistry().MustRegister(responses, duration)
	cfg.Metrics = lb.NewMetrics(responses, duration, "bench/app")
	for i, b := range backends {
		cfg.Backends = append(cfg.Backends, lb.Backend{ID: fmt.Sprintf("b%d", i+1), Addr: b})
	}
	p, err := lb.New(cfg)
	if err != nil {
		return err
	}
	p.Start(ctx)
	defer p.Close()
	srv := lb.NewFastRouter(cfg, func(string) *lb.Pool { return p }, "")
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(tls.NewListener(ln, certs.Config())) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
