package broker

import (
	"net"
	"net/http"
	"sort"
	"strconv"

	"gearbox/store/state"
)

// routeView is one app as a routing layer needs it: the names it answers
// to and where its requests go. GET /broker/rest/routing/routes lists
// them, so that an existing router (nginx, HAProxy, an F5) can be
// configured from the current state, and then follow the routing events.
type routeView struct {
	App       string `json:"app"`
	Namespace string `json:"namespace"`
	// Host is the app's hostname, APP-NS.ZONE: the Host header its gears
	// expect.
	Host string `json:"host"`
	// HAHost is the routing layer's hostname of an HA app (ha-APP-NS.ZONE
	// with the default prefix).
	HAHost   string   `json:"ha_host,omitempty"`
	Aliases  []string `json:"aliases"`
	Scalable bool     `json:"scalable"`
	HA       bool     `json:"ha"`
	// Endpoints are where to send the app's requests: the load balancers
	// of its LB gears (types load_balancer) when it is scalable, else its
	// one gear's web port (types web_framework).
	Endpoints []routeEndpoint `json:"endpoints"`
}

// routeEndpoint is one place an app's requests may go.
type routeEndpoint struct {
	GearID  string   `json:"gear_id"`
	Address string   `json:"address"` // node-address:port
	State   string   `json:"state"`   // the gear's, as gear_groups reports it
	Reason  string   `json:"reason,omitempty"`
	Head    bool     `json:"head,omitempty"`
	Types   []string `json:"types"`
}

// GET /broker/rest/routing/routes (admin): every app's routing-layer
// names and endpoints, by namespace and name.
func (b *Broker) routingRoutes(w http.ResponseWriter, r *http.Request, u *state.User, p params) error {
	if err := requireAdmin(u); err != nil {
		return err
	}
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
	sort.Slice(apps, func(i, j int) bool {
		if apps[i].Domain != apps[j].Domain {
			return apps[i].Domain < apps[j].Domain
		}
		return apps[i].Name < apps[j].Name
	})
	out := make([]routeView, 0, len(apps))
	for i := range apps {
		out = append(out, b.routeView(&apps[i], cv, statuses))
	}
	reply(w, http.StatusOK, "routes", out)
	return nil
}

func (b *Broker) routeView(a *state.App, cv *clusterView, statuses map[string]state.GearStatus) routeView {
	v := routeView{App: a.Name, Namespace: a.Domain, Host: state.AppHost(a.Name, a.Domain, b.cfg.Domain),
		Aliases: append([]string{}, a.Aliases...), Scalable: a.Scalable, HA: a.HA, Endpoints: []routeEndpoint{}}
	if a.HA {
		v.HAHost = b.haHost(a)
	}
	for _, g := range gearsOf(cv.gears, state.AppKey(a.Domain, a.Name)) {
		port, typ := g.Port, "web_framework"
		if a.Scalable {
			if !g.LB {
				continue
			}
			port, typ = g.LBPort, "load_balancer"
		}
		n := cv.byName[g.Node]
		if n == nil || n.Addr == "" || port <= 0 {
			continue // its node never registered: nowhere to send requests
		}
		gv := b.gearView(&g, cv, statuses, false)
		v.Endpoints = append(v.Endpoints, routeEndpoint{GearID: g.ID, Address: net.JoinHostPort(n.Addr, strconv.Itoa(port)),
			State: gv.State, Reason: gv.Reason, Head: g.Head, Types: []string{typ}})
	}
	return v
}
