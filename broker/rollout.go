package broker

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"gearbox/broker/api"
	"gearbox/store"
	"gearbox/store/state"
)

// DefaultRolloutTimeout is the default of Config.RolloutTimeout.
const DefaultRolloutTimeout = 10 * time.Minute

// A roll-out moves an app's gears to its current deployment (a new upload
// or an activate) one gear at a time: the leader sets one gear record's
// Deployment, the gear's node fetches, builds and starts it, and only when
// the node reports the gear started on that deployment (its health check
// passed) does the leader move the next. Gears that are stopped, or whose
// node is not alive, take no traffic: they are moved at once and run the
// deployment when they come back. A gear that does not pass its health
// check within RolloutTimeout stops the roll-out (state failed): the
// other gears keep the deployment they run, and a new deployment or an
// activate of the old one starts a new roll-out. If the gear passes its
// check later, the roll-out goes on.
//
// The progress is a Rollout record per app; every leader picks it up
// where the last left it.

// rolloutLoop steps the roll-outs while this member leads: on every
// change of apps, gears and gear statuses, on membership changes, and
// every second for the timeouts.
func (b *Broker) rolloutLoop() {
	w := b.st.Watch(state.BucketApps, state.BucketGears, state.BucketGearStatus)
	defer w.Close()
	members := b.st.MemberChanges()
	for {
		if b.isLeader() {
			if err := b.stepRollouts(b.ctx); err != nil && b.ctx.Err() == nil && !errors.Is(err, store.ErrClosed) {
				b.log.Warn().Err(err).Msg("step roll-outs failed")
			}
			b.rolloutPasses.Add(1)
		}
		select {
		case <-b.ctx.Done():
			return
		case <-w.C():
			w.Next()
		case <-members:
		case <-time.After(time.Second + rand.N(200*time.Millisecond)):
		}
	}
}

// stepRollouts takes every app's roll-out one step further.
func (b *Broker) stepRollouts(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	apps, err := list[state.App](b.st, state.BucketApps)
	if err != nil {
		return err
	}
	gears, err := list[state.Gear](b.st, state.BucketGears)
	if err != nil {
		return err
	}
	sts, err := list[state.GearStatus](b.st, state.BucketGearStatus)
	if err != nil {
		return err
	}
	ros, err := list[state.Rollout](b.st, state.BucketRollouts)
	if err != nil {
		return err
	}
	status := make(map[string]state.GearStatus, len(sts))
	for _, s := range sts {
		status[s.ID] = s
	}
	rollouts := make(map[string]state.Rollout, len(ros))
	for _, r := range ros {
		rollouts[r.App] = r
	}
	alive := make(map[string]bool)
	for _, m := range b.st.Members() {
		if m.Status == "alive" {
			alive[m.Name] = true
		}
	}
	var ops []store.Op
	for i := range apps {
		a := &apps[i]
		key := state.AppKey(a.Domain, a.Name)
		var cur *state.Rollout
		if r, ok := rollouts[key]; ok {
			cur = &r
		}
		ops = append(ops, b.stepRollout(a, gearsOf(gears, key), status, alive, cur)...)
	}
	if len(ops) == 0 {
		return nil
	}
	_, err = b.st.Batch(ctx, ops)
	return err
}

