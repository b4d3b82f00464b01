package broker

import (
	"net/http"
	"net/url"
	"os/exec"
	"strings"
	"testing"
)

// TestCrossSiteFormsAreRefused: the attack of issue #12, item 17. A page
// on another site submits forms to the broker; the browser adds the basic
// credentials it cached. Every such mutation is refused with 403 and
// changes nothing. The same calls without Origin (curl, the CLI), from the
// broker's own origin, or with an API token are served.
func TestCrossSiteFormsAreRefused(t *testing.T) {
	c := newCluster(t, clusterOpts{nodes: []nodeSpec{}})
	demo := c.user(t, "demo", nil)
	c.domain(t, demo, "demo")
	var tok struct{ Token string }
	c.ok(t, "POST", "/broker/rest/user/authorizations", demo, nil, &tok)
	evil := http.Header{"Origin": {"https://evil.example"}}
	form := func(v url.Values, h http.Header) headed { return headed{body: v, header: h} }

	attacks := []struct {
		name         string
		method, path string
		body         any
	}{
		{"create a domain", "POST", "/broker/rest/domains", form(url.Values{"name": {"evil"}}, evil)},
		{"create an app", "POST", "/broker/rest/domains/demo/applications", form(url.Values{"name": {"evil"}}, evil)},
		{"change the password", "PUT", "/broker/rest/users/demo", form(url.Values{"password": {"attacker-chosen"}}, evil)},
		{"create a token", "POST", "/broker/rest/user/authorizations", form(nil, evil)},
		{"delete the domain", "DELETE", "/broker/rest/domains/demo", form(nil, evil)},
		{"JSON body", "POST", "/broker/rest/domains", headed{body: map[string]string{"name": "evil"}, header: evil}},
		{"Origin null", "POST", "/broker/rest/domains", form(url.Values{"name": {"evil"}}, http.Header{"Origin": {"null"}})},
		{"an app's page", "POST", "/broker/rest/domains", form(url.Values{"name": {"evil"}}, http.Header{"Origin": {"http://app-demo.example.com"}})},
		{"same host, other port", "POST", "/broker/rest/domains", form(url.Values{"name": {"evil"}}, http.Header{"Origin": {"http://" + strings.Split(strings.TrimPrefix(c.url, "http://"), ":")[0] + ":1"}})},
		{"Sec-Fetch-Site without Origin", "POST", "/broker/rest/domains", form(url.Values{"name": {"evil"}}, http.Header{"Sec-Fetch-Site": {"cross-site"}})},
		{"same-site page", "POST", "/broker/rest/domains", form(url.Values{"name": {"evil"}}, http.Header{"Origin": {c.url}, "Sec-Fetch-Site": {"same-site"}})},
		{"deployment upload", "POST", appPath("demo", "app", "/deployments"), headed{body: rawBody{"application/gzip", "x"}, header: evil}},
	}
	for _, tt := range attacks {
		t.Run(tt.name, func(t *testing.T) {
			c.unchanged(t, func() {
				wantErr(t, c.do(t, tt.method, tt.path, demo, tt.body), http.StatusForbidden, "Cross-site request refused")
			})
		})
	}
	// demo's password is unchanged.
	c.ok(t, "GET", "/broker/rest/user", demo, nil, nil)

	// Served: no Origin (curl, rhc, the CLI), the broker's own origin,
	// an API token from anywhere, and reads.
	c.ok(t, "POST", "/broker/rest/domains", demo, url.Values{"name": {"nocors"}}, nil)
	c.ok(t, "POST", "/broker/rest/domains", demo, form(url.Values{"name": {"same"}}, http.Header{"Origin": {c.url}, "Sec-Fetch-Site": {"same-origin"}}), nil)
	c.ok(t, "POST", "/broker/rest/domains", bearer(tok.Token), form(url.Values{"name": {"token"}}, evil), nil)
	c.ok(t, "GET", "/broker/rest/domains", demo, headed{header: evil}, nil)
}

// TestReadmeCurlMakeHA runs the README's curl command (basic auth, a form
// body, no Origin) with curl itself.
func TestReadmeCurlMakeHA(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("no curl")
	}
	c := newCluster(t, clusterOpts{})
	c.ok(t, "POST", "/broker/rest/users", admin, url.Values{"login": {"demo"}, "password": {"password1"}, "ha": {"true"}}, nil)
	demo := basic("demo", "password1")
	c.domain(t, demo, "test")
	c.createApp(t, demo, "test", "testha", url.Values{"scale": {"true"}})
	out, err := exec.Command(curl, "-sS", "-u", "demo:password1",
		c.url+"/broker/rest/domains/test/applications/testha/events",
		"--data-urlencode", "event=make-ha").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Application testha is now ha") {
		t.Fatalf("curl: %v\n%s", err, out)
	}
}
