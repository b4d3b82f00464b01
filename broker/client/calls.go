package client

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"gearbox/broker/api"
)

func appPath(ns, app string) string {
	return "/broker/rest/domains/" + url.PathEscape(ns) + "/applications/" + url.PathEscape(app)
}

// CurrentUser returns the authenticated user.
func (c *Client) CurrentUser(ctx context.Context) (api.User, error) {
	var u api.User
	_, err := c.Do(ctx, http.MethodGet, "/broker/rest/user", nil, &u)
	return u, err
}

// CreateToken creates an API token for the authenticated user.
func (c *Client) CreateToken(ctx context.Context, note string) (api.Token, error) {
	var t api.Token
	_, err := c.Do(ctx, http.MethodPost, "/broker/rest/user/authorizations", url.Values{"note": {note}}, &t)
	return t, err
}

// Tokens lists the authenticated user's API tokens that have not
// expired, oldest first; the tokens themselves are never listed.
func (c *Client) Tokens(ctx context.Context) ([]api.Token, error) {
	var ts []api.Token
	_, err := c.Do(ctx, http.MethodGet, "/broker/rest/user/authorizations", nil, &ts)
	return ts, err
}

// RevokeToken revokes the authenticated user's API token with the given
// id (api.Token.ID).
func (c *Client) RevokeToken(ctx context.Context, id string) ([]api.Message, error) {
	return c.Do(ctx, http.MethodDelete, "/broker/rest/user/authorizations/"+url.PathEscape(id), nil, nil)
}

// Domains lists the caller's domains (all, for admins).
func (c *Client) Domains(ctx context.Context) ([]api.Domain, error) {
	var ds []api.Domain
	_, err := c.Do(ctx, http.MethodGet, "/broker/rest/domains", nil, &ds)
	return ds, err
}

// CreateDomain creates namespace ns.
func (c *Client) CreateDomain(ctx context.Context, ns string) (api.Domain, []api.Message, error) {
	var d api.Domain
	m, err := c.Do(ctx, http.MethodPost, "/broker/rest/domains", url.Values{"name": {ns}}, &d)
	return d, m, err
}

// DeleteDomain deletes namespace ns; force deletes its apps too.
func (c *Client) DeleteDomain(ctx context.Context, ns string, force bool) ([]api.Message, error) {
	// force travels in the query: some proxies drop DELETE bodies.
	return c.Do(ctx, http.MethodDelete, "/broker/rest/domains/"+url.PathEscape(ns)+"?force="+strconv.FormatBool(force), nil, nil)
}

// Apps lists the apps of namespace ns.
func (c *Client) Apps(ctx context.Context, ns string) ([]api.App, error) {
	var as []api.App
	_, err := c.Do(ctx, http.MethodGet, "/broker/rest/domains/"+url.PathEscape(ns)+"/applications", nil, &as)
	return as, err
}

// App returns one app, with its gears when gears is set.
func (c *Client) App(ctx context.Context, ns, app string, gears bool) (api.App, error) {
	var a api.App
	var q url.Values
	if gears {
		q = url.Values{"include": {"gears"}}
	}
	_, err := c.Do(ctx, http.MethodGet, appPath(ns, app), q, &a)
	return a, err
}

// AppOptions are the settings of a new app.
type AppOptions struct {
	Cartridge string
	Scale, HA bool
	GearSize  string
	Region    string
	// DeployBranch is the branch whose pushes are deployed (empty:
	// main).
	DeployBranch string
}

// CreateApp creates app in namespace ns.
func (c *Client) CreateApp(ctx context.Context, ns, app string, o AppOptions) (api.App, []api.Message, error) {
	v := url.Values{"name": {app}, "scale": {strconv.FormatBool(o.Scale)}, "ha": {strconv.FormatBool(o.HA)}}
	if o.Cartridge != "" {
		v.Set("cartridge", o.Cartridge)
	}
	if o.GearSize != "" {
		v.Set("gear_size", o.GearSize)
	}
	if o.Region != "" {
		v.Set("region", o.Region)
	}
	if o.DeployBranch != "" {
		v.Set("deploy_branch", o.DeployBranch)
	}
	var a api.App
	m, err := c.Do(ctx, http.MethodPost, "/broker/rest/domains/"+url.PathEscape(ns)+"/applications", v, &a)
	return a, m, err
}

// SetDeployBranch sets the branch whose pushes to the app's git remote
// are deployed.
func (c *Client) SetDeployBranch(ctx context.Context, ns, app, branch string) (api.App, []api.Message, error) {
	var a api.App
	m, err := c.Do(ctx, http.MethodPut, appPath(ns, app), url.Values{"deploy_branch": {branch}}, &a)
	return a, m, err
}

