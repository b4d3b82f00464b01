package dev

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"

	"gearbox/broker/client"
	"gearbox/internal/cmdline"
	"gearbox/internal/demo"
	"gearbox/internal/member"
	"gearbox/node"
	"gearbox/store"
)

// The dev cluster's fixed layout: one member with the broker (and DNS)
// and router roles on 127.0.0.1, three node members on 127.0.0.11-13.
const (
	devDomain    = "gearbox.test"
	devBrokerIP  = "127.0.0.1"
	devAPIAddr   = "127.0.0.1:7480"
	devDNSAddr   = "127.0.0.1:5353"
	devRouterIP  = "127.0.0.1"
	devHTTPPort  = "8080"
	devControl   = "127.0.0.1:7490"
	devAdmin     = "admin"
	devPassword  = "gearbox-dev"
	devNamespace = "dev"
	devApp       = "demo"
	devGears     = 3
)

// devControlHeader must be on requests to the dev control listener.
const devControlHeader = "X-Gearbox-Dev"

// devNodes are the node members of the dev cluster and their addresses.
var devNodes = []struct{ name, ip string }{
	{"dev-node1", "127.0.0.11"},
	{"dev-node2", "127.0.0.12"},
	{"dev-node3", "127.0.0.13"},
}

// Command is `gearbox dev`: a whole cluster in one process.
func Command(log *zerolog.Logger) *cli.Command {
	return &cli.Command{
		Name:      "dev",
		Usage:     "run a whole local cluster in one process, with a sample HA app",
		UsageText: "gearbox dev [--data-dir DIR] [--reset]\n   gearbox dev stop|kill|start MEMBER",
		Description: "Starts, in this one process, a broker with its DNS server and a router on 127.0.0.1,\n" +
			"and three node members on 127.0.0.11, 127.0.0.12 and 127.0.0.13, each with its own state,\n" +
			"gossip and front listener. The zone is " + devDomain + "; DNS answers on " + devDNSAddr + ", the router\n" +
			"and node fronts on port " + devHTTPPort + ", the broker's REST API on " + devAPIAddr + ".\n\n" +
			"A sample app, " + devApp + "-" + devNamespace + "." + devDomain + ", the cluster demo (a queue, a replicated cache,\n" +
			"an HA daemon and job, web sessions: see README), is deployed, scaled to 3 gears and made HA. State is kept\n" +
			"under --data-dir and reused by the next start (--reset starts afresh). Logs go to\n" +
			"DATA_DIR/gearbox.log; warnings are also printed here.\n\n" +
			"While it runs, 'gearbox dev kill dev-node2' stops a node member as a crash would (no\n" +
			"goodbye to the cluster), 'gearbox dev stop dev-node2' stops one gracefully, and\n" +
			"'gearbox dev start dev-node2' brings it back. Ctrl-C stops everything.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "data-dir", Value: ".gearbox-dev", EnvVars: cmdline.Env("DEV_DATA_DIR"),
				Usage: "directory of the dev cluster's state, one folder per member; created if missing"},
			&cli.BoolFlag{Name: "reset", Usage: "delete --data-dir first: a new cluster, a new sample app"},
		},
		Subcommands: []*cli.Command{
			devControlCommand("stop", "stop a member gracefully: it leaves the cluster and stops its gears"),
			devControlCommand("kill", "stop a member as a crash would: its peers find it failed"),
			devControlCommand("start", "start a stopped member again"),
		},
		OnUsageError: cmdline.UsageError,
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return fmt.Errorf("unknown dev command %q; run 'gearbox dev --help' for usage", c.Args().First())
			}
			// main cancels c.Context at the first SIGINT or SIGTERM, and
			// exits at once at a second.
			ctx := c.Context
			dir := c.String("data-dir")
			return runDev(ctx, dir, c.Bool("reset"), c.App.Writer, c.App.ErrWriter, log.GetLevel())
		},
	}
}

