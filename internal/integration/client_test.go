package integration

import (
	"context"
	"net/http"
	"net/url"
	"testing"

	"gearbox/broker/client"
)

// TestClientRoundTripLogs runs broker/client's Logs against a broker
// whose nodes serve their gears' logs: what the client reads must be the
// gear's log.
func TestClientRoundTripLogs(t *testing.T) {
	rt := newCluster(t, nil)
	rt.serveGearLogs(t)
	ctx := context.Background()
	user := rt.user(t, "rt", url.Values{"ha": {"true"}, "max_gears": {"20"}})
	newApp(t, user, "rtns", "web", client.AppOptions{})
	gs := gears(t, user, "rtns", "web")
	rt.waitGears(t, gs)
	rt.appendLog(t, gs[0], stamp(1)+" one", stamp(2)+" two")

	body, err := user.Logs(ctx, "rtns", "web", 1, false)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := readAll(t, body), stamp(2)+" "+gs[0].ID+" two\n"; got != want {
		t.Errorf("logs %q, want %q", got, want)
	}
	if _, err := user.Logs(ctx, "rtns", "nope", -1, false); !client.IsStatus(err, http.StatusNotFound) {
		t.Errorf("logs of an unknown app: %v", err)
	}
}
