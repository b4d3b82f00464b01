// Package dev is `gearbox dev`: a whole cluster in one process (a broker
// with its DNS server and a router on 127.0.0.1, three nodes on
// 127.0.0.11-13), each member run by internal/member exactly as
// `gearbox serve` runs it, with a sample HA app and the commands to try
// printed.
//
// It lives under internal/ because only this binary uses it. It may
// import internal/member, internal/cmdline, broker/client and the roles'
// exported defaults; only main imports it.
package dev
