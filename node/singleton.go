package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"gearbox/node/lease"
	"gearbox/node/schedule"
	"gearbox/node/services"
)

// An app's daemons and jobs (gearbox.yml's daemons: and jobs:) run on one
// of its gears at a time: the one that holds the app's lease (node/lease),
// in the platform's NATS account, where apps cannot reach it. Every gear
// of the app whose web process is up is a candidate, so that the
// singletons move when their gear stops, crashes or its node dies, and
// stay where they are otherwise. The lease's fencing token is given to
// daemons and jobs as GEARBOX_FENCING_TOKEN.
//
// Job states (node/schedule.State) are kept in the platform's jobs bucket
// under APP_ID.JOB, written by compare-and-set by the holder, so that the
// next holder resumes where the last left off.

// Timings of the singletons.
const (
	// SingletonTTL is the lease's time to live: the longest a dead
	// holder keeps the singletons from running elsewhere.
	SingletonTTL = lease.DefaultTTL
	// singletonFence is how long after its last renewal a holder that
	// cannot renew stops its daemons: with daemonStopGrace, they are
	// gone before the lease can expire.
	singletonFence = SingletonTTL / 2
	// daemonStopGrace is how long a daemon has between SIGTERM and
	// SIGKILL when its lease ends: the singleton does not run anywhere
	// meanwhile.
	daemonStopGrace = 500 * time.Millisecond
	// leadersAwayEvery is how often the holder's node checks that it
	// leads none of the app's streams, besides when JetStream says it
	// elected it.
	leadersAwayEvery = 5 * time.Second
)

// singletons is a gear's candidacy for its app's lease.
type singletons struct {
	key    string // app id and deployment it runs for
	cancel context.CancelFunc
	out    io.Writer // the gear's log
}

// wantsSingletons reports whether gear d's deployment declares daemons
// or jobs that this node can run.
func (s *Supervisor) wantsSingletons(d desired) bool {
	return s.cfg.Services != nil && d.appID != "" && d.dep != nil &&
		(len(d.dep.manifest.Daemons) > 0 || len(d.dep.manifest.Jobs) > 0)
}

// campaign makes the gear a candidate for its app's lease with d, once
// its web process is up; a candidacy for another deployment ends first.
func (g *gear) campaign(d desired) {
	g.singMu.Lock()
	defer g.singMu.Unlock()
	if !g.s.wantsSingletons(d) {
		g.resignLocked()
		return
	}
	key := d.appID + " " + d.dep.id
	if g.sing != nil && g.sing.key == key {
		return
	}
	g.resignLocked()
	ctx, cancel := context.WithCancel(g.s.ctx)
	// g.out was opened before the web process started, and is closed
	// only after it stopped; a write after that is dropped.
	var out io.Writer = io.Discard
	if g.out != nil {
		out = g.out
	}
	sg := &singletons{key: key, cancel: cancel, out: out}
	g.sing = sg
	g.s.wg.Go(func() { g.runCandidate(ctx, d, sg) })
}

// resign ends the gear's candidacy: if it holds the lease, its daemons
// stop and the lease is released, in the background.
func (g *gear) resign() {
	g.singMu.Lock()
	defer g.singMu.Unlock()
	g.resignLocked()
}

func (g *gear) resignLocked() {
	if g.sing != nil {
		g.sing.cancel()
		g.sing = nil
	}
}

// runCandidate campaigns for the app's lease until ctx ends.
func (g *gear) runCandidate(ctx context.Context, d desired, sg *singletons) {
	var kv jetstream.KeyValue
	for kv == nil {
		var err error
		if kv, err = g.s.platformKV(ctx, services.LeaseBucket(d.appID)); err != nil {
			if ctx.Err() != nil {
				return
			}
			g.log.Warn().Err(err).Msg("lease bucket not ready; trying again")
			sleepCtx(ctx, time.Second)
		}
	}
	cfg := lease.Config{KV: kv, Key: "holder", Holder: g.id, TTL: SingletonTTL, Fence: singletonFence, Logger: g.log}
	if err := lease.Run(ctx, cfg, func(ctx context.Context, token uint64) { sg.hold(ctx, g, d, token) }); err != nil {
		g.log.Error().Err(err).Msg("cannot campaign for the app's lease")
	}
}

