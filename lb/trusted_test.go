package lb

import (
	"net/http"
	"net/netip"
	"slices"
	"strings"
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

// A pool that requires a proof of its trusted proxies (an LB gear's, whose
// trusted address its node's gears share) passes on X-Forwarded-* only
// from a trusted address that also sends the proof: from that address
// without it (a gear of the node), or with another app's proof, they are
// set from the hop, X-Forwarded-For included. The proof never reaches a
// backend; a pool that sends one (a router's) adds its own.
func TestTrustProof(t *testing.T) {
	secret := []byte("cluster secret")
	be := newTestBackend(t, "a")
	cfg := testConfig(newFakeClock())
	cfg.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	cfg.TrustProof = Proof(secret, "ns/app")
	cfg.Backends = []Backend{be.backend()}
	p := newTestPool(t, cfg)
	url, c := front(t, p)
	tests := []struct {
		name    string
		proof   string // sent in ProofField; "" none
		trusted bool
	}{
		{"no proof", "", false},
		{"another app's proof", Proof(secret, "ns/other"), false},
		{"another secret's proof", Proof([]byte("guessed"), "ns/app"), false},
		{"proof", Proof(secret, "ns/app"), true},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest(http.MethodGet, url+"/x", nil)
		req.Host = "app-ns.example.com"
		req.Header.Set("X-Forwarded-Proto", "https")
		req.Header.Set("X-Forwarded-Host", "ha-app-ns.example.com")
		req.Header.Set("X-Forwarded-For", "203.0.113.9")
		if tt.proof != "" {
			req.Header.Set(ProofField, tt.proof)
		}
		res, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		seen := be.requests()
		h := seen[len(seen)-1].header
		proto, host, xff := "http", "app-ns.example.com", "127.0.0.1"
		if tt.trusted {
			proto, host, xff = "https", "ha-app-ns.example.com", "203.0.113.9, 127.0.0.1"
		}
		if got := h.Get("X-Forwarded-Proto"); got != proto {
			t.Errorf("%s: X-Forwarded-Proto = %q, want %q", tt.name, got, proto)
		}
		if got := h.Get("X-Forwarded-Host"); got != host {
			t.Errorf("%s: X-Forwarded-Host = %q, want %q", tt.name, got, host)
		}
		if got := strings.Join(h.Values("X-Forwarded-For"), ", "); got != xff {
			t.Errorf("%s: X-Forwarded-For = %q, want %q", tt.name, got, xff)
		}
		if got := h.Values(ProofField); len(got) != 0 {
			t.Errorf("%s: the backend got %s %q", tt.name, ProofField, got)
		}
	}

	// A pool with SendProof sends it, and not the client's.
	cfg = testConfig(newFakeClock())
	cfg.SendProof = Proof(secret, "ns/app")
	cfg.Backends = []Backend{be.backend()}
	url, c = front(t, newTestPool(t, cfg))
	req, _ := http.NewRequest(http.MethodGet, url+"/x", nil)
	req.Header.Set(ProofField, "forged")
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	seen := be.requests()
	if got := seen[len(seen)-1].header.Values(ProofField); !slices.Equal(got, []string{cfg.SendProof}) {
		t.Errorf("sending pool: the backend got %s %q, want only %q", ProofField, got, cfg.SendProof)
	}
}
