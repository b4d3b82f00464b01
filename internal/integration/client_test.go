package integration

import (
	"context"
	"io"
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
	rt.ok(t, "POST", "/broker/rest/users", admin, url.Values{"login": {"rt"}, "password": {"rt-password"}, "ha": {"true"}, "max_gears": {"20"}}, nil)
	who := creds{"rt", "rt-password"}
	user := &client.Client{BaseURL: rt.url, User: "rt", Password: "rt-password", HTTP: rt.client}
	rt.domain(t, who, "rtns")
	rt.createApp(t, who, "rtns", "web", nil)
	gs := rt.gears(t, "rtns", "web")
	rt.waitGears(t, gs)
	rt.appendLog(t, gs[0], stamp(1)+" one", stamp(2)+" two")

	body, err := user.Logs(ctx, "rtns", "web", 1, false)
	if err != nil {
		t.Fatal(err)
	}
	defer body.Close()
	got, err := io.ReadAll(body)
	if err != nil {
		t.Fatal(err)
	}
	if want := stamp(2) + " " + gs[0].ID + " two\n"; string(got) != want {
		t.Errorf("logs %q, want %q", got, want)
	}
	if _, err := user.Logs(ctx, "rtns", "nope", -1, false); !client.IsStatus(err, http.StatusNotFound) {
		t.Errorf("logs of an unknown app: %v", err)
	}
}
