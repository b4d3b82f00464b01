package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"gearbox/store/state"
)

// desired is what the store asks of a gear.
type desired struct {
	gear    state.Gear
	appID   string            // the app's id ("" while its record is unknown)
	env     map[string]string // the app's env
	destroy bool              // the gear left this node
	// deployment is the id of the deployment the gear record asks for
	// ("" for none: the welcome page).
	deployment string
	// dep is that deployment once this node has it ready; set by apply
	// for program.
	dep *deployment
}

// gear is the runtime of one gear on this node: a goroutine that applies
// the latest desired state, one change at a time, to the gear's directory
// and process, and reports what it observes.
type gear struct {
	s    *Supervisor
	id   string
	dir  string
	log  zerolog.Logger
	wake chan struct{}
	done chan struct{} // closed when run returns
	prev <-chan struct{}

	mu   sync.Mutex
	want desired

	// Owned by run.
	uid            int // the gear's own uid, once ensureDirs gave it one; 0 when gears are not isolated
	proc           *Process
	key            string
	ready          <-chan struct{} // closed once proc first answers
	failedKey      string          // a key whose handover failed
	failedDeploy   string          // the deployment the gear cannot run (GearStatus.FailedDeployment); under statusMu
	out            *logFile
	orphansChecked bool
	lb             *lbGear     // the LB gear's load balancer, if it runs
	retry          *time.Timer // wakes run to try the load balancer again
	deployRetry    *time.Timer // wakes run to try preparing the deployment again

	singMu sync.Mutex
	sing   *singletons // the gear's candidacy for its app's lease, if any

	statusMu    sync.Mutex
	status      state.GearStatus // what the node observes, to be reported
	reported    bool             // status is in the store
	endpoints   []state.Endpoint
	webUp       bool            // the web process answers
	running     string          // the deployment the web process runs ("" for the welcome page)
	health      string          // its health check path ("" for "/")
	restarts    int             // the gear record's Restarts it was started for
	draining    bool            // the web process is about to stop: load balancers drain it
	handingOver bool            // a side process serves while the web process restarts
	logTail     []string        // the end of the log when it last was found crashing
	dataCopy    string          // how far the copy of a replaced gear's data went (datacopy.go)
	lbDown      string          // why the load balancer the gear should run does not listen; "" if it does or none is wanted
	portTaken   *portTakenError // another uid holds the web port (see portowner.go); nil if none does
	reason      string          // the reason last reported, before portTaken's
}

func newGear(s *Supervisor, id string) *gear {
	return &gear{s: s, id: id, dir: s.gearDir(id), log: s.log.With().Str("gear", id).Logger(),
		wake: make(chan struct{}, 1), done: make(chan struct{})}
}

// set makes d the gear's desired state and wakes its loop.
func (g *gear) set(d desired) {
	g.mu.Lock()
	g.want = d
	g.mu.Unlock()
	g.poke()
}

// poke wakes the gear's loop.
func (g *gear) poke() {
	select {
	case g.wake <- struct{}{}:
	default:
	}
}

func (g *gear) desired() desired {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.want
}

func (g *gear) pidFile() string { return filepath.Join(g.s.runDir(), g.id+".pid") }

// run applies desired states until the gear is destroyed or ctx ends; at
// ctx's end it stops the gear's process.
func (g *gear) run(ctx context.Context) {
	defer close(g.done)
	defer func() {
		if g.retry != nil {
			g.retry.Stop()
		}
		if g.deployRetry != nil {
			g.deployRetry.Stop()
		}
		g.s.deploys.forget(g)
	}()
	if g.prev != nil {
		select {
		case <-g.prev:
		case <-ctx.Done():
			return
		}
	}
	for {
		d := g.desired()
		if d.destroy {
			g.destroy()
			return
		}
		g.apply(d)
		select {
		case <-g.wake:
		case <-ctx.Done():
			g.stopLB()
			if g.proc != nil {
				g.stopProc()
				g.report(state.GearStopped, "node stopped")
			}
			g.closeLog()
			return
		}
	}
}

