package broker

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"gearbox/broker/api"
	"gearbox/lb"
)

// The REST API's listener is open to anyone who can reach the broker, so
// it bounds what a client may hold (Config.API*, applied with
// lb.GuardServer):
//
//   - time-outs of inactivity, not of whole requests: the headers must
//     come within APIHeaderTimeout, a body must pass a byte every
//     APIBodyTimeout and keep an average of APIMinBodyRate, each write of
//     an answer must be taken within APIWriteTimeout, and a kept-alive
//     connection waits APIIdleTimeout for its next request. A deployment
//     upload of any size lasts as long as it moves; a followed log or
//     routing feed that has nothing to say is not cut (the feed also
//     sends a keep-alive line), and one whose client stops reading is.
//   - caps on connections, total and per client address, rather than
//     golang.org/x/net/netutil.LimitListener, which leaves connections
//     over its cap waiting in the kernel's listen queue, unanswered, and
//     lets one client take every place: over a cap a connection is
//     answered 503 at once (an envelope that says why; a TLS connection
//     is closed before its handshake) and closed. The per-client cap
//     keeps one address from taking all of APIMaxConns; calls a
//     follower broker forwards come from its address, so its forwarding
//     transport opens at most half the cap to the leader.

// apiLimits returns the listener's limits.
func (b *Broker) apiLimits() lb.Limits {
	rate := b.cfg.APIMinBodyRate
	if rate < 0 {
		rate = 0
	}
	return lb.Limits{
		HeaderTimeout:     b.cfg.APIHeaderTimeout,
		IdleTimeout:       b.cfg.APIIdleTimeout,
		BodyTimeout:       b.cfg.APIBodyTimeout,
		MinBodyRate:       rate,
		WriteTimeout:      b.cfg.APIWriteTimeout,
		MaxConns:          b.cfg.APIMaxConns,
		MaxConnsPerClient: b.cfg.APIMaxConnsPerClient,
		Refusal:           refusal,
		Logger:            b.log,
	}
}

// refusal is the answer of a connection over a cap: an error envelope.
var refusal = func() string {
	const code = http.StatusServiceUnavailable
	env := api.Envelope{Status: statusName(code), Version: api.Version, Messages: []api.Message{{Severity: "error", ExitCode: 1,
		Text: "The broker has too many connections open, from your address or in all; close some, or retry in a moment."}}}
	body, _ := json.MarshalIndent(env, "", "  ")
	body = append(body, '\n')
	return fmt.Sprintf("HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json; charset=utf-8\r\n"+
		"X-Content-Type-Options: nosniff\r\nRetry-After: 5\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(body), body)
}()

// forwardTransport is the default transport that forwards calls to the
// leader: http.DefaultTransport's settings, with at most half the
// leader's per-client cap of connections to it.
func forwardTransport(perClient int) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxConnsPerHost = max(perClient/2, 1)
	t.IdleConnTimeout = 30 * time.Second
	return t
}

// bodyError is the answer to a request whose body could not be read:
// 408 when it stopped coming (the connection is closed after it), 400
// otherwise.
func bodyError(what string, err error) *apiError {
	if errors.Is(err, lb.ErrBodyTimeout) {
		return errorf(http.StatusRequestTimeout, 1, "The %s stopped coming: no byte for a while, or too slow on average; send it again.", what)
	}
	return badRequest("Could not read the %s: %v", what, err)
}
