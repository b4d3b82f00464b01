package lb

import (
	"encoding/base64"
	"net/http"
	"slices"
	"testing"
)

func TestCookieValue(t *testing.T) {
	v := CookieValue([]byte("s3cret"), "gear1")
	if len(v) != 16 {
		t.Errorf("value %q has %d characters, want 16", v, len(v))
	}
	if _, err := base64.RawURLEncoding.DecodeString(v); err != nil {
		t.Errorf("value %q is not unpadded base64url: %v", v, err)
	}
	if v != CookieValue([]byte("s3cret"), "gear1") {
		t.Error("same secret and id give different values")
	}
	for _, other := range []string{CookieValue([]byte("s3cret"), "gear2"), CookieValue([]byte("other"), "gear1"), CookieValue(nil, "gear1")} {
		if other == v {
			t.Errorf("value %q is not specific to its secret and id", v)
		}
	}
	// A pinned value, computed apart from Go (Python's hmac and base64):
	// LBs and routers built from other versions must agree.
	if got, want := CookieValue([]byte("s3cret"), "gear1"), "pzD9zm3so20MXrJ9"; got != want {
		t.Errorf("CookieValue = %q, want %q", got, want)
	}
}

func TestStripCookie(t *testing.T) {
	tests := []struct {
		in, want []string
	}{
		{[]string{"GEAR=abc"}, nil},
		{[]string{"a=1; GEAR=abc; b=2"}, []string{"a=1; b=2"}},
		{[]string{"GEAR=abc;a=1"}, []string{"a=1"}},
		{[]string{"a=1", "GEAR=abc", "b=2"}, []string{"a=1", "b=2"}},
		{[]string{"XGEAR=1; GEARS=2"}, []string{"XGEAR=1; GEARS=2"}},
		{[]string{"a=1; b=2"}, []string{"a=1; b=2"}},
		{nil, nil},
	}
	for _, tt := range tests {
		h := http.Header{}
		if tt.in != nil {
			h["Cookie"] = slices.Clone(tt.in)
		}
		stripCookie(h, "GEAR")
		if got := h["Cookie"]; !slices.Equal(got, tt.want) {
			t.Errorf("strip %q = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestCookieValueParse(t *testing.T) {
	tests := []struct {
		lines []string
		want  string
	}{
		{[]string{"GEAR=abc"}, "abc"},
		{[]string{"a=1;  GEAR=abc ; b=2"}, "abc"},
		{[]string{"a=1", `GEAR="abc"`}, "abc"},
		{[]string{"XGEAR=abc"}, ""},
		{[]string{"GEAR"}, ""},
	}
	for _, tt := range tests {
		if got := cookieValue(tt.lines, "GEAR"); got != tt.want {
			t.Errorf("cookieValue(%q) = %q, want %q", tt.lines, got, tt.want)
		}
	}
}

func TestAffinity(t *testing.T) {
	const secret = "cluster-secret"
	tests := []struct {
		name    string
		cookie  string
		prepare func(p *Pool)
		// want is the backend that answers, "" for either; reset says
		// whether the cookie is set (to the value of the one that answered).
		want  string
		reset bool
	}{
		{name: "valid cookie sticks", cookie: gearCookie(secret, "b"), want: "b"},
		{name: "other cookies around", cookie: "x=1; " + gearCookie(secret, "b") + "; y=2", want: "b"},
		{name: "dead target is replaced", cookie: gearCookie(secret, "b"), want: "a", reset: true,
			prepare: func(p *Pool) { p.markDown(p.set.Load().byID["b"], nil) }},
		{name: "draining target is replaced", cookie: gearCookie(secret, "b"), want: "a", reset: true,
			prepare: func(p *Pool) { p.Drain("b") }},
		{name: "unknown backend", cookie: gearCookie(secret, "gone"), want: "", reset: true},
		{name: "forged value", cookie: "GEAR=AAAAAAAAAAAAAAAA", want: "", reset: true},
		{name: "another cluster's secret", cookie: gearCookie("other", "b"), want: "", reset: true},
		{name: "plain id", cookie: "GEAR=b", want: "", reset: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := newTestBackend(t, "a"), newTestBackend(t, "b")
			cfg := testConfig(newFakeClock())
			cfg.Secret = []byte(secret)
			cfg.Backends = []Backend{a.backend(), b.backend()}
			p := newTestPool(t, cfg)
			if tt.prepare != nil {
				// Only a is eligible then: the replacement is certain.
				tt.prepare(p)
			}
			url, c := front(t, p)
			r := get(t, c, url+"/page", tt.cookie)
			if r.code != http.StatusOK || r.backend == "" || (tt.want != "" && r.backend != tt.want) {
				t.Fatalf("status %d from %q, want 200 from %s", r.code, r.backend, tt.want)
			}
			wantCookie := ""
			if tt.reset {
				wantCookie = CookieValue([]byte(secret), r.backend)
			}
			if r.setCookie != wantCookie {
				t.Errorf("Set-Cookie GEAR=%q, want %q", r.setCookie, wantCookie)
			}
			if got := slices.Contains(r.cacheCtl, `no-cache="set-cookie"`); got != tt.reset {
				t.Errorf("Cache-Control %q, want no-cache=\"set-cookie\" only with Set-Cookie", r.cacheCtl)
			}
			// The app never sees the affinity cookie, only the others.
			for _, be := range []*testBackend{a, b} {
				for _, req := range be.requests() {
					for _, l := range req.header["Cookie"] {
						if v := cookieValue([]string{l}, "GEAR"); v != "" {
							t.Errorf("backend %s saw the affinity cookie: %q", be.id, l)
						}
					}
					if tt.name == "other cookies around" && req.header.Get("Cookie") != "x=1; y=2" {
						t.Errorf("backend saw Cookie %q, want %q", req.header.Get("Cookie"), "x=1; y=2")
					}
				}
			}
		})
	}
}

func TestAffinitySticksAndSpreads(t *testing.T) {
	var backends []*testBackend
	cfg := testConfig(newFakeClock())
	for _, id := range []string{"a", "b", "c"} {
		be := newTestBackend(t, id)
		backends = append(backends, be)
		cfg.Backends = append(cfg.Backends, be.backend())
	}
	p := newTestPool(t, cfg)
	url, c := front(t, p)

	// A client without cookies is balanced, and told where it went.
	first := map[string]bool{}
	var cookie string
	for range 6 {
		r := get(t, c, url+"/", "")
		first[r.backend] = true
		if r.setCookie != CookieValue(nil, r.backend) {
			t.Fatalf("answer from %s set cookie %q, want %q", r.backend, r.setCookie, CookieValue(nil, r.backend))
		}
		cookie = "GEAR=" + r.setCookie
	}
	if len(first) != 3 {
		t.Errorf("cookie-less requests went to %v, want all three backends", first)
	}
	// A client with a cookie sticks, and is not told again.
	want := ""
	for i := range 20 {
		r := get(t, c, url+"/", cookie)
		if i == 0 {
			want = r.backend
		}
		if r.backend != want || r.setCookie != "" {
			t.Fatalf("request %d went to %s (Set-Cookie %q), want %s without Set-Cookie", i, r.backend, r.setCookie, want)
		}
	}
}

func TestNoAffinity(t *testing.T) {
	a := newTestBackend(t, "a")
	cfg := testConfig(newFakeClock())
	cfg.NoAffinity = true
	cfg.Backends = []Backend{a.backend()}
	p := newTestPool(t, cfg)
	url, c := front(t, p)
	r := get(t, c, url+"/", "GEAR=whatever; x=1")
	if r.setCookie != "" || len(r.cacheCtl) != 0 {
		t.Errorf("Set-Cookie %q, Cache-Control %q: want neither without affinity", r.setCookie, r.cacheCtl)
	}
	if got := a.requests()[0].header.Get("Cookie"); got != "GEAR=whatever; x=1" {
		t.Errorf("without affinity the app sees Cookie %q, want it untouched", got)
	}
}