// apply brings the gear to d.
func (g *gear) apply(d desired) {
	spec := &d.gear
	g.setEndpoints(spec)
	if err := g.ensureDirs(); err != nil {
		g.log.Error().Err(err).Msg("create gear directory failed")
		g.report(state.GearUnknown, err.Error())
		return
	}
	defer g.ensureReported()
	if err := g.writeNATSKey(d); err != nil {
		g.log.Error().Err(err).Msg("write nats key failed")
	}
	g.killOrphans()
	g.copyData(spec)
	if spec.Port <= 0 || spec.Port > 65535 {
		g.stopLB()
		if g.proc != nil {
			g.stopProc()
		}
		g.report(state.GearUnknown, fmt.Sprintf("gear has no valid port (%d)", spec.Port))
		return
	}
	if spec.State == state.GearStopped {
		// The load balancer goes first: it still sends requests to the
		// gear's web process.
		g.stopLB()
		g.setLBDown("")
		if g.proc != nil {
			g.stopProc()
			g.log.Info().Msg("gear stopped")
		}
		g.report(state.GearStopped, "")
		return
	}
	if g.proc == nil {
		g.checkIdlePort(spec.Port)
	}
	prepared := g.prepareDeployment(&d)
	g.ensureLB(d) // after: the deployment names the health path
	if !prepared {
		return
	}
	prog, key := g.program(d)
	key = fmt.Sprintf("%s restarts=%d", key, spec.Restarts)
	if g.proc != nil && key == g.key {
		return
	}
	if key == g.failedKey {
		return // the handover to it failed; a new change tries again
	}
	if g.proc != nil && g.webUp && g.s.soloGear(spec) {
		// The app's only gear: the new process starts beside the old one
		// and takes over once healthy.
		if g.handover(d, prog, key) {
			return
		}
	}
	if g.proc != nil {
		g.stopProc()
		g.report(state.GearStopped, "restarting")
	}
	g.launch(d, prog, key)
}

// program returns what the gear runs for d, confined to the gear's uid
// and limits when the node isolates gears, and its key.
func (g *gear) program(d desired) (Program, string) { return g.programIn(d, g.id) }

// programIn is program with its runs in the cgroup called cgroup: a
// gear's side process (handover.go) runs beside its web process, each in
// a cgroup of its own, since starting a run ends what is left in its
// cgroup.
func (g *gear) programIn(d desired, cgroup string) (Program, string) {
	prog, key := g.s.program(d, g.dir)
	if c, ok := prog.(Command); ok {
		c.jail = g.s.iso.jail(cgroup, g.uid, d.gear.Size)
		prog = c
	}
	return prog, key
}

// healthPath is the path that checks GET of a process running d: the
// deployment's manifest's health: for a web command, "" (for "/")
// otherwise.
func healthPath(d desired) string {
	if d.dep != nil && !d.dep.manifest.Static() && d.dep.manifest.Health != "/" {
		return d.dep.manifest.Health
	}
	return ""
}

// readyProbe is how a process of gear spec running d is found ready on
// port: its deployment's health check for a deployed web process, an
// open port otherwise; and, if owner is not nil, the socket on the port
// must be the process's (see portowner.go). owner is checked before the
// probe, so that a squatter gets nothing when it is known, and after, so
// that a port taken meanwhile is not mistaken for the gear's.
func (g *gear) readyProbe(d desired, port int, owner func() error) func(context.Context) error {
	addr := net.JoinHostPort(g.s.cfg.Addr, strconv.Itoa(port))
	probe := probePort(addr)
	if d.dep != nil && !d.dep.manifest.Static() {
		// A deployed web process is ready when its health check passes,
		// as the load balancer will check it.
		probe = probeHTTP(addr, d.dep.manifest.Health)
	}
	if owner == nil {
		return probe
	}
	return func(ctx context.Context) error {
		if err := owner(); err != nil {
			return err
		}
		if err := probe(ctx); err != nil {
			return err
		}
		return owner()
	}
}

// portOwner returns what checks that the socket listening on port is
// that of prog's run: of the gear's uid for a command, of the node's for
// a server of its own (the welcome page, static sites). It returns nil
// when gears are not isolated: they all run as the node's user, and no
// check can tell them apart.
func (g *gear) portOwner(prog Program, port int) func() error {
	if !g.s.iso.on() {
		return nil
	}
	addr, err := netip.ParseAddr(g.s.cfg.Addr)
	if err != nil {
		return nil
	}
	uid := os.Geteuid()
	if c, ok := prog.(Command); ok && c.jail != nil {
		uid = c.jail.uid
	}
	return func() error { return checkPortOwner(addr, port, uid) }
}

// checkIdlePort looks, when gears are isolated, for a process that
// listens on the port of the gear, which runs none: whatever it is, it is
// not the gear's, and the gear's status says so (PortTaken) from now on,
// while its deployment is fetched and built, not only once its process
// runs.
func (g *gear) checkIdlePort(port int) {
	if !g.s.iso.on() {
		return
	}
	addr, err := netip.ParseAddr(g.s.cfg.Addr)
	if err != nil {
		return
	}
	uids, err := portListeners(addr, port)
	if err != nil {
		g.log.Warn().Err(err).Msg("check the owner of the gear's port failed")
		return
	}
	if len(uids) == 0 {
		g.setPortTaken(nil)
		return
	}
	g.setPortTaken(&portTakenError{port: port, uid: uids[0], want: g.uid})
}

