package node

import "fmt"

// The node runs on Linux only: it confines gears with uids, cgroups,
// rlimits and prctl(2), and follows their processes through /proc. What
// it needs of the system lives in files built for Linux alone
// (platform_linux.go, launch_linux.go, procgroup_linux.go);
// platform_other.go stands in for them elsewhere, so that the package,
// and with it the binary's other roles (broker, router, DNS) and its user
// commands, builds on any system, while New refuses to make a node there.

// unsupportedOS is the error of New on system goos.
func unsupportedOS(goos string) error {
	return fmt.Errorf("%w (this is %s)", ErrUnsupportedOS, goos)
}
