// Package cli holds gearbox's user commands (members, login, logout,
// domain, app, user, node, gear, env, router and their sub-commands): each
// a urfave/cli command over the broker's REST API client (broker/client),
// or, for `gearbox members`, over a member's internal API.
//
// It lives under internal/ because only this binary uses it. It may
// import broker/client and broker/api, the libraries and internal/cmdline,
// never a role's server code; only main imports it.
package cli
