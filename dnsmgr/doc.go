// Package dnsmgr is the authoritative DNS server of the apps zone (the
// cloud --domain), run by brokers. It answers from an immutable snapshot of
// the cluster state, a Table, rebuilt when the store or the membership
// changes and swapped atomically, so that queries never wait on the store:
//
//   - the apex: SOA and NS, one NS name (ns-NAME.ZONE) with its address
//     per alive broker whose server is serving: a Server registers itself
//     in state.BucketNameServers once its sockets are bound and removes
//     itself when it stops, and a broker that runs none removes a record
//     an earlier run left (Unregister), so that it is not given out;
//   - APP-NS.ZONE: the nodes of the app's healthy LB gears (its one gear
//     when the app is not scalable);
//   - the ha- names of HA apps (PREFIX APP-NS SUFFIX .ZONE): a CNAME to the
//     router hostname, or the alive routers, or, when brokers do not manage
//     them, the claims routers wrote themselves;
//   - GEARID-NS.ZONE: the node of every gear.
//
// It answers only for its zone (REFUSED otherwise: it is never a
// resolver), over UDP and TCP, with EDNS0 and truncation, and serves zone
// transfers (AXFR) and sends NOTIFY to the secondaries an operator
// allows, so that BIND or NSD can serve the zone as well. It gives
// attackers little: ANY gets a minimal answer (RFC 8482, answer.go), UDP
// responses are limited per client prefix so that forged queries cannot
// aim it at a victim (ratelimit.go), and TCP connections are capped and
// timed out (tcp.go).
//
// Build and Answer are pure: they turn plain inputs into a Table and a
// query into a reply, and are what most tests call. Server wires them to
// the store and to sockets.
//
// It imports store and store/state, never another role.
package dnsmgr