// stepRollout returns the writes that take app a's roll-out one step
// further: gears moved and the Rollout record, if either changed.
func (b *Broker) stepRollout(a *state.App, gs []state.Gear, status map[string]state.GearStatus, alive map[string]bool, cur *state.Rollout) []store.Op {
	key := state.AppKey(a.Domain, a.Name)
	target := a.Deployment
	now := b.cfg.Now()
	sort.Slice(gs, func(i, j int) bool { return gs[i].Ordinal < gs[j].Ordinal })

	r := state.Rollout{App: key, Deployment: target, Restarts: a.Restarts, State: state.RolloutRolling, StartedAt: now}
	same := cur != nil && cur.Deployment == target && cur.Restarts == a.Restarts
	if same {
		r = *cur
	}
	settle := b.rolloutSettle(a)
	var moved, pending, inflight []state.Gear
	for _, g := range gs {
		switch {
		case !movedTo(a, g):
			pending = append(pending, g)
		case g.State == state.GearStarted && alive[g.Node] && !runsTarget(a, g, status):
			inflight = append(inflight, g)
			moved = append(moved, g)
		case g.ID == r.Gear && g.State == state.GearStarted && alive[g.Node] && settle > 0:
			// Healthy: load balancers take their rise checks to send it
			// requests again, and the next gear waits for that.
			if r.GearHealthy.IsZero() {
				r.GearHealthy = now
			}
			if now.Sub(r.GearHealthy) < settle {
				inflight = append(inflight, g)
			}
			moved = append(moved, g)
		default:
			moved = append(moved, g)
		}
	}
	if len(pending) == 0 && (cur == nil || (same && cur.State == state.RolloutDone)) {
		// Nothing to move. A gear that fails after its roll-out is done
		// is the healer's business, not the roll-out's.
		return nil
	}
	var ops []store.Op
	move := func(g state.Gear) {
		g.Deployment = target
		g.Restarts = max(g.Restarts, a.Restarts)
		ops = append(ops, store.Op{Bucket: state.BucketGears, Key: g.ID, Value: g})
		moved = append(moved, g)
	}

	switch {
	case len(inflight) > 0:
		// Wait for the gear being moved; give up on it after the timeout.
		g := inflight[0]
		if r.Gear != g.ID {
			r.Gear, r.GearSince, r.GearHealthy = g.ID, now, time.Time{}
		}
		r.State = state.RolloutRolling
		r.Message = fmt.Sprintf("waiting for gear %s to pass its health check on %s", g.ID, what(target))
		st, reported := status[g.ID]
		if !r.GearHealthy.IsZero() {
			r.Message = fmt.Sprintf("gear %s runs %s; waiting %s for load balancers to take it back", g.ID, what(target), settle)
		} else if reported && target != "" && (st.FailedDeployment == target || (st.State == state.GearCrashing && st.Deployment == target)) {
			// The node says the gear cannot run it: no point waiting.
			r.State = state.RolloutFailed
			r.Message = fmt.Sprintf("gear %s cannot run %s (%s: %s); the roll-out stopped, the other gears run what they ran", g.ID, what(target), st.State, st.Reason)
			if cur == nil || cur.State != state.RolloutFailed {
				b.metrics.rolloutEnded(state.RolloutFailed)
				b.log.Warn().Str("app", a.Name).Str("domain", a.Domain).Str("gear", g.ID).Str("deployment", target).Str("why", st.Reason).Msg("roll-out failed")
			}
		} else if waited := now.Sub(r.GearSince); waited > b.cfg.RolloutTimeout {
			r.State = state.RolloutFailed
			why := "no status reported"
			if s, ok := status[g.ID]; ok {
				why = s.State
				if s.Reason != "" {
					why += ": " + s.Reason
				}
			}
			r.Message = fmt.Sprintf("gear %s did not pass its health check on %s within %s (%s); the roll-out stopped, the other gears run what they ran", g.ID, what(target), b.cfg.RolloutTimeout, why)
			if cur == nil || cur.State != state.RolloutFailed {
				b.metrics.rolloutEnded(state.RolloutFailed)
				b.log.Warn().Str("app", a.Name).Str("domain", a.Domain).Str("gear", g.ID).Str("deployment", target).Str("why", why).Msg("roll-out failed")
			}
		}
	default:
		// Gears that take no traffic are moved at once; then the next
		// serving gear, the ones that do not answer first.
		var serving []state.Gear
		for _, g := range pending {
			if g.State != state.GearStarted || !alive[g.Node] {
				move(g)
			} else {
				serving = append(serving, g)
			}
		}
		sort.SliceStable(serving, func(i, j int) bool {
			si, sj := status[serving[i].ID].State == state.GearStarted, status[serving[j].ID].State == state.GearStarted
			return !si && sj
		})
		if len(serving) > 0 {
			g := serving[0]
			move(g)
			inflight = append(inflight, g) // not done until it passes its check
			r.State, r.Gear, r.GearSince, r.GearHealthy = state.RolloutRolling, g.ID, now, time.Time{}
			r.Message = fmt.Sprintf("moving gear %s to %s", g.ID, what(target))
			if g.Deployment == target && status[g.ID].Deployment == target {
				r.Message = fmt.Sprintf("restarting gear %s", g.ID)
			}
			b.log.Info().Str("app", a.Name).Str("domain", a.Domain).Str("gear", g.ID).Str("deployment", target).Msg("roll-out moves gear")
		} else {
			if r.State != state.RolloutDone {
				b.metrics.rolloutEnded(state.RolloutDone)
				b.log.Info().Str("app", a.Name).Str("domain", a.Domain).Str("deployment", target).Int("gears", len(gs)).Msg("roll-out done")
			}
			r.State, r.Gear, r.GearSince, r.GearHealthy = state.RolloutDone, "", time.Time{}, time.Time{}
			r.Message = fmt.Sprintf("every gear runs %s", what(target))
		}
	}
	r.Done, r.Total = len(moved)-len(inflight), len(gs)
	if cur == nil || !sameRollout(*cur, r) {
		r.UpdatedAt = now
		ops = append(ops, store.Op{Bucket: state.BucketRollouts, Key: key, Value: r})
	}
	return ops
}

// rolloutSettle is how long a roll-out waits, once a moved gear of app a
// passes its health check, before it moves the next: long enough for load
// balancers to see the gear rise again (rise checks, one interval apart,
// and one more interval), as the app's GEARBOX_LB_RISE and
// GEARBOX_LB_CHECK_INTERVAL set them. Apps without load balancer do not
// wait.
func (b *Broker) rolloutSettle(a *state.App) time.Duration {
	if !a.Scalable {
		return 0
	}
	rise, inter := b.cfg.LBRise, b.cfg.LBCheckInterval
	if v, err := strconv.Atoi(strings.TrimSpace(a.Env["GEARBOX_LB_RISE"])); err == nil && v > 0 && v <= 100 {
		rise = v
	}
	if v := strings.TrimSpace(a.Env["GEARBOX_LB_CHECK_INTERVAL"]); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n > 0 {
			inter = time.Duration(n) * time.Millisecond
		} else if d, err := time.ParseDuration(v); err == nil && d > 0 {
			inter = d
		}
	}
	return time.Duration(rise+1) * inter
}

