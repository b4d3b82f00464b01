// Package store is gearbox's replicated state store.
//
// Every member keeps the whole cluster state in a local bbolt file. A record
// is {bucket, key, value (JSON), version, deleted}; versions are hybrid
// logical clock values, so records merge by last writer wins and every member
// that has seen the same writes holds the same state. Local writes are
// broadcast as serf user events; anti-entropy over hash ranges of keys, pulled
// and pushed over the internal HTTP API, repairs whatever gossip lost.
//
// Records received from peers are checked before they are merged, whatever
// path they came by (a gossip event, an anti-entropy pull, a push to the
// internal API). A version whose wall time is more than
// Config.MaxClockSkew (default 1 minute) ahead of the member's clock is
// refused and does not move the clock, so a record from the future cannot
// become impossible to overwrite; the clock's logical counter never wraps,
// it moves to the next millisecond instead. Deletes must stay deleted
// after their tombstones are collected (Config.TombstoneTTL, default 24 h):
// a gossiped record older than the TTL is refused as a replay, and a
// record of any origin for a key held in no form is refused when it is not
// newer than the newest delete the member has forgotten. Age alone is not
// a reason to refuse a pulled or pushed record: a fresh member, or one back
// after more than the TTL away, must take the old records it never had.
// Refusals are counted in Stats.Refused and logged at most once a minute
// per reason.
//
// The package also owns cluster membership (serf, with tags for roles, zone,
// region and addresses) and the broker leader rule.
//
// store imports no gearbox package outside its own tree (it serves and calls
// the internal API by the paths of store/internalapi); no *bolt.Tx leaves
// it.
package store
