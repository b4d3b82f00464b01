//go:build linux

package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	brokerapi "gearbox/broker/api"
	"gearbox/broker/client"
)

// gearPIDDir returns a folder that the test app's gears note their pids
// in (E2E_PIDDIR), writable by every gear uid. Gear processes run in
// process groups of their own and outlive a killed member, so the test
// SIGKILLs every pid noted there when it ends.
func gearPIDDir(tb testing.TB) string {
	dir := tb.TempDir()
	if err := os.Chmod(dir, 0o777); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if b, err := os.ReadFile(filepath.Join(dir, e.Name())); err == nil {
				if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 1 {
					syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
	})
	return dir
}

// memberSpec is one member of an appCluster: its name, address, role
// (broker, node or router) and, for a node, zone.
type memberSpec struct{ name, ip, role, zone string }

// appCluster is members started as separate processes, the first a
// broker that the others join, with an admin client, the domain e2e and
// a folder for the test app's pids.
type appCluster struct {
	tb      testing.TB
	specs   []memberSpec
	members map[string]*member
	pidDir  string
	api     string
	admin   *client.Client
	// cliAuth and cliEnv run the CLI as the admin: the password is in
	// the environment, never on the command line.
	cliAuth, cliEnv []string
}

// startAppCluster starts the members of specs with the cluster secret
// secret and waits until the broker sees its nodes alive.
func startAppCluster(tb testing.TB, secret string, specs []memberSpec) *appCluster {
	return startAppClusterEnv(tb, secret, specs, nil)
}

// startAppClusterEnv is startAppCluster with env added to every member's
// environment.
func startAppClusterEnv(tb testing.TB, secret string, specs []memberSpec, env []string) *appCluster {
	return startAppClusterWith(tb, secret, specs, env, nil)
}

// startAppClusterWith is startAppClusterEnv with extra arguments of
// `gearbox serve` for some members, by name.
func startAppClusterWith(tb testing.TB, secret string, specs []memberSpec, env []string, extra map[string][]string) *appCluster {
	gearboxBinary(tb)
	c := &appCluster{tb: tb, specs: specs, members: map[string]*member{}, pidDir: gearPIDDir(tb)}
	broker := specs[0].ip
	nodes := 0
	for _, s := range specs {
		args := []string{"--log-format", "json", "serve", "--name", s.name, "--bind", s.ip, "--data-dir", gearDataDir(tb),
			"--anti-entropy-interval", "1s", "--domain", "apps.example.com"}
		switch s.role {
		case "broker":
			args = append(args, "--role", "broker", "--api-addr", s.ip+":7480", "--dns-addr", s.ip+":5353")
		case "node":
			// Each node its own gear uids: 1000 after 100000 + 1000 × the
			// address's last byte.
			last, _ := strconv.Atoi(s.ip[strings.LastIndexByte(s.ip, '.')+1:])
			base := 100000 + last*1000
			args = append(args, "--role", "node", "--http-addr", s.ip+":8080", "--zone", s.zone,
				"--gear-uid-range", fmt.Sprintf("%d-%d", base, base+999))
			nodes++
		case "router":
			args = append(args, "--role", "router", "--router-addr", s.ip+":8080")
		}
		if s.ip != broker {
			args = append(args, "--join", broker)
		}
		args = append(args, extra[s.name]...)
		c.members[s.name] = startMember(tb, s.name, s.ip, append(append(secretEnv(secret), adminEnv), env...), args...)
	}
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Log(c.logs())
		}
	})
	c.api = "http://" + net.JoinHostPort(broker, "7480")
	c.admin = &client.Client{BaseURL: c.api, User: "admin", Password: "adminpass1"}
	c.cliAuth = []string{"--api", c.api, "--user", "admin"}
	c.cliEnv = []string{"GEARBOX_PASSWORD=adminpass1"}
	waitAliveNodes(tb, c.admin, nodes, 60*time.Second, c.logs)
	if _, _, err := c.admin.CreateDomain(context.Background(), "e2e"); err != nil {
		tb.Fatal(err)
	}
	return c
}

// logs is every member's output.
func (c *appCluster) logs() string {
	var b strings.Builder
	for _, s := range c.specs {
		fmt.Fprintf(&b, "\n--- %s ---\n%s", s.name, c.members[s.name].output.String())
	}
	return b.String()
}

