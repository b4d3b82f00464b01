// Package services runs the cluster services that gears use: one NATS
// server with JetStream embedded in every node member. The nodes find
// each other through the replicated store (each node record carries its
// NATS cluster address) and form one NATS cluster, one JetStream domain,
// with no operator configuration. Each app is a NATS account of its own,
// created and removed as apps come and go (a reload, never a restart);
// gears get their own node's client URL and an nkey for their app's
// account only.
//
// We do not write a queue, a replicated log or a consensus protocol:
// JetStream's Raft groups give the durable streams (queues) and the
// linearizable key-value buckets (cache, sessions, leases).
//
// JetStream's Raft needs two voters to elect its metadata leader, so a
// node that founds a cluster alone runs a second, storage-less voter in
// the same process, the witness (see witness.go), until the cluster has
// three nodes; then it removes the witness with JetStream's own peer
// removal.
//
// services imports the store (and store/internalapi, store/state) and
// the NATS libraries; it imports no role.
package services
