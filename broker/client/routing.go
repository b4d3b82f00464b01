package client

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"gearbox/broker/api"
)

// Aliases lists an app's aliases.
func (c *Client) Aliases(ctx context.Context, ns, app string) ([]api.Alias, error) {
	var as []api.Alias
	_, err := c.Do(ctx, http.MethodGet, appPath(ns, app)+"/aliases", nil, &as)
	return as, err
}

// AddAlias adds hostname host to an app.
func (c *Client) AddAlias(ctx context.Context, ns, app, host string) (api.Alias, []api.Message, error) {
	var a api.Alias
	m, err := c.Do(ctx, http.MethodPost, appPath(ns, app)+"/aliases", url.Values{"id": {host}}, &a)
	return a, m, err
}

// AddAliasCert adds hostname host to an app with its TLS certificate
// chain and private key (PEM), which routers and node fronts serve for it.
func (c *Client) AddAliasCert(ctx context.Context, ns, app, host, chainPEM, keyPEM string) (api.Alias, []api.Message, error) {
	var a api.Alias
	m, err := c.Do(ctx, http.MethodPost, appPath(ns, app)+"/aliases",
		url.Values{"id": {host}, "ssl_certificate": {chainPEM}, "private_key": {keyPEM}}, &a)
	return a, m, err
}

// UpdateAliasCert gives an app's alias host a new TLS certificate.
func (c *Client) UpdateAliasCert(ctx context.Context, ns, app, host, chainPEM, keyPEM string) (api.Alias, []api.Message, error) {
	var a api.Alias
	m, err := c.Do(ctx, http.MethodPut, appPath(ns, app)+"/aliases/"+url.PathEscape(host),
		url.Values{"ssl_certificate": {chainPEM}, "private_key": {keyPEM}}, &a)
	return a, m, err
}

// RemoveAlias removes hostname host from an app.
func (c *Client) RemoveAlias(ctx context.Context, ns, app, host string) ([]api.Message, error) {
	return c.Do(ctx, http.MethodDelete, appPath(ns, app)+"/aliases/"+url.PathEscape(host), nil, nil)
}

// RoutingEvents returns up to limit routing events after sequence after,
// in order (limit <= 0: the broker's default, 1000). Admin only.
func (c *Client) RoutingEvents(ctx context.Context, after uint64, limit int) ([]api.RoutingEvent, error) {
	q := url.Values{"after": {strconv.FormatUint(after, 10)}}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var evs []api.RoutingEvent
	_, err := c.Do(ctx, http.MethodGet, "/broker/rest/routing/events", q, &evs)
	return evs, err
}

// FollowRoutingEvents streams the routing events after sequence after as
// NDJSON, one api.RoutingEvent per line, then each new one as it commits,
// until ctx ends; blank lines are keep-alives. The caller closes the
// returned body. Admin only.
func (c *Client) FollowRoutingEvents(ctx context.Context, after uint64) (io.ReadCloser, error) {
	return c.Stream(ctx, "/broker/rest/routing/events", url.Values{"after": {strconv.FormatUint(after, 10)}, "follow": {"1"}})
}

// Webhooks lists the webhooks. Admin only.
func (c *Client) Webhooks(ctx context.Context) ([]api.Webhook, error) {
	var hs []api.Webhook
	_, err := c.Do(ctx, http.MethodGet, "/broker/rest/routing/webhooks", nil, &hs)
	return hs, err
}

// AddWebhook registers target to receive the routing events after
// sequence after (nil: only events from now on). The answer holds the
// webhook's secret, which is not shown again. Admin only.
func (c *Client) AddWebhook(ctx context.Context, target string, after *uint64) (api.Webhook, []api.Message, error) {
	return c.AddFeedWebhook(ctx, "", target, after)
}

// AddFeedWebhook is AddWebhook for feed "routing" ("" too) or "alerts".
func (c *Client) AddFeedWebhook(ctx context.Context, feed, target string, after *uint64) (api.Webhook, []api.Message, error) {
	v := url.Values{"url": {target}}
	if feed != "" {
		v.Set("feed", feed)
	}
	if after != nil {
		v.Set("after", strconv.FormatUint(*after, 10))
	}
	var h api.Webhook
	m, err := c.Do(ctx, http.MethodPost, "/broker/rest/routing/webhooks", v, &h)
	return h, m, err
}

// RemoveWebhook deletes webhook id: its deliveries stop. Admin only.
func (c *Client) RemoveWebhook(ctx context.Context, id string) ([]api.Message, error) {
	return c.Do(ctx, http.MethodDelete, "/broker/rest/routing/webhooks/"+url.PathEscape(id), nil, nil)
}

// Routes returns every app's routing-layer names and endpoints. Admin
// only.
func (c *Client) Routes(ctx context.Context) ([]api.Route, error) {
	var rs []api.Route
	_, err := c.Do(ctx, http.MethodGet, "/broker/rest/routing/routes", nil, &rs)
	return rs, err
}

// Alerts returns up to limit alerts after sequence after, in order
// (limit <= 0: the broker's default, 1000): all of them for an
// administrator, those about the caller's apps for others.
func (c *Client) Alerts(ctx context.Context, after uint64, limit int) ([]api.Alert, error) {
	q := url.Values{"after": {strconv.FormatUint(after, 10)}}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var as []api.Alert
	_, err := c.Do(ctx, http.MethodGet, "/broker/rest/alerts", q, &as)
	return as, err
}

// FollowAlerts streams the alerts after sequence after as NDJSON, one
// api.Alert per line, as FollowRoutingEvents does the routing events.
func (c *Client) FollowAlerts(ctx context.Context, after uint64) (io.ReadCloser, error) {
	return c.Stream(ctx, "/broker/rest/alerts", url.Values{"after": {strconv.FormatUint(after, 10)}, "follow": {"1"}})
}
