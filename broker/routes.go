package broker

import (
	"net/http"

	"gearbox/broker/api"
	"gearbox/store/state"
)

// routes registers the REST API. Handler answers requests that match no
// pattern: 405 when the path exists for another method, else 404.
func (b *Broker) routes(mux *http.ServeMux) {
	const (
		domain = "/broker/rest/domains/{ns}"
		app    = domain + "/applications/{app}"
	)
	h := func(pattern string, fn call) { mux.Handle(pattern, b.handle(fn, authed)) }
	mux.Handle("GET /broker/rest/api", b.handle(b.apiIndex, public))
	h("GET /broker/rest/user", b.getUser)
	h("GET /broker/rest/user/authorizations", b.listTokens)
	h("POST /broker/rest/user/authorizations", b.createToken)
	h("DELETE /broker/rest/user/authorizations/{id}", b.revokeToken)
	h("GET /broker/rest/users", b.listUsers)
	// These hash passwords before they take the mutation lock.
	mux.Handle("POST /broker/rest/users", b.handle(b.createUser, ownLock))
	h("GET /broker/rest/users/{login}", b.showUser)
	mux.Handle("PUT /broker/rest/users/{login}", b.handle(b.updateUser, ownLock))
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
	h("GET "+app+"/lb-status", b.appLBStatus)

	// The apps' git remotes (git.go): git's smart HTTP, with its own
	// errors and authentication challenge.
	mux.HandleFunc("/git/", b.serveGit)

	// The web console (console.go): its files, and its session.
	mux.Handle("GET /console/", b.consoleHandler())
	mux.Handle("GET /console", http.RedirectHandler("/console/", http.StatusMovedPermanently))
	h("POST /console/session", b.createConsoleSession)
	h("GET /console/session", b.showConsoleSession)
	h("DELETE /console/session", b.deleteConsoleSession)

	h("GET /broker/rest/nodes", b.listNodes)
	h("POST /broker/rest/nodes/{node}/events", b.nodeEvent)
	h("DELETE /broker/rest/nodes/{node}", b.removeNode)
	h("POST /broker/rest/gears/{gear}/move", b.moveGear)
	h("GET "+app+"/environment-variables", b.listEnv)
	h("POST "+app+"/environment-variables", b.setEnv)
	h("DELETE "+app+"/environment-variables/{name}", b.unsetEnv)
	h("POST /broker/rest/gears/{gear}/events", b.gearEvent)
	h("POST "+app+"/gears/{gear}/events", b.gearEvent)
	h("GET "+app+"/aliases", b.listAliases)
	h("POST "+app+"/aliases", b.addAlias)
	h("PUT "+app+"/aliases/{alias}", b.updateAlias)
	h("DELETE "+app+"/aliases/{alias}", b.removeAlias)

	h("GET /broker/rest/routing/events", b.routingEvents)
	h("GET /broker/rest/alerts", b.listAlerts)
	h("GET /broker/rest/routing/routes", b.routingRoutes)
	h("GET /broker/rest/routing/webhooks", b.listWebhooks)
	h("POST /broker/rest/routing/webhooks", b.createWebhook)
	h("DELETE /broker/rest/routing/webhooks/{id}", b.deleteWebhook)

}

// link is an entry point of the API that requires params.
func link(method, href string, params ...string) api.Link {
	return api.Link{Method: method, Href: href, Params: params}
}

// GET /broker/rest/api: the entry points, without authentication.
func (b *Broker) apiIndex(w http.ResponseWriter, r *http.Request, _ *state.User, p params) error {
	links := map[string]api.Link{
		"API":                  link("GET", "/broker/rest/api"),
		"GET_USER":             link("GET", "/broker/rest/user"),
		"LIST_AUTHORIZATIONS":  link("GET", "/broker/rest/user/authorizations"),
		"ADD_AUTHORIZATION":    link("POST", "/broker/rest/user/authorizations"),
		"DELETE_AUTHORIZATION": link("DELETE", "/broker/rest/user/authorizations/:id"),
		"LIST_DOMAINS":         link("GET", "/broker/rest/domains"),
		"ADD_DOMAIN":           link("POST", "/broker/rest/domains", "name"),
		"LIST_APPLICATIONS":    link("GET", "/broker/rest/domains/:name/applications"),
		"ADD_APPLICATION":      link("POST", "/broker/rest/domains/:name/applications", "name"),
		"APPLICATION_EVENT":    link("POST", "/broker/rest/domains/:name/applications/:app/events", "event"),
		"GET_GEAR_GROUPS":      link("GET", "/broker/rest/domains/:name/applications/:app/gear_groups"),
		"SET_SCALE_LIMITS":     link("PUT", "/broker/rest/domains/:name/applications/:app/cartridges/:cartridge"),
		"ADD_DEPLOYMENT":       link("POST", "/broker/rest/domains/:name/applications/:app/deployments"),
		"LIST_DEPLOYMENTS":     link("GET", "/broker/rest/domains/:name/applications/:app/deployments"),
		"GET_ROLLOUT":          link("GET", "/broker/rest/domains/:name/applications/:app/rollout"),
		"GET_LOGS":             link("GET", "/broker/rest/domains/:name/applications/:app/logs"),
		"GET_LB_STATUS":        link("GET", "/broker/rest/domains/:name/applications/:app/lb-status"),
		"LIST_ENVIRONMENT":     link("GET", "/broker/rest/domains/:name/applications/:app/environment-variables"),
		"SET_ENVIRONMENT":      link("POST", "/broker/rest/domains/:name/applications/:app/environment-variables", "name", "value"),
		"GEAR_EVENT":           link("POST", "/broker/rest/gears/:gear/events", "event"),
		"LIST_USERS (admin)":   link("GET", "/broker/rest/users"),
		"ADD_USER (admin)":     link("POST", "/broker/rest/users", "login", "password"),
		"LIST_NODES (admin)":   link("GET", "/broker/rest/nodes"),
		"NODE_EVENT (admin)":   link("POST", "/broker/rest/nodes/:node/events", "event"),
		"REMOVE_NODE (admin)":  link("DELETE", "/broker/rest/nodes/:node"),
		"MOVE_GEAR (admin)":    link("POST", "/broker/rest/gears/:gear/move", "node"),
	}
	for k, l := range routingLinks {
		links[k] = l
	}
	reply(w, http.StatusOK, "links", api.Index{DomainSuffix: b.cfg.Domain, Links: links})
	return nil
}

// routingLinks are the entry points of aliases and of the routing layer's
// API: the feed, the webhooks and the routes export.
var routingLinks = map[string]api.Link{
	"LIST_ALIASES":                link("GET", "/broker/rest/domains/:name/applications/:app/aliases"),
	"ADD_ALIAS":                   link("POST", "/broker/rest/domains/:name/applications/:app/aliases", "id"),
	"DELETE_ALIAS":                link("DELETE", "/broker/rest/domains/:name/applications/:app/aliases/:id"),
	"LIST_ROUTING_EVENTS (admin)": link("GET", "/broker/rest/routing/events"),
	"LIST_ALERTS":                 link("GET", "/broker/rest/alerts"),
	"LIST_ROUTES (admin)":         link("GET", "/broker/rest/routing/routes"),
	"LIST_WEBHOOKS (admin)":       link("GET", "/broker/rest/routing/webhooks"),
	"ADD_WEBHOOK (admin)":         link("POST", "/broker/rest/routing/webhooks", "url"),
	"DELETE_WEBHOOK (admin)":      link("DELETE", "/broker/rest/routing/webhooks/:id"),
}
