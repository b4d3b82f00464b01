//go:build linux

// Command nats compares the NATS server that gearbox embeds in its node
// members (node/services) with a standalone nats-server of the same
// version, on loopback, with the same load and the same replication (R3,
// file storage). scripts/bench/nats/run.sh builds what it needs and runs
// it; by hand, from the repository root:
//
//	CGO_ENABLED=0 go build -o /tmp/nb/gearbox .
//	CGO_ENABLED=0 go build -o /tmp/nb/nats-server github.com/nats-io/nats-server/v2
//	go run ./scripts/bench/nats -gearbox /tmp/nb/gearbox -nats-server /tmp/nb/nats-server
//
// Sides, each three servers clustered, all running during the rounds:
//
//   - embedded: three `gearbox serve --role broker,node` processes on
//     127.0.0.61-63 (NATS on 4222 and 6222 of each, routes over mutual
//     TLS keyed by the cluster secret), an app created through the
//     broker's REST API, and the clients connected as that app's nkey
//     user (services.AppSeed), as its gears are.
//   - standalone: three nats-server processes on 127.0.0.64-66 with the
//     options gearbox gives its server and the accounts of a node with one
//     app (system account, a platform account, the app's with small gears'
//     JetStream limits), the clients connected as the app's nkey user;
//     plain routes.
//   - standalone-tls (unless -tls=false): the same on 127.0.0.67-69 with
//     routes over mutual TLS (TLS 1.3, a self-signed ed25519 certificate
//     that each server presents and trusts, as gearbox's routes do).
//
// Each round measures every side in turn (the order rotates): a queue (a
// work-queue stream with one durable pull consumer; a producer per server
// publishing with asynchronous JetStream publish, a consumer per server
// fetching and acking: messages/s from first publish to last arrival,
// and publish-to-consume latency, first as fast as the producers can,
// then at a fixed rate below saturation), then a key-value bucket (puts,
// then gets, from a client per server). It prints each round and a table of
// medians, with ratios as medians of per-round ratios to the standalone
// sides. Then, with the benchmark's servers stopped, it measures the
// resident memory of idle gearbox node members with and without NATS,
// before and after -apps apps are created, and of idle standalone
// nats-servers with as many accounts (see memory.go).
//
// Every process it starts is stopped on exit, on SIGINT or SIGTERM too.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Addresses of the sides' servers.
var (
	embeddedIPs      = []string{"127.0.0.61", "127.0.0.62", "127.0.0.63"}
	standaloneIPs    = []string{"127.0.0.64", "127.0.0.65", "127.0.0.66"}
	standaloneTLSIPs = []string{"127.0.0.67", "127.0.0.68", "127.0.0.69"}
)

// options are the command's flags.
type options struct {
	gearbox, natsServer string
	rounds              int
	load                load
	tls                 bool
	apps                int // for the memory measurement; 0: none
	keep                bool
}

func main() {
	var o options
	flag.StringVar(&o.gearbox, "gearbox", "", "the gearbox binary (required)")
	flag.StringVar(&o.natsServer, "nats-server", "", "a nats-server binary of the version gearbox embeds (required)")
	flag.IntVar(&o.rounds, "rounds", 5, "rounds; each measures every side once")
	flag.IntVar(&o.load.Msgs, "msgs", 20000, "messages through the queue per measurement")
	flag.IntVar(&o.load.Size, "size", 128, "bytes per message and per value")
	flag.IntVar(&o.load.Window, "window", 256, "asynchronous publishes each producer keeps waiting for their acks at most")
	flag.IntVar(&o.load.Batch, "batch", 256, "messages each consumer asks for at a time")
	flag.IntVar(&o.load.PacedMsgs, "paced-msgs", 6000, "messages through the queue at -paced-rate per measurement (0: none)")
	flag.Float64Var(&o.load.PacedRate, "paced-rate", 2000, "messages/s of the paced queue measurement, all producers together")
	flag.IntVar(&o.load.KVWorkers, "kv-workers", 4, "workers per key-value client, one call at a time each")
	flag.IntVar(&o.load.KVPuts, "kv-puts", 1000, "puts per key-value worker")
	flag.IntVar(&o.load.KVGets, "kv-gets", 3000, "gets per key-value worker")
	flag.IntVar(&o.load.KVKeys, "kv-keys", 1000, "keys in the bucket")
	flag.BoolVar(&o.tls, "tls", true, "also measure standalone servers with mutual TLS on their routes")
	flag.IntVar(&o.apps, "apps", 100, "apps created for the memory measurement (0: skip it)")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory (configurations, data, logs)")
	flag.Parse()
	if o.gearbox == "" || o.natsServer == "" {
		fmt.Fprintln(os.Stderr, "natsbench: -gearbox and -nats-server are required")
		os.Exit(2)
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "natsbench:", err)
		os.Exit(1)
	}
}

