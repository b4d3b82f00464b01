package broker

import (
	"net/http"

	"gearbox/store/state"
)

// routes registers the REST API. Handler answers requests that match no
// pattern: 405 when the path exists for another method, else 404.
func (b *Broker) routes(mux *http.ServeMux) {
	const (
		domain = "/broker/rest/domains/{ns}"
		app    = domain + "/applications/{app}"
	)
	h := func(pattern string, fn call) { mux.Handle(pattern, b.handle(fn, false)) }
	mux.Handle("GET /broker/rest/api", b.handle(b.apiIndex, true))
	h("GET /broker/rest/user", b.getUser)
	h("POST /broker/rest/user/authorizations", b.createToken)
	h("GET /broker/rest/users", b.listUsers)
	h("POST /broker/rest/users", b.createUser)
	h("GET /broker/rest/users/{login}", b.showUser)
	h("PUT /broker/rest/users/{login}", b.updateUser)
	h("DELETE /broker/rest/users/{login}", b.deleteUser)

	h("GET /broker/rest/domains", b.listDomains)
	h("POST /broker/rest/domains", b.createDomain)
	h("GET "+domain, b.showDomain)
	h("DELETE "+domain, b.deleteDomain)

	h("GET "+domain+"/applications", b.listApps)
	h("POST "+domain+"/applications", b.createApp)
	h("GET "+app, b.showApp)
	h("PUT "+app, b.updateApp)
	h("DELETE "+app, b.deleteApp)
	h("POST "+app+"/events", b.appEvent)
	h("GET "+app+"/gear_groups", b.gearGroups)
	h("GET "+app+"/cartridges", b.showCartridges)
	h("GET "+app+"/cartridges/{cart}", b.showCartridges)
	h("PUT "+app+"/cartridges/{cart}", b.scaleCartridge)
	h("GET "+app+"/deployments", b.listDeployments)
	mux.Handle("POST "+app+"/deployments", b.handleUpload(b.createDeployment))
	h("GET "+app+"/rollout", b.getRollout)
	h("GET "+app+"/logs", b.appLogs)

	h("GET /broker/rest/nodes", b.listNodes)
	h("POST /broker/rest/nodes/{node}/events", b.nodeEvent)
	h("POST /broker/rest/gears/{gear}/move", b.moveGear)
	h("GET "+app+"/environment-variables", b.listEnv)
	h("POST "+app+"/environment-variables", b.setEnv)
	h("DELETE "+app+"/environment-variables/{name}", b.unsetEnv)
	h("POST /broker/rest/gears/{gear}/events", b.gearEvent)
	h("POST "+app+"/gears/{gear}/events", b.gearEvent)
	h("GET "+app+"/aliases", b.listAliases)
	h("POST "+app+"/aliases", b.addAlias)
	h("DELETE "+app+"/aliases/{alias}", b.removeAlias)

	h("GET /broker/rest/routing/events", b.routingEvents)
	h("GET /broker/rest/routing/routes", b.routingRoutes)
	h("GET /broker/rest/routing/webhooks", b.listWebhooks)
	h("POST /broker/rest/routing/webhooks", b.createWebhook)
	h("DELETE /broker/rest/routing/webhooks/{id}", b.deleteWebhook)

}

type link struct {
	Method string   `json:"method"`
	Href   string   `json:"href"`
	Params []string `json:"required_params,omitempty"`
}

// GET /broker/rest/api: the entry points, without authentication.
func (b *Broker) apiIndex(w http.ResponseWriter, r *http.Request, _ *state.User, p params) error {
	links := map[string]link{
		"API":                {"GET", "/broker/rest/api", nil},
		"GET_USER":           {"GET", "/broker/rest/user", nil},
		"ADD_AUTHORIZATION":  {"POST", "/broker/rest/user/authorizations", nil},
		"LIST_DOMAINS":       {"GET", "/broker/rest/domains", nil},
		"ADD_DOMAIN":         {"POST", "/broker/rest/domains", []string{"name"}},
		"LIST_APPLICATIONS":  {"GET", "/broker/rest/domains/:name/applications", nil},
		"ADD_APPLICATION":    {"POST", "/broker/rest/domains/:name/applications", []string{"name"}},
		"APPLICATION_EVENT":  {"POST", "/broker/rest/domains/:name/applications/:app/events", []string{"event"}},
		"GET_GEAR_GROUPS":    {"GET", "/broker/rest/domains/:name/applications/:app/gear_groups", nil},
		"SET_SCALE_LIMITS":   {"PUT", "/broker/rest/domains/:name/applications/:app/cartridges/:cartridge", nil},
		"ADD_DEPLOYMENT":     {"POST", "/broker/rest/domains/:name/applications/:app/deployments", nil},
		"LIST_DEPLOYMENTS":   {"GET", "/broker/rest/domains/:name/applications/:app/deployments", nil},
		"GET_ROLLOUT":        {"GET", "/broker/rest/domains/:name/applications/:app/rollout", nil},
		"GET_LOGS":           {"GET", "/broker/rest/domains/:name/applications/:app/logs", nil},
		"LIST_ENVIRONMENT":   {"GET", "/broker/rest/domains/:name/applications/:app/environment-variables", nil},
		"SET_ENVIRONMENT":    {"POST", "/broker/rest/domains/:name/applications/:app/environment-variables", []string{"name", "value"}},
		"GEAR_EVENT":         {"POST", "/broker/rest/gears/:gear/events", []string{"event"}},
		"LIST_USERS (admin)": {"GET", "/broker/rest/users", nil},
		"ADD_USER (admin)":   {"POST", "/broker/rest/users", []string{"login", "password"}},
		"LIST_NODES (admin)": {"GET", "/broker/rest/nodes", nil},
		"NODE_EVENT (admin)": {"POST", "/broker/rest/nodes/:node/events", []string{"event"}},
		"MOVE_GEAR (admin)":  {"POST", "/broker/rest/gears/:gear/move", []string{"node"}},
	}
	for k, l := range routingLinks {
		links[k] = l
	}
	reply(w, http.StatusOK, "links", map[string]any{"links": links, "domain_suffix": b.cfg.Domain})
	return nil
}

// routingLinks are the entry points of aliases and of the routing layer's
// API: the feed, the webhooks and the routes export.
var routingLinks = map[string]link{
	"LIST_ALIASES":                {"GET", "/broker/rest/domains/:name/applications/:app/aliases", nil},
	"ADD_ALIAS":                   {"POST", "/broker/rest/domains/:name/applications/:app/aliases", []string{"id"}},
	"DELETE_ALIAS":                {"DELETE", "/broker/rest/domains/:name/applications/:app/aliases/:id", nil},
	"LIST_ROUTING_EVENTS (admin)": {"GET", "/broker/rest/routing/events", nil},
	"LIST_ROUTES (admin)":         {"GET", "/broker/rest/routing/routes", nil},
	"LIST_WEBHOOKS (admin)":       {"GET", "/broker/rest/routing/webhooks", nil},
	"ADD_WEBHOOK (admin)":         {"POST", "/broker/rest/routing/webhooks", []string{"url"}},
	"DELETE_WEBHOOK (admin)":      {"DELETE", "/broker/rest/routing/webhooks/:id", nil},
}