// launch starts prog as the gear's web process, known by key.
func (g *gear) launch(d desired, prog Program, key string) {
	spec := &d.gear
	if err := g.openLog(); err != nil {
		g.log.Error().Err(err).Msg("open gear log failed")
	}
	ready := make(chan struct{})
	var once sync.Once
	owner := g.portOwner(prog, spec.Port)
	probe := g.readyProbe(d, spec.Port, owner)
	pc := ProcessConfig{
		Program: prog,
		Ready: func(ctx context.Context) error {
			err := probe(ctx)
			g.notePortTaken(err)
			return err
		},
		ReadyInterval: g.s.cfg.ReadyInterval,
		Backoff:       g.s.cfg.Backoff,
		StopGrace:     g.s.cfg.StopGrace,
		OnEvent: func(ev ProcessEvent) {
			g.onEvent(ev, spec)
			switch ev.Kind {
			case EventReady:
				once.Do(func() { close(ready) })
				g.campaign(d)
			case EventExited, EventLaunchFailed:
				// A crashed gear gives its app's singletons up at once.
				g.resign()
				// A process that could not bind its port, because
				// another holds it, says so here, before any probe.
				if owner != nil {
					g.notePortTaken(owner())
				}
			}
		},
		Now: g.s.cfg.Now,
	}
	if g.out != nil {
		pc.Output = g.out
	}
	p, err := NewProcess(pc)
	if err != nil {
		g.report(state.GearUnknown, err.Error())
		return
	}
	g.proc, g.key, g.ready = p, key, ready
	g.setRunning(d.deployment, healthPath(d), spec.Restarts)
	what := "the welcome page"
	if d.deployment != "" {
		what = "deployment " + short(d.deployment)
	}
	g.note("starting the gear on port %d with %s", spec.Port, what)
	g.log.Info().Int("port", spec.Port).Int("restarts", spec.Restarts).Str("deployment", short(d.deployment)).Msg("start gear")
	g.s.setWebRunning(g.id, true)
	p.Start()
}

// prepareDeployment sets d.dep to the app's current deployment if it is
// ready on this node, and reports true if the gear may go on to run it
// (or the welcome page, when there is no deployment). While the
// deployment is fetched or built, and after that failed, the gear keeps
// running what it ran (or stays down) and its status says why; a failed
// preparation is tried again after a backoff.
func (g *gear) prepareDeployment(d *desired) bool {
	g.setFailedDeployment(d.deployment, false)
	if d.deployment == "" {
		return true
	}
	dep, phase, retryIn, err := g.s.deploys.get(g, *d)
	if dep != nil {
		d.dep = dep
		return true
	}
	if err != nil {
		reason := fmt.Sprintf("deployment %s failed: %v", short(d.deployment), err)
		var broken brokenError
		g.setFailedDeployment(d.deployment, errors.As(err, &broken))
		if retryIn > 0 {
			reason += fmt.Sprintf("; retrying in %s", retryIn.Round(time.Millisecond))
			if g.deployRetry != nil {
				g.deployRetry.Stop()
			}
			g.deployRetry = time.AfterFunc(retryIn, g.poke)
		}
		g.reportKeep("", reason)
		return false
	}
	what := "fetching"
	if phase == state.GearBuilding {
		what = "building"
	}
	g.reportKeep(phase, fmt.Sprintf("%s deployment %s", what, short(d.deployment)))
	return false
}

// reportKeep reports reason with st, or, when st is "", with the state
// the gear is in: started if its process answers, else stopped (new for a
// gear new to the node).
func (g *gear) reportKeep(st, reason string) {
	g.statusMu.Lock()
	defer g.statusMu.Unlock()
	if st == "" {
		switch {
		case g.proc != nil && g.webUp:
			st = state.GearStarted
		case g.status.State == state.GearNew:
			st = state.GearNew
		default:
			st = state.GearStopped
		}
	}
	g.reportLocked(st, reason)
}

