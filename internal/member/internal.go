package member

import (
	"net/http"
	"strings"
	"sync/atomic"

	"gearbox/node"
	"gearbox/store/internalapi"
)

// internalAPI is the member-to-member API: the store's, plus what roles
// mount once they start (a broker's deployment archives, a node's gear
// logs).
type internalAPI struct {
	store    http.Handler
	blobs    atomic.Pointer[http.Handler]
	bundles  atomic.Pointer[http.Handler]
	gearLogs atomic.Pointer[http.Handler]
	// node serves the archives its node keeps, before the broker's.
	node atomic.Pointer[node.Supervisor]
	// routerStatus reports what the member's router routes.
	routerStatus atomic.Pointer[http.Handler]
	// metrics serves the member's Prometheus metrics.
	metrics http.Handler
}

func (a *internalAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	blob, isBlob := internalapi.BlobID(r.URL.Path)
	switch {
	case isBlob:
		if sup := a.node.Load(); sup != nil && sup.HasBlob(blob) {
			sup.BlobHandler().ServeHTTP(w, r)
			return
		}
		if h := a.blobs.Load(); h != nil {
			(*h).ServeHTTP(w, r)
			return
		}
		http.Error(w, "this member holds no deployment archives", http.StatusNotFound)
	case strings.HasPrefix(r.URL.Path, internalapi.PrefixBundles):
		if h := a.bundles.Load(); h != nil {
			(*h).ServeHTTP(w, r)
			return
		}
		http.Error(w, "this member holds no git bundles", http.StatusNotFound)
	case strings.HasPrefix(r.URL.Path, internalapi.PrefixGears):
		if h := a.gearLogs.Load(); h != nil {
			(*h).ServeHTTP(w, r)
			return
		}
		http.Error(w, "this member runs no gears", http.StatusNotFound)
	case r.URL.Path == internalapi.PathMetrics:
		r.URL.Path = "/metrics"
		a.metrics.ServeHTTP(w, r)
	case r.URL.Path == internalapi.PathRouterStatus:
		if h := a.routerStatus.Load(); h != nil {
			(*h).ServeHTTP(w, r)
			return
		}
		http.Error(w, "this member runs no router", http.StatusNotFound)
	default:
		a.store.ServeHTTP(w, r)
	}
}