// sameRollout compares everything but UpdatedAt.
func sameRollout(x, y state.Rollout) bool {
	x.UpdatedAt, y.UpdatedAt = time.Time{}, time.Time{}
	return x == y
}

// what names deployment id in messages.
func what(id string) string {
	if id == "" {
		return "the welcome page"
	}
	return "deployment " + short(id)
}

// short is the first 12 hex digits of a deployment id, as logs and
// messages show it.
func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// GET /broker/rest/domains/{ns}/applications/{app}/rollout: the progress
// of the app's move to its current deployment.
func (b *Broker) getRollout(w http.ResponseWriter, r *http.Request, u *state.User, p params) error {
	a, err := b.app(u, r.PathValue("ns"), r.PathValue("app"))
	if err != nil {
		return err
	}
	ro, err := b.rolloutOf(a)
	if err != nil {
		return err
	}
	reply(w, http.StatusOK, "rollout", rolloutView(&ro))
	return nil
}

// rolloutOf returns app a's roll-out: its record, or, before the leader
// stepped one for a's current deployment and restarts, where it stands.
func (b *Broker) rolloutOf(a *state.App) (state.Rollout, error) {
	key := state.AppKey(a.Domain, a.Name)
	var ro state.Rollout
	if _, err := b.st.Get(state.BucketRollouts, key, &ro); errors.Is(err, store.ErrNotFound) || (err == nil && (ro.Deployment != a.Deployment || ro.Restarts != a.Restarts)) {
		gears, err := list[state.Gear](b.st, state.BucketGears)
		if err != nil {
			return ro, err
		}
		sts, err := list[state.GearStatus](b.st, state.BucketGearStatus)
		if err != nil {
			return ro, err
		}
		alive := make(map[string]bool)
		for _, m := range b.st.Members() {
			if m.Status == store.StatusAlive {
				alive[m.Name] = true
			}
		}
		return unsteppedRollout(a, gearsOf(gears, key), sts, alive), nil
	} else if err != nil {
		return ro, err
	}
	return ro, nil
}

// rolloutView is roll-out ro as the API shows it.
func rolloutView(ro *state.Rollout) api.Rollout {
	return api.Rollout{App: ro.App, Deployment: ro.Deployment, Restarts: ro.Restarts, State: ro.State, Message: ro.Message,
		Gear: ro.Gear, GearSince: ro.GearSince, GearHealthy: ro.GearHealthy, Done: ro.Done, Total: ro.Total,
		StartedAt: ro.StartedAt, UpdatedAt: ro.UpdatedAt}
}

// movedTo reports whether gear g's record names app a's current
// deployment and restart: the leader has moved it.
func movedTo(a *state.App, g state.Gear) bool {
	return g.Deployment == a.Deployment && g.Restarts >= a.Restarts
}

// runsTarget reports whether g's node reports it started on app a's
// current deployment and restart: it passed its health check there.
func runsTarget(a *state.App, g state.Gear, status map[string]state.GearStatus) bool {
	s, ok := status[g.ID]
	return ok && s.Node == g.Node && s.State == state.GearStarted && s.Deployment == a.Deployment && s.Restarts >= a.Restarts
}

// unsteppedRollout is the roll-out of app a to its current deployment as
// seen before the leader has written a record of it: not started yet, or
// never needed (the app's gears were made on it). A gear counts as done as
// the leader counts it (stepRollout): moved, and either taking no traffic
// (stopped, or its node not alive: it runs the deployment when it comes
// back) or reported started on it. A moved gear that serves is not done
// until its node says so, as this member may hold the move without the
// record the leader wrote with it (the two are read apart, and replicas
// receive them apart): it would make a roll-out that has not begun look
// done.
func unsteppedRollout(a *state.App, gs []state.Gear, sts []state.GearStatus, alive map[string]bool) state.Rollout {
	status := make(map[string]state.GearStatus, len(sts))
	for _, s := range sts {
		status[s.ID] = s
	}
	done := 0
	for _, g := range gs {
		if movedTo(a, g) && (g.State != state.GearStarted || !alive[g.Node] || runsTarget(a, g, status)) {
			done++
		}
	}
	ro := state.Rollout{App: state.AppKey(a.Domain, a.Name), Deployment: a.Deployment, Restarts: a.Restarts,
		State: state.RolloutRolling, Done: done, Total: len(gs), Message: "waiting for the broker leader to start the roll-out"}
	if done == len(gs) {
		ro.State, ro.Message = state.RolloutDone, "every gear runs the deployment"
	}
	return ro
}
