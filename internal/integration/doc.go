// Package integration holds tests of several roles together, in one
// process: a broker with node supervisors on one in-process store
// cluster, for example. Each role's own tests use no other role (roles
// talk only through the store and the internal API); what only shows when
// roles meet is tested here, through the roles' exported API.
//
// The package has no code besides this comment: only _test.go files.
// Its members use the addresses 127.0.6.x (see testutil.IPs).
package integration
