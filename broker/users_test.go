package broker

import (
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
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
		{"password change", "PUT", "/broker/rest/users/demo", url.Values{"password": {"new-password"}}, demo, func(t *testing.T) {
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
