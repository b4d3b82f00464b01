//go:build linux

package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"gearbox/node/services"
)

// The memory measurement: a gearbox cluster of four members and three
// standalone nats-servers, all idle.
//
//   - mem1 (127.0.0.71, broker and node) hosts every app's gear;
//   - mem2 and mem3 (.72, .73) are nodes with NATS that host no gear
//     (--max-gears 0): what they hold is their member and its NATS server;
//   - mem4 (.74) is a node with --nats-port 0 that hosts no gear either:
//     the same member without NATS;
//   - nats1-3 (.75-.77) are standalone nats-servers with the accounts a
//     node has: the system's, the platform's, then one per app.
//
// Each is measured with no app, then with o.apps apps (their accounts on
// every NATS server, their records in every member's store). No client is
// connected to the standalone servers while they are measured; the nodes
// keep their own connections to the platform's account.
var (
	memoryGearboxIPs = []string{"127.0.0.71", "127.0.0.72", "127.0.0.73", "127.0.0.74"}
	memoryNATSIPs    = []string{"127.0.0.75", "127.0.0.76", "127.0.0.77"}
)

// memorySettle is how long the processes idle before they are measured,
// and memorySamples how many samples, a second apart, each figure is the
// median of.
const (
	memorySettle  = 10 * time.Second
	memorySamples = 5
)

// memoryRow is one process's resident memory, and the CPU it used while
// it was measured (as a share of one core), with no app and with apps.
type memoryRow struct {
	what                string
	idle, withApp       memory
	idleCPU, withAppCPU float64
}

type memoryReport struct {
	rows []memoryRow
}

func measureMemory(ctx context.Context, ps *procs, o options, work string) (*memoryReport, error) {
	if err := os.MkdirAll(work, 0o700); err != nil {
		return nil, err
	}
	_, secretFile, err := writeSecret(work)
	if err != nil {
		return nil, err
	}
	n := fmt.Sprint(o.apps + 10)
	ms := []gbMember{
		{name: "mem1", ip: memoryGearboxIPs[0], role: "broker,node", args: []string{"--max-gears", n, "--default-max-gears", n}},
		{name: "mem2", ip: memoryGearboxIPs[1], role: "node", args: []string{"--max-gears", "0"}},
		{name: "mem3", ip: memoryGearboxIPs[2], role: "node", args: []string{"--max-gears", "0"}},
		{name: "mem4", ip: memoryGearboxIPs[3], role: "node", args: []string{"--max-gears", "0", "--nats-port", "0"}},
	}
	logf("memory: starting gearbox members mem1-4 and standalone nats-servers nats1-3")
	members, err := startGearbox(ps, o.gearbox, work, secretFile, ms)
	if err != nil {
		return nil, err
	}
	accs, err := standaloneAccounts(o.apps)
	if err != nil {
		return nil, err
	}
	// The standalone servers start with the accounts of a node without
	// apps: the system's and the platform's.
	natsProcs, confs, err := startStandaloneServers(ps, o.natsServer, work, "standalone", memoryNATSIPs, false, accs[:2])
	if err != nil {
		return nil, err
	}
	sa := &cluster{name: "memory standalone", procs: natsProcs, seed: accs[1].seed}
	for _, ip := range memoryNATSIPs {
		sa.urls = append(sa.urls, "nats://"+net.JoinHostPort(ip, "4222"))
	}
	err = sa.waitReady(ctx, 60*time.Second)
	sa.close()
	if err != nil {
		return nil, err
	}
	bc := brokerClient(ms[0].ip)
	if err := waitNodes(ctx, bc, len(ms), members); err != nil {
		return nil, err
	}
	if err := waitNoWitness(ctx, work, ms[:3]); err != nil {
		return nil, err
	}
	measured := []*proc{members[1], members[2], members[3], natsProcs[0], natsProcs[1], natsProcs[2]}
	names := []string{"gearbox node member mem2, NATS", "gearbox node member mem3, NATS", "gearbox node member mem4, --nats-port 0",
		"standalone nats-server nats1", "standalone nats-server nats2", "standalone nats-server nats3"}
	logf("memory: idle %s, then %d samples a second apart", memorySettle, memorySamples)
	idle, idleCPU, err := sampleMemory(ctx, measured)
	if err != nil {
		return nil, err
	}

	logf("memory: creating %d apps through mem1's broker", o.apps)
	if _, _, err := bc.CreateDomain(ctx, "mem"); err != nil {
		return nil, fmt.Errorf("create domain mem: %w", err)
	}
	start := time.Now()
	for i := range o.apps {
		if _, err := createApp(ctx, bc, "mem", fmt.Sprintf("app%d", i)); err != nil {
			return nil, err
		}
	}
	logf("memory: %d apps created in %s", o.apps, time.Since(start).Round(time.Millisecond))
	conf, err := renderAccounts(accs)
	if err != nil {
		return nil, err
	}
	for i, p := range natsProcs {
		if err := os.WriteFile(confs[i], []byte(standaloneConfig(i, memoryNATSIPs, filepath.Join(work, "standalone"), "", conf)), 0o600); err != nil {
			return nil, err
		}
		if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			return nil, fmt.Errorf("reload %s: %w", p.name, err)
		}
	}
	if err := waitAccounts(ctx, work, ms[:3], o.apps); err != nil {
		return nil, err
	}
	// The standalone servers have reloaded once the last app's user can
	// connect to each.
	last := &cluster{name: "memory standalone", procs: natsProcs, seed: accs[len(accs)-1].seed, urls: sa.urls}
	err = last.waitConnect(ctx, 30*time.Second)
	last.close()
	if err != nil {
		return nil, err
	}
	withApps, withAppsCPU, err := sampleMemory(ctx, measured)
	if err != nil {
		return nil, err
	}
	m := &memoryReport{}
	for i := range measured {
		m.rows = append(m.rows, memoryRow{what: names[i], idle: idle[i], withApp: withApps[i],
			idleCPU: idleCPU[i], withAppCPU: withAppsCPU[i]})
	}
	stopProcs(append(members, natsProcs...), 15*time.Second)
	ps.forget(append(members, natsProcs...))
	return m, nil
}

