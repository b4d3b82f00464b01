package broker

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"gearbox/broker/api"
)

// TestBadInput: malformed, oversized and mistyped bodies get a clear 4xx
// in the envelope and change nothing.
func TestBadInput(t *testing.T) {
	c := newCluster(t, clusterOpts{cfg: func(cfg *Config) { cfg.MaxBodyBytes = 4096 }})
	demo := c.user(t, "demo", nil)
	c.domain(t, demo, "demo")
	c.createApp(t, demo, "demo", "web", url.Values{"scale": {"true"}})
	json := func(s string) rawBody { return rawBody{"application/json", s} }
	tests := []struct {
		name         string
		method, path string
		body         any
		code         int
		text         string
	}{
		{"malformed JSON", "POST", "/broker/rest/domains", json(`{"name": "x"`), http.StatusBadRequest, "Malformed JSON"},
		{"JSON array", "POST", "/broker/rest/domains", json(`["x"]`), http.StatusBadRequest, "Malformed JSON"},
		{"JSON string", "POST", "/broker/rest/domains", json(`"x"`), http.StatusBadRequest, "Malformed JSON"},
		{"JSON trailing garbage", "POST", "/broker/rest/domains", json(`{"name": "x"} {}`), http.StatusBadRequest, "Malformed JSON"},
		{"JSON object as name", "POST", "/broker/rest/domains", json(`{"name": {"a": 1}}`), http.StatusUnprocessableEntity, "Invalid namespace"},
		{"JSON number as name", "POST", "/broker/rest/domains", json(`{"name": 12345678901234567890}`), http.StatusUnprocessableEntity, "Invalid namespace"},
		{"JSON event not a string", "POST", appPath("demo", "web", "/events"), json(`{"event": 3}`), http.StatusUnprocessableEntity, "Invalid application event '3'"},
		{"malformed form", "POST", "/broker/rest/domains", rawBody{"application/x-www-form-urlencoded", "name=%zz"}, http.StatusBadRequest, "Malformed form"},
		{"oversized form", "POST", "/broker/rest/domains", url.Values{"name": {"big"}, "pad": {strings.Repeat("x", 5000)}}, http.StatusRequestEntityTooLarge, "larger than 4096 bytes"},
		{"oversized JSON", "POST", appPath("demo", "web", "/events"), map[string]string{"event": "stop", "pad": strings.Repeat("x", 5000)}, http.StatusRequestEntityTooLarge, "larger than"},
		{"oversized PUT", "PUT", appPath("demo", "web", "/cartridges/static"), url.Values{"scales_from": {"2"}, "pad": {strings.Repeat("x", 5000)}}, http.StatusRequestEntityTooLarge, "larger than"},
		{"text/plain", "POST", "/broker/rest/domains", rawBody{"text/plain", "name=plain"}, http.StatusUnsupportedMediaType, "Unsupported content type"},
		{"multipart", "POST", "/broker/rest/domains", rawBody{"multipart/form-data; boundary=x", "--x\r\n\r\n--x--"}, http.StatusUnsupportedMediaType, "Unsupported content type"},
		{"xml", "POST", appPath("demo", "web", "/events"), rawBody{"application/xml", "<event>stop</event>"}, http.StatusUnsupportedMediaType, "Unsupported content type"},
		{"no parameters", "POST", "/broker/rest/domains", nil, http.StatusUnprocessableEntity, "Namespace is required"},
		{"bool not a bool", "POST", "/broker/rest/domains/demo/applications", url.Values{"name": {"other"}, "scale": {"yes please"}}, http.StatusUnprocessableEntity, "true or false"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c.unchanged(t, func() {
				r := c.do(t, tt.method, tt.path, demo, tt.body)
				wantErr(t, r, tt.code, tt.text)
				if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
					t.Fatalf("Content-Type %q", ct)
				}
			})
		})
	}

	t.Run("JSON bodies work", func(t *testing.T) {
		var d api.Domain
		c.ok(t, "POST", "/broker/rest/domains", demo, map[string]any{"name": "viajson"}, &d)
		var a api.App
		c.ok(t, "POST", "/broker/rest/domains/viajson/applications", demo, map[string]any{"name": "app", "scale": true}, &a)
		if !a.Scalable || a.GearCount != 1 {
			t.Fatalf("app from JSON %+v", a)
		}
		var cv api.Cartridge
		c.ok(t, "PUT", appPath("viajson", "app", "/cartridges/static"), demo, map[string]any{"scales_from": 2, "scales_to": 4}, &cv)
		if cv.ScalesFrom != 2 || cv.ScalesTo != 4 || cv.Gears != 2 {
			t.Fatalf("scale from JSON numbers %+v", cv)
		}
	})

	t.Run("content type parameters", func(t *testing.T) {
		c.ok(t, "POST", "/broker/rest/domains", demo, rawBody{"application/x-www-form-urlencoded; charset=utf-8", "name=withcharset"}, nil)
		c.ok(t, "POST", "/broker/rest/domains", demo, rawBody{"application/json; charset=utf-8", `{"name":"jsoncharset"}`}, nil)
	})
}

