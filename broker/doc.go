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
// API tokens (issue #12, item 16) are stored under the sha256 of the
// token, with a short public id by which their user lists
// (GET /broker/rest/user/authorizations) and revokes them
// (DELETE .../authorizations/ID). Tokens are not cached: each request reads
// the token's record, so a revoked token is refused at once by the leader
// that deleted it, and by other brokers once the deletion has replicated
// (a gossip round); an open stream (logs, routing events followed) that a
// token authenticated is not cut. A new password revokes all of the user's
// tokens, and changing one's own password needs current_password (an
// administrator changing another user's does not), so that a stolen token
// cannot be turned into the password. Minting a token with a token is
// allowed, as scripts and the CLI do, but the new token expires no later
// than the one that minted it: a leaked token cannot be stretched.
//
// The API's wire types are broker/api's, shared with broker/client. It
// imports broker/api, store, store/internalapi and store/state, never
// another role.
package broker
