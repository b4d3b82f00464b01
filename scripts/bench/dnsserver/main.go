// Command dnsserver runs gearbox's DNS server (dnsmgr.Server) for
// scripts/bench/dns.sh, over a real store filled with a cluster of -apps
// scalable HA apps: the same code path as a broker's, from the store watch
// to the sockets.
//
//	dnsserver -addr 127.0.0.51:5300 -zone bench.test -apps 1000 -zonefile bench.zone -queries queries.txt
//
// It runs, in one process, one store member per role on 127.0.0.x
// loopback addresses (-ip-base): a broker, three nodes and two routers, so
// that the membership is real. Every app has two LB gears on two of the
// nodes, started and healthy, so APP-NS has two A records and its ha-
// name the two routers'.
//
// Once the server answers, it writes the zone it serves in master-file
// form (-zonefile, for NSD) and a dnsperf query file (-queries: an A query
// for every app name and every ha- name), then prints "ready" and serves
// until SIGINT or SIGTERM. -cpuprofile writes a CPU profile of the run.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/miekg/dns"
	"github.com/rs/zerolog"

	"gearbox/dnsmgr"
	"gearbox/store"
	"gearbox/store/state"
)

func main() {
	addr := flag.String("addr", "127.0.0.51:5300", "host:port the DNS server listens on (UDP and TCP)")
	zone := flag.String("zone", "bench.test", "zone served")
	apps := flag.Int("apps", 1000, "number of apps")
	ipBase := flag.String("ip-base", "127.0.0.", "prefix of the loopback addresses of the members; they get .41 to .46")
	zonefile := flag.String("zonefile", "", "write the served zone here, in master-file form")
	queries := flag.String("queries", "", "write a dnsperf query file here")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	flag.Parse()
	if err := run(*addr, *zone, *apps, *ipBase, *zonefile, *queries, *cpuprofile); err != nil {
		fmt.Fprintln(os.Stderr, "dnsserver:", err)
		os.Exit(1)
	}
}