// holdSingletons runs d's daemons and jobs while the gear holds the
// app's lease, taken at token.
func (sg *singletons) hold(ctx context.Context, g *gear, d desired, token uint64) {
	sg.note("this gear runs the app's daemons and jobs (fencing token %d)", token)
	base := g.s.gearEnv(d, g.dir, d.dep.id)
	base = append(base, "GEARBOX_FENCING_TOKEN="+strconv.FormatUint(token, 10))
	var procs []*Process
	for _, name := range slices.Sorted(maps.Keys(d.dep.manifest.Daemons)) {
		env := append(slices.Clone(base), "GEARBOX_DAEMON="+name)
		prog := ShellCommand(d.dep.manifest.Daemons[name], env, d.dep.dir)
		prog.jail = g.s.iso.jail(g.id+"-daemon-"+name, g.uid, d.gear.Size)
		p, err := NewProcess(ProcessConfig{
			Program: prog, Output: sg.out, Backoff: g.s.cfg.Backoff, StopGrace: daemonStopGrace, Now: g.s.cfg.Now,
			OnEvent: func(ev ProcessEvent) { g.daemonEvent(name, ev) },
		})
		if err != nil {
			g.log.Error().Err(err).Str("daemon", name).Msg("cannot run daemon")
			continue
		}
		g.log.Info().Str("daemon", name).Uint64("token", token).Msg("start daemon")
		p.Start()
		procs = append(procs, p)
	}
	// The jobs, and keeping the app's stream leaders off this node,
	// last as long as the lease.
	var held sync.WaitGroup
	held.Go(func() { g.s.leadersAway(ctx, d.appID) })
	for _, name := range slices.Sorted(maps.Keys(d.dep.manifest.Jobs)) {
		held.Go(func() { sg.runJob(ctx, g, d, name, base) })
	}
	<-ctx.Done()
	fenced := errors.Is(context.Cause(ctx), lease.ErrFenced)
	var stops sync.WaitGroup
	for _, p := range procs {
		stops.Go(p.Stop)
	}
	stops.Wait()
	held.Wait()
	if fenced {
		sg.note("this gear lost the app's lease: its daemons and jobs stopped (fencing token %d)", token)
	} else {
		sg.note("this gear gave up the app's lease: its daemons and jobs stopped (fencing token %d)", token)
	}
}

// daemonEvent notes a daemon's starts and ends in the gear's log.
func (g *gear) daemonEvent(name string, ev ProcessEvent) {
	switch ev.Kind {
	case EventExited:
		g.log.Warn().Str("daemon", name).Err(ev.Err).Msg("daemon ended; restarting")
	case EventLaunchFailed:
		g.log.Error().Str("daemon", name).Err(ev.Err).Msg("daemon failed to start")
	}
}

// runJob runs job name's ticks while ctx lasts, recording each in the
// jobs bucket: started before it runs, finished after, so that a tick
// cut by the end of the lease is run again (once) by the next holder.
func (sg *singletons) runJob(ctx context.Context, g *gear, d desired, name string, base []string) {
	job := d.dep.manifest.Jobs[name]
	key := d.appID + "." + name
	log := g.log.With().Str("job", name).Logger()
	var kv jetstream.KeyValue
	for kv == nil {
		var err error
		if kv, err = g.s.platformKV(ctx, services.JobsBucket); err != nil {
			if ctx.Err() != nil {
				return
			}
			log.Warn().Err(err).Msg("jobs bucket not ready; trying again")
			sleepCtx(ctx, time.Second)
		}
	}
	for ctx.Err() == nil {
		st, rev, err := loadJob(ctx, kv, key)
		if err != nil {
			if ctx.Err() == nil {
				log.Warn().Err(err).Msg("cannot read the job's state; trying again")
				sleepCtx(ctx, time.Second)
			}
			continue
		}
		plan := schedule.Due(job.Schedule, st, time.Now(), schedule.DefaultCatchUp)
		if plan.Skipped.Count > 0 {
			log.Warn().Int64("skipped", plan.Skipped.Count).Time("first", time.UnixMilli(plan.Skipped.First).UTC()).
				Time("last", time.UnixMilli(plan.Skipped.Last).UTC()).Msg("missed ticks past the catch-up limit are not run")
			sg.note("job %s: %d missed ticks not run (catch-up limit %d)", name, plan.Skipped.Count, schedule.DefaultCatchUp)
		}
		if plan.Abandoned != 0 {
			log.Warn().Int64("tick", plan.Abandoned).Msg("a tick cut twice is not run again")
			sg.note("job %s: tick %d was cut twice and is not run again", name, plan.Abandoned)
		}
		if plan.State != st {
			if rev, err = saveJob(ctx, kv, key, plan.State, rev); err != nil {
				continue // read again
			}
			st = plan.State
		}
		for _, tick := range plan.Due {
			started := st.Started(tick)
			if rev, err = saveJob(ctx, kv, key, started, rev); err != nil {
				break
			}
			st = started
			sg.runTick(ctx, g, d, name, job, tick, base)
			if ctx.Err() != nil {
				return // cut: the next holder runs it again
			}
			finished := st.Finished(tick)
			if rev, err = saveJob(ctx, kv, key, finished, rev); err != nil {
				break
			}
			st = finished
		}
		if err != nil || len(plan.Due) > 0 {
			continue // read again: more may be due
		}
		if plan.Next.IsZero() {
			<-ctx.Done()
			return
		}
		sleepCtx(ctx, time.Until(plan.Next))
	}
}

