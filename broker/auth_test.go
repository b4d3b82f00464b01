package broker

import (
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"gearbox/broker/api"
	"gearbox/internal/testutil"
	"gearbox/store"
	"gearbox/store/state"
)

func TestAPIIndexIsPublic(t *testing.T) {
	c := newCluster(t, clusterOpts{nodes: []nodeSpec{}})
	var idx api.Index
	r := c.ok(t, "GET", "/broker/rest/api", nobody, nil, &idx)
	if r.env.Version != api.Version || r.env.Type != "links" {
		t.Fatalf("envelope version %q type %q", r.env.Version, r.env.Type)
	}
	if idx.DomainSuffix != "example.com" {
		t.Fatalf("domain_suffix %q", idx.DomainSuffix)
	}
	for _, name := range []string{"API", "ADD_DOMAIN", "ADD_APPLICATION", "APPLICATION_EVENT", "GET_GEAR_GROUPS", "SET_SCALE_LIMITS", "ADD_AUTHORIZATION"} {
		if idx.Links[name].Href == "" {
			t.Errorf("link %s missing from %v", name, idx.Links)
		}
	}
}

func TestAuthentication(t *testing.T) {
	c := newCluster(t, clusterOpts{nodes: []nodeSpec{}})
	demo := c.user(t, "demo", nil)
	tests := []struct {
		name string
		who  creds
		code int
	}{
		{"admin basic auth", admin, http.StatusOK},
		{"user basic auth", demo, http.StatusOK},
		{"no credentials", nobody, http.StatusUnauthorized},
		{"wrong password", basic("demo", "not-the-password"), http.StatusUnauthorized},
		{"password of another user", basic("demo", adminPassword), http.StatusUnauthorized},
		{"unknown login", basic("nobody", "whatever-password"), http.StatusUnauthorized},
		{"empty password", basic("demo", ""), http.StatusUnauthorized},
		{"malformed basic", creds{header: "Basic !!!not-base64"}, http.StatusUnauthorized},
		{"basic without colon", creds{header: "Basic " + base64.StdEncoding.EncodeToString([]byte("demo"))}, http.StatusUnauthorized},
		{"unknown scheme", creds{header: "Digest username=demo"}, http.StatusUnauthorized},
		{"bearer without prefix", bearer("not-a-token"), http.StatusUnauthorized},
		{"unknown token", bearer(tokenPrefix + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), http.StatusUnauthorized},
		{"empty bearer", creds{header: "Bearer "}, http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := c.do(t, "GET", "/broker/rest/user", tt.who, nil)
			if r.code != tt.code {
				t.Fatalf("got %d %s, want %d", r.code, r.text(), tt.code)
			}
			if tt.code == http.StatusUnauthorized {
				wantErr(t, r, http.StatusUnauthorized, "")
				if got := r.header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Basic realm=") {
					t.Fatalf("WWW-Authenticate %q, want a Basic challenge", got)
				}
				if strings.Contains(r.raw, "password_hash") || r.data != nil && string(r.data) != "null" {
					t.Fatalf("401 carries data: %s", r.raw)
				}
			}
		})
	}
	// A mutating call without credentials changes nothing.
	c.unchanged(t, func() {
		r := c.do(t, "POST", "/broker/rest/domains", basic("demo", "wrong-password"), url.Values{"name": {"sneaky"}})
		wantErr(t, r, http.StatusUnauthorized, "Invalid login or password")
	})
}

