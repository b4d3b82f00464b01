package store

// IPs hands the external tests (package store_test) the addresses of the
// store tests' block: the same counter as the internal tests', so that
// no two members of the test binary get one address.
var IPs = ips