// waitAccounts waits until the NATS server of every member of ms has
// written its accounts file with apps app accounts (it reloads its server
// right after writing it).
func waitAccounts(ctx context.Context, work string, ms []gbMember, apps int) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	return poll(ctx, fmt.Sprintf("every NATS node has %d app accounts", apps), func() error {
		for _, m := range ms {
			b, err := os.ReadFile(filepath.Join(m.dataDir(work), "nats", "accounts.conf"))
			if err != nil {
				return err
			}
			if got := strings.Count(string(b), `"`+services.AccountName("")); got != apps {
				return fmt.Errorf("%s has %d", m.name, got)
			}
		}
		return nil
	})
}

// waitConnect waits until c's user can connect to each of c's servers.
func (c *cluster) waitConnect(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for i, u := range c.urls {
		err := poll(ctx, c.name+": connect to "+u, func() error {
			nc, err := connect(u, c.seed, fmt.Sprintf("bench probe %d", i))
			if err != nil {
				return err
			}
			c.pub = append(c.pub, nc)
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// sampleMemory waits memorySettle, then returns each process's median
// resident memory over memorySamples samples a second apart, and the CPU
// each used meanwhile, as a share of one core.
func sampleMemory(ctx context.Context, list []*proc) ([]memory, []float64, error) {
	cpu0 := make([]time.Duration, len(list))
	for i, p := range list {
		cpu0[i] = cpuTime([]*proc{p})
	}
	start := time.Now()
	if err := sleep(ctx, memorySettle); err != nil {
		return nil, nil, err
	}
	samples := make([][]memory, len(list))
	for s := range memorySamples {
		if s > 0 {
			if err := sleep(ctx, time.Second); err != nil {
				return nil, nil, err
			}
		}
		for i, p := range list {
			if err := p.alive(); err != nil {
				return nil, nil, err
			}
			m, err := readMemory(p.pid())
			if err != nil {
				return nil, nil, err
			}
			samples[i] = append(samples[i], m)
		}
	}
	elapsed := time.Since(start)
	out := make([]memory, len(list))
	cpu := make([]float64, len(list))
	for i, ss := range samples {
		slices.SortFunc(ss, func(a, b memory) int { return int(a.RSS - b.RSS) })
		out[i] = ss[len(ss)/2]
		cpu[i] = float64(cpuTime([]*proc{list[i]})-cpu0[i]) / float64(elapsed)
	}
	return out, cpu, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// rssList returns the resident memory of each process, in MiB.
func rssList(list []*proc) string {
	var out []string
	for _, p := range list {
		m, err := readMemory(p.pid())
		if err != nil {
			out = append(out, "?")
			continue
		}
		out = append(out, fmt.Sprintf("%.1f", mib(m.RSS)))
	}
	return strings.Join(out, ", ") + " MiB"
}

func mib(kib int64) float64 { return float64(kib) / 1024 }

func (m *memoryReport) report(w *os.File, o options) {
	fmt.Fprintf(w, "Resident memory (VmRSS, of which anonymous / file-backed), MiB; medians of %d samples after %s idle\n\n", memorySamples, memorySettle)
	fmt.Fprintf(w, "| process | no app | %d apps | per app | idle CPU, no app / %d apps (%% of a core) |\n|---|---|---|---|---|\n", o.apps, o.apps)
	for _, r := range m.rows {
		fmt.Fprintf(w, "| %s | %.1f (%.1f / %.1f) | %.1f (%.1f / %.1f) | %.1f KiB | %.1f / %.1f |\n", r.what,
			mib(r.idle.RSS), mib(r.idle.Anon), mib(r.idle.File), mib(r.withApp.RSS), mib(r.withApp.Anon), mib(r.withApp.File),
			float64(r.withApp.RSS-r.idle.RSS)/float64(o.apps), 100*r.idleCPU, 100*r.withAppCPU)
	}
	fmt.Fprintln(w)
}