func TestTokens(t *testing.T) {
	c := newCluster(t, clusterOpts{nodes: []nodeSpec{}})
	demo := c.user(t, "demo", nil)
	var tok api.Token
	r := c.ok(t, "POST", "/broker/rest/user/authorizations", demo, url.Values{"note": {"laptop"}, "expires_in": {"60"}}, &tok)
	if r.code != http.StatusCreated {
		t.Fatalf("create token: %d", r.code)
	}
	if !strings.HasPrefix(tok.Token, tokenPrefix) || tok.Login != "demo" || tok.Note != "laptop" || tok.ExpiresIn != 60 {
		t.Fatalf("token %+v", tok)
	}
	// The store keeps the token's sha256, never the token.
	if strings.Contains(c.dump(t), tok.Token) {
		t.Fatal("the token itself is stored")
	}
	var stored state.Token
	if _, err := c.st.Get(state.BucketTokens, tokenKey(tok.Token), &stored); err != nil || stored.Login != "demo" || stored.ID != tok.ID {
		t.Fatalf("token record %+v, %v", stored, err)
	}

	for _, who := range []creds{bearer(tok.Token), {header: "bearer " + tok.Token}, {header: "BEARER  " + tok.Token + " "}} {
		var u api.User
		c.ok(t, "GET", "/broker/rest/user", who, nil, &u)
		if u.Login != "demo" || u.Admin {
			t.Fatalf("token speaks for %+v", u)
		}
	}
	// A token acts like its user: mutations too.
	c.ok(t, "POST", "/broker/rest/domains", bearer(tok.Token), url.Values{"name": {"bytoken"}}, nil)
	// ... and not like an admin.
	wantErr(t, c.do(t, "GET", "/broker/rest/users", bearer(tok.Token), nil), http.StatusForbidden, "administrator")

	t.Run("tampered", func(t *testing.T) {
		bad := tok.Token[:len(tok.Token)-1] + "x"
		if strings.HasSuffix(tok.Token, "x") {
			bad = tok.Token[:len(tok.Token)-1] + "y"
		}
		wantErr(t, c.do(t, "GET", "/broker/rest/user", bearer(bad), nil), http.StatusUnauthorized, "token is unknown or expired")
	})

	t.Run("invalid parameters", func(t *testing.T) {
		for _, v := range []url.Values{
			{"expires_in": {"0"}},
			{"expires_in": {"-5"}},
			{"expires_in": {"soon"}},
			{"expires_in": {"31536001"}},
			{"note": {strings.Repeat("n", 257)}},
		} {
			c.unchanged(t, func() {
				r := c.do(t, "POST", "/broker/rest/user/authorizations", demo, v)
				wantErr(t, r, http.StatusUnprocessableEntity, "")
			})
		}
	})

	t.Run("default lifetime", func(t *testing.T) {
		var d api.Token
		c.ok(t, "POST", "/broker/rest/user/authorizations", demo, nil, &d)
		if d.ExpiresIn != int((30 * 24 * time.Hour).Seconds()) {
			t.Fatalf("expires_in %d", d.ExpiresIn)
		}
	})

	t.Run("expired", func(t *testing.T) {
		c.clock.Advance(61 * time.Second)
		r := c.do(t, "GET", "/broker/rest/user", bearer(tok.Token), nil)
		wantErr(t, r, http.StatusUnauthorized, "token is unknown or expired")
		if r.header.Get("WWW-Authenticate") == "" {
			t.Fatal("no WWW-Authenticate on 401")
		}
	})

	t.Run("user deleted", func(t *testing.T) {
		var tok2 api.Token
		c.ok(t, "POST", "/broker/rest/user/authorizations", demo, nil, &tok2)
		eve := c.user(t, "eve", nil)
		var et api.Token
		c.ok(t, "POST", "/broker/rest/user/authorizations", eve, nil, &et)
		c.ok(t, "DELETE", "/broker/rest/users/eve", admin, nil, nil)
		wantErr(t, c.do(t, "GET", "/broker/rest/user", bearer(et.Token), nil), http.StatusUnauthorized, "")
		if _, err := c.st.GetRecord(state.BucketTokens, tokenKey(et.Token)); err == nil {
			t.Fatal("the deleted user's token is still stored")
		}
		// A new user under the same login does not inherit the token.
		c.user(t, "eve", nil)
		wantErr(t, c.do(t, "GET", "/broker/rest/user", bearer(et.Token), nil), http.StatusUnauthorized, "")
		// Other users' tokens are kept.
		c.ok(t, "GET", "/broker/rest/user", bearer(tok2.Token), nil, nil)
	})
}

