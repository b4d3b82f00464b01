package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"gearbox/broker"
	"gearbox/node"
	"gearbox/store"
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

// The internal API serves what roles mount, behind the cluster secret, and
// a plain 404 for what no role here serves.
func TestInternalAPIMounts(t *testing.T) {
	storeAPI := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "store") })
	internal := &internalAPI{store: storeAPI}
	srv := httptest.NewServer(store.RequireSecret("s3cret", internal))
	defer srv.Close()
	get := func(path, secret string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		if secret != "" {
			req.Header.Set("Authorization", "Bearer "+secret)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	logsPath := node.GearLogsPathPrefix + "abc/logs"
	if code, _ := get(logsPath, "s3cret"); code != http.StatusNotFound {
		t.Errorf("gear logs without the node role: %d, want 404", code)
	}
	var logs http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "logs of "+r.URL.Path) })
	internal.gearLogs.Store(&logs)
	var blobs http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "blob") })
	internal.blobs.Store(&blobs)
	for _, tt := range []struct {
		path, secret string
		code         int
		body         string
	}{
		{logsPath, "", http.StatusUnauthorized, ""},
		{logsPath, "wrong", http.StatusUnauthorized, ""},
		{logsPath, "s3cret", http.StatusOK, "logs of " + logsPath},
		{broker.BlobPathPrefix + "x", "", http.StatusUnauthorized, ""},
		{broker.BlobPathPrefix + "x", "s3cret", http.StatusOK, "blob"},
		{store.PathMembers, "s3cret", http.StatusOK, "store"},
	} {
		code, body := get(tt.path, tt.secret)
		if code != tt.code || tt.body != "" && body != tt.body {
			t.Errorf("GET %s with secret %q: %d %q, want %d %q", tt.path, tt.secret, code, body, tt.code, tt.body)
		}
	}
}
