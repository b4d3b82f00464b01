package main

import (
	"github.com/urfave/cli/v2"

	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// signalContext returns a context that ends at the first SIGINT or
// SIGTERM, with the signal as its cause: the running command stops
// gracefully (a member leaves the cluster within --leave-timeout). A second
// signal means the operator does not want to wait: it is reported on
// stderr and exit(1) is called at once. stop ends the watch.
func signalContext(stderr io.Writer, exit func(int)) (ctx context.Context, stop func()) {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	return watchSignals(sigs, stderr, exit, func() { signal.Stop(sigs) })
}

// watchSignals is signalContext on a channel of signals, for tests.
func watchSignals(sigs <-chan os.Signal, stderr io.Writer, exit func(int), unsubscribe func()) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(context.Background())
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		select {
		case sig := <-sigs:
			cancel(fmt.Errorf("signal %s", sig))
		case <-done:
			return
		}
		select {
		case sig := <-sigs:
			fmt.Fprintf(stderr, "gearbox: second signal (%s), exiting now\n", sig)
			exit(1)
		case <-done:
		}
	}()
	return ctx, func() {
		unsubscribe()
		select {
		case <-done:
		default:
			close(done)
		}
		<-finished
		cancel(context.Canceled)
	}
}

// stopOnSignal makes cmd's action run under signalContext: its context
// ends at the first SIGINT or SIGTERM, and a second one exits at once.
func stopOnSignal(cmd *cli.Command, stderr io.Writer, exit func(int)) {
	action := cmd.Action
	cmd.Action = func(c *cli.Context) error {
		ctx, stop := signalContext(stderr, exit)
		defer stop()
		c.Context = ctx
		return action(c)
	}
}