func TestUsers(t *testing.T) {
	c := newCluster(t, clusterOpts{nodes: []nodeSpec{}})

	var created api.User
	r := c.ok(t, "POST", "/broker/rest/users", admin, url.Values{"login": {"demo"}, "password": {"demo-password"}, "ha": {"true"}, "max_gears": {"7"}, "gear_sizes": {"small, medium"}}, &created)
	if r.code != http.StatusCreated {
		t.Fatalf("create user: %d", r.code)
	}
	if created.Login != "demo" || created.Admin || !created.Capabilities.HA || created.Capabilities.MaxGears != 7 ||
		strings.Join(created.Capabilities.GearSizes, ",") != "small,medium" {
		t.Fatalf("created %+v", created)
	}
	if strings.Contains(r.raw, "password") || strings.Contains(r.raw, "$2a$") {
		t.Fatalf("response shows the password or its hash: %s", r.raw)
	}
	demo := basic("demo", "demo-password")

	t.Run("defaults", func(t *testing.T) {
		var u api.User
		c.ok(t, "POST", "/broker/rest/users", admin, map[string]any{"login": "plain", "password": "plain-password"}, &u)
		if u.Capabilities.HA || u.Capabilities.MaxGears != 100 || strings.Join(u.Capabilities.GearSizes, ",") != "small" {
			t.Fatalf("defaults %+v", u.Capabilities)
		}
	})

	t.Run("invalid", func(t *testing.T) {
		tests := []struct {
			name string
			body url.Values
			code int
			text string
		}{
			{"duplicate", url.Values{"login": {"demo"}, "password": {"another-password"}}, http.StatusConflict, "already exists"},
			{"no login", url.Values{"password": {"some-password"}}, http.StatusUnprocessableEntity, "Invalid login"},
			{"upper case", url.Values{"login": {"Demo2"}, "password": {"some-password"}}, http.StatusUnprocessableEntity, "Invalid login"},
			{"unicode", url.Values{"login": {"dém"}, "password": {"some-password"}}, http.StatusUnprocessableEntity, "Invalid login"},
			{"too long", url.Values{"login": {strings.Repeat("a", 65)}, "password": {"some-password"}}, http.StatusUnprocessableEntity, "Invalid login"},
			{"leading dash", url.Values{"login": {"-x"}, "password": {"some-password"}}, http.StatusUnprocessableEntity, "Invalid login"},
			{"short password", url.Values{"login": {"shorty"}, "password": {"1234567"}}, http.StatusUnprocessableEntity, "at least 8"},
			{"long password", url.Values{"login": {"longy"}, "password": {strings.Repeat("p", 73)}}, http.StatusUnprocessableEntity, "at most 72"},
			{"bad gear size", url.Values{"login": {"sizey"}, "password": {"some-password"}, "gear_sizes": {"small,huge"}}, http.StatusUnprocessableEntity, "Invalid gear size 'huge'"},
			{"no gear size", url.Values{"login": {"sizey"}, "password": {"some-password"}, "gear_sizes": {" , "}}, http.StatusUnprocessableEntity, "at least one size"},
			{"negative max gears", url.Values{"login": {"gearsy"}, "password": {"some-password"}, "max_gears": {"-1"}}, http.StatusUnprocessableEntity, "max_gears"},
			{"max gears not a number", url.Values{"login": {"gearsy"}, "password": {"some-password"}, "max_gears": {"many"}}, http.StatusUnprocessableEntity, "whole number"},
			{"ha not a bool", url.Values{"login": {"hay"}, "password": {"some-password"}, "ha": {"sometimes"}}, http.StatusUnprocessableEntity, "true or false"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				c.unchanged(t, func() {
					wantErr(t, c.do(t, "POST", "/broker/rest/users", admin, tt.body), tt.code, tt.text)
				})
			})
		}
	})

	t.Run("password kept as given", func(t *testing.T) {
		// Passwords are not trimmed: the one set is the one that logs in.
		c.ok(t, "POST", "/broker/rest/users", admin, url.Values{"login": {"spacey"}, "password": {" spaced password "}}, nil)
		c.ok(t, "GET", "/broker/rest/user", basic("spacey", " spaced password "), nil, nil)
	})

	t.Run("list and show", func(t *testing.T) {
		var us []api.User
		c.ok(t, "GET", "/broker/rest/users", admin, nil, &us)
		var logins []string
		for _, u := range us {
			logins = append(logins, u.Login)
		}
		if got := strings.Join(logins, ","); !strings.Contains(got, "admin") || !strings.Contains(got, "demo") {
			t.Fatalf("users %s", got)
		}
		var u api.User
		c.ok(t, "GET", "/broker/rest/users/demo", demo, nil, &u)
		if u.Login != "demo" {
			t.Fatalf("show self: %+v", u)
		}
		wantErr(t, c.do(t, "GET", "/broker/rest/users/admin", demo, nil), http.StatusForbidden, "own user")
		wantErr(t, c.do(t, "GET", "/broker/rest/users/ghost", admin, nil), http.StatusNotFound, "User 'ghost' not found")
	})

	t.Run("update", func(t *testing.T) {
		var u api.User
		c.ok(t, "PUT", "/broker/rest/users/demo", admin, url.Values{"max_gears": {"9"}, "ha": {"false"}}, &u)
		if u.Capabilities.MaxGears != 9 || u.Capabilities.HA || len(u.Capabilities.GearSizes) != 2 {
			t.Fatalf("updated %+v", u.Capabilities)
		}
		c.unchanged(t, func() {
			wantErr(t, c.do(t, "PUT", "/broker/rest/users/demo", demo, url.Values{"max_gears": {"1000"}}), http.StatusForbidden, "Only administrators")
			wantErr(t, c.do(t, "PUT", "/broker/rest/users/admin", demo, url.Values{"password": {"hijacked-password"}}), http.StatusForbidden, "")
			wantErr(t, c.do(t, "PUT", "/broker/rest/users/ghost", admin, url.Values{"max_gears": {"1"}}), http.StatusNotFound, "not found")
			wantErr(t, c.do(t, "PUT", "/broker/rest/users/admin", admin, url.Values{"admin": {"false"}}), http.StatusUnprocessableEntity, "your own administrator")
			wantErr(t, c.do(t, "PUT", "/broker/rest/users/demo", demo, url.Values{"password": {"short"}}), http.StatusUnprocessableEntity, "at least 8")
		})
		// A user changes its own password; the old one stops working.
		c.ok(t, "PUT", "/broker/rest/users/demo", demo, url.Values{"password": {"new-demo-password"}, "current_password": {"demo-password"}}, nil)
		wantErr(t, c.do(t, "GET", "/broker/rest/user", demo, nil), http.StatusUnauthorized, "")
		demo = basic("demo", "new-demo-password")
		c.ok(t, "GET", "/broker/rest/user", demo, nil, nil)
	})

	t.Run("delete", func(t *testing.T) {
		c.unchanged(t, func() {
			wantErr(t, c.do(t, "DELETE", "/broker/rest/users/admin", admin, nil), http.StatusUnprocessableEntity, "yourself")
			wantErr(t, c.do(t, "DELETE", "/broker/rest/users/ghost", admin, nil), http.StatusNotFound, "not found")
		})
		c.domain(t, demo, "demons")
		c.unchanged(t, func() {
			wantErr(t, c.do(t, "DELETE", "/broker/rest/users/demo", admin, nil), http.StatusConflict, "still owns domain 'demons'")
		})
		c.ok(t, "DELETE", "/broker/rest/domains/demons", demo, nil, nil)
		c.ok(t, "DELETE", "/broker/rest/users/demo", admin, nil, nil)
		wantErr(t, c.do(t, "GET", "/broker/rest/user", demo, nil), http.StatusUnauthorized, "")
	})
}

