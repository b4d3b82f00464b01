package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"gearbox/lb"
	"gearbox/store"

	"gearbox/store/state"
)

// Autoscaling, after OpenShift's haproxy_ctld, run by the broker leader
// for every scalable app (not by one gear: an HA app has several load
// balancers, and their sessions are summed). Every AutoscaleInterval the
// leader reads the current sessions (requests in flight and queued) of
// each LB gear of the app and divides their sum by the app's gears: one
// sample. The average of the last AutoscaleSettings.Window samples, as a
// percentage of MaxSessionsPerGear, decides:
//
//   - at UpPct (90) or more, one gear is added, within scales_to and the
//     owner's gear limit (else autoscale_blocked says which);
//   - below haproxy_ctld's remove threshold for n gears,
//     UpPct × max(1 − 1/n, 0.85) − UpPct/n, for DownHold consecutive
//     samples and not within Cooldown of the last scale-up, one gear goes,
//     down to scales_from.
//
// After a scale (its own or a user's) the window starts over, so that
// decisions rest on samples of the app as it is, and nothing scales up
// while a gear of the app has not started yet; a scale by hand is never
// undone // within Cooldown. The state is a record (autoscale bucket), so that a
// new leader carries on.

// Autoscale defaults, per app overridable by env (AutoscaleSettings).
const (
	DefaultMaxSessionsPerGear = 16
	DefaultAutoscaleUpPct     = 90.0
	DefaultAutoscaleWindow    = 10
	DefaultAutoscaleDownHold  = 20
	DefaultAutoscaleCooldown  = 600 * time.Second
	DefaultAutoscaleInterval  = 5 * time.Second
)

// Env variables that set an app's autoscaling.
const (
	EnvMaxSessionsPerGear = "GEARBOX_MAX_SESSIONS_PER_GEAR"
	EnvAutoscaleDownHold  = "GEARBOX_AUTOSCALE_DOWN_HOLD"
	EnvAutoscaleCooldown  = "GEARBOX_AUTOSCALE_COOLDOWN"
)

// AutoscaleSettings are the rules of one app's autoscaling.
type AutoscaleSettings struct {
	MaxSessionsPerGear float64
	UpPct              float64
	Window             int // samples averaged
	DownHold           int // consecutive samples below the remove threshold
	Cooldown           time.Duration
}

// autoscaleSettings returns app a's settings: the defaults, overridden by
// the app's env where it sets them to a valid value. It also returns
// what in the env was not valid, for the log.
func autoscaleSettings(a *state.App) (AutoscaleSettings, []string) {
	s := AutoscaleSettings{MaxSessionsPerGear: DefaultMaxSessionsPerGear, UpPct: DefaultAutoscaleUpPct,
		Window: DefaultAutoscaleWindow, DownHold: DefaultAutoscaleDownHold, Cooldown: DefaultAutoscaleCooldown}
	var bad []string
	if v, ok := a.Env[EnvMaxSessionsPerGear]; ok {
		if n, err := strconv.ParseFloat(v, 64); err == nil && n >= 1 {
			s.MaxSessionsPerGear = n
		} else {
			bad = append(bad, EnvMaxSessionsPerGear+"="+v+" (want a number, 1 or more)")
		}
	}
	if v, ok := a.Env[EnvAutoscaleDownHold]; ok {
		if n, err := strconv.Atoi(v); err == nil && n >= 1 {
			s.DownHold = n
		} else {
			bad = append(bad, EnvAutoscaleDownHold+"="+v+" (want a whole number of samples, 1 or more)")
		}
	}
	if v, ok := a.Env[EnvAutoscaleCooldown]; ok {
		if n, err := strconv.Atoi(v); err == nil && n >= 0 {
			s.Cooldown = time.Duration(n) * time.Second
		} else {
			bad = append(bad, EnvAutoscaleCooldown+"="+v+" (want whole seconds, 0 or more)")
		}
	}
	return s, bad
}