func run(addr, zone string, apps int, ipBase, zonefile, queries, cpuprofile string) error {
	dir, err := os.MkdirTemp("", "dnsserver")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	log := zerolog.New(os.Stderr).Level(zerolog.WarnLevel)

	// The members: broker first, the others join it.
	specs := []struct {
		name  string
		roles []string
	}{
		{"broker", []string{store.RoleBroker}},
		{"node1", []string{store.RoleNode}}, {"node2", []string{store.RoleNode}}, {"node3", []string{store.RoleNode}},
		{"router1", []string{store.RoleRouter}}, {"router2", []string{store.RoleRouter}},
	}
	var stores []*store.Store
	defer func() {
		for i := len(stores) - 1; i >= 0; i-- {
			stores[i].Close()
		}
	}()
	ips := map[string]string{}
	for i, sp := range specs {
		ip := fmt.Sprintf("%s%d", ipBase, 41+i)
		ips[sp.name] = ip
		cfg := store.LocalConfig(sp.name, filepath.Join(dir, sp.name), ip)
		cfg.Roles = sp.roles
		// The members serve no internal API: anti-entropy would only
		// log its failures. Gossip carries the records.
		cfg.Logger = zerolog.Nop()
		st, err := store.New(cfg)
		if err != nil {
			return err
		}
		if err := st.Start(context.Background()); err != nil {
			st.Close()
			return err
		}
		stores = append(stores, st)
		if i > 0 {
			var self store.Member
			for _, m := range stores[0].Members() {
				if m.Name == "broker" {
					self = m
				}
			}
			if _, err := st.Join([]string{net.JoinHostPort(self.Addr, fmt.Sprint(self.Port))}); err != nil {
				return fmt.Errorf("join %s: %w", sp.name, err)
			}
		}
	}
	broker := stores[0]
	for deadline := time.Now().Add(10 * time.Second); ; {
		alive := 0
		for _, m := range broker.Members() {
			if m.Status == store.StatusAlive {
				alive++
			}
		}
		if alive == len(specs) {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d of %d members alive after 10 s", alive, len(specs))
		}
		time.Sleep(50 * time.Millisecond)
	}

	// The records, written on the broker's store.
	ctx := context.Background()
	var ops []store.Op
	nodes := []string{"node1", "node2", "node3"}
	for _, n := range nodes {
		ops = append(ops, store.Op{Bucket: state.BucketNodes, Key: n, Value: state.Node{Name: n, Addr: ips[n]}})
	}
	for _, r := range []string{"router1", "router2"} {
		ops = append(ops, store.Op{Bucket: state.BucketRouters, Key: r, Value: state.Router{Name: r, Addr: ips[r]}})
	}
	for i := range apps {
		name := fmt.Sprintf("app%04d", i)
		a := state.App{ID: name, Name: name, Domain: "bench", Scalable: true, HA: true, State: state.GearStarted}
		ops = append(ops, store.Op{Bucket: state.BucketApps, Key: state.AppKey(a.Domain, a.Name), Value: a})
		for j := range 2 {
			g := state.Gear{ID: fmt.Sprintf("%s%d", name, j), App: state.AppKey(a.Domain, a.Name), AppName: name, Domain: a.Domain,
				Node: nodes[(i+j)%len(nodes)], LB: true, State: state.GearStarted}
			ops = append(ops, store.Op{Bucket: state.BucketGears, Key: g.ID, Value: g},
				store.Op{Bucket: state.BucketGearStatus, Key: g.ID, Value: state.GearStatus{ID: g.ID, Node: g.Node, State: state.GearStarted}})
		}
	}
	for len(ops) > 0 {
		n := min(len(ops), 500)
		if _, err := broker.Batch(ctx, ops[:n]); err != nil {
			return fmt.Errorf("write records: %w", err)
		}
		ops = ops[n:]
	}

	cfg := dnsmgr.DefaultConfig(broker, zone)
	cfg.Addr = addr
	cfg.RateLimit = 0 // dnsperf sends from one /24: measure answers, not the limiter
	cfg.Logger = log
	srv, err := dnsmgr.New(cfg)
	if err != nil {
		return err
	}
	if err := srv.Start(ctx); err != nil {
		return err
	}
	defer srv.Close()

	// Wait for the table to hold every app (the writes reach it through
	// the store watch).
	last := fmt.Sprintf("ha-app%04d-bench.%s.", apps-1, strings.TrimSuffix(zone, "."))
	c := &dns.Client{Timeout: time.Second}
	for deadline := time.Now().Add(10 * time.Second); ; {
		m := new(dns.Msg)
		m.SetQuestion(last, dns.TypeA)
		r, _, err := c.Exchange(m, srv.Addr())
		if err == nil && len(r.Answer) == 2 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not served after 10 s (%v, %v)", last, r, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if zonefile != "" {
		if err := writeLines(zonefile, func(w *bufio.Writer) {
			rrs := srv.Table().Records()
			for _, rr := range rrs[:len(rrs)-1] { // the closing SOA is for transfers
				fmt.Fprintln(w, rr.String())
			}
		}); err != nil {
			return err
		}
	}
	if queries != "" {
		if err := writeLines(queries, func(w *bufio.Writer) {
			z := strings.TrimSuffix(zone, ".")
			for i := range apps {
				fmt.Fprintf(w, "app%04d-bench.%s A\nha-app%04d-bench.%s A\n", i, z, i, z)
			}
		}); err != nil {
			return err
		}
	}

	var stopProfile func()
	if cpuprofile != "" {
		f, err := os.Create(cpuprofile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		stopProfile = func() { pprof.StopCPUProfile(); f.Close() }
	}
	fmt.Printf("ready: %s serves %s (%d apps, serial %d)\n", srv.Addr(), zone, apps, srv.Table().Serial())
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	<-sigs
	if stopProfile != nil {
		stopProfile()
	}
	return nil
}

func writeLines(path string, fill func(*bufio.Writer)) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	fill(w)
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