// onEvent reports a change of the gear's process. It runs on the
// process's goroutine.
func (g *gear) onEvent(ev ProcessEvent, spec *state.Gear) {
	if ev.Kind != EventReady {
		g.setWebUp(false)
	}
	switch ev.Kind {
	case EventLaunched:
		if ev.PID > 0 {
			if err := writePIDFile(g.pidFile(), ev.PID); err != nil {
				g.log.Warn().Err(err).Msg("note gear process group failed")
			}
		}
		g.reportStarting(fmt.Sprintf("starting: waiting for %s:%d to answer", g.s.cfg.Addr, spec.Port))
	case EventReady:
		g.log.Info().Int("pid", ev.PID).Int("launches", ev.Launches).Msg("gear started")
		g.s.resumeBackend(g.id)
		g.setWebUp(true)
	case EventExited:
		os.Remove(g.pidFile())
		what := "exited"
		if ev.Err != nil {
			what = "crashed: " + ev.Err.Error()
		}
		if ev.Crashing {
			g.crashing(ev, what)
			break
		}
		g.s.metrics.restarts.Add(1)
		g.log.Warn().Err(ev.Err).Dur("uptime", ev.Uptime).Dur("restart_in", ev.Delay).Msg("gear process ended")
		g.report(state.GearStopped, fmt.Sprintf("%s; restarting in %s", what, ev.Delay))
	case EventLaunchFailed:
		if ev.Crashing {
			g.crashing(ev, "start failed: "+ev.Err.Error())
			break
		}
		g.log.Warn().Err(ev.Err).Dur("retry_in", ev.Delay).Msg("start gear failed")
		g.report(state.GearStopped, fmt.Sprintf("start failed: %v; retrying in %s", ev.Err, ev.Delay))
	case EventStopped:
		os.Remove(g.pidFile())
	}
}

// crashing reports a gear whose process ended more often than the crash
// limit allows (what: how it ended last), with the end of its log.
func (g *gear) crashing(ev ProcessEvent, what string) {
	b := g.s.cfg.Backoff
	g.log.Error().Err(ev.Err).Int("ends", ev.Ends).Dur("window", b.CrashWindow).Dur("restart_in", ev.Delay).
		Msg("gear is crashing: it is started again only after a long wait")
	reason := fmt.Sprintf("ended %d times in %s, last %s; starting again in %s", ev.Ends, b.CrashWindow, what, ev.Delay)
	tail := lastLines(filepath.Join(g.dir, "logs", "gear.log"), CrashLogLines)
	g.statusMu.Lock()
	defer g.statusMu.Unlock()
	g.logTail = tail
	g.reportLocked(state.GearCrashing, reason)
}

// killOrphans kills, once per runtime, what an earlier run of the node
// left of the gear's processes: whatever the store asks, they must not
// serve on.
func (g *gear) killOrphans() {
	if g.orphansChecked {
		return
	}
	g.orphansChecked = true
	if n, err := killOrphans(g.pidFile(), "GEARBOX_GEAR_ID="+g.id); err != nil {
		g.log.Warn().Err(err).Msg("look for orphaned gear processes failed")
	} else if n > 0 {
		g.log.Warn().Int("killed", n).Msg("killed gear processes left by an earlier run of the node")
	}
}

// stopProc stops the web process, once the load balancers of this node
// have drained it.
func (g *gear) stopProc() {
	g.note("stopping the gear")
	g.resign()
	// Load balancers on other nodes learn from the gear's status that
	// it goes, and get the time to stop sending it requests.
	g.setDraining(true)
	if app := g.desired().gear.App; app != "" && g.s.remoteLBs(app) {
		time.Sleep(g.s.cfg.RemoteDrainDelay)
	}
	g.s.drainBackend(g.id)
	g.proc.Stop()
	g.setDraining(false)
	g.proc, g.key = nil, ""
	g.s.setWebRunning(g.id, false)
	g.setWebUp(false)
	g.setPortTaken(nil)
}

func (g *gear) openLog() error {
	if g.out != nil {
		return nil
	}
	l, err := openLogFile(filepath.Join(g.dir, "logs", "gear.log"), g.s.cfg.LogMaxBytes, g.s.cfg.LogFiles, g.s.cfg.Now)
	if err != nil {
		return err
	}
	g.out = l
	return nil
}

// note writes a line of the node's own to the gear's log, where the
// gear's owner reads it with the gear's output (`gearbox app logs`).
func (g *gear) note(format string, args ...any) {
	if g.out != nil {
		fmt.Fprintf(g.out, "gearbox: "+format+"\n", args...)
	}
}

func (g *gear) closeLog() {
	if g.out != nil {
		g.out.Close()
		g.out = nil
	}
}

