package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/urfave/cli/v2"
)

func TestSignals(t *testing.T) {
	t.Run("first signal stops, second exits", func(t *testing.T) {
		sigs := make(chan os.Signal, 2)
		exited := make(chan int, 1)
		var stderr bytes.Buffer
		ctx, stop := watchSignals(sigs, &stderr, func(code int) { exited <- code }, func() {})
		defer stop()
		if ctx.Err() != nil {
			t.Fatal("context ended before any signal")
		}
		sigs <- syscall.SIGTERM
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Second):
			t.Fatal("first signal did not end the context")
		}
		if cause := context.Cause(ctx); cause == nil || !strings.Contains(cause.Error(), "terminated") {
			t.Errorf("cause %v, want the signal", cause)
		}
		select {
		case code := <-exited:
			t.Fatalf("exit(%d) after one signal", code)
		default:
		}
		sigs <- syscall.SIGINT
		select {
		case code := <-exited:
			if code != 1 {
				t.Errorf("exit code %d, want 1", code)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("second signal did not exit")
		}
		if !strings.Contains(stderr.String(), "second signal") {
			t.Errorf("stderr %q does not say why it exits", stderr.String())
		}
	})
	t.Run("stop without signal", func(t *testing.T) {
		sigs := make(chan os.Signal, 1)
		unsubscribed := false
		_, stop := watchSignals(sigs, &bytes.Buffer{}, func(code int) { t.Errorf("exit(%d) without a signal", code) },
			func() { unsubscribed = true })
		stop() // returns only once the watcher has ended
		stop() // and is safe twice
		if !unsubscribed {
			t.Error("stop did not unsubscribe from signals")
		}
		sigs <- syscall.SIGTERM
	})
}

// stopOnSignal gives a command's action a context that a SIGINT ends,
// and stops catching signals when the action returns.
func TestStopOnSignal(t *testing.T) {
	var stopped error
	cmd := &cli.Command{Name: "run", Action: func(c *cli.Context) error {
		// The process catches SIGINT while the action runs: sending it
		// to ourselves ends the context instead of the test binary.
		if err := syscall.Kill(os.Getpid(), syscall.SIGINT); err != nil {
			return err
		}
		select {
		case <-c.Context.Done():
			stopped = context.Cause(c.Context)
		case <-time.After(10 * time.Second):
		}
		return nil
	}}
	stopOnSignal(cmd, &bytes.Buffer{}, func(code int) { t.Errorf("exit(%d) after one signal", code) })
	app := &cli.App{Commands: []*cli.Command{cmd}}
	if err := app.Run([]string{"gearbox", "run"}); err != nil {
		t.Fatal(err)
	}
	if stopped == nil || !strings.Contains(stopped.Error(), "interrupt") {
		t.Fatalf("the action's context ended with %v, want the signal", stopped)
	}
}