// ip is member name's address.
func (c *appCluster) ip(name string) string {
	return c.specs[slices.IndexFunc(c.specs, func(s memberSpec) bool { return s.name == name })].ip
}

// deployApp creates the scalable app e2e/APP with env (and E2E_PIDDIR)
// and deploys the test app to it with the CLI.
func (c *appCluster) deployApp(app string, env map[string]string) {
	ctx := context.Background()
	if _, _, err := c.admin.CreateApp(ctx, "e2e", app, client.AppOptions{Scale: true}); err != nil {
		c.tb.Fatal(err)
	}
	env["E2E_PIDDIR"] = c.pidDir
	for k, v := range env {
		if _, _, err := c.admin.SetEnv(ctx, "e2e", app, k, v); err != nil {
			c.tb.Fatalf("set %s: %v", k, err)
		}
	}
	dir := c.tb.TempDir()
	buildTestApp(c.tb, dir, "v1")
	if out, stderr, code := runGearboxEnv(c.tb, 2*time.Minute, c.cliEnv, append([]string{"app", "deploy", app, dir, "-n", "e2e"}, c.cliAuth...)...); code != 0 {
		c.tb.Fatalf("deploy (exit %d):\n%s\n%s", code, out, stderr)
	}
}

// gears returns app e2e/APP's gears, or nil if they cannot be read.
func (c *appCluster) gears(app string) []brokerapi.Gear {
	gg, err := c.admin.GearGroups(context.Background(), "e2e", app)
	if err != nil || len(gg) != 1 {
		return nil
	}
	return gg[0].Gears
}

// started counts app's gears reported started, of all.
func (c *appCluster) started(app string) (int, int) {
	gs := c.gears(app)
	n := 0
	for _, g := range gs {
		if g.State == "started" {
			n++
		}
	}
	return n, len(gs)
}

// killNode SIGKILLs node's member and the processes of app's gears on
// it, and removes their pid files: their replacements, under other
// nodes' uids, note their own.
func (c *appCluster) killNode(node, app string) {
	var pids []int
	for _, g := range c.gears(app) {
		if g.Node == node {
			if b, err := os.ReadFile(filepath.Join(c.pidDir, g.ID+".pid")); err == nil {
				pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
				pids = append(pids, pid)
			}
			os.Remove(filepath.Join(c.pidDir, g.ID+".pid"))
		}
	}
	c.members[node].kill()
	for _, pid := range pids {
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// gearsDir is where node keeps its gears' folders.
func (c *appCluster) gearsDir(node string) string {
	m := c.members[node]
	return filepath.Join(m.args[slices.Index(m.args, "--data-dir")+1], "gears")
}

// waitEvacuated waits until node is drained empty.
func (c *appCluster) waitEvacuated(node string, timeout time.Duration) {
	waitEvacuated(c.tb, c.admin, node, timeout, c.logs)
}

// waitEvacuated waits until admin sees node drained empty.
func waitEvacuated(tb testing.TB, admin *client.Client, node string, timeout time.Duration, logs func() string) {
	waitUntil(tb, timeout, "node "+node+" evacuated", logs, func() bool {
		nodes, err := admin.Nodes(context.Background())
		if err != nil {
			return false
		}
		for _, n := range nodes {
			if n.Name == node {
				return n.Gears == 0 && n.Evacuation == "evacuated"
			}
		}
		return false
	})
}

// wantFailedThenReplaced checks that the alert feed says node_failed of
// node, then gear_replaced of gear, and returns the feed.
func wantFailedThenReplaced(tb testing.TB, admin *client.Client, node, gear string) []brokerapi.Alert {
	tb.Helper()
	alerts, err := admin.Alerts(context.Background(), 0, 0)
	if err != nil {
		tb.Fatal(err)
	}
	failedAt := slices.IndexFunc(alerts, func(a brokerapi.Alert) bool { return a.Kind == "node_failed" && a.Node == node })
	replacedAt := slices.IndexFunc(alerts, func(a brokerapi.Alert) bool { return a.Kind == "gear_replaced" && a.Gear == gear })
	if failedAt < 0 || replacedAt < failedAt {
		tb.Errorf("alerts %+v: want node_failed of %s, then gear_replaced of %s", alerts, node, gear)
	}
	return alerts
}