// logf writes a progress line to stderr.
func logf(format string, v ...any) {
	fmt.Fprintf(os.Stderr, "%s %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, v...))
}

func run(o options) (err error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	work, err := os.MkdirTemp("", "natsbench-")
	if err != nil {
		return err
	}
	ps := &procs{}
	defer func() {
		ps.stop(15 * time.Second)
		if o.keep || err != nil {
			logf("work directory kept: %s", work)
		} else {
			os.RemoveAll(work)
		}
	}()
	logf("%s; %s; %s; %d cores (GOMAXPROCS of every server: %d)", version(o.natsServer, "--version"),
		strings.TrimSpace(version(o.gearbox, "version")), runtime.Version(), runtime.NumCPU(), runtime.NumCPU())

	sides, err := startSides(ctx, ps, o, work)
	for _, c := range sides {
		defer c.close()
	}
	if err != nil {
		return err
	}
	for _, c := range sides {
		logf("%s: idle after start, resident memory of each server: %s", c.name, rssList(c.procs))
	}
	runs, err := measure(ctx, o, sides)
	if err != nil {
		return err
	}
	for _, c := range sides {
		logf("%s: after the rounds, resident memory of each server: %s", c.name, rssList(c.procs))
	}
	report(os.Stdout, o, sides, runs)

	// The memory measurement wants a quiet machine: the sides go first.
	for _, c := range sides {
		c.close()
		stopProcs(c.procs, 15*time.Second)
		ps.forget(c.procs)
	}
	if o.apps > 0 {
		m, err := measureMemory(ctx, ps, o, filepath.Join(work, "memory"))
		if err != nil {
			return fmt.Errorf("memory: %w", err)
		}
		m.report(os.Stdout, o)
	}
	return nil
}

// version returns the first line of bin's answer to arg.
func version(bin, arg string) string {
	out, err := exec.Command(bin, arg).CombinedOutput()
	if err != nil {
		return fmt.Sprintf("%s %s: %v", filepath.Base(bin), arg, err)
	}
	line, _, _ := strings.Cut(string(out), "\n")
	return line
}

// startSides starts the clusters of every side and waits until their
// clients are connected.
func startSides(ctx context.Context, ps *procs, o options, work string) ([]*cluster, error) {
	type started struct {
		c   *cluster
		err error
	}
	// The three start at once: the gearbox members take longest (the
	// services look for other nodes for 3 s before starting NATS).
	starts := []func() (*cluster, error){
		func() (*cluster, error) { return startEmbedded(ctx, ps, o.gearbox, work, embeddedIPs) },
		func() (*cluster, error) {
			return startStandalone(ctx, ps, o.natsServer, work, "standalone", standaloneIPs, false)
		},
	}
	if o.tls {
		starts = append(starts, func() (*cluster, error) {
			return startStandalone(ctx, ps, o.natsServer, work, "standalone-tls", standaloneTLSIPs, true)
		})
	}
	results := make([]started, len(starts))
	done := make(chan struct{})
	for i, f := range starts {
		go func() {
			c, err := f()
			results[i] = started{c, err}
			done <- struct{}{}
		}()
	}
	for range starts {
		<-done
	}
	var sides []*cluster
	var errs []string
	for _, r := range results {
		if r.c != nil {
			sides = append(sides, r.c)
		}
		if r.err != nil {
			errs = append(errs, r.err.Error())
		}
	}
	if len(errs) > 0 {
		return sides, fmt.Errorf("start: %s", strings.Join(errs, "; "))
	}
	for _, c := range sides {
		logf("%s: ready, servers %s", c.name, strings.Join(c.urls, " "))
	}
	return sides, nil
}

// roundResult is one side's measurements of one round.
type roundResult struct {
	queue, paced, put, get result
}

// measure warms every side up, then runs the rounds. runs[r][side] is
// nil where a measurement failed.
func measure(ctx context.Context, o options, sides []*cluster) ([][]*roundResult, error) {
	l := o.load
	logf("warm-up: %d messages, %d puts and %d gets per side", l.Msgs/10, 3*l.KVWorkers*l.KVPuts/10, 3*l.KVWorkers*l.KVGets/10)
	for _, c := range sides {
		if _, err := runQueue(ctx, c, l, l.Msgs/10, 0); err != nil {
			return nil, fmt.Errorf("%s: warm-up queue: %w", c.name, err)
		}
		if _, _, err := runKV(ctx, c, l, l.KVPuts/10, l.KVGets/10); err != nil {
			return nil, fmt.Errorf("%s: warm-up kv: %w", c.name, err)
		}
	}
	logf("%d rounds: queue %d messages of %d bytes (window %d, batch %d), then %d at %.0f msg/s; kv %d clients x %d workers, %d puts and %d gets each, %d keys",
		o.rounds, l.Msgs, l.Size, l.Window, l.Batch, l.PacedMsgs, l.PacedRate, len(sides[0].pub), l.KVWorkers, l.KVPuts, l.KVGets, l.KVKeys)
	runs := make([][]*roundResult, o.rounds)
	for r := range o.rounds {
		runs[r] = make([]*roundResult, len(sides))
		for k := range sides {
			i := (k + r) % len(sides) // rotate the order each round
			c := sides[i]
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			q, err := runQueue(ctx, c, l, l.Msgs, 0)
			if err != nil {
				logf("round %d %s: queue: %v", r+1, c.name, err)
				continue
			}
			var paced result
			if l.PacedMsgs > 0 {
				if paced, err = runQueue(ctx, c, l, l.PacedMsgs, l.PacedRate); err != nil {
					logf("round %d %s: paced queue: %v", r+1, c.name, err)
					continue
				}
			}
			put, get, err := runKV(ctx, c, l, l.KVPuts, l.KVGets)
			if err != nil {
				logf("round %d %s: kv: %v", r+1, c.name, err)
				continue
			}
			runs[r][i] = &roundResult{queue: q, paced: paced, put: put, get: get}
			logf("round %d %-14s queue %6.0f msg/s p50 %6.2f p99 %6.2f ms cpu %5.1f us/msg | paced p50 %5.2f p99 %5.2f ms | put %6.0f/s p99 %6.2f ms cpu %5.1f us | get %6.0f/s p99 %6.2f ms cpu %5.1f us",
				r+1, c.name, q.rate(), ms(q.pct(50)), ms(q.pct(99)), us(q.cpuPerOp()), ms(paced.pct(50)), ms(paced.pct(99)),
				put.rate(), ms(put.pct(99)), us(put.cpuPerOp()), get.rate(), ms(get.pct(99)), us(get.cpuPerOp()))
		}
	}
	return runs, nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// median returns the median of vs, NaN-free; 0 for none.
func median(vs []float64) float64 {
	if len(vs) == 0 {
		return 0
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// metric is one column of the report: a figure of a round's result.
type metric struct {
	name string
	unit string
	f    func(*roundResult) float64
}

var metrics = []metric{
	{"queue throughput", "msg/s", func(r *roundResult) float64 { return r.queue.rate() }},
	{"queue latency p50", "ms", func(r *roundResult) float64 { return ms(r.queue.pct(50)) }},
	{"queue latency p99", "ms", func(r *roundResult) float64 { return ms(r.queue.pct(99)) }},
	{"queue servers' CPU", "µs/msg", func(r *roundResult) float64 { return us(r.queue.cpuPerOp()) }},
	{"paced queue latency p50", "ms", func(r *roundResult) float64 { return ms(r.paced.pct(50)) }},
	{"paced queue latency p99", "ms", func(r *roundResult) float64 { return ms(r.paced.pct(99)) }},
	{"kv put", "ops/s", func(r *roundResult) float64 { return r.put.rate() }},
	{"kv put p99", "ms", func(r *roundResult) float64 { return ms(r.put.pct(99)) }},
	{"kv put servers' CPU", "µs/op", func(r *roundResult) float64 { return us(r.put.cpuPerOp()) }},
	{"kv get", "ops/s", func(r *roundResult) float64 { return r.get.rate() }},
	{"kv get p99", "ms", func(r *roundResult) float64 { return ms(r.get.pct(99)) }},
	{"kv get servers' CPU", "µs/op", func(r *roundResult) float64 { return us(r.get.cpuPerOp()) }},
}

// report prints, per metric, each side's runs and median, and the
// embedded side's ratios to the others as medians of per-round ratios:
// the sides of a round ran within a minute of each other, so load from
// other programs weighs on both sides of a ratio alike.
func report(w *os.File, o options, sides []*cluster, runs [][]*roundResult) {
	l := o.load
	fmt.Fprintf(w, "\nQueue: %d messages of %d bytes as fast as a window of %d publishes per producer allows; paced: %d messages at %.0f msg/s.\n",
		l.Msgs, l.Size, l.Window, l.PacedMsgs, l.PacedRate)
	fmt.Fprintf(w, "KV: %d clients x %d workers, %d puts then %d gets each.\n", len(sides[0].pub), l.KVWorkers, l.KVPuts, l.KVGets)
	fmt.Fprintf(w, "Medians of %d rounds; ratios are medians of per-round ratios (embedded / peer)\n\n", o.rounds)
	header := "| measure |"
	sep := "|---|"
	for _, c := range sides {
		header += " " + c.name + " runs | " + c.name + " |"
		sep += "---|---|"
	}
	for _, c := range sides[1:] {
		header += " embedded / " + c.name + " |"
		sep += "---|"
	}
	fmt.Fprintln(w, header)
	fmt.Fprintln(w, sep)
	for _, m := range metrics {
		line := fmt.Sprintf("| %s (%s) |", m.name, m.unit)
		for i := range sides {
			var vs []string
			var fs []float64
			for _, round := range runs {
				if r := round[i]; r != nil {
					v := m.f(r)
					fs = append(fs, v)
					vs = append(vs, format(v))
				}
			}
			line += fmt.Sprintf(" %s | **%s** |", strings.Join(vs, ", "), format(median(fs)))
		}
		for i := 1; i < len(sides); i++ {
			var ratios []float64
			for _, round := range runs {
				if round[0] != nil && round[i] != nil && m.f(round[i]) != 0 {
					ratios = append(ratios, m.f(round[0])/m.f(round[i]))
				}
			}
			line += fmt.Sprintf(" **%.2fx** |", median(ratios))
		}
		fmt.Fprintln(w, line)
	}
	fmt.Fprintln(w)
}

// format prints v with the digits that matter.
func format(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}
