package broker

import (
	"net"
	"net/http"
	"net/url"
	"strings"
)

// Cross-site request forgery. A browser that once logged in to the broker
// with HTTP basic auth caches the credentials and sends them with any
// request to it, including a form another site's page submits. So a
// mutation (any method but GET and HEAD) that carries HTTP basic auth is
// refused with 403 when it comes from a page of another origin:
//
//   - its Origin header, when present, must name the broker itself (the
//     request's Host, same port); "null" (sandboxed frames, some
//     redirects) is another origin;
//   - its Sec-Fetch-Site header, when present, must be same-origin or
//     none (typed by the user).
//
// A request with neither header is accepted: browsers send Origin with
// every cross-origin POST, PUT and DELETE (and Sec-Fetch-Site with every
// request), so a request without them does not come from a page; it comes
// from curl, rhc, scripts and broker/client, which send form bodies and no
// Origin. Requiring a JSON body or a custom header instead would have
// broken those clients, and OpenShift's, for no more safety. Apps' pages
// are on other hosts (APP-NS.Domain), hence other origins: an app cannot
// drive the broker with its visitors' credentials either.
//
// Calls with an API token (Authorization: Bearer) are not affected:
// browsers do not cache tokens, so a forged request cannot carry one.
// Reads are not affected: the same-origin policy keeps another site from
// reading their answers, and the broker sends no CORS headers.

var errCrossSite = forbidden("Cross-site request refused: a change authenticated by HTTP basic auth must not come from another site's page. Send it without an Origin header from another site (as curl and the CLI do), or use an API token.")

// refuseCrossSite returns errCrossSite for a mutation that carries HTTP
// basic auth and comes from a page of another origin; nil otherwise.
func refuseCrossSite(r *http.Request) error {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return nil
	}
	h := r.Header.Get("Authorization")
	if len(h) < 6 || !strings.EqualFold(h[:6], "Basic ") {
		return nil
	}
	if s := r.Header.Get("Sec-Fetch-Site"); s != "" && s != "same-origin" && s != "none" {
		return errCrossSite
	}
	if o := r.Header.Values("Origin"); len(o) > 0 && !(len(o) == 1 && sameOrigin(o[0], r)) {
		return errCrossSite
	}
	return nil
}

// sameOrigin reports whether origin, an Origin header, names the host and
// port r was sent to.
func sameOrigin(origin string, r *http.Request) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") || u.Path != "" || u.RawQuery != "" {
		return false
	}
	return strings.EqualFold(withPort(u.Host, u.Scheme), withPort(r.Host, requestScheme(r)))
}

// requestScheme is the scheme r arrived over. Only the default port
// depends on it, for a Host without one.
func requestScheme(r *http.Request) string {
	if r.TLS != nil {
		return "https"
	}
	return "http"
}

// withPort returns host with the scheme's default port when it has none.
func withPort(host, scheme string) string {
	if _, _, err := net.SplitHostPort(host); err == nil {
		return host
	}
	if scheme == "https" {
		return net.JoinHostPort(strings.Trim(host, "[]"), "443")
	}
	return net.JoinHostPort(strings.Trim(host, "[]"), "80")
}