// TestPathTricks: odd paths are refused with a 4xx envelope and change
// nothing; they never reach another resource.
func TestPathTricks(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	demo := c.user(t, "demo", nil)
	c.domain(t, demo, "demo")
	c.createApp(t, demo, "demo", "web", url.Values{"scale": {"true"}})
	other := c.user(t, "other", nil)
	c.domain(t, other, "other")
	c.createApp(t, other, "other", "app", nil)
	tests := []struct {
		method, path string
		body         url.Values
	}{
		{"GET", "/broker/rest/domains/..%2F", nil},
		{"DELETE", "/broker/rest/domains/..%2F", nil},
		{"DELETE", "/broker/rest/domains/demo%2F..%2Fother", nil},
		{"DELETE", "/broker/rest/domains/demo/../other", nil},
		{"DELETE", "/broker/rest/domains/./other", nil},
		{"GET", "/broker/rest/domains/demo/../../users", nil},
		{"POST", "/broker/rest/domains/demo/applications/web/../../../other/applications/app/events", url.Values{"event": {"stop"}}},
		{"POST", "/broker/rest/domains/other%2Fapplications%2Fapp/events", url.Values{"event": {"stop"}}},
		{"POST", "/broker/rest/domains/demo/applications/web%2F..%2F..%2F..%2Fother%2Fapplications%2Fapp/events", url.Values{"event": {"stop"}}},
		{"DELETE", "/broker/rest/domains/demo/applications/..%2F..%2Fother%2Fapplications%2Fapp", nil},
		{"DELETE", "/broker/rest//domains/other", nil},
		{"DELETE", "//broker/rest/domains/other", nil},
		{"DELETE", "/broker/rest/domains/other/", nil},
		{"DELETE", "/broker/rest/domains/other/junk", nil},
		{"DELETE", "/broker/rest/domains/other;x", nil},
		{"DELETE", "/broker/rest/domains/other%00", nil},
		{"DELETE", "/broker/rest/domains/OTHER", nil},
		{"DELETE", "/broker/rest/domains/%6Fther", nil}, // "other", escaped: refused as another user's
		{"POST", "/broker/rest/domains/demo/applications/web/events/junk", url.Values{"event": {"stop"}}},
		{"POST", "/broker/rest/domains/demo/applications/web/events%2F", url.Values{"event": {"stop"}}},
		{"PUT", "/broker/rest/domains/demo/applications/web/cartridges/..%2Flb", url.Values{"scales_from": {"2"}}},
		{"POST", "/broker/rest/domains/demo/applications", url.Values{"name": {"../x"}}},
		{"POST", "/broker/rest/domains/demo/applications", url.Values{"name": {"web/x"}}},
		{"POST", "/broker/rest/domains", url.Values{"name": {"../users"}}},
		{"GET", "/broker/rest/nonsense", nil},
		{"GET", "/broker/rest/users/..%2Fadmin", nil},
		{"PATCH", "/broker/rest/domains/demo", url.Values{"name": {"x"}}},
		{"PUT", "/broker/rest/domains/other", url.Values{"name": {"x"}}},
		{"DELETE", "/broker/rest/domains", nil},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			c.unchanged(t, func() {
				r := c.do(t, tt.method, tt.path, demo, tt.body)
				if r.code < 400 || r.code > 499 {
					t.Fatalf("got %d %s, want a 4xx", r.code, r.raw)
				}
				if len(r.env.Messages) == 0 || r.env.Messages[0].Severity != "error" || r.env.Status != statusName(r.code) {
					t.Fatalf("got %d with body %s, want an error envelope", r.code, r.raw)
				}
			})
		})
	}
	t.Run("405 lists the allowed methods", func(t *testing.T) {
		r := c.do(t, "PATCH", "/broker/rest/domains/demo", demo, nil)
		wantErr(t, r, http.StatusMethodNotAllowed, "")
		if allow := r.header.Get("Allow"); !strings.Contains(allow, "GET") || !strings.Contains(allow, "DELETE") {
			t.Fatalf("Allow %q", allow)
		}
	})
	t.Run("unknown resource", func(t *testing.T) {
		wantErr(t, c.do(t, "GET", "/broker/rest/nonsense", demo, nil), http.StatusNotFound, "No such API resource")
	})
	// The apps above are still there, as they were.
	for _, p := range []string{appPath("demo", "web"), appPath("other", "app")} {
		c.ok(t, "GET", p, admin, nil, nil)
	}
}

// TestDefaultBodyLimit: the default limit is 1 MiB.
func TestDefaultBodyLimit(t *testing.T) {
	c := newCluster(t, clusterOpts{nodes: []nodeSpec{}})
	c.unchanged(t, func() {
		big := url.Values{"name": {"big"}, "pad": {strings.Repeat("x", 1<<20)}}
		wantErr(t, c.do(t, "POST", "/broker/rest/domains", admin, big), http.StatusRequestEntityTooLarge, "larger than 1048576 bytes")
	})
	c.ok(t, "POST", "/broker/rest/domains", admin, url.Values{"name": {"small"}, "pad": {strings.Repeat("x", 1<<19)}}, nil)
}