// devControlCommand is `gearbox dev stop|kill|start MEMBER`: it asks the
// running dev cluster's control listener.
func devControlCommand(verb, usage string) *cli.Command {
	return &cli.Command{
		Name:      verb,
		Usage:     usage,
		UsageText: "gearbox dev " + verb + " MEMBER",
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return fmt.Errorf("want one member name, such as dev-node2; run 'gearbox dev %s --help' for usage", verb)
			}
			hc := &http.Client{Timeout: time.Minute}
			req, _ := http.NewRequest(http.MethodPost, "http://"+devControl+"/"+verb+"/"+url.PathEscape(c.Args().First()), nil)
			req.Header.Set(devControlHeader, "1")
			resp, err := hc.Do(req)
			if err != nil {
				return fmt.Errorf("no dev cluster answers on %s: is 'gearbox dev' running?", devControl)
			}
			defer resp.Body.Close()
			msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			if resp.StatusCode != http.StatusOK {
				return errors.New(strings.TrimSpace(string(msg)))
			}
			fmt.Fprint(c.App.Writer, string(msg))
			return nil
		},
	}
}

// devCluster is the running dev cluster.
type devCluster struct {
	dir    string
	secret string
	log    zerolog.Logger

	mu      sync.Mutex
	closing bool // set by stopAll: no member starts any more
	configs map[string]member.Config
	order   []string
	running map[string]*member.Member
}

