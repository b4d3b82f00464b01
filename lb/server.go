package lb

import (
	"log"
	"net/http"
)

// Server returns an http.Server that serves h on addr with the client side
// of cfg's timeouts and caps, which only the server that reads requests
// can apply (see Limits): ClientTimeout (default 1 min) bounds the reading
// of a request's headers, the idle time of a keep-alive connection, a
// request body that passes no byte and a write of the answer that the
// client does not take; TunnelTimeout (default 1 min) closes an upgraded
// connection (a WebSocket) on the client's side that passes no byte;
// MaxClientConns (default 10000) caps the client connections, as
// FastServer does. None of them bounds a request or an answer as a whole,
// so uploads, downloads, streams and WebSockets last as long as they move.
// Errors the server logs go to cfg.Logger.
func Server(cfg Config, addr string, h http.Handler) *http.Server {
	cfg = cfg.withDefaults()
	lg := cfg.Logger.With().Str("component", "lb").Logger()
	srv := &http.Server{
		Addr:     addr,
		Handler:  h,
		ErrorLog: log.New(logWriter{lg}, "", 0),
	}
	GuardServer(srv, ClientLimits(cfg))
	return srv
}

// ClientLimits returns the Limits that cfg gives the server of a Pool (see
// Server): ClientTimeout for headers, idle connections, bodies and
// writes, TunnelTimeout for upgraded connections and MaxClientConns for
// connections; zero fields of cfg take their defaults. A server that
// serves other handlers besides pools, such as a node's front listener,
// starts from them.
func ClientLimits(cfg Config) Limits {
	cfg = cfg.withDefaults()
	return Limits{
		HeaderTimeout: cfg.ClientTimeout,
		IdleTimeout:   cfg.ClientTimeout,
		BodyTimeout:   cfg.ClientTimeout,
		WriteTimeout:  cfg.ClientTimeout,
		TunnelTimeout: cfg.TunnelTimeout,
		MaxConns:      max(cfg.MaxClientConns, 0),
		Logger:        cfg.Logger.With().Str("component", "lb").Logger(),
	}
}
