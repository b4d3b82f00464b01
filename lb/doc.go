// Package lb is gearbox's in-process HTTP load balancer, used by LB gears
// (one Pool per app, balancing over the app's web gears) and by routers
// (one Pool per HA app, balancing over its LB gears).
//
// A Pool is an http.Handler. It keeps a set of backends, checks them
// actively (GET a health path every 2 s, rise 3, fall 2) and passively (a
// failed connection marks a backend down at once), balances requests by
// least connections or round robin, pins browsers to a backend with an
// affinity cookie, retries requests that never reached a backend, drains
// backends gracefully, rotates the LB gear's own web gear out when the
// broker asks, and serves a status page.
//
// Defaults follow OpenShift's haproxy cartridge (balance leastconn;
// option httpchk GET / expecting 2xx, 3xx or 401; check inter 2000 rise 3
// fall 2; cookie GEAR insert indirect nocache; retries 3 with redispatch;
// timeouts connect 10 s, client and server 1 min). Where the Pool differs,
// it does so on purpose:
//
//   - A retry never replays a request that reached a backend and may not
//     be sent twice: requests that failed before any of their bytes were
//     written to a backend connection are sent elsewhere, whatever their
//     method, bodies included (an unread body is handed to the next
//     backend); of those that reached one, only requests RFC 9110 section
//     9.2.2 lets a client resend (GET, HEAD, OPTIONS, TRACE, without a
//     body) go to another backend, when the backend's connection closed
//     or was reset before any answer: a backend killed with requests in
//     flight costs them nothing. A POST there gets 502.
//   - The cookie value is an HMAC of the backend id keyed with a shared
//     secret, so every LB and router with the same secret agrees on it and a
//     client cannot forge one that points at a chosen backend.
//   - Connections to backends are kept alive (the cartridge used
//     http-server-close), and a response that has started streaming is not
//     cut by the server timeout, so long polls, server-sent events and
//     WebSockets work.
//   - A backend's 101 opens a tunnel only when the client asked to
//     upgrade to the protocols the 101 names; any other 101 gets 502, so
//     that a gear cannot turn a front connection, which a router may
//     share among clients, into a pipe of its own. A tunnel that passes
//     no byte for TunnelTimeout (1 min, what haproxy gives a tunnel under
//     the cartridge's client and server timeouts) is closed.
//   - FastServer holds at most MaxClientConns (10000) client connections
//     and answers those over the cap with a 503 at once, where haproxy
//     leaves them waiting in the listen queue. Server does the same for
//     an http.Server, and bounds request bodies and answers by
//     ClientTimeout of inactivity (GuardServer and Limits, which other
//     gearbox listeners use too).
//
// The resend of requests that reached a backend is FastServer's, which
// LB gears and routers use. Pool.ServeHTTP leaves it to net/http, whose
// http.Transport resends such a request once only when a reused
// keep-alive connection turns out to have been closed before it answered.
//
// FastServer's HTTP/1.1 parsing and socket I/O live in lb/internal/h1,
// which knows nothing of pools; what to do with a request (admit it,
// choose its backend, count it, resend it) is decided in this package
// once, and both server paths follow the same decisions.
//
// lb imports the standard library, zerolog and its own sub-packages
// (lb/internal/h1), and no other gearbox package; its tests also use
// gearbox/internal/testutil, which imports the standard library only.
package lb