// TestAdminOnly: every admin endpoint refuses users with 403 and changes
// nothing.
func TestAdminOnly(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	demo := c.user(t, "demo", url.Values{"ha": {"true"}})
	c.domain(t, demo, "demo")
	gear := c.createApp(t, demo, "demo", "web", url.Values{"scale": {"true"}}).Gears[0].ID
	tests := []struct {
		method, path string
		body         url.Values
	}{
		{"GET", "/broker/rest/users", nil},
		{"POST", "/broker/rest/users", url.Values{"login": {"mallory"}, "password": {"mallory-password"}}},
		{"PUT", "/broker/rest/users/demo", url.Values{"max_gears": {"100000"}}},
		{"PUT", "/broker/rest/users/demo", url.Values{"admin": {"true"}}},
		{"DELETE", "/broker/rest/users/admin", nil},
		{"PUT", appPath("demo", "web"), url.Values{"ha_multiplier": {"3"}}},
		{"GET", "/broker/rest/nodes", nil},
		{"POST", "/broker/rest/nodes/n1/events", url.Values{"event": {"drain"}}},
		{"POST", "/broker/rest/gears/" + gear + "/move", url.Values{"node": {"n2"}}},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			c.unchanged(t, func() {
				wantErr(t, c.do(t, tt.method, tt.path, demo, tt.body), http.StatusForbidden, "")
			})
		})
	}
}

