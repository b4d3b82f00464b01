package broker

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// The console's session: logging in sets an HttpOnly, SameSite=Strict
// cookie that the API takes like a token; a change with it needs the
// session's CSRF token; logging out revokes it. The console's files are
// served with a policy that allows nothing from elsewhere.
func TestConsoleSession(t *testing.T) {
	c := newCluster(t, clusterOpts{nodes: []nodeSpec{}})
	send := func(method, path, cookie, csrf string, basic bool, body url.Values) *http.Response {
		t.Helper()
		var rd io.Reader
		if body != nil {
			rd = strings.NewReader(body.Encode())
		}
		req, _ := http.NewRequest(method, c.url+path, rd)
		if body != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		if basic {
			req.SetBasicAuth(adminLogin, adminPassword)
		}
		if cookie != "" {
			req.AddCookie(&http.Cookie{Name: consoleCookie, Value: cookie})
		}
		if csrf != "" {
			req.Header.Set(consoleCSRFHeader, csrf)
		}
		resp, err := c.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}

	if resp := send("POST", "/console/session", "", "", false, nil); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("login without credentials: %d", resp.StatusCode)
	}
	resp := send("POST", "/console/session", "", "", true, nil)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("login: %d", resp.StatusCode)
	}
	var env struct {
		Data consoleSession `json:"data"`
	}
	json.NewDecoder(resp.Body).Decode(&env)
	var cookie *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == consoleCookie {
			cookie = ck
		}
	}
	if cookie == nil || !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode || !strings.HasPrefix(cookie.Value, tokenPrefix) {
		t.Fatalf("session cookie %+v: want HttpOnly, SameSite=Strict, an API token", cookie)
	}
	if env.Data.Login != adminLogin || !env.Data.Admin || env.Data.CSRF == "" {
		t.Fatalf("session %+v", env.Data)
	}
	tok := cookie.Value

	if resp := send("GET", "/broker/rest/domains", tok, "", false, nil); resp.StatusCode != http.StatusOK {
		t.Errorf("a read with the cookie: %d, want 200", resp.StatusCode)
	}
	if resp := send("POST", "/broker/rest/domains", tok, "", false, url.Values{"name": {"nocsrf"}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("a change with the cookie and no CSRF token: %d, want 403", resp.StatusCode)
	}
	if resp := send("POST", "/broker/rest/domains", tok, "0000", false, url.Values{"name": {"badcsrf"}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("a change with a wrong CSRF token: %d, want 403", resp.StatusCode)
	}
	if resp := send("POST", "/broker/rest/domains", tok, env.Data.CSRF, false, url.Values{"name": {"withcsrf"}}); resp.StatusCode != http.StatusCreated {
		t.Errorf("a change with the CSRF token: %d, want 201", resp.StatusCode)
	}
	if resp := send("GET", "/console/session", tok, "", false, nil); resp.StatusCode != http.StatusOK {
		t.Errorf("the session again: %d", resp.StatusCode)
	}
	if resp := send("DELETE", "/console/session", tok, env.Data.CSRF, false, nil); resp.StatusCode != http.StatusOK {
		t.Errorf("log out: %d", resp.StatusCode)
	}
	if resp := send("GET", "/broker/rest/domains", tok, "", false, nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("a read with the cookie after logging out: %d, want 401", resp.StatusCode)
	}

	for _, f := range []string{"/console/", "/console/app.js", "/console/style.css"} {
		resp := send("GET", f, "", "", false, nil)
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || len(body) == 0 || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'self'") {
			t.Errorf("GET %s: %d, %d bytes, CSP %q", f, resp.StatusCode, len(body), resp.Header.Get("Content-Security-Policy"))
		}
	}
}
