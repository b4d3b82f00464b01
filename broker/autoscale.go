package broker

import (
	"fmt"
	"strconv"
	"time"

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
// After a scale (its own or a user's) the window starts over and nothing
// is decided until it holds MinSamples samples, nor scaled up while a
// gear of the app has not started yet; a scale by hand is never undone
// within Cooldown. The state is a record (autoscale bucket), so that a
// new leader carries on.

// Autoscale defaults, per app overridable by env (AutoscaleSettings).
const (
	DefaultMaxSessionsPerGear = 16
	DefaultAutoscaleUpPct     = 90.0
	DefaultAutoscaleWindow    = 10
	DefaultAutoscaleDownHold  = 20
	DefaultAutoscaleCooldown  = 600 * time.Second
	DefaultAutoscaleInterval  = 5 * time.Second
	autoscaleMinSamples       = 2
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
		if st.Gears != 0 {
			st.LastManual, st.LastManualDown = in.Now, in.Gears < st.Gears
		}
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
	if len(st.Samples) < autoscaleMinSamples {
		return st, AutoscaleHold, load
	}
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
