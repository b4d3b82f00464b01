// Command lbserver runs a gearbox lb.Pool in front of a set of backends for
// scripts/bench/lb.sh, configured as an LB gear is: the package defaults,
// which follow OpenShift's haproxy cartridge (leastconn, GEAR cookie
// inserted, GET / health checks every 2 s with rise 3 and fall 2, retries 3
// with redispatch, timeouts connect 10 s, client and server 1 min), with an
// affinity secret and kept-alive connections to the backends.
//
//	lbserver -addr 127.0.0.23:18080 -backends 127.0.0.11:18081,127.0.0.12:18082
//
// Backends are named b1, b2, ... in the order given; the first is the
// local one. -trusted lists the proxies in front (routers) whose
// X-Forwarded-Proto and -Host are passed on, as an LB gear trusts its
// node and the cluster's routers. Warnings and errors are logged to stderr. It stops on SIGINT
// or SIGTERM; -cpuprofile writes a CPU profile of the run, for
// "go tool pprof".
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"gearbox/lb"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:18080", "host:port to listen on")
	backends := flag.String("backends", "127.0.0.1:18081", "comma-separated host:port list of backends")
	secret := flag.String("secret", "bench secret", "affinity cookie secret")
	balance := flag.String("balance", lb.LeastConn, "balancing algorithm: leastconn or roundrobin")
	trusted := flag.String("trusted", "", "comma-separated IP addresses or prefixes of trusted proxies")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	flag.Parse()
	err := profile(*cpuprofile, func() error {
		return run(*addr, strings.Split(*backends, ","), *secret, *balance, *trusted)
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "lbserver:", err)
		os.Exit(1)
	}
}

// profile calls f, under the CPU profiler if path is not empty.
func profile(path string, f func() error) error {
	if path == "" {
		return f()
	}
	out, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("create cpu profile: %w", err)
	}
	defer out.Close()
	if err := pprof.StartCPUProfile(out); err != nil {
		return fmt.Errorf("start cpu profile: %w", err)
	}
	defer pprof.StopCPUProfile()
	return f()
}

func run(addr string, backends []string, secret, balance, trusted string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	cfg := lb.DefaultConfig()
	cfg.Balance = balance
	cfg.Secret = []byte(secret)
	cfg.Logger = zerolog.New(os.Stderr).Level(zerolog.WarnLevel).With().Timestamp().Logger()
	for _, t := range strings.Split(trusted, ",") {
		if t = strings.TrimSpace(t); t == "" {
			continue
		}
		if !strings.Contains(t, "/") {
			a, err := netip.ParseAddr(t)
			if err != nil {
				return fmt.Errorf("-trusted %q: %w", t, err)
			}
			t = netip.PrefixFrom(a, a.BitLen()).String()
		}
		pfx, err := netip.ParsePrefix(t)
		if err != nil {
			return fmt.Errorf("-trusted %q: %w", t, err)
		}
		cfg.TrustedProxies = append(cfg.TrustedProxies, pfx)
	}
	for i, a := range backends {
		cfg.Backends = append(cfg.Backends, lb.Backend{
			ID:    "b" + strconv.Itoa(i+1),
			Addr:  strings.TrimSpace(a),
			Local: i == 0,
		})
	}
	pool, err := lb.New(cfg)
	if err != nil {
		return err
	}
	if err := pool.Start(ctx); err != nil {
		return err
	}
	defer pool.Close()

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := lb.NewFastServer(pool)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serve %s: %w", addr, err)
		}
		return nil
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}
