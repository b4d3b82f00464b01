// Package layout holds no code: its tests check that the module's
// packages keep their import rules, by reading what each package imports
// from `go list`. The rules, for a package's code and its tests alike:
//
//   - Packages import downward only: gearbox (main) -> gearbox/internal/...
//     (and the tools under gearbox/scripts/...) -> the roles (gearbox/broker,
//     gearbox/node, gearbox/router, gearbox/dnsmgr) -> the libraries
//     (gearbox/lb, gearbox/store), each with its sub-packages.
//   - A role never imports another role: roles talk through the replicated
//     store and the internal API. Packages above the roles, such as
//     gearbox/internal/integration, may import any of them.
//   - A library imports no gearbox package outside its own tree.
//   - Only gearbox (main) imports gearbox/internal/cli.
//   - The test helpers, gearbox/internal/testutil and gearbox/store/storetest,
//     are imported by tests only (and by each other); the tests of any
//     package may import them.
//
// It imports nothing.
package layout
