// Package cmdline holds what gearbox's commands share: the application
// shell with the global logging flags, the loggers they make, usage errors
// as one line that points at --help, flag environment variables
// (GEARBOX_*), and the members' default ports.
//
// It lives under internal/ because only this binary uses it. It imports
// the store library (for the secret derived from a gossip key) and the
// standard library; the other internal packages import it.
package cmdline
