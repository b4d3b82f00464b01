package testutil

// leakyLoop and startLeak stand for code under test in
// TestGoroutineLeftRunningIsReported: they live outside _test.go files,
// because Goroutines leaves out the goroutines of test code.
func leakyLoop(stop <-chan struct{}) { <-stop }

func startLeak(stop <-chan struct{}) { go leakyLoop(stop) }
