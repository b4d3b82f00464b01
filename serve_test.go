package main

import (
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

func TestExitOnSecondSignal(t *testing.T) {
	t.Run("signal exits", func(t *testing.T) {
		sigs := make(chan os.Signal, 1)
		exited := make(chan int, 1)
		stop := exitOnSecondSignal(sigs, zerolog.Nop(), func(code int) { exited <- code })
		sigs <- syscall.SIGTERM
		select {
		case code := <-exited:
			if code != 1 {
				t.Errorf("exit code %d, want 1", code)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("second signal did not exit")
		}
		stop()
	})
	t.Run("stop without signal", func(t *testing.T) {
		sigs := make(chan os.Signal, 1)
		stop := exitOnSecondSignal(sigs, zerolog.Nop(), func(code int) { t.Errorf("exit(%d) without a signal", code) })
		stop() // returns only once the watcher has ended
		sigs <- syscall.SIGTERM
	})
}
