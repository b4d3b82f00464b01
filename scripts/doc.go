// Package scripts holds the scripts that come with gearbox: install.sh,
// which installs a built binary as a systemd service on a host, and the
// benchmarks under bench/. It has no code outside its tests, which run
// install.sh under scratch roots (DESTDIR), never on this host's own
// /etc or /usr/local.
//
// It imports nothing.
package scripts