// removePct is haproxy_ctld's remove threshold for n gears, in percent of
// MaxSessionsPerGear.
func (s AutoscaleSettings) removePct(n int) float64 {
	fn := float64(n)
	return s.UpPct*max(1-1/fn, 0.85) - s.UpPct/fn
}

// AutoscaleInput is what one autoscaling step sees of an app.
type AutoscaleInput struct {
	Now      time.Time
	Sessions float64 // sessions in flight, summed over the app's LB gears
	Gears    int     // the app's gears now
	Pending  bool    // a gear of the app has not started yet
	Min, Max int     // the gear count's bounds (Max -1: none)
	// MaxWhy says what Max is (scales_to, the owner's gear limit).
	MaxWhy string
}

// Autoscale decisions.
const (
	AutoscaleHold    = ""
	AutoscaleUp      = "up"
	AutoscaleDown    = "down"
	AutoscaleBlocked = "blocked" // it would scale up, but Max is reached
)

// autoscaleStep is one step of the autoscaler: the next state and the
// decision, with the reason. It is a pure function of its arguments.
func autoscaleStep(st state.Autoscale, s AutoscaleSettings, in AutoscaleInput) (state.Autoscale, string, string) {
	if in.Gears != st.Gears {
		// A scale the autoscaler did not make (a user's, or the app's
		// first sample): the window starts over, and a user's scale
		// holds for the cool-down.
		// A first sample knows no history: it is taken as a scale by
		// hand too, so that nothing a user just did is undone.
		down := st.Gears != 0 && in.Gears < st.Gears
		st.LastManual, st.LastManualDown = in.Now, down
		st.Gears, st.Samples, st.Below = in.Gears, nil, 0
	}
	if in.Gears <= 0 {
		return st, AutoscaleHold, ""
	}
	st.Samples = append(st.Samples, in.Sessions/float64(in.Gears))
	if len(st.Samples) > s.Window {
		st.Samples = st.Samples[len(st.Samples)-s.Window:]
	}
	var sum float64
	for _, v := range st.Samples {
		sum += v
	}
	avg := sum / float64(len(st.Samples))
	pct := avg / s.MaxSessionsPerGear * 100
	load := fmt.Sprintf("%.1f sessions per gear on average over the last %d samples, %.0f%% of %g", avg, len(st.Samples), pct, s.MaxSessionsPerGear)
	wasBlocked := st.Blocked
	st.Blocked = false
	manualHold := !st.LastManual.IsZero() && in.Now.Sub(st.LastManual) < s.Cooldown
	switch {
	case pct >= s.UpPct:
		st.Below = 0
		if in.Max >= 0 && in.Gears >= in.Max {
			st.Blocked = true
			if wasBlocked {
				return st, AutoscaleHold, load
			}
			return st, AutoscaleBlocked, fmt.Sprintf("%s; at %s", load, in.MaxWhy)
		}
		if in.Pending || (manualHold && st.LastManualDown) {
			return st, AutoscaleHold, load
		}
		st.Gears++
		st.Samples, st.LastUp = nil, in.Now
		return st, AutoscaleUp, fmt.Sprintf("%s (scale up at %g%%)", load, s.UpPct)
	case in.Gears > 1 && in.Gears > in.Min && pct < s.removePct(in.Gears):
		st.Below++
		if st.Below < s.DownHold || (!st.LastUp.IsZero() && in.Now.Sub(st.LastUp) < s.Cooldown) || (manualHold && !st.LastManualDown) {
			return st, AutoscaleHold, load
		}
		st.Gears--
		st.Samples, st.Below = nil, 0
		return st, AutoscaleDown, fmt.Sprintf("%s, below %.1f%% for %d samples", load, s.removePct(in.Gears), s.DownHold)
	default:
		st.Below = 0
		return st, AutoscaleHold, load
	}
}

// autoscaleLoop samples every AutoscaleInterval while this member leads.
func (b *Broker) autoscaleLoop() {
	t := time.NewTicker(b.cfg.AutoscaleInterval)
	defer t.Stop()
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-t.C:
		}
		if !b.isLeader() {
			continue
		}
		if err := b.autoscaleOnce(b.ctx); err != nil && b.ctx.Err() == nil && !errors.Is(err, store.ErrClosed) {
			b.log.Warn().Err(err).Msg("autoscaling pass failed")
		}
		b.autoscalePasses.Add(1)
	}
}

