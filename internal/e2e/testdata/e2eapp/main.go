// Command e2eapp is the web app that the end-to-end tests deploy: it
// serves HTTP on $GEARBOX_IP:$PORT, answers with its version (the file
// version.txt next to it) and gear id, fails its health check (/health)
// when the version starts with "unhealthy", shuts down gracefully on SIGTERM,
// and notes its pid in $E2E_PIDDIR/$GEARBOX_GEAR_ID.pid so that a test
// can kill a whole node, gears included.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

func main() {
	exe, err := os.Executable()
	if err != nil {
		fail(err)
	}
	v, err := os.ReadFile(filepath.Join(filepath.Dir(exe), "version.txt"))
	if err != nil {
		fail(err)
	}
	version := strings.TrimSpace(string(v))
	gear := os.Getenv("GEARBOX_GEAR_ID")
	if dir := os.Getenv("E2E_PIDDIR"); dir != "" {
		if err := os.WriteFile(filepath.Join(dir, gear+".pid"), []byte(fmt.Sprint(os.Getpid())), 0o644); err != nil {
			fail(err)
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(version, "unhealthy") {
			http.Error(w, "unhealthy", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		time.Sleep(20 * time.Millisecond) // requests are in flight when gears stop
		fmt.Fprintf(w, "app %s gear %s method %s body %d uid %d\n", version, gear, r.Method, n, os.Getuid())
	})
	addr := net.JoinHostPort(os.Getenv("GEARBOX_IP"), os.Getenv("PORT"))
	srv := &http.Server{Addr: addr, Handler: mux}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-stop
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}()
	fmt.Printf("e2eapp %s listening on %s\n", version, addr)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fail(err)
	}
	fmt.Println("e2eapp stopped")
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "e2eapp:", err)
	os.Exit(1)
}
