package broker

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"gearbox/broker/api"
	"gearbox/store/state"
)

func TestDomains(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	alice := c.user(t, "alice", nil)
	bob := c.user(t, "bob", nil)

	var d api.Domain
	r := c.ok(t, "POST", "/broker/rest/domains", alice, url.Values{"name": {"alice"}}, &d)
	if r.code != http.StatusCreated || d.Name != "alice" || d.Owner != "alice" || d.Applications != 0 {
		t.Fatalf("created %d %+v", r.code, d)
	}
	if !strings.Contains(r.text(), "Domain 'alice' created") {
		t.Fatalf("message %q", r.text())
	}
	// OpenShift's older parameter name.
	c.ok(t, "POST", "/broker/rest/domains", bob, url.Values{"id": {"bob"}}, nil)
	c.domain(t, bob, "bob2")

	t.Run("names", func(t *testing.T) {
		tests := []struct {
			name string
			ns   string
			code int
			text string
		}{
			{"dash", "my-ns", http.StatusUnprocessableEntity, "no dashes"},
			{"upper case", "MyNs", http.StatusUnprocessableEntity, "Invalid namespace"},
			{"unicode", "ns\u00e9", http.StatusUnprocessableEntity, "Invalid namespace"},
			{"unicode digit", "ns\u0663", http.StatusUnprocessableEntity, "Invalid namespace"},
			{"too long", strings.Repeat("a", 17), http.StatusUnprocessableEntity, "1 to 16"},
			{"dot", "a.b", http.StatusUnprocessableEntity, "Invalid namespace"},
			{"underscore", "a_b", http.StatusUnprocessableEntity, "Invalid namespace"},
			{"slash", "a/b", http.StatusUnprocessableEntity, "Invalid namespace"},
			{"inner space", "a b", http.StatusUnprocessableEntity, "Invalid namespace"},
			{"NUL", "ab\x00", http.StatusUnprocessableEntity, "Invalid namespace"},
			{"newline", "ab\ncd", http.StatusUnprocessableEntity, "Invalid namespace"},
			{"empty", "", http.StatusUnprocessableEntity, "Namespace is required"},
			{"blank", "   ", http.StatusUnprocessableEntity, "Namespace is required"},
			{"taken by another user", "alice", http.StatusUnprocessableEntity, "Namespace 'alice' is already in use"},
			{"taken by me", "bob", http.StatusUnprocessableEntity, "already in use"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				c.unchanged(t, func() {
					r := c.do(t, "POST", "/broker/rest/domains", bob, url.Values{"name": {tt.ns}})
					wantErr(t, r, tt.code, tt.text)
					if f := r.env.Messages[0].Field; f == nil || *f != "name" {
						t.Fatalf("field %v, want name", f)
					}
					if r.env.Messages[0].ExitCode == 0 {
						t.Fatal("exit_code 0 on an error")
					}
				})
			})
		}
		for _, ok := range []string{"a", "0", strings.Repeat("z", 16), "ns2024"} {
			c.ok(t, "POST", "/broker/rest/domains", bob, url.Values{"name": {ok}}, nil)
		}
	})

	t.Run("visibility", func(t *testing.T) {
		names := func(who creds) string {
			var ds []api.Domain
			c.ok(t, "GET", "/broker/rest/domains", who, nil, &ds)
			var out []string
			for _, d := range ds {
				out = append(out, d.Name)
			}
			return strings.Join(out, ",")
		}
		if got := names(alice); got != "alice" {
			t.Fatalf("alice sees %q", got)
		}
		if got := names(bob); strings.Contains(got, "alice") || !strings.Contains(got, "bob2") {
			t.Fatalf("bob sees %q", got)
		}
		if got := names(admin); !strings.Contains(got, "alice") || !strings.Contains(got, "bob2") {
			t.Fatalf("admin sees %q", got)
		}
		c.createApp(t, alice, "alice", "secret", nil)
		c.unchanged(t, func() {
			for _, req := range []struct{ method, path string }{
				{"GET", "/broker/rest/domains/alice"},
				{"DELETE", "/broker/rest/domains/alice"},
				{"GET", "/broker/rest/domains/alice/applications"},
				{"POST", "/broker/rest/domains/alice/applications"},
				{"GET", appPath("alice", "secret")},
				{"DELETE", appPath("alice", "secret")},
				{"POST", appPath("alice", "secret", "/events")},
				{"GET", appPath("alice", "secret", "/gear_groups")},
				{"GET", appPath("alice", "secret", "/cartridges")},
				{"GET", appPath("alice", "secret", "/cartridges/static")},
				{"PUT", appPath("alice", "secret", "/cartridges/static")},
				// Another user's missing app is 403 too: it tells nothing.
				{"GET", appPath("alice", "ghost")},
			} {
				r := c.do(t, req.method, req.path, bob, url.Values{"event": {"stop"}, "name": {"intruder"}, "scales_from": {"2"}})
				wantErr(t, r, http.StatusForbidden, "belongs to another user")
			}
		})
		var dv api.Domain
		c.ok(t, "GET", "/broker/rest/domains/alice", admin, nil, &dv)
		if dv.Owner != "alice" || dv.Applications != 1 {
			t.Fatalf("admin's view %+v", dv)
		}
		c.ok(t, "GET", appPath("alice", "secret"), admin, nil, nil)
	})

	t.Run("not found", func(t *testing.T) {
		c.unchanged(t, func() {
			wantErr(t, c.do(t, "GET", "/broker/rest/domains/ghost", bob, nil), http.StatusNotFound, "Domain 'ghost' not found")
			wantErr(t, c.do(t, "DELETE", "/broker/rest/domains/ghost", bob, nil), http.StatusNotFound, "Domain 'ghost' not found")
			wantErr(t, c.do(t, "GET", "/broker/rest/domains/ghost/applications", bob, nil), http.StatusNotFound, "not found")
			wantErr(t, c.do(t, "POST", "/broker/rest/domains/ghost/applications", bob, url.Values{"name": {"x"}}), http.StatusNotFound, "not found")
			wantErr(t, c.do(t, "GET", appPath("bob", "ghost"), bob, nil), http.StatusNotFound, "Application 'ghost' not found in domain 'bob'")
			wantErr(t, c.do(t, "DELETE", appPath("bob", "ghost"), bob, nil), http.StatusNotFound, "not found")
			wantErr(t, c.do(t, "POST", appPath("bob", "ghost", "/events"), bob, url.Values{"event": {"stop"}}), http.StatusNotFound, "not found")
			wantErr(t, c.do(t, "GET", appPath("bob", "ghost", "/gear_groups"), bob, nil), http.StatusNotFound, "not found")
		})
	})

	t.Run("delete", func(t *testing.T) {
		c.domain(t, bob, "full")
		c.createApp(t, bob, "full", "one", url.Values{"scale": {"true"}})
		c.createApp(t, bob, "full", "two", nil)
		c.unchanged(t, func() {
			wantErr(t, c.do(t, "DELETE", "/broker/rest/domains/full", bob, nil), http.StatusUnprocessableEntity, "contains applications")
			wantErr(t, c.do(t, "DELETE", "/broker/rest/domains/full", bob, url.Values{"force": {"perhaps"}}), http.StatusUnprocessableEntity, "true or false")
		})
		seq := c.lastSeq(t)
		c.ok(t, "DELETE", "/broker/rest/domains/full", bob, url.Values{"force": {"true"}}, nil)
		wantErr(t, c.do(t, "GET", "/broker/rest/domains/full", bob, nil), http.StatusNotFound, "")
		if g := c.gears(t, "full", "one"); len(g) != 0 {
			t.Fatalf("gears left: %+v", g)
		}
		if g := c.gears(t, "full", "two"); len(g) != 0 {
			t.Fatalf("gears left: %+v", g)
		}
		for _, key := range []string{state.AppKey("full", "one"), state.AppKey("full", "two")} {
			if _, err := c.st.GetRecord(state.BucketApps, key); err == nil {
				t.Fatalf("app %s left", key)
			}
		}
		evs := c.eventsSince(t, seq)
		if countAction(evs, state.ActionDeleteApplication) != 2 {
			t.Fatalf("events %v", actions(evs))
		}
		// The name is free again.
		c.domain(t, alice, "full")
	})
}