func TestBootstrapGeneratedPassword(t *testing.T) {
	// A file left from before, readable by all, is replaced and locked
	// down.
	logs := &testutil.Buffer{}
	c := newCluster(t, clusterOpts{nodes: []nodeSpec{}, admin: "-", cfg: func(cfg *Config) {
		if err := os.WriteFile(filepath.Join(cfg.DataDir, "bootstrap-admin"), []byte("admin:an-old-password-that-is-long\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		cfg.Logger = zerolog.New(logs)
	}})
	path := c.b.cfg.DataDir + "/bootstrap-admin"
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("%s has mode %v, want 0600", path, fi.Mode().Perm())
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	content := string(raw)
	login, password, ok := strings.Cut(strings.TrimSpace(content), ":")
	if !ok || login != "admin" || len(password) < 16 {
		t.Fatalf("bootstrap file holds %q", content)
	}
	// The password is in the file only: logs are read by more people.
	testutil.WaitFor(t, 10*time.Second, "the bootstrap admin's log line", func() bool {
		return strings.Contains(logs.String(), "created bootstrap admin with a generated password")
	})
	if strings.Contains(logs.String(), password) {
		t.Errorf("the generated password is in the log:\n%s", logs.String())
	}
	var u api.User
	c.ok(t, "GET", "/broker/rest/user", basic(login, password), nil, &u)
	if !u.Admin {
		t.Fatalf("bootstrap user %+v is not an admin", u)
	}
	wantErr(t, c.do(t, "GET", "/broker/rest/user", admin, nil), http.StatusUnauthorized, "")

	// Bootstrapping again is a no-op: the password stays the one written.
	c.unchanged(t, func() {
		if err := c.b.bootstrapOnce(t.Context()); err != nil {
			t.Fatal(err)
		}
	})
	if again, err := os.ReadFile(path); err != nil || string(again) != content {
		t.Fatal("second bootstrap rewrote the password file")
	}
}

func TestBootstrapGivenAdmin(t *testing.T) {
	c := newCluster(t, clusterOpts{nodes: []nodeSpec{}, admin: "root:rootpassword"})
	c.ok(t, "GET", "/broker/rest/users", basic("root", "rootpassword"), nil, nil)
	if _, err := os.Stat(c.b.cfg.DataDir + "/bootstrap-admin"); err == nil {
		t.Fatal("a password file was written although the admin password was given")
	}
	var b state.Bootstrap
	if _, err := c.st.Get(state.BucketCluster, state.KeyBootstrap, &b); err != nil || b.Admin != "root" {
		t.Fatalf("bootstrap record %+v, %v", b, err)
	}
}

// A broker started to join others must not create an admin while it only
// looks alone: it would overwrite the cluster's admin once it joins.
func TestBootstrapWaitsForFirstSyncWhenJoining(t *testing.T) {
	m := startMember(t, "b1", []string{store.RoleBroker}, "", "")
	b, _ := startBroker(t, m, &testClock{}, clusterOpts{cfg: func(c *Config) { c.Joining = true }})
	if err := b.bootstrapOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := m.st.GetRecord(state.BucketCluster, state.KeyBootstrap); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("joining broker bootstrapped before any sync: %v", err)
	}
	// Once it has synchronised with a peer (here an empty one), it may.
	peer := startMember(t, "b2", []string{store.RoleNode}, "", "")
	if _, err := peer.st.Join([]string{m.GossipAddr()}); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 20*time.Second, "bootstrap after the first sync", func() bool {
		_, err := m.st.GetRecord(state.BucketCluster, state.KeyBootstrap)
		return err == nil && !m.st.LastSync().IsZero()
	})
}