// runDev runs the dev cluster until ctx ends.
func runDev(ctx context.Context, dir string, reset bool, stdout, stderr io.Writer, level zerolog.Level) error {
	// The addresses first: --reset must not delete the state of a dev
	// cluster that runs.
	if err := checkDevAddrs(); err != nil {
		return err
	}
	if reset {
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("--reset: %w", err)
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	logFile, err := os.OpenFile(filepath.Join(abs, "gearbox.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open the dev log: %w", err)
	}
	defer logFile.Close()
	if level == zerolog.NoLevel || level == zerolog.TraceLevel {
		level = zerolog.InfoLevel
	}
	w := zerolog.MultiLevelWriter(
		zerolog.ConsoleWriter{Out: logFile, NoColor: true, TimeFormat: "15:04:05.000"},
		&zerolog.FilteredLevelWriter{Writer: zerolog.LevelWriterAdapter{Writer: cmdline.ConsoleWriter(stderr, cmdline.IsTerminal(stderr))},
			Level: zerolog.WarnLevel})
	log := zerolog.New(w).Level(level).With().Timestamp().Logger()

	secret, err := devSecret(abs)
	if err != nil {
		return err
	}
	dc := &devCluster{dir: abs, secret: secret, log: log, configs: map[string]member.Config{}, running: map[string]*member.Member{}}
	if err := dc.configure(); err != nil {
		return err
	}
	control, err := dc.serveControl()
	if err != nil {
		return err
	}

	fmt.Fprintf(stdout, "gearbox dev: starting a broker, a router and 3 nodes (state in %s, log in %s)\n", dir, filepath.Join(dir, "gearbox.log"))
	start := time.Now()
	// The control listener closes first, so that no member starts while
	// the others stop.
	defer dc.stopAll()
	defer control.Close()
	for _, name := range dc.order {
		if err := dc.start(name); err != nil {
			return err
		}
	}
	haURL, headNode, err := dc.sampleApp(ctx, stdout)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	fmt.Fprintf(stdout, "gearbox dev: ready in %.1fs\n\n", time.Since(start).Seconds())
	binDir, err := installCLI(abs)
	if err != nil {
		return err
	}
	printDevHelp(stdout, haURL, headNode, binDir)
	<-ctx.Done()
	fmt.Fprintln(stdout, "\ngearbox dev: stopping")
	return nil
}

// devSecret returns the dev cluster's secret, made on the first start.
func devSecret(dir string) (string, error) {
	path := filepath.Join(dir, "cluster-secret")
	if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) >= 16 {
		return strings.TrimSpace(string(b)), nil
	}
	buf := make([]byte, 24)
	rand.Read(buf)
	s := hex.EncodeToString(buf)
	if err := os.WriteFile(path, []byte(s+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write the dev cluster secret: %w", err)
	}
	return s, nil
}

// configure builds the members' configurations, with the flags' own
// parsing and validation, as `gearbox serve` would be given them.
func (dc *devCluster) configure() error {
	type spec struct {
		name, ip, roles string
		extra           []string
	}
	specs := []spec{{"dev-broker", devBrokerIP, "broker,router", []string{
		"--api-addr", devAPIAddr,
		"--dns-addr", devDNSAddr,
		"--router-addr", net.JoinHostPort(devRouterIP, devHTTPPort),
	}}}
	for i, n := range devNodes {
		// Each node its own uid range, in case the dev cluster runs as
		// root and isolates gears.
		lo := node.DefaultGearUIDMin + i*1000
		specs = append(specs, spec{n.name, n.ip, "node", append([]string{
			"--http-addr", net.JoinHostPort(n.ip, devHTTPPort),
			"--gear-uid-range", fmt.Sprintf("%d-%d", lo, lo+999),
		}, dc.isolationArgs(n.name, lo, lo+999)...)})
	}
	var join []string
	for _, s := range specs {
		ro, err := member.RoleOptionsFromArgs(s.extra)
		if err != nil {
			return fmt.Errorf("dev member %s: %w", s.name, err)
		}
		// The dev admin's password is printed for the CLI; it is no secret.
		ro.Broker.BootstrapAdmin = devAdmin + ":" + devPassword
		cfg, err := member.Options{
			Roles: s.roles, Name: s.name, DataDir: filepath.Join(dc.dir, s.name),
			Bind: s.ip, Advertise: s.ip, SerfPort: cmdline.DefaultSerfPort, InternalPort: cmdline.DefaultInternalPort,
			Join: join, ClusterSecret: dc.secret, Domain: devDomain,
			LeaveTimeout: 5 * time.Second, AntiEntropyInterval: 10 * time.Second,
		}.Config()
		if err != nil {
			return fmt.Errorf("dev member %s: %w", s.name, err)
		}
		// Fast failure detection, as on a LAN of one host.
		cfg.Store.Profile = store.ProfileLocal
		cfg.Roles = ro
		dc.configs[s.name] = cfg
		dc.order = append(dc.order, s.name)
		join = []string{net.JoinHostPort(devBrokerIP, fmt.Sprint(cmdline.DefaultSerfPort))}
	}
	return nil
}

// isolationArgs returns the --gear-isolation flag of dev node name, whose
// gear uids are uidMin..uidMax: none (explicitly, since a node that
// cannot isolate gears does not start otherwise) when gearbox dev does
// not run as root or isolation does not work here (then with a loud
// warning of its own: dev as root is expected to isolate); else nothing,
// and the node isolates gears as any would.
func (dc *devCluster) isolationArgs(name string, uidMin, uidMax int) []string {
	none := []string{"--gear-isolation", node.IsolateNone}
	if os.Geteuid() != 0 {
		return none // the node warns that its gears are not isolated
	}
	if _, err := node.CheckIsolation(filepath.Join(dc.dir, name), name, uidMin, uidMax); err != nil {
		dc.log.Warn().Err(err).Str("member", name).Str("isolation", node.IsolateNone).
			Msg("GEARS ARE NOT ISOLATED: gearbox dev runs as root but cannot isolate its gears, so its nodes run them as root, unisolated (fine for one developer)")
		return none
	}
	return nil
}

// checkDevAddrs fails early, with a clear message, when a dev address
// cannot be bound: another dev cluster running, another program on the
// port, or a system without 127.0.0.x.
func checkDevAddrs() error {
	addrs := []string{devAPIAddr, net.JoinHostPort(devRouterIP, devHTTPPort), devControl, devDNSAddr,
		net.JoinHostPort(devBrokerIP, fmt.Sprint(cmdline.DefaultSerfPort)), net.JoinHostPort(devBrokerIP, fmt.Sprint(cmdline.DefaultInternalPort))}
	for _, n := range devNodes {
		addrs = append(addrs, net.JoinHostPort(n.ip, devHTTPPort), net.JoinHostPort(n.ip, fmt.Sprint(cmdline.DefaultSerfPort)),
			net.JoinHostPort(n.ip, fmt.Sprint(cmdline.DefaultInternalPort)))
	}
	fail := func(a string, err error) error {
		return fmt.Errorf("cannot listen on %s (is another 'gearbox dev' or another program using it? on macOS, add the address with 'sudo ifconfig lo0 alias %s'): %w",
			a, strings.Split(a, ":")[0], err)
	}
	for _, a := range addrs {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			return fail(a, err)
		}
		ln.Close()
	}
	// DNS and gossip take UDP too.
	for _, a := range []string{devDNSAddr, net.JoinHostPort(devBrokerIP, fmt.Sprint(cmdline.DefaultSerfPort))} {
		pc, err := net.ListenPacket("udp", a)
		if err != nil {
			return fail(a+"/udp", err)
		}
		pc.Close()
	}
	return nil
}

