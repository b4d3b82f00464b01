// Command backend is the web gear stand-in of scripts/bench/lb.sh: a
// minimal HTTP server that answers every request with "ok" over kept-alive
// connections, so that a benchmark through a load balancer measures the
// balancer rather than the app.
//
// It serves the same handler on each address it is given, in one process:
//
//	backend -addr 127.0.0.11:18081,127.0.0.12:18082
//
// It stops on SIGINT or SIGTERM. It imports the standard library only.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"
)

func main() {
	addrs := flag.String("addr", "127.0.0.1:18081", "comma-separated host:port list to listen on")
	flag.Parse()
	if err := run(strings.Split(*addrs, ",")); err != nil {
		fmt.Fprintln(os.Stderr, "backend:", err)
		os.Exit(1)
	}
}

var body = []byte("ok\n")

func handle(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Content-Length", "3")
	w.Write(body)
}

func run(addrs []string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	errc := make(chan error, len(addrs))
	var servers []*http.Server
	var wg sync.WaitGroup
	for _, a := range addrs {
		srv := &http.Server{
			Addr:              strings.TrimSpace(a),
			Handler:           http.HandlerFunc(handle),
			ReadHeaderTimeout: time.Minute,
			IdleTimeout:       2 * time.Minute,
			ErrorLog:          log.New(os.Stderr, "backend: ", 0),
		}
		servers = append(servers, srv)
		wg.Go(func() {
			if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("serve %s: %w", srv.Addr, err)
			}
		})
	}

	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, srv := range servers {
		srv.Shutdown(sctx)
	}
	wg.Wait()
	return err
}
