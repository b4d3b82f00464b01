package lb

import (
	"log"
	"net/http"
)

// Server returns an http.Server that serves h on addr with the client side
// of cfg's timeouts, which only the server that reads requests can apply:
// ClientTimeout (default 1 min) bounds the reading of a request's headers
// and the idle time of a keep-alive connection. A request body or a
// response is not bounded as a whole, so uploads, downloads, streams and
// WebSockets last as long as they need. Errors the server logs go to
// cfg.Logger.
func Server(cfg Config, addr string, h http.Handler) *http.Server {
	cfg = cfg.withDefaults()
	lg := cfg.Logger.With().Str("component", "lb").Logger()
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: cfg.ClientTimeout,
		IdleTimeout:       cfg.ClientTimeout,
		ErrorLog:          log.New(logWriter{lg}, "", 0),
	}
}
