package broker

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"gearbox/broker/api"
	"gearbox/store/state"
)

func TestEnvironmentVariables(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	demo := c.user(t, "demo", nil)
	c.domain(t, demo, "demo")
	c.createApp(t, demo, "demo", "web", url.Values{"scale": {"true"}})
	path := appPath("demo", "web", "/environment-variables")

	var vars []api.EnvVar
	c.ok(t, "POST", path, demo, url.Values{"name": {"DB_URL"}, "value": {"postgres://db/x?a=b&c=d"}}, &vars)
	c.ok(t, "POST", path, demo, url.Values{"name": {"GREETING"}, "value": {" spaces kept "}}, nil)
	c.ok(t, "GET", path, demo, nil, &vars)
	if len(vars) != 2 || vars[0] != (api.EnvVar{Name: "DB_URL", Value: "postgres://db/x?a=b&c=d"}) || vars[1] != (api.EnvVar{Name: "GREETING", Value: " spaces kept "}) {
		t.Fatalf("variables %+v", vars)
	}
	var a state.App
	if _, err := c.st.Get(state.BucketApps, "demo/web", &a); err != nil || a.Env["DB_URL"] != "postgres://db/x?a=b&c=d" {
		t.Fatalf("app env %v, %v", a.Env, err)
	}
	c.ok(t, "DELETE", path+"/GREETING", demo, nil, &vars)
	if len(vars) != 1 || vars[0].Name != "DB_URL" {
		t.Fatalf("after delete: %+v", vars)
	}

	// The gear ratio rotates LB gears as soon as it is set.
	c.event(t, demo, "demo", "web", "scale-up") // 2 gears, 1 LB: ratio 2 < 3
	seq := c.lastSeq(t)
	c.ok(t, "POST", path, demo, url.Values{"name": {GearRatioEnv}, "value": {"2"}}, nil)
	if evs := c.eventsSince(t, seq); countAction(evs, state.ActionRotateOut) != 1 {
		t.Fatalf("events after setting the ratio to 2: %v, want one rotate_out", actions(evs))
	}

	mallory := c.user(t, "mallory", nil)
	tests := []struct {
		name   string
		method string
		path   string
		who    creds
		body   url.Values
		code   int
		text   string
	}{
		{"bad name", "POST", path, demo, url.Values{"name": {"1X"}, "value": {"v"}}, 422, "Invalid environment variable name"},
		{"name with dash", "POST", path, demo, url.Values{"name": {"A-B"}, "value": {"v"}}, 422, "Invalid environment variable name"},
		{"platform name", "POST", path, demo, url.Values{"name": {"GEARBOX_APP"}, "value": {"v"}}, 422, "set by the platform"},
		{"bad ratio", "POST", path, demo, url.Values{"name": {GearRatioEnv}, "value": {"0"}}, 422, "Invalid GEARBOX_LB_GEAR_RATIO"},
		{"value too long", "POST", path, demo, url.Values{"name": {"BIG"}, "value": {strings.Repeat("x", maxEnvValueLen+1)}}, 422, "longer than"},
		{"missing variable", "DELETE", path + "/NOPE", demo, nil, http.StatusNotFound, "no environment variable NOPE"},
		{"someone else's app", "POST", path, mallory, url.Values{"name": {"X"}, "value": {"v"}}, http.StatusForbidden, ""},
		{"someone else's list", "GET", path, mallory, nil, http.StatusForbidden, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c.unchanged(t, func() {
				wantErr(t, c.do(t, tt.method, tt.path, tt.who, tt.body), tt.code, tt.text)
			})
		})
	}
}
