// Package store is gearbox's replicated state store.
//
// Every member keeps the whole cluster state in a local bbolt file. A record
// is {bucket, key, value (JSON), version, deleted}; versions are hybrid
// logical clock values, so records merge by last writer wins and every member
// that has seen the same writes holds the same state. Local writes are
// broadcast as serf user events; anti-entropy over hash ranges of keys, pulled
// and pushed over the internal HTTP API, repairs whatever gossip lost.
//
// The package also owns cluster membership (serf, with tags for roles, zone,
// region and addresses) and the broker leader rule.
//
// store imports no gearbox package outside its own tree (it serves and calls
// the internal API by the paths of store/internalapi); no *bolt.Tx leaves
// it.
package store
