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
// The API's wire types are broker/api's, shared with broker/client. It
// imports broker/api, store, store/internalapi and store/state, never
// another role.
package broker
