// Command pathserver runs a gearbox router (package router, as the router
// role runs it) for scripts/bench/path.sh: it starts a one-member store in
// a temporary directory, writes the records of one HA app whose only LB
// gear listens at -lb (a node, the app and the gear), and serves the
// router on -addr with its production defaults (lb.DefaultConfig for the
// app's pool: leastconn, health checks GET / every 2 s with the app's
// hostname, retries 3, timeouts connect 10 s, client and server 1 min; no
// affinity cookie of its own).
//
//	pathserver -addr 127.0.0.33:18093 -lb 127.0.0.32:18092
//
// The app is "app" in namespace "ns" of zone example.com: requests with
// Host ha-app-ns.example.com (or app-ns.example.com) go to the LB gear
// with Host app-ns.example.com. Warnings and errors are logged to stderr.
// It stops on SIGINT or SIGTERM; -cpuprofile writes a CPU profile of the
// run, for "go tool pprof".
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"gearbox/router"
	"gearbox/store"
	"gearbox/store/state"
)

const (
	zone   = "example.com"
	ns     = "ns"
	app    = "app"
	secret = "bench secret"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:18093", "host:port the router listens on")
	lbAddr := flag.String("lb", "127.0.0.1:18092", "host:port of the app's LB gear")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	flag.Parse()
	err := profile(*cpuprofile, func() error { return run(*addr, *lbAddr) })
	if err != nil {
		fmt.Fprintln(os.Stderr, "pathserver:", err)
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

func run(addr, lbAddr string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := zerolog.New(os.Stderr).Level(zerolog.WarnLevel).With().Timestamp().Logger()

	host, _, err := net.SplitHostPort(addr)
	if err != nil || net.ParseIP(host) == nil {
		return fmt.Errorf("-addr %q: want IP:PORT", addr)
	}
	lbHost, lbPortS, err := net.SplitHostPort(lbAddr)
	lbPort, perr := strconv.Atoi(lbPortS)
	if err != nil || perr != nil || net.ParseIP(lbHost) == nil {
		return fmt.Errorf("-lb %q: want IP:PORT", lbAddr)
	}

	dir, err := os.MkdirTemp("", "pathserver-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	sc := store.LocalConfig("router", dir, host)
	sc.ClusterSecret = secret
	sc.Roles = []string{store.RoleRouter}
	sc.Logger = log
	st, err := store.New(sc)
	if err != nil {
		return err
	}
	if err := st.Start(ctx); err != nil {
		return err
	}
	defer st.Close()

	key := state.AppKey(ns, app)
	now := time.Now().UTC()
	if _, err := st.Batch(ctx, []store.Op{
		{Bucket: state.BucketNodes, Key: "node1", Value: state.Node{Name: "node1", Addr: lbHost, Since: now}},
		{Bucket: state.BucketApps, Key: key, Value: state.App{ID: "a1", Name: app, Domain: ns, Scalable: true, HA: true,
			State: state.GearStarted, CreatedAt: now}},
		{Bucket: state.BucketGears, Key: "lbgear1", Value: state.Gear{ID: "lbgear1", App: key, AppName: app, Domain: ns, Node: "node1",
			LB: true, Head: true, State: state.GearStarted, Ordinal: 1, Port: 1, LBPort: lbPort, CreatedAt: now}},
	}); err != nil {
		return fmt.Errorf("write records: %w", err)
	}

	rc := router.DefaultConfig(st, host, zone)
	rc.HTTPAddr = addr
	rc.ClusterSecret = secret
	rc.Logger = log
	r, err := router.New(rc)
	if err != nil {
		return err
	}
	if err := r.Start(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	if err := r.Close(); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}