// autoscaleOnce takes one sample of every autoscaled app and acts on it.
func (b *Broker) autoscaleOnce(ctx context.Context) error {
	apps, err := list[state.App](b.st, state.BucketApps)
	if err != nil {
		return err
	}
	cv, err := b.loadCluster()
	if err != nil {
		return err
	}
	statuses, err := b.gearStatuses()
	if err != nil {
		return err
	}
	members := map[string]store.Member{}
	for _, m := range b.st.Members() {
		members[m.Name] = m
	}
	// The gears each user has, against their gear limit.
	ownerOf := map[string]string{}
	for _, a := range apps {
		ownerOf[state.AppKey(a.Domain, a.Name)] = a.Owner
	}
	used := map[string]int{}
	for _, g := range cv.gears {
		used[ownerOf[g.App]]++
	}
	var wg sync.WaitGroup
	for i := range apps {
		a := &apps[i]
		if !a.Scalable || a.AutoscaleOff || a.State != state.GearStarted {
			continue
		}
		wg.Go(func() {
			if err := b.autoscaleApp(ctx, a, cv, statuses, members, used[a.Owner]); err != nil && ctx.Err() == nil {
				b.log.Warn().Err(err).Str("app", a.Name).Str("domain", a.Domain).Msg("autoscaling failed")
			}
		})
	}
	wg.Wait()
	return nil
}

// lbSessions returns the sessions (in flight and queued) of LB gear g's
// load balancer, read from its node m, and false if it cannot be read.
func (b *Broker) lbSessions(ctx context.Context, g state.Gear, m store.Member) (int64, bool) {
	if b.cfg.lbSessions != nil {
		return b.cfg.lbSessions(g)
	}
	raw, err := b.readLBStatus(ctx, g, m)
	if err != nil {
		return 0, false
	}
	var st lb.Status
	if json.Unmarshal(raw, &st) != nil {
		return 0, false
	}
	n := st.Queued
	for _, be := range st.Backends {
		n += be.SessionsCurrent
	}
	return n, true
}

