package broker

import (
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"gearbox/broker/api"
)

// TestPasswordHashNotUnderMutationLock: issue #12, item 15. While a
// password change (or a user's creation) is hashing its password, other
// mutations go on: the hash is made before the mutation lock is taken.
func TestPasswordHashNotUnderMutationLock(t *testing.T) {
	var arm atomic.Bool
	entered, release := make(chan struct{}, 1), make(chan struct{})
	c := newCluster(t, clusterOpts{nodes: []nodeSpec{}, cfg: func(cfg *Config) {
		// The first bcrypt once armed blocks until released: a hash
		// that takes as long as the test wants.
		cfg.bcryptHook = func() {
			if arm.CompareAndSwap(true, false) {
				entered <- struct{}{}
				<-release
			}
		}
	}})
	demo := c.user(t, "demo", nil)
	c.ok(t, "GET", "/broker/rest/user", demo, nil, nil) // checked: later calls cost no bcrypt

	for _, tt := range []struct {
		name         string
		method, path string
		body         url.Values
		who          creds
		after        func(t *testing.T)
	}{
		{"password change", "PUT", "/broker/rest/users/demo", url.Values{"password": {"new-password"}, "current_password": {"demo-password"}}, demo, func(t *testing.T) {
			c.ok(t, "GET", "/broker/rest/user", basic("demo", "new-password"), nil, nil)
			demo = basic("demo", "new-password")
		}},
		{"user creation", "POST", "/broker/rest/users", url.Values{"login": {"late"}, "password": {"late-password"}}, admin, func(t *testing.T) {
			c.ok(t, "GET", "/broker/rest/user", basic("late", "late-password"), nil, nil)
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			arm.Store(true)
			done := make(chan response, 1)
			go func() { done <- c.do(t, tt.method, tt.path, tt.who, tt.body) }()
			select {
			case <-entered:
			case <-time.After(10 * time.Second):
				t.Fatal("the call did not hash a password")
			}
			// Another mutation, while the hash runs.
			other := make(chan response, 1)
			go func() {
				other <- c.do(t, "POST", "/broker/rest/domains", admin, url.Values{"name": {"d" + strings.ToLower(tt.method)}})
			}()
			waited := false
			select {
			case r := <-other:
				if r.code != http.StatusCreated {
					t.Errorf("other mutation: %d %s", r.code, r.text())
				}
			case <-time.After(5 * time.Second):
				t.Error("another mutation waited for the password hash")
				waited = true
			}
			release <- struct{}{}
			if waited {
				<-other
			}
			if r := <-done; r.code/100 != 2 {
				t.Fatalf("%s: %d %s", tt.name, r.code, r.text())
			}
			tt.after(t)
		})
	}
}

// TestQuotas: a user may hold MaxTokensPerUser unexpired API tokens and
// own MaxDomainsPerUser domains; beyond, 409 with a message, and nothing
// changes.
func TestQuotas(t *testing.T) {
	if cfg := DefaultConfig(nil, ""); cfg.MaxTokensPerUser != 100 || cfg.MaxDomainsPerUser != 100 {
		t.Fatalf("defaults: %d tokens, %d domains; want 100 and 100", cfg.MaxTokensPerUser, cfg.MaxDomainsPerUser)
	}
	c := newCluster(t, clusterOpts{nodes: []nodeSpec{}, cfg: func(cfg *Config) {
		cfg.MaxTokensPerUser, cfg.MaxDomainsPerUser = 2, 2
	}})
	demo := c.user(t, "demo", nil)
	other := c.user(t, "other", nil)

	newToken := func(who creds, ttl string) response {
		return c.do(t, "POST", "/broker/rest/user/authorizations", who, url.Values{"expires_in": {ttl}})
	}
	for i := 0; i < 2; i++ {
		if r := newToken(demo, "60"); r.code != http.StatusCreated {
			t.Fatalf("token %d: %d %s", i+1, r.code, r.text())
		}
	}
	c.unchanged(t, func() {
		wantErr(t, newToken(demo, "3600"), http.StatusConflict, "You have 2 API tokens, the most a user may have")
	})
	if r := newToken(other, "60"); r.code != http.StatusCreated {
		t.Fatalf("another user's token: %d %s", r.code, r.text())
	}
	// Expired tokens do not count.
	c.clock.Advance(2 * time.Minute)
	if r := newToken(demo, "60"); r.code != http.StatusCreated {
		t.Fatalf("token after the others expired: %d %s", r.code, r.text())
	}

	c.domain(t, demo, "one")
	c.domain(t, demo, "two")
	c.unchanged(t, func() {
		wantErr(t, c.do(t, "POST", "/broker/rest/domains", demo, url.Values{"name": {"three"}}), http.StatusConflict, "You own 2 domains, the most a user may own")
	})
	c.domain(t, other, "three")
	c.ok(t, "DELETE", "/broker/rest/domains/one", demo, nil, nil)
	c.domain(t, demo, "four")
}

