package router

import (
	"encoding/json"
	"net/http"
	"sort"

	"gearbox/lb"
)

// Status is what a router routes: each app's hosts and its pool of LB
// gears as the router sees them.
type Status struct {
	Name string `json:"name"`
	// LastEvent is the highest routing event sequence the router has
	// seen.
	LastEvent uint64               `json:"last_event"`
	Apps      map[string]AppStatus `json:"apps"` // by app key (NS/APP)
}

// AppStatus is one app's routing on a router.
type AppStatus struct {
	Hosts []string  `json:"hosts"`
	Pool  lb.Status `json:"pool"`
}

// Status reports what the router routes now.
func (r *Router) Status() Status {
	t := r.table.Load()
	st := Status{Name: r.name, LastEvent: r.lastSeq.Load(), Apps: make(map[string]AppStatus, len(t.apps))}
	for key, ref := range t.apps {
		hosts := append([]string(nil), ref.hosts...)
		sort.Strings(hosts)
		st.Apps[key] = AppStatus{Hosts: hosts, Pool: ref.pool.Status()}
	}
	return st
}

// StatusHandler serves Status as JSON. A member with the router role
// serves it on its internal API, at internalapi.PathRouterStatus (behind
// the cluster secret): the router's own HTTP listener passes every path of
// an app's hosts to the app, its /lb-status included.
func (r *Router) StatusHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodGet {
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(r.Status())
	})
}
