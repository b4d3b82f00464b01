package lb

import (
	"net/http"
	"net/netip"
	"slices"
	"testing"
)

// SetTrustedProxies changes, on a running pool, whose X-Forwarded-Proto
// and X-Forwarded-Host are passed on.
func TestSetTrustedProxies(t *testing.T) {
	be := newTestBackend(t, "a")
	cfg := testConfig(newFakeClock())
	elsewhere := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	cfg.TrustedProxies = elsewhere
	cfg.Backends = []Backend{be.backend()}
	p := newTestPool(t, cfg)
	url, c := front(t, p)
	loopback := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("127.0.0.0/8")}
	steps := []struct {
		name      string
		set       []netip.Prefix
		proto     string // X-Forwarded-Proto the backend sees
		forwarded string // X-Forwarded-Host the backend sees
	}{
		{"from New", elsewhere, "http", "app-ns.example.com"},
		{"loopback trusted", loopback, "https", "ha-app-ns.example.com"},
		{"trusted no more", elsewhere, "http", "app-ns.example.com"},
		{"empty list", nil, "http", "app-ns.example.com"},
		{"trusted again", loopback, "https", "ha-app-ns.example.com"},
	}
	for i, st := range steps {
		if i > 0 {
			p.SetTrustedProxies(st.set)
		}
		if got := p.TrustedProxies(); !slices.Equal(got, st.set) {
			t.Errorf("%s: TrustedProxies() = %v, want %v", st.name, got, st.set)
		}
		req, _ := http.NewRequest(http.MethodGet, url+"/x", nil)
		req.Host = "app-ns.example.com"
		req.Header.Set("X-Forwarded-Proto", "https")
		req.Header.Set("X-Forwarded-Host", "ha-app-ns.example.com")
		res, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		seen := be.requests()
		h := seen[len(seen)-1].header
		if got := h.Get("X-Forwarded-Proto"); got != st.proto {
			t.Errorf("%s: X-Forwarded-Proto = %q, want %q", st.name, got, st.proto)
		}
		if got := h.Get("X-Forwarded-Host"); got != st.forwarded {
			t.Errorf("%s: X-Forwarded-Host = %q, want %q", st.name, got, st.forwarded)
		}
	}
	// The caller's slice is copied.
	list := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	p.SetTrustedProxies(list)
	list[0] = netip.MustParsePrefix("10.0.0.0/8")
	if got := p.TrustedProxies(); got[0].String() != "127.0.0.0/8" {
		t.Errorf("TrustedProxies() = %v after the caller changed its slice", got)
	}
}