// SetHTTPS sets an app's HTTPS choices: redirect plain HTTP to HTTPS
// (if redirect is not nil) and the HSTS max-age in seconds (if hsts is
// not nil; 0 is none).
func (c *Client) SetHTTPS(ctx context.Context, ns, app string, redirect *bool, hsts *int) (api.App, []api.Message, error) {
	v := url.Values{}
	if redirect != nil {
		v.Set("https_redirect", strconv.FormatBool(*redirect))
	}
	if hsts != nil {
		v.Set("hsts_max_age", strconv.Itoa(*hsts))
	}
	var a api.App
	m, err := c.Do(ctx, http.MethodPut, appPath(ns, app), v, &a)
	return a, m, err
}

// DeleteApp deletes an app and its gears.
func (c *Client) DeleteApp(ctx context.Context, ns, app string) ([]api.Message, error) {
	return c.Do(ctx, http.MethodDelete, appPath(ns, app), nil, nil)
}

// AppEvent sends event (start, stop, restart, scale-up, scale-down,
// make-ha, enable-ha, disable-ha) to an app.
func (c *Client) AppEvent(ctx context.Context, ns, app, event string) (api.App, []api.Message, error) {
	var a api.App
	m, err := c.Do(ctx, http.MethodPost, appPath(ns, app)+"/events", url.Values{"event": {event}}, &a)
	return a, m, err
}

// SetScale sets the web cartridge's scale limits (max -1: no maximum).
func (c *Client) SetScale(ctx context.Context, ns, app, cart string, min, max int) (api.Cartridge, []api.Message, error) {
	var cr api.Cartridge
	m, err := c.Do(ctx, http.MethodPut, appPath(ns, app)+"/cartridges/"+url.PathEscape(cart),
		url.Values{"scales_from": {strconv.Itoa(min)}, "scales_to": {strconv.Itoa(max)}}, &cr)
	return cr, m, err
}

// GearGroups returns an app's gear groups with endpoints.
func (c *Client) GearGroups(ctx context.Context, ns, app string) ([]api.GearGroup, error) {
	var gg []api.GearGroup
	_, err := c.Do(ctx, http.MethodGet, appPath(ns, app)+"/gear_groups", url.Values{"include": {"endpoints"}}, &gg)
	return gg, err
}

// Users lists users (admin).
func (c *Client) Users(ctx context.Context) ([]api.User, error) {
	var us []api.User
	_, err := c.Do(ctx, http.MethodGet, "/broker/rest/users", nil, &us)
	return us, err
}

// CreateUser creates a user (admin); extra holds ha, max_gears,
// gear_sizes, admin.
func (c *Client) CreateUser(ctx context.Context, login, password string, extra url.Values) (api.User, []api.Message, error) {
	v := url.Values{"login": {login}, "password": {password}}
	for k, vs := range extra {
		v[k] = vs
	}
	var u api.User
	m, err := c.Do(ctx, http.MethodPost, "/broker/rest/users", v, &u)
	return u, m, err
}

// UpdateUser changes a user's capabilities or password (admin). A user
// changing its own password also sends current_password; a new password
// revokes all of the user's API tokens.
func (c *Client) UpdateUser(ctx context.Context, login string, v url.Values) (api.User, []api.Message, error) {
	var u api.User
	m, err := c.Do(ctx, http.MethodPut, "/broker/rest/users/"+url.PathEscape(login), v, &u)
	return u, m, err
}

// Nodes lists nodes (admin).
func (c *Client) Nodes(ctx context.Context) ([]api.Node, error) {
	var ns []api.Node
	_, err := c.Do(ctx, http.MethodGet, "/broker/rest/nodes", nil, &ns)
	return ns, err
}

// NodeEvent sends drain or undrain to a node (admin).
func (c *Client) NodeEvent(ctx context.Context, node, event string) ([]api.Message, error) {
	return c.Do(ctx, http.MethodPost, "/broker/rest/nodes/"+url.PathEscape(node)+"/events", url.Values{"event": {event}}, nil)
}

// DrainNode drains a node (admin): no new gears go there, and with
// evacuate its gears move to other nodes.
func (c *Client) DrainNode(ctx context.Context, node string, evacuate bool) ([]api.Message, error) {
	return c.Do(ctx, http.MethodPost, "/broker/rest/nodes/"+url.PathEscape(node)+"/events",
		url.Values{"event": {"drain"}, "evacuate": {strconv.FormatBool(evacuate)}}, nil)
}

