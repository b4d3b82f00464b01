// Package member runs one gearbox member: it turns the flags of
// `gearbox serve` into a Config, opens the replicated store, serves the
// internal API and starts the member's roles in order (node, then broker
// and its DNS server, then router). It follows serf's agent: New, Start,
// Leave (graceful, announced to the cluster, within a deadline that every
// role's stop is given) and Close (at once, idempotent). `gearbox serve`
// and `gearbox dev` both run members through it, so that the dev cluster
// runs exactly what production runs.
//
// It lives under internal/ because only this binary uses it. It may
// import the roles (broker, node, router, dnsmgr), the libraries (lb,
// store) and internal/cmdline; nothing but main and internal/dev imports
// it.
package member
