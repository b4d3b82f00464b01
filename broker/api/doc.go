// Package api defines the wire types of the broker's REST API
// (/broker/rest/...): the envelope every answer comes in and the JSON
// shape of each resource in its data. They are defined once, here: the
// broker's handlers send them and broker/client decodes them, so that the
// two cannot drift apart.
//
// A type's JSON field names are the API's, most of them OpenShift's
// (domain_id, creation_time, current_scale, ...); changing one breaks
// existing clients. Fields marked omitempty are left out when empty.
//
// It imports only the standard library.
package api