// autoscaleApp takes one sample of app a and acts on it.
func (b *Broker) autoscaleApp(ctx context.Context, a *state.App, cv *clusterView, statuses map[string]state.GearStatus, members map[string]store.Member, used int) error {
	key := state.AppKey(a.Domain, a.Name)
	var gears, lbs []state.Gear
	pending := false
	for _, g := range gearsOf(cv.gears, key) {
		if g.Replaces != nil {
			continue // a planned move's extra gear
		}
		gears = append(gears, g)
		if g.LB {
			lbs = append(lbs, g)
		}
		if s, ok := statuses[g.ID]; !ok || s.Node != g.Node || s.State != state.GearStarted {
			pending = true
		}
	}
	// The sessions of every load balancer of the app; one that cannot be
	// read counts nothing, and with none read there is no sample.
	var total float64
	read := 0
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, g := range lbs {
		wg.Go(func() {
			n, ok := b.lbSessions(ctx, g, members[g.Node])
			if !ok {
				return
			}
			mu.Lock()
			total += float64(n)
			read++
			mu.Unlock()
		})
	}
	wg.Wait()
	if read == 0 {
		return nil
	}
	owner, err := b.owner(a)
	if err != nil {
		return err
	}
	maxGears, why := a.ScalesTo, fmt.Sprintf("its maximum of %d gears (scales_to)", a.ScalesTo)
	if limit := len(gears) + owner.Capabilities.MaxGears - used; maxGears < 0 || limit < maxGears {
		maxGears, why = limit, fmt.Sprintf("user %s's gear limit of %d", owner.Login, owner.Capabilities.MaxGears)
	}
	settings, bad := autoscaleSettings(a)
	if len(bad) > 0 {
		b.log.Debug().Strs("ignored", bad).Str("app", a.Name).Msg("autoscale settings")
	}
	var old state.Autoscale
	if _, err := b.st.Get(state.BucketAutoscale, key, &old); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	next, decision, reason := autoscaleStep(old, settings, AutoscaleInput{Now: b.cfg.Now(), Sessions: total, Gears: len(gears),
		Pending: pending, Min: max(a.ScalesFrom, 1), Max: maxGears, MaxWhy: why})
	var alerts []state.Alert
	switch decision {
	case AutoscaleUp, AutoscaleDown:
		n, err := b.autoscaleApply(ctx, key, decision)
		if err != nil {
			next.Gears = len(gears) // not scaled: not someone else's scale either
			b.log.Warn().Err(err).Str("app", a.Name).Str("domain", a.Domain).Str("direction", decision).Msg("autoscaling could not scale")
			if decision == AutoscaleUp {
				next.Blocked = true
				if !old.Blocked {
					alerts = append(alerts, state.Alert{Kind: state.AlertAutoscaleHeld, AppName: a.Name, Namespace: a.Domain,
						Reason: reason, Action: "not scaled up: " + err.Error()})
				}
			}
			break
		}
		next.Gears = n
		kind, verb := state.AlertAutoscaleUp, "scaled up"
		if decision == AutoscaleDown {
			kind, verb = state.AlertAutoscaleDown, "scaled down"
		}
		alerts = append(alerts, state.Alert{Kind: kind, AppName: a.Name, Namespace: a.Domain, Reason: reason,
			Action: fmt.Sprintf("%s from %d to %d gears", verb, len(gears), n)})
	case AutoscaleBlocked:
		alerts = append(alerts, state.Alert{Kind: state.AlertAutoscaleHeld, AppName: a.Name, Namespace: a.Domain, Reason: reason,
			Action: fmt.Sprintf("not scaled up: the app is at %s", why)})
	}
	var ops []store.Op
	if !sameAutoscale(old, next) {
		ops = append(ops, store.Op{Bucket: state.BucketAutoscale, Key: key, Value: next})
	}
	if len(ops) == 0 && len(alerts) == 0 {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.commitAll(ctx, ops, nil, alerts)
}

// autoscaleApply scales app key one gear up or down, as the scale-up and
// scale-down events do, and returns its gear count after.
func (b *Broker) autoscaleApply(ctx context.Context, key, decision string) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var a state.App
	if _, err := b.st.Get(state.BucketApps, key, &a); err != nil {
		return 0, err
	}
	owner, err := b.owner(&a)
	if err != nil {
		return 0, err
	}
	pl, err := b.planFor(owner, &a)
	if err != nil {
		return 0, err
	}
	switch {
	case decision == AutoscaleUp && a.ScalesTo >= 0 && len(pl.gears) >= a.ScalesTo:
		return 0, fmt.Errorf("at its maximum of %d gears", a.ScalesTo)
	case decision == AutoscaleUp:
		err = pl.addGear()
	case len(pl.gears) <= max(a.ScalesFrom, 1):
		return 0, fmt.Errorf("at its minimum of %d gears", a.ScalesFrom)
	default:
		err = pl.removeGear()
	}
	if err != nil {
		return 0, err
	}
	if err := b.apply(ctx, pl); err != nil {
		return 0, err
	}
	n := 0
	for _, g := range pl.gears {
		if g.Replaces == nil {
			n++
		}
	}
	b.log.Info().Str("app", a.Name).Str("domain", a.Domain).Str("direction", decision).Int("gears", n).Msg("autoscaled")
	return n, nil
}

// sameAutoscale reports whether two autoscaler states are equal.
func sameAutoscale(a, b state.Autoscale) bool {
	return a.Gears == b.Gears && slices.Equal(a.Samples, b.Samples) && a.Below == b.Below && a.LastUp.Equal(b.LastUp) &&
		a.LastManual.Equal(b.LastManual) && a.LastManualDown == b.LastManualDown && a.Blocked == b.Blocked
}
