// Package testutil holds the helpers that every gearbox package's tests
// share: fresh loopback addresses, waiting for a condition, and a check
// that no goroutine outlives the component under test.
//
// It lives under internal/ because only this module's tests use it. It
// imports the standard library only, so that any package's tests (roles
// and libraries alike) may import it without breaking the import rules.
package testutil
