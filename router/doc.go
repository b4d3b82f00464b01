// Package router is the router role: the routing layer in front of the
// LB gears of a gearbox cluster. Any number of routers run at once, each
// on its own member and independent of the others; DNS gives the ha-
// names of HA apps out as the addresses of the alive routers.
//
// A Router serves one HTTP listener (--router-addr, default :80) and
// picks each request's app by its Host header, in any case, with or
// without a port or a trailing dot:
//
//   - the ha- name of every HA app (state.HAHost: PREFIX APP-NS SUFFIX
//     .ZONE, "ha-" and "" by default),
//   - every alias of every app,
//   - APP-NS.ZONE of every app, so that a router (or a set of routers
//     behind one address) can front all apps, not only HA ones.
//
// Unknown hosts get a 404 page. A request goes to one of the app's LB
// gears (the endpoints of type load_balancer: the gear's node address
// and LB port) with its Host rewritten to APP-NS.ZONE, or to the one gear
// of an app that does not scale. One lb.Pool per app does the work:
// active health checks of the app's health path through each LB gear,
// with the app's hostname, so that a check proves the whole path; a
// request that never reached an LB gear is retried on another; X-Forwarded
// For, Proto and Host are set (LB gears trust routers and pass them on).
// Routers set no affinity cookie of their own: the LB gears own the GEAR
// cookie, and the router passes it through.
//
// The routing table is derived from the replicated store (apps, gears,
// gear statuses, nodes) and from cluster membership, and rebuilt whenever
// any of them or the routing events change, a burst of changes coalesced
// into one rebuild. The backends on a node whose member has failed or
// left drop out at once, without waiting for health checks. A restarted
// router rebuilds everything from the store. The router follows the
// routing events (OpenShift's routing SPI, see state.RoutingEvent) and
// logs them at debug level; the store's records are what it acts on, so
// an event that arrives before the records it announces changes nothing
// until they arrive.
//
// At Start a router registers itself (state.Router in
// state.BucketRouters: its advertised address and its HTTP listener), and
// it writes a claim (state.HADNS) on the ha- name of every HA app, which
// the DNS server uses when brokers do not manage ha- records
// (--manage-ha-dns=false, OpenShift's mode where the routing layer owns
// them). Claims are reconciled at every rebuild: an app that stops being
// HA or goes loses its claim. A router that stops gracefully removes its
// registration and claims; those of a router that crashed stay until it
// comes back, and DNS looks at membership to skip it meanwhile.
//
// router imports lb, store and store/state, and no other gearbox package.
package router