// start starts member name.
func (dc *devCluster) start(name string) error {
	dc.mu.Lock()
	defer dc.mu.Unlock()
	cfg, ok := dc.configs[name]
	if !ok {
		return fmt.Errorf("no dev member %q (members: %s)", name, strings.Join(dc.order, ", "))
	}
	if dc.running[name] != nil {
		return fmt.Errorf("%s is running", name)
	}
	if dc.closing {
		return errors.New("the dev cluster is stopping")
	}
	m, err := member.New(cfg, dc.log.With().Str("member", name).Logger())
	if err == nil {
		err = m.Start(context.Background())
	}
	if err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	dc.running[name] = m
	return nil
}

// stop stops member name, gracefully or as a crash would.
func (dc *devCluster) stop(name string, crash bool) error {
	dc.mu.Lock()
	m := dc.running[name]
	delete(dc.running, name)
	dc.mu.Unlock()
	if m == nil {
		if _, ok := dc.configs[name]; !ok {
			return fmt.Errorf("no dev member %q (members: %s)", name, strings.Join(dc.order, ", "))
		}
		return fmt.Errorf("%s is not running", name)
	}
	if crash {
		m.Crash()
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return m.Leave(ctx)
}

// stopAll stops every running member, nodes first, all nodes at once.
func (dc *devCluster) stopAll() {
	dc.mu.Lock()
	dc.closing = true
	dc.mu.Unlock()
	var wg sync.WaitGroup
	for i := len(dc.order) - 1; i >= 1; i-- {
		name := dc.order[i]
		wg.Go(func() { dc.stop(name, false) })
	}
	wg.Wait()
	dc.stop(dc.order[0], false)
}

// serveControl serves `gearbox dev stop|kill|start` on devControl.
func (dc *devCluster) serveControl() (io.Closer, error) {
	ln, err := net.Listen("tcp", devControl)
	if err != nil {
		return nil, fmt.Errorf("listen for dev control on %s: %w", devControl, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /{verb}/{member}", func(w http.ResponseWriter, r *http.Request) {
		// A header of its own keeps web pages out: a browser asks
		// before it sends one, and nothing here answers that.
		if r.Header.Get(devControlHeader) == "" {
			http.Error(w, "missing "+devControlHeader+" header", http.StatusForbidden)
			return
		}
		name := r.PathValue("member")
		var err error
		switch verb := r.PathValue("verb"); verb {
		case "stop", "kill":
			if name == dc.order[0] {
				err = fmt.Errorf("%s runs the broker, DNS and router: stop the whole dev cluster with Ctrl-C instead", name)
				break
			}
			err = dc.stop(name, verb == "kill")
		case "start":
			err = dc.start(name)
		default:
			http.NotFound(w, r)
			return
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		dc.log.Info().Str("member", name).Str("event", r.PathValue("verb")).Msg("dev control")
		fmt.Fprintf(w, "%s: %s done\n", name, r.PathValue("verb"))
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	return srv, nil
}

// sampleApp creates the sample app on a new cluster (domain, app, scale,
// make-ha) and waits until its ha- name answers through the router. It
// returns the URL to try and the node of the app's head LB gear.
func (dc *devCluster) sampleApp(ctx context.Context, stdout io.Writer) (haURL, headNode string, err error) {
	c := &client.Client{BaseURL: "http://" + devAPIAddr, User: devAdmin, Password: devPassword,
		HTTP: &http.Client{Timeout: 30 * time.Second}}
	host := devApp + "-" + devNamespace + "." + devDomain
	haHost := dc.configs[dc.order[0]].Roles.HAPrefix + devApp + "-" + devNamespace + dc.configs[dc.order[0]].Roles.HASuffix + "." + devDomain
	steps := []struct {
		what string
		do   func() error
	}{
		{"wait for the broker", func() error { _, err := c.CurrentUser(ctx); return err }},
		{"wait for the nodes", func() error {
			nodes, err := c.Nodes(ctx)
			if err == nil && len(nodes) < len(devNodes) {
				err = fmt.Errorf("%d of %d nodes registered", len(nodes), len(devNodes))
			}
			return err
		}},
		{"create domain " + devNamespace, func() error {
			domains, err := c.Domains(ctx)
			if err != nil {
				return err
			}
			for _, d := range domains {
				if d.Name == devNamespace {
					return nil // from an earlier start
				}
			}
			_, _, err = c.CreateDomain(ctx, devNamespace)
			return err
		}},
		{"create app " + host, func() error {
			if _, err := c.App(ctx, devNamespace, devApp, false); err == nil {
				return nil // from an earlier start
			} else if !client.IsStatus(err, http.StatusNotFound) {
				return err
			}
			_, _, err := c.CreateApp(ctx, devNamespace, devApp, client.AppOptions{Scale: true})
			return err
		}},
		{"deploy the cluster demo to it", func() error {
			if deps, err := c.Deployments(ctx, devNamespace, devApp); err != nil || len(deps) > 0 {
				return err // deployed by an earlier start
			}
			self, err := os.Executable()
			if err != nil {
				return fmt.Errorf("find this binary for the demo: %w", err)
			}
			archive, err := demo.Archive(self, demo.DefaultSendEvery, demo.DefaultJobEvery)
			if err != nil {
				return err
			}
			_, _, err = c.Deploy(ctx, devNamespace, devApp, bytes.NewReader(archive), int64(len(archive)))
			return err
		}},
		{fmt.Sprintf("scale it to %d gears", devGears), func() error {
			_, _, err := c.SetScale(ctx, devNamespace, devApp, "static", devGears, -1)
			return err
		}},
		{"make it HA", func() error {
			a, err := c.App(ctx, devNamespace, devApp, false)
			if err != nil || a.HA {
				return err
			}
			_, _, err = c.AppEvent(ctx, devNamespace, devApp, "make-ha")
			return err
		}},
		{"wait for " + haHost + " through the router", func() error {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort(devRouterIP, devHTTPPort)+"/", nil)
			req.Host = haHost
			resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("router answered %s", resp.Status)
			}
			return nil
		}},
		{"find the head LB gear", func() error {
			groups, err := c.GearGroups(ctx, devNamespace, devApp)
			for _, g := range groups {
				for _, gear := range g.Gears {
					if gear.Head {
						headNode = gear.Node
					}
				}
			}
			if err == nil && headNode == "" {
				err = errors.New("no head gear yet")
			}
			return err
		}},
	}
	for _, s := range steps {
		fmt.Fprintf(stdout, "gearbox dev: %s\n", s.what)
		deadline := time.Now().Add(2 * time.Minute)
		for {
			err := s.do()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				return "", "", fmt.Errorf("%s: %w (see %s)", s.what, err, filepath.Join(dc.dir, "gearbox.log"))
			}
			select {
			case <-ctx.Done():
				return "", "", ctx.Err()
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	return "http://" + haHost + ":" + devHTTPPort + "/", headNode, nil
}

// installCLI copies the running binary to DIR/bin/gearbox, so that the
// commands printed for the dev cluster work as printed: 'go run . dev'
// leaves no gearbox binary anywhere, and the one it runs is deleted when
// it exits. It returns the folder to put on PATH.
func installCLI(dir string) (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find this binary to copy it for the CLI: %w", err)
	}
	binDir := filepath.Join(dir, "bin")
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		return "", fmt.Errorf("create %s: %w", binDir, err)
	}
	src, err := os.Open(self)
	if err != nil {
		return "", fmt.Errorf("copy this binary for the CLI: %w", err)
	}
	defer src.Close()
	// Write beside, then rename: a CLI started from the old copy while
	// this one is written keeps running.
	tmp, err := os.CreateTemp(binDir, ".gearbox-*")
	if err != nil {
		return "", fmt.Errorf("copy this binary for the CLI: %w", err)
	}
	_, err = io.Copy(tmp, src)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o755)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), filepath.Join(binDir, "gearbox"))
	}
	if err != nil {
		os.Remove(tmp.Name())
		return "", fmt.Errorf("copy this binary for the CLI to %s: %w", binDir, err)
	}
	return binDir, nil
}

