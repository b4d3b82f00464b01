// Package broker is the control plane role: the OpenShift-shaped REST API
// (/broker/rest/...), users, API tokens, domains, apps and their gear
// groups and aliases, placement of gears on nodes, the HA rules, and the
// durable feed of routing events for routing layers: paged or followed
// (feed.go), delivered to webhooks by the leader (webhooks.go), and the
// current routes for exports (routing_table.go).
//
// Every member with the broker role serves the API; only the leader (the
// alive broker with the lowest name) changes broker-owned records, and the
// others forward mutating calls to it. Reads are served from the local
// replica of the store and may lag the leader by a gossip round.
//
// Defences of the API (issue #12): failed HTTP basic-auth logins are
// limited per client address and per login before any bcrypt runs
// (authlimit.go); passwords are hashed before the mutation lock is taken;
// users have quotas of API tokens and domains; and a mutation carrying
// basic auth from another site's page is refused (csrf.go). The CSRF rule
// is "refuse a cross-site Origin, accept no Origin": browsers send Origin
// with every cross-origin POST, PUT and DELETE, so a request without one
// comes from curl, rhc, scripts or broker/client, which send form bodies
// and could not be asked for JSON or a custom header without breaking
// OpenShift's clients; API tokens, which browsers do not cache, are not
// affected.
//
// The API's wire types are broker/api's, shared with broker/client. It
// imports broker/api, store, store/internalapi and store/state, never
// another role.
package broker