// RemoveNode removes a node that will not return (admin): its member is
// forced out, its records reaped, its gears replaced at once.
func (c *Client) RemoveNode(ctx context.Context, node string) ([]api.Message, error) {
	return c.Do(ctx, http.MethodDelete, "/broker/rest/nodes/"+url.PathEscape(node), nil, nil)
}

// MoveGear moves a gear to another node (admin).
func (c *Client) MoveGear(ctx context.Context, gear, node string, force bool) (api.Gear, []api.Message, error) {
	var g api.Gear
	m, err := c.Do(ctx, http.MethodPost, "/broker/rest/gears/"+url.PathEscape(gear)+"/move",
		url.Values{"node": {node}, "force": {strconv.FormatBool(force)}}, &g)
	return g, m, err
}

// Deploy uploads a tar.gz of the app's code; it becomes the current
// deployment.
func (c *Client) Deploy(ctx context.Context, ns, app string, archive io.Reader, size int64) (api.Deployment, []api.Message, error) {
	var d api.Deployment
	m, err := c.Upload(ctx, appPath(ns, app)+"/deployments", "application/gzip", archive, size, &d)
	return d, m, err
}

// Deployments lists an app's kept deployments, oldest first.
func (c *Client) Deployments(ctx context.Context, ns, app string) ([]api.Deployment, error) {
	var ds []api.Deployment
	_, err := c.Do(ctx, http.MethodGet, appPath(ns, app)+"/deployments", nil, &ds)
	return ds, err
}

// Rollout reads the progress of an app's move to its current deployment.
func (c *Client) Rollout(ctx context.Context, ns, app string) (api.Rollout, error) {
	var r api.Rollout
	_, err := c.Do(ctx, http.MethodGet, appPath(ns, app)+"/rollout", nil, &r)
	return r, err
}

// Activate makes kept deployment id current again (rollback).
func (c *Client) Activate(ctx context.Context, ns, app, id string) ([]api.Message, error) {
	return c.Do(ctx, http.MethodPost, appPath(ns, app)+"/events", url.Values{"event": {"activate"}, "deployment_id": {id}}, nil)
}

// GearEvent sends start or stop to one gear.
func (c *Client) GearEvent(ctx context.Context, gear, event string) (api.Gear, []api.Message, error) {
	var g api.Gear
	m, err := c.Do(ctx, http.MethodPost, "/broker/rest/gears/"+url.PathEscape(gear)+"/events", url.Values{"event": {event}}, &g)
	return g, m, err
}

// Env lists an app's environment variables.
func (c *Client) Env(ctx context.Context, ns, app string) ([]api.EnvVar, error) {
	var vs []api.EnvVar
	_, err := c.Do(ctx, http.MethodGet, appPath(ns, app)+"/environment-variables", nil, &vs)
	return vs, err
}

// SetEnv sets one of an app's environment variables.
func (c *Client) SetEnv(ctx context.Context, ns, app, name, value string) ([]api.EnvVar, []api.Message, error) {
	var vs []api.EnvVar
	m, err := c.Do(ctx, http.MethodPost, appPath(ns, app)+"/environment-variables", url.Values{"name": {name}, "value": {value}}, &vs)
	return vs, m, err
}

// UnsetEnv removes one of an app's environment variables.
func (c *Client) UnsetEnv(ctx context.Context, ns, app, name string) ([]api.Message, error) {
	return c.Do(ctx, http.MethodDelete, appPath(ns, app)+"/environment-variables/"+url.PathEscape(name), nil, nil)
}

// LBStatus reads the status of the load balancer of each of app's LB
// gears, which the broker fetches from their nodes; decode each Status
// into package lb's Status.
func (c *Client) LBStatus(ctx context.Context, ns, app string) ([]api.LBStatus, error) {
	var st []api.LBStatus
	_, err := c.Do(ctx, http.MethodGet, appPath(ns, app)+"/lb-status", nil, &st)
	return st, err
}

// Logs streams the log lines of app's gears, one per line as
// "TIME GEAR_ID LINE": the last tail lines of each gear (tail < 0: the
// broker's default, 100), merged in time order, then, with follow, new
// lines as the gears write them until ctx ends. The caller closes the
// returned body.
func (c *Client) Logs(ctx context.Context, ns, app string, tail int, follow bool) (io.ReadCloser, error) {
	q := url.Values{}
	if tail >= 0 {
		q.Set("tail", strconv.Itoa(tail))
	}
	if follow {
		q.Set("follow", "true")
	}
	return c.Stream(ctx, appPath(ns, app)+"/logs", q)
}
