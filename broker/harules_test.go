package broker

import (
	"fmt"
	"testing"

	"gearbox/store/state"
)

func scaledApp() *state.App {
	return &state.App{Scalable: true, LBMin: 1, LBMax: 1, ScalesFrom: 1, ScalesTo: -1}
}

func haApp(m int) *state.App {
	return &state.App{Scalable: true, HA: true, LBMin: 2, LBMax: -1, ScalesFrom: 2, ScalesTo: -1, HAMultiplier: m}
}

func TestLBTarget(t *testing.T) {
	plain := &state.App{}
	tests := []struct {
		name  string
		app   *state.App
		gears int
		want  int
	}{
		{"not scalable", plain, 1, 0},
		{"scaled, one gear", scaledApp(), 1, 1},
		{"scaled, ten gears", scaledApp(), 10, 1},
		{"ha m=0 two gears", haApp(0), 2, 2},
		{"ha m=0 one gear (scaling up)", haApp(0), 1, 1},
		{"ha m=0 fifty gears", haApp(0), 50, 2},
		// The seed: "after 6 gears were created with the first two being
		// LBs, the 9th, 12th, and so on would all be LBs".
		{"ha m=3 6 gears", haApp(3), 6, 2},
		{"ha m=3 8 gears", haApp(3), 8, 2},
		{"ha m=3 9th gear", haApp(3), 9, 3},
		{"ha m=3 11 gears", haApp(3), 11, 3},
		{"ha m=3 12th gear", haApp(3), 12, 4},
		// "A multiplier of 10 would mean gears 30, 40, 50,… would be LB gears."
		{"ha m=10 29 gears", haApp(10), 29, 2},
		{"ha m=10 30th gear", haApp(10), 30, 3},
		{"ha m=10 40th gear", haApp(10), 40, 4},
		{"ha m=10 50th gear", haApp(10), 50, 5},
		{"ha m=10 20 gears", haApp(10), 20, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := lbTarget(tt.app, tt.gears); got != tt.want {
				t.Errorf("lbTarget(%d gears) = %d, want %d", tt.gears, got, tt.want)
			}
		})
	}
}

func TestRotatedOut(t *testing.T) {
	tests := []struct {
		gears, lbs, ratio int
		want              bool
	}{
		// "in a plain scaled app, once the third gear is created, the
		// first gear is removed from rotation"
		{1, 1, 3, false},
		{2, 1, 3, false},
		{3, 1, 3, true},
		// "In an HA app, once the 5th gear is created (5 gears / 2 LB
		// gears rounds to 3) the first two gears are removed"
		{2, 2, 3, false},
		{3, 2, 3, false},
		{4, 2, 3, false},
		{5, 2, 3, true},
		{6, 2, 3, true},
		{9, 3, 3, true},
		{7, 3, 3, false},
		{8, 3, 3, true}, // 2.67 rounds to 3
		{100, 2, -1, false},
		{4, 1, 5, false},
		{5, 1, 5, true},
		{0, 0, 3, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d/%d r=%d", tt.gears, tt.lbs, tt.ratio), func(t *testing.T) {
			if got := rotatedOut(tt.gears, tt.lbs, tt.ratio); got != tt.want {
				t.Errorf("rotatedOut(%d, %d, %d) = %v, want %v", tt.gears, tt.lbs, tt.ratio, got, tt.want)
			}
		})
	}
}

func TestGearRatioSetting(t *testing.T) {
	for _, s := range []string{"0", "-2", "x", "", "2.5"} {
		if _, err := parseGearRatio(s); err == nil {
			t.Errorf("parseGearRatio(%q) accepted", s)
		}
	}
	app := scaledApp()
	if got := appGearRatio(app, 3); got != 3 {
		t.Errorf("platform ratio: got %d", got)
	}
	app.Env = map[string]string{GearRatioEnv: "-1"}
	if got := appGearRatio(app, 3); got != -1 {
		t.Errorf("app ratio -1: got %d", got)
	}
	app.Env[GearRatioEnv] = "bogus"
	if got := appGearRatio(app, 4); got != 4 {
		t.Errorf("invalid app ratio falls back to platform: got %d", got)
	}
}
