// Package e2e holds the end-to-end tests: they build the gearbox binary
// and drive real processes (members on 127.0.0.x, killed with SIGKILL
// where failure is the point), as an operator and a developer would. It
// has no code outside its tests.
package e2e