// token mints an API token as who.
func (c *testCluster) token(t testing.TB, who creds, v url.Values) api.Token {
	t.Helper()
	var tok api.Token
	c.ok(t, "POST", "/broker/rest/user/authorizations", who, v, &tok)
	return tok
}

// tokenIDs lists who's tokens and returns their ids; the answer must not
// carry any token.
func (c *testCluster) tokenIDs(t testing.TB, who creds) []string {
	t.Helper()
	var ts []api.Token
	r := c.ok(t, "GET", "/broker/rest/user/authorizations", who, nil, &ts)
	if strings.Contains(r.raw, tokenPrefix) {
		t.Fatalf("the token list shows tokens: %s", r.raw)
	}
	var ids []string
	for _, tok := range ts {
		if tok.Token != "" || tok.ID == "" {
			t.Fatalf("listed token %+v", tok)
		}
		ids = append(ids, tok.ID)
	}
	return ids
}

// TestTokenRevocation: issue #12, item 16. A user lists its tokens, without
// the tokens themselves, and revokes one by id; the revoked token is
// refused by the next request, on the broker that revoked it.
func TestTokenRevocation(t *testing.T) {
	c := newCluster(t, clusterOpts{nodes: []nodeSpec{}})
	demo := c.user(t, "demo", nil)
	eve := c.user(t, "eve", nil)
	laptop := c.token(t, demo, url.Values{"note": {"laptop"}, "expires_in": {"3600"}})
	ci := c.token(t, demo, url.Values{"note": {"ci"}})
	c.token(t, eve, nil)

	var ts []api.Token
	c.ok(t, "GET", "/broker/rest/user/authorizations", bearer(ci.Token), nil, &ts)
	if len(ts) != 2 || ts[0].ID != laptop.ID || ts[0].Note != "laptop" || ts[0].Login != "demo" ||
		!ts[0].ExpiresAt.Equal(laptop.ExpiresAt) || !ts[0].CreatedAt.Equal(laptop.CreatedAt) || ts[0].ExpiresIn != 3600 ||
		ts[1].ID != ci.ID || ts[1].Note != "ci" {
		t.Fatalf("listed %+v", ts)
	}
	if ids := c.tokenIDs(t, demo); len(ids) != 2 {
		t.Fatalf("demo's tokens %v", ids)
	}
	if ids := c.tokenIDs(t, eve); len(ids) != 1 {
		t.Fatalf("eve's tokens %v", ids)
	}

	c.ok(t, "GET", "/broker/rest/user", bearer(laptop.Token), nil, nil)
	c.ok(t, "DELETE", "/broker/rest/user/authorizations/"+laptop.ID, bearer(ci.Token), nil, nil)
	wantErr(t, c.do(t, "GET", "/broker/rest/user", bearer(laptop.Token), nil), http.StatusUnauthorized, "token is unknown or expired")
	c.ok(t, "GET", "/broker/rest/user", bearer(ci.Token), nil, nil)
	if ids := c.tokenIDs(t, demo); len(ids) != 1 || ids[0] != ci.ID {
		t.Fatalf("after revocation: %v", ids)
	}

	c.unchanged(t, func() {
		wantErr(t, c.do(t, "DELETE", "/broker/rest/user/authorizations/"+laptop.ID, demo, nil), http.StatusNotFound, "not found")
		// Another user's token is unknown to eve, and stays valid.
		wantErr(t, c.do(t, "DELETE", "/broker/rest/user/authorizations/"+ci.ID, eve, nil), http.StatusNotFound, "not found")
	})
	c.ok(t, "GET", "/broker/rest/user", bearer(ci.Token), nil, nil)

	// A token may revoke itself.
	c.ok(t, "DELETE", "/broker/rest/user/authorizations/"+ci.ID, bearer(ci.Token), nil, nil)
	wantErr(t, c.do(t, "GET", "/broker/rest/user", bearer(ci.Token), nil), http.StatusUnauthorized, "")
	if ids := c.tokenIDs(t, demo); len(ids) != 0 {
		t.Fatalf("after revoking all: %v", ids)
	}

	// Expired tokens are not listed.
	c.token(t, demo, url.Values{"expires_in": {"10"}})
	c.clock.Advance(11 * time.Second)
	if ids := c.tokenIDs(t, demo); len(ids) != 0 {
		t.Fatalf("expired tokens listed: %v", ids)
	}
}

