package broker

import (
	"net"
	"net/http"
	"net/url"
	"strconv"
	"testing"

	"gearbox/broker/api"
)

func TestRoutingRoutes(t *testing.T) {
	c := newCluster(t, clusterOpts{cfg: func(cfg *Config) { cfg.HAPrefix, cfg.HASuffix = "", "-ha" }})
	demo := c.user(t, "demo", url.Values{"ha": {"true"}})
	c.domain(t, demo, "demo")
	ha := c.createApp(t, demo, "demo", "web", url.Values{"ha": {"true"}})
	if ha.HAURL != "http://web-demo-ha.example.com/" {
		t.Errorf("ha_url %q, want the configured prefix and suffix", ha.HAURL)
	}
	c.createApp(t, demo, "demo", "solo", nil)
	c.ok(t, "POST", appPath("demo", "solo", "/aliases"), demo, url.Values{"id": {"www.example.org"}}, nil)

	wantErr(t, c.do(t, "GET", "/broker/rest/routing/routes", demo, nil), http.StatusForbidden, "needs an administrator")
	var routes []api.Route
	c.ok(t, "GET", "/broker/rest/routing/routes", admin, nil, &routes)
	if len(routes) != 2 || routes[0].App != "solo" || routes[1].App != "web" {
		t.Fatalf("routes: %+v, want solo then web", routes)
	}
	ip := map[string]string{}
	for _, n := range c.nodes {
		ip[n.name] = n.ip
	}

	solo, web := routes[0], routes[1]
	if solo.Host != "solo-demo.example.com" || solo.HAHost != "" || solo.Scalable || solo.HA || len(solo.Aliases) != 1 || solo.Aliases[0] != "www.example.org" {
		t.Errorf("solo: %+v", solo)
	}
	g := c.gears(t, "demo", "solo")[0]
	want := api.RouteEndpoint{GearID: g.ID, Address: net.JoinHostPort(ip[g.Node], strconv.Itoa(g.Port)), State: "new", Types: []string{"web_framework"}}
	if len(solo.Endpoints) != 1 || !sameEndpoint(solo.Endpoints[0], want) {
		t.Errorf("solo endpoints: %+v, want %+v", solo.Endpoints, want)
	}

	if web.Host != "web-demo.example.com" || web.HAHost != "web-demo-ha.example.com" || !web.Scalable || !web.HA || len(web.Aliases) != 0 {
		t.Errorf("web: %+v", web)
	}
	var lbs []api.RouteEndpoint
	for _, g := range c.gears(t, "demo", "web") {
		if g.LB {
			lbs = append(lbs, api.RouteEndpoint{GearID: g.ID, Address: net.JoinHostPort(ip[g.Node], strconv.Itoa(g.LBPort)), State: "new",
				Head: g.Head, Types: []string{"load_balancer"}})
		}
	}
	if len(lbs) != 2 || len(web.Endpoints) != 2 || !sameEndpoint(web.Endpoints[0], lbs[0]) || !sameEndpoint(web.Endpoints[1], lbs[1]) {
		t.Errorf("web endpoints: %+v, want %+v", web.Endpoints, lbs)
	}
}

func sameEndpoint(a, b api.RouteEndpoint) bool {
	return a.GearID == b.GearID && a.Address == b.Address && a.State == b.State && a.Head == b.Head &&
		len(a.Types) == 1 && len(b.Types) == 1 && a.Types[0] == b.Types[0]
}
