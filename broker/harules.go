package broker

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"gearbox/store/state"
)

// The HA rules of OpenShift's haproxy cartridge and broker, as pure
// functions of an app's settings and gear count, so that tables of the
// seed's examples test them directly.

// Defaults of the HA rules.
const (
	// DefaultGearRatio is the gear-to-LB ratio at which LB gears rotate
	// out of serving (OPENSHIFT_HAPROXY_GEAR_RATIO's default).
	DefaultGearRatio = 3
	// GearRatioEnv overrides the ratio for one app.
	GearRatioEnv = "GEARBOX_LB_GEAR_RATIO"
)

// lbTarget is how many of an app's gears should be LB gears when it has
// gears gears: none when not scalable, LBMin (1) for a scaled app, and for
// an HA app LBMin (2) or, with multiplier m > 0, every m-th gear: the 9th
// and 12th with m = 3, the 30th, 40th, 50th with m = 10.
func lbTarget(app *state.App, gears int) int {
	if !app.Scalable || gears == 0 {
		return 0
	}
	want := max(app.LBMin, 1)
	if app.HA && app.HAMultiplier > 0 {
		want = max(want, gears/app.HAMultiplier)
	}
	if app.LBMax >= 0 {
		want = min(want, max(app.LBMax, 1))
	}
	return min(want, gears)
}

// rotatedOut reports whether an app's LB gears stop serving requests
// themselves: when round(gears / LB gears) reaches ratio. A plain scaled
// app rotates out at its 3rd gear; an HA app at its 5th (5/2 rounds to 3)
// and not its 4th. ratio -1 disables rotation.
func rotatedOut(gears, lbs, ratio int) bool {
	if ratio < 0 || lbs == 0 {
		return false
	}
	return int(math.Round(float64(gears)/float64(lbs))) >= ratio
}

// parseGearRatio reads a gear ratio: -1 (never rotate) or 1 and above.
func parseGearRatio(s string) (int, error) {
	r, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || (r < 1 && r != -1) {
		return 0, fmt.Errorf("gear ratio %q: want -1 (disabled) or a whole number of 1 or more", s)
	}
	return r, nil
}

// appGearRatio is the ratio in force for app: its GEARBOX_LB_GEAR_RATIO
// when set and valid, else the platform's.
func appGearRatio(app *state.App, platform int) int {
	if v, ok := app.Env[GearRatioEnv]; ok {
		if r, err := parseGearRatio(v); err == nil {
			return r
		}
	}
	return platform
}
