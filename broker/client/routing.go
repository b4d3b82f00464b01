package client

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Alias is one of an app's aliases: a hostname of the user's own domain
// that routes to the app.
type Alias struct {
	ID                       string `json:"id"` // the hostname
	HasPrivateSSLCertificate bool   `json:"has_private_ssl_certificate"`
}

// Mapping maps a frontend path to a backend path, as in the routing SPI.
type Mapping struct {
	Frontend string `json:"frontend"`
	Backend  string `json:"backend"`
}

// RoutingEvent is one entry of the routing event feed: OpenShift's
// routing SPI (create_application, add_public_endpoint, add_alias, ...)
// and gearbox's additions (enable_ha, rotate_out, ...).
type RoutingEvent struct {
	Seq            uint64    `json:"seq"`
	Action         string    `json:"action"`
	AppName        string    `json:"app_name"`
	Namespace      string    `json:"namespace"`
	Scalable       bool      `json:"scalable,omitempty"`
	HA             bool      `json:"ha,omitempty"`
	GearID         string    `json:"gear_id,omitempty"`
	PublicPortName string    `json:"public_port_name,omitempty"`
	PublicAddress  string    `json:"public_address,omitempty"`
	PublicPort     int       `json:"public_port,omitempty"`
	Protocols      []string  `json:"protocols,omitempty"`
	Types          []string  `json:"types,omitempty"`
	Mappings       []Mapping `json:"mappings,omitempty"`
	Alias          string    `json:"alias,omitempty"`
	Time           time.Time `json:"time"`
}

// Webhook is a URL that receives every routing event by POST.
type Webhook struct {
	ID        string    `json:"id"`
	URL       string    `json:"url"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
	// After is the sequence of the last event delivered; Pending counts
	// the events after it.
	After     uint64 `json:"after"`
	Pending   uint64 `json:"pending"`
	LastError string `json:"last_error,omitempty"`
	// Secret signs each delivery (X-Gearbox-Signature); only set in the
	// answer that creates the webhook.
	Secret string `json:"secret,omitempty"`
}

// Route is one app as a routing layer needs it: its names and where its
// requests go.
type Route struct {
	App       string          `json:"app"`
	Namespace string          `json:"namespace"`
	Host      string          `json:"host"`              // APP-NS.ZONE
	HAHost    string          `json:"ha_host,omitempty"` // HA apps only
	Aliases   []string        `json:"aliases"`
	Scalable  bool            `json:"scalable"`
	HA        bool            `json:"ha"`
	Endpoints []RouteEndpoint `json:"endpoints"`
}

// RouteEndpoint is one place an app's requests may go: an LB gear's load
// balancer (types load_balancer) or a non-scalable app's gear
// (web_framework).
type RouteEndpoint struct {
	GearID  string   `json:"gear_id"`
	Address string   `json:"address"` // host:port
	State   string   `json:"state"`
	Reason  string   `json:"reason,omitempty"`
	Head    bool     `json:"head,omitempty"`
	Types   []string `json:"types"`
}

// Aliases lists an app's aliases.
func (c *Client) Aliases(ctx context.Context, ns, app string) ([]Alias, error) {
	var as []Alias
	_, err := c.Do(ctx, http.MethodGet, appPath(ns, app)+"/aliases", nil, &as)
	return as, err
}

// AddAlias adds hostname host to an app.
func (c *Client) AddAlias(ctx context.Context, ns, app, host string) (Alias, []Message, error) {
	var a Alias
	m, err := c.Do(ctx, http.MethodPost, appPath(ns, app)+"/aliases", url.Values{"id": {host}}, &a)
	return a, m, err
}

// RemoveAlias removes hostname host from an app.
func (c *Client) RemoveAlias(ctx context.Context, ns, app, host string) ([]Message, error) {
	return c.Do(ctx, http.MethodDelete, appPath(ns, app)+"/aliases/"+url.PathEscape(host), nil, nil)
}

// RoutingEvents returns up to limit routing events after sequence after,
// in order (limit <= 0: the broker's default, 1000). Admin only.
func (c *Client) RoutingEvents(ctx context.Context, after uint64, limit int) ([]RoutingEvent, error) {
	q := url.Values{"after": {strconv.FormatUint(after, 10)}}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var evs []RoutingEvent
	_, err := c.Do(ctx, http.MethodGet, "/broker/rest/routing/events", q, &evs)
	return evs, err
}

// FollowRoutingEvents streams the routing events after sequence after as
// NDJSON, one RoutingEvent per line, then each new one as it commits,
// until ctx ends; blank lines are keep-alives. The caller closes the
// returned body. Admin only.
func (c *Client) FollowRoutingEvents(ctx context.Context, after uint64) (io.ReadCloser, error) {
	return c.Stream(ctx, "/broker/rest/routing/events", url.Values{"after": {strconv.FormatUint(after, 10)}, "follow": {"1"}})
}

// Webhooks lists the webhooks. Admin only.
func (c *Client) Webhooks(ctx context.Context) ([]Webhook, error) {
	var hs []Webhook
	_, err := c.Do(ctx, http.MethodGet, "/broker/rest/routing/webhooks", nil, &hs)
	return hs, err
}

// AddWebhook registers target to receive the routing events after
// sequence after (nil: only events from now on). The answer holds the
// webhook's secret, which is not shown again. Admin only.
func (c *Client) AddWebhook(ctx context.Context, target string, after *uint64) (Webhook, []Message, error) {
	v := url.Values{"url": {target}}
	if after != nil {
		v.Set("after", strconv.FormatUint(*after, 10))
	}
	var h Webhook
	m, err := c.Do(ctx, http.MethodPost, "/broker/rest/routing/webhooks", v, &h)
	return h, m, err
}

// RemoveWebhook deletes webhook id: its deliveries stop. Admin only.
func (c *Client) RemoveWebhook(ctx context.Context, id string) ([]Message, error) {
	return c.Do(ctx, http.MethodDelete, "/broker/rest/routing/webhooks/"+url.PathEscape(id), nil, nil)
}

// Routes returns every app's routing-layer names and endpoints. Admin
// only.
func (c *Client) Routes(ctx context.Context) ([]Route, error) {
	var rs []Route
	_, err := c.Do(ctx, http.MethodGet, "/broker/rest/routing/routes", nil, &rs)
	return rs, err
}
