package broker

import (
	"net"
	"net/http"
	"sort"
	"strconv"

	"gearbox/broker/api"
	"gearbox/store/state"
)

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
	out := make([]api.Route, 0, len(apps))
	for i := range apps {
		out = append(out, b.routeView(&apps[i], cv, statuses))
	}
	reply(w, http.StatusOK, "routes", out)
	return nil
}

func (b *Broker) routeView(a *state.App, cv *clusterView, statuses map[string]state.GearStatus) api.Route {
	v := api.Route{App: a.Name, Namespace: a.Domain, Host: state.AppHost(a.Name, a.Domain, b.cfg.Domain),
		Aliases: append([]string{}, a.Aliases...), Scalable: a.Scalable, HA: a.HA, Endpoints: []api.RouteEndpoint{}}
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
		v.Endpoints = append(v.Endpoints, api.RouteEndpoint{GearID: g.ID, Address: net.JoinHostPort(n.Addr, strconv.Itoa(port)),
			State: gv.State, Reason: gv.Reason, Head: g.Head, Types: []string{typ}})
	}
	return v
}