// runTick runs one tick of job name to its end, or until ctx ends.
func (sg *singletons) runTick(ctx context.Context, g *gear, d desired, name string, job Job, tick schedule.Tick, base []string) {
	env := append(slices.Clone(base), "GEARBOX_JOB="+name, "GEARBOX_JOB_TICK="+tick.String())
	prog := ShellCommand(job.Command, env, d.dep.dir)
	prog.jail = g.s.iso.jail(g.id+"-job-"+name, g.uid, d.gear.Size)
	what := "run"
	if tick.Rerun {
		what = "run again (its first run was cut)"
	}
	sg.note("job %s: tick %s (%s) %s", name, tick, tick.Time().Format(time.RFC3339), what)
	run, err := prog.Launch(sg.out)
	if err != nil {
		sg.note("job %s: tick %s failed to start: %v", name, tick, err)
		return
	}
	select {
	case <-run.Done():
		if err := run.Err(); err != nil {
			sg.note("job %s: tick %s ended: %v", name, tick, err)
		}
	case <-ctx.Done():
		run.Stop(daemonStopGrace)
	}
}

// loadJob reads a job's state and its revision (0: none yet).
func loadJob(ctx context.Context, kv jetstream.KeyValue, key string) (schedule.State, uint64, error) {
	e, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return schedule.State{}, 0, nil
	}
	if err != nil {
		return schedule.State{}, 0, err
	}
	var st schedule.State
	if err := json.Unmarshal(e.Value(), &st); err != nil {
		return schedule.State{}, 0, fmt.Errorf("job state %s: %w", key, err)
	}
	return st, e.Revision(), nil
}

// saveJob writes a job's state on revision rev (0: none yet).
func saveJob(ctx context.Context, kv jetstream.KeyValue, key string, st schedule.State, rev uint64) (uint64, error) {
	b, err := json.Marshal(st)
	if err != nil {
		return 0, err
	}
	if rev == 0 {
		return kv.Create(ctx, key, b)
	}
	return kv.Update(ctx, key, b, rev)
}

// platformKV returns the platform's bucket name, created if missing: a
// lease bucket (services.LeaseBucket) keeps its entries SingletonTTL, in
// memory; the jobs bucket keeps them, on disk.
func (s *Supervisor) platformKV(ctx context.Context, name string) (jetstream.KeyValue, error) {
	s.natsMu.Lock()
	defer s.natsMu.Unlock()
	if kv := s.buckets[name]; kv != nil {
		return kv, nil
	}
	if s.js == nil {
		nc, err := s.cfg.Services.ConnectPlatform()
		if err != nil {
			return nil, err
		}
		js, err := jetstream.New(nc)
		if err != nil {
			nc.Close()
			return nil, err
		}
		s.nc, s.js = nc, js
	}
	cfg := jetstream.KeyValueConfig{Bucket: name, History: 1, Storage: jetstream.FileStorage, Replicas: s.cfg.Services.Replicas()}
	if name != services.JobsBucket {
		cfg.TTL, cfg.Storage = SingletonTTL, jetstream.MemoryStorage
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	// Looked up first: the bucket's leader answers that, while a
	// creation waits for JetStream's metadata leader, which may be on a
	// node that just died.
	kv, err := s.js.KeyValue(cctx, name)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = s.js.CreateKeyValue(cctx, cfg)
		if errors.Is(err, jetstream.ErrBucketExists) {
			kv, err = s.js.KeyValue(cctx, name)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", name, err)
	}
	if s.buckets == nil {
		s.buckets = map[string]jetstream.KeyValue{}
	}
	s.buckets[name] = kv
	return kv, nil
}

// leadersAway keeps this node from leading the app's streams and
// consumers while one of its gears holds the app's lease (see
// services.Server.KeepLeadersAway).
func (s *Supervisor) leadersAway(ctx context.Context, appID string) {
	s.cfg.Services.KeepLeadersAway(ctx, appID, leadersAwayEvery, func(n int, err error) {
		if err != nil {
			s.log.Debug().Err(err).Str("app", appID).Msg("leaders not all moved off the singletons' node")
		}
		if n > 0 {
			s.log.Info().Str("app", appID).Int("leaders", n).Msg("moved the app's stream leaders off the node that runs its singletons")
		}
	})
}

// closeNATS closes the node's platform connection.
func (s *Supervisor) closeNATS() {
	s.natsMu.Lock()
	defer s.natsMu.Unlock()
	if s.nc != nil {
		s.nc.Close()
	}
	s.nc, s.js, s.buckets = nil, nil, nil
}

func sleepCtx(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// note writes a line of the node's own to the gear's log.
func (sg *singletons) note(format string, args ...any) {
	fmt.Fprintf(sg.out, "gearbox: "+format+"\n", args...)
}