// printDevHelp prints what to try on the running dev cluster; binDir holds
// the gearbox binary its commands run.
func printDevHelp(w io.Writer, haURL, headNode, binDir string) {
	router := net.JoinHostPort(devRouterIP, devHTTPPort)
	dnsHost, dnsPort, _ := net.SplitHostPort(devDNSAddr)
	ha := strings.TrimSuffix(strings.TrimPrefix(haURL, "http://"), ":"+devHTTPPort+"/")
	app := devApp + "-" + devNamespace + "." + devDomain
	fmt.Fprintf(w, `The sample app %s is HA: %d gears on 3 nodes, 2 of them load balancers.
  URL:       %s  (through the router on %s)
  DNS:       dig @%s -p %s %s
             dig @%s -p %s %s
  HTTP:      curl -H 'Host: %s' http://%s/
  LB status: for the app's owner, through the broker (below); the load
             balancers serve it on their nodes' internal API only

The CLI, in another terminal (this cluster's gearbox binary is in %s):
  export PATH="%s:$PATH"
  export GEARBOX_API=http://%s GEARBOX_USER=%s GEARBOX_PASSWORD=%s
  gearbox app show %s -n %s
  gearbox app lb-status %s -n %s   # each LB gear's backends, checks, sessions
  gearbox node list

The app is the cluster demo: a queue (msg), a replicated cache (counters), an HA daemon
(counter: queues the cache's counter every 5 s, then increments it), an HA job (ajob: every
20 s) and a counter in each web session (/count). Its log shows where each runs:
  gearbox app logs %s -n %s      # send, recv, job and web lines, each with its gear id; -f follows
  curl -c jar -b jar -H 'Host: %s' http://%s/count     # 1, 2, 3, ... from any gear
Stop the gear whose lines say send and job: another gear goes on from the cached values
within a second, and takes the queue's messages; start it again. Stop the gear that
answered /count: the next /count goes on counting.
  G=GEAR_ID; gearbox gear stop $G; sleep 5; gearbox gear start $G

Watch a fail-over: keep requests going through the router,
  while sleep 0.2; do curl -s -o /dev/null -w '%%{http_code}\n' -H 'Host: %s' http://%s/; done
then, in the CLI's terminal, crash the node member of the head LB gear and bring it back:
  gearbox dev kill %s
  dig @%s -p %s %s     # its address drops out within seconds
  gearbox dev start %s

Ctrl-C stops everything; the next 'gearbox dev' starts where this one stopped.
`, app, devGears, haURL, router,
		dnsHost, dnsPort, ha, dnsHost, dnsPort, app,
		ha, router,
		binDir, binDir, devAPIAddr, devAdmin, devPassword, devApp, devNamespace, devApp, devNamespace,
		devApp, devNamespace, ha, router,
		ha, router,
		headNode, dnsHost, dnsPort, app, headNode)
}