// TestPasswordChangeRevokesTokens: a new password revokes every token of
// the user; changing one's own password needs the current one, also when
// the caller holds a token; an administrator changing another user's does
// not.
func TestPasswordChangeRevokesTokens(t *testing.T) {
	c := newCluster(t, clusterOpts{nodes: []nodeSpec{}})
	demo := c.user(t, "demo", nil)
	one, two := c.token(t, demo, nil), c.token(t, demo, nil)
	adminTok := c.token(t, admin, nil)

	c.unchanged(t, func() {
		for _, who := range []creds{demo, bearer(one.Token)} {
			wantErr(t, c.do(t, "PUT", "/broker/rest/users/demo", who, url.Values{"password": {"stolen-password"}}),
				http.StatusUnprocessableEntity, "needs your current password")
			wantErr(t, c.do(t, "PUT", "/broker/rest/users/demo", who, url.Values{"password": {"stolen-password"}, "current_password": {""}}),
				http.StatusUnprocessableEntity, "current_password")
			wantErr(t, c.do(t, "PUT", "/broker/rest/users/demo", who, url.Values{"password": {"stolen-password"}, "current_password": {"a-guess-123"}}),
				http.StatusForbidden, "current password is wrong")
		}
		wantErr(t, c.do(t, "PUT", "/broker/rest/users/admin", admin, url.Values{"password": {"new-admin-password"}}),
			http.StatusUnprocessableEntity, "current_password")
	})
	c.ok(t, "GET", "/broker/rest/user", bearer(one.Token), nil, nil)

	c.ok(t, "PUT", "/broker/rest/users/demo", bearer(one.Token),
		url.Values{"password": {"second-password"}, "current_password": {"demo-password"}}, nil)
	for _, tok := range []api.Token{one, two} {
		wantErr(t, c.do(t, "GET", "/broker/rest/user", bearer(tok.Token), nil), http.StatusUnauthorized, "")
	}
	wantErr(t, c.do(t, "GET", "/broker/rest/user", demo, nil), http.StatusUnauthorized, "")
	demo = basic("demo", "second-password")
	if ids := c.tokenIDs(t, demo); len(ids) != 0 {
		t.Fatalf("tokens left after a password change: %v", ids)
	}

	// An administrator resets demo's password without knowing it: demo's
	// tokens go, the administrator's stay.
	three := c.token(t, demo, nil)
	c.ok(t, "PUT", "/broker/rest/users/demo", admin, url.Values{"password": {"third-password"}}, nil)
	wantErr(t, c.do(t, "GET", "/broker/rest/user", bearer(three.Token), nil), http.StatusUnauthorized, "")
	c.ok(t, "GET", "/broker/rest/user", basic("demo", "third-password"), nil, nil)
	c.ok(t, "GET", "/broker/rest/user", bearer(adminTok.Token), nil, nil)

	// Changing capabilities only keeps the tokens.
	four := c.token(t, basic("demo", "third-password"), nil)
	c.ok(t, "PUT", "/broker/rest/users/demo", admin, url.Values{"max_gears": {"3"}}, nil)
	c.ok(t, "GET", "/broker/rest/user", bearer(four.Token), nil, nil)
}

// TestTokenFromTokenExpiresNoLater: a token minted with a token expires no
// later than the token that minted it.
func TestTokenFromTokenExpiresNoLater(t *testing.T) {
	c := newCluster(t, clusterOpts{nodes: []nodeSpec{}})
	demo := c.user(t, "demo", nil)
	parent := c.token(t, demo, url.Values{"expires_in": {"60"}})

	child := c.token(t, bearer(parent.Token), nil) // asks for the default 30 days
	if child.ExpiresAt.After(parent.ExpiresAt) || child.ExpiresIn > 60 {
		t.Fatalf("child %+v outlives parent %+v", child, parent)
	}
	asked := c.token(t, bearer(parent.Token), url.Values{"expires_in": {"3600"}})
	if asked.ExpiresAt.After(parent.ExpiresAt) {
		t.Fatalf("child %+v outlives parent %+v", asked, parent)
	}
	// A shorter lifetime than the parent's is kept.
	short := c.token(t, bearer(parent.Token), url.Values{"expires_in": {"10"}})
	if short.ExpiresIn != 10 || !short.ExpiresAt.Before(parent.ExpiresAt) {
		t.Fatalf("short child %+v", short)
	}
	// A grandchild is bound by its parent's bound too.
	grand := c.token(t, bearer(child.Token), url.Values{"expires_in": {"86400"}})
	if grand.ExpiresAt.After(parent.ExpiresAt) {
		t.Fatalf("grandchild %+v outlives %+v", grand, parent)
	}
	// Basic auth mints a token of the asked lifetime.
	if full := c.token(t, demo, url.Values{"expires_in": {"86400"}}); full.ExpiresIn != 86400 {
		t.Fatalf("token by password %+v", full)
	}

	c.clock.Advance(61 * time.Second)
	for _, tok := range []api.Token{child, asked, grand} {
		wantErr(t, c.do(t, "GET", "/broker/rest/user", bearer(tok.Token), nil), http.StatusUnauthorized, "")
	}
}