// ensureDirs creates the gear's directory. A gear whose directory did not
// exist yet is new, and is reported so before anything is created.
//
// When gears are isolated the gear gets its uid here, and the directory
// is laid out for it: the gear may enter its directory (root:GID 0750)
// but not change it; app (its HOME) and data are its own (UID:GID 0700);
// logs, which the node writes, and the uid file are the node's alone.
func (g *gear) ensureDirs() error {
	if _, err := os.Stat(g.dir); errors.Is(err, os.ErrNotExist) {
		g.report(state.GearNew, "")
	}
	iso := g.s.iso
	if !iso.on() {
		for _, sub := range []string{"app", "data", "logs"} {
			if err := os.MkdirAll(filepath.Join(g.dir, sub), 0o750); err != nil {
				return fmt.Errorf("create gear directory: %w", err)
			}
		}
		return nil
	}
	if err := os.MkdirAll(g.dir, 0o750); err != nil {
		return fmt.Errorf("create gear directory: %w", err)
	}
	uid, err := iso.uids.assign(g.id, g.dir)
	if err != nil {
		return err
	}
	g.uid = uid
	for _, d := range []struct {
		sub      string
		uid, gid int
		mode     os.FileMode
	}{{"", 0, uid, 0o750}, {"app", uid, uid, 0o700}, {"data", uid, uid, 0o700}, {"logs", 0, 0, 0o700}} {
		p := filepath.Join(g.dir, d.sub)
		if err := os.Mkdir(p, d.mode); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("create gear directory: %w", err)
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return fmt.Errorf("create gear directory: %w", err)
		}
		st, ok := statOf(fi)
		switch {
		case !fi.IsDir():
			return fmt.Errorf("create gear directory: %s is not a directory", p)
		case !ok || (st.uid == d.uid && st.gid == d.gid):
		case d.uid != 0:
			// Written before the gear had this uid (by a node that did
			// not isolate gears, say): all of it becomes the gear's.
			if err := chownTree(p, d.uid, d.gid, giveToGear(d.uid), nil); err != nil {
				return fmt.Errorf("give gear directory to uid %d: %w", d.uid, err)
			}
		default:
			if err := os.Lchown(p, d.uid, d.gid); err != nil {
				return fmt.Errorf("create gear directory: %w", err)
			}
		}
		if err := os.Chmod(p, d.mode); err != nil {
			return fmt.Errorf("create gear directory: %w", err)
		}
	}
	return nil
}

// destroy stops the gear and removes its directory, pid file and status.
// The status is removed only while this node owns it: once the gear is
// placed on another node, that node reports it.
func (g *gear) destroy() {
	g.stopLB()
	if g.proc != nil {
		g.stopProc()
	}
	g.killOrphans()
	g.closeLog()
	g.s.answering.Delete(g.id)
	os.Remove(g.pidFile())
	uid := g.uid
	if uid == 0 && g.s.iso.on() {
		uid = g.s.iso.uids.lookup(g.id)
	}
	if uid != 0 {
		// Processes that left the gear's process group (and, without
		// cgroups, outlived its runs) go with the gear.
		if n := killUIDProcs(uid, "GEARBOX_GEAR_ID="+g.id); n > 0 {
			g.log.Warn().Int("killed", n).Msg("killed processes left by the gear")
		}
	}
	if err := os.RemoveAll(g.dir); err != nil {
		g.log.Error().Err(err).Msg("remove gear directory failed")
	} else if g.s.iso.on() {
		g.s.iso.uids.release(g.id)
	}
	var cur state.GearStatus
	if _, err := g.s.st.Get(state.BucketGearStatus, g.id, &cur); err == nil && cur.Node == g.s.name {
		if _, err := g.s.st.Delete(context.Background(), state.BucketGearStatus, g.id); err != nil {
			g.log.Warn().Err(err).Msg("delete gear status failed")
		}
	}
	g.log.Info().Msg("gear destroyed")
}

// probeHTTP returns a readiness probe that passes once GET path on addr
// answers 2xx, 3xx or 401: the load balancer's default health check.
func probeHTTP(addr, path string) func(ctx context.Context) error {
	client := &http.Client{
		Transport:     &http.Transport{DisableKeepAlives: true, Proxy: nil},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	url := "http://" + addr + path
	return func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		if c := resp.StatusCode; (c >= 200 && c < 400) || c == http.StatusUnauthorized {
			return nil
		}
		return fmt.Errorf("health check GET %s answered %s", path, resp.Status)
	}
}

// probePort returns a readiness probe that passes once addr accepts TCP
// connections.
func probePort(addr string) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		c.Close()
		return nil
	}
}
