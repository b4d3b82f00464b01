package broker

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"gearbox/internal/testutil"
	"gearbox/store"
	"gearbox/store/state"
)

// An alias's certificate is checked on upload with errors that say what
// is wrong, kept with its key sealed, announced by add_ssl (remove_ssl
// when it goes), replaced by alias update, and its coming expiry raises
// one alert.
func TestAliasCertificates(t *testing.T) {
	c := newCluster(t, clusterOpts{nodes: []nodeSpec{{name: "n1", zone: "z1"}}})
	c.domain(t, admin, "ns")
	c.createApp(t, admin, "ns", "web", nil)
	ca := testutil.NewCA(t, "test CA")
	year := time.Now().Add(365 * 24 * time.Hour)
	chain, key := ca.Issue(t, year, "www.example.org")
	otherChain, otherKey := ca.Issue(t, year, "other.example.org")
	aliases := appPath("ns", "web", "/aliases")
	add := func(host, chain, key string) response {
		return c.do(t, "POST", aliases, admin, url.Values{"id": {host}, "ssl_certificate": {chain}, "private_key": {key}})
	}

	// Refused, each with its reason.
	leafOnly := chain[:strings.Index(chain, "-----END CERTIFICATE-----")+len("-----END CERTIFICATE-----\n")]
	expiredChain, expiredKey := ca.Issue(t, time.Now().Add(-time.Minute), "www.example.org")
	for _, tt := range []struct {
		name, chain, key, want string
	}{
		{"no key", chain, "", "private_key"},
		{"key of another certificate", chain, otherKey, "does not go with the certificate"},
		{"another host", otherChain, otherKey, "does not cover www.example.org: it is for other.example.org"},
		{"expired", expiredChain, expiredKey, "expired on"},
		{"chain out of order", ca.PEM + leafOnly, key, "private key does not go"},
		{"issuer not next in the chain", leafOnly + testutil.NewCA(t, "other CA").PEM, key, "is not signed by certificate 2 (other CA)"},
		{"not PEM", "hello", key, "no PEM certificate"},
		{"encrypted key", chain, "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n", "encrypted"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			wantErr(t, add("www.example.org", tt.chain, tt.key), http.StatusUnprocessableEntity, tt.want)
		})
	}
	if _, err := c.st.GetRecord(state.BucketCerts, "www.example.org"); err == nil {
		t.Fatal("a refused certificate was stored")
	}

	// Accepted: the key is sealed in the record and in the event.
	r := add("www.example.org", chain, key)
	if r.code != http.StatusCreated || !strings.Contains(r.text(), "Certificate for www.example.org installed") ||
		!strings.Contains(r.text(), "no certificate authority this broker trusts") {
		t.Fatalf("add alias with a certificate: %d %s", r.code, r.text())
	}
	var rec state.Cert
	if _, err := c.st.Get(state.BucketCerts, "www.example.org", &rec); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(rec.Key, "PRIVATE KEY") || rec.Key == "" || rec.App != "ns/web" || strings.TrimSpace(rec.Chain) != strings.TrimSpace(chain) {
		t.Fatalf("certificate record %+v: want the chain and the key sealed", rec)
	}
	if plain, err := store.OpenSecret(testSecret, state.CertKeyPurpose, rec.Key); err != nil || strings.TrimSpace(string(plain)) != strings.TrimSpace(key) {
		t.Fatalf("the sealed key does not open to the uploaded one: %v", err)
	}
	if _, err := store.OpenSecret("another secret", state.CertKeyPurpose, rec.Key); err == nil {
		t.Fatal("another cluster secret opens the key")
	}
	evs := c.events(t)
	last := evs[len(evs)-1]
	if last.Action != state.ActionAddSSL || last.Alias != "www.example.org" || last.SSL != rec.Chain || last.PrivateKey != rec.Key {
		t.Fatalf("last routing event %+v, want add_ssl with the chain and the sealed key", last)
	}
	var list []struct {
		ID   string `json:"id"`
		Has  bool   `json:"has_private_ssl_certificate"`
		Cert *struct {
			Fingerprint string `json:"fingerprint_sha256"`
		} `json:"certificate"`
	}
	c.ok(t, "GET", aliases, admin, nil, &list)
	if len(list) != 1 || !list[0].Has || list[0].Cert == nil || list[0].Cert.Fingerprint != rec.Fingerprint {
		t.Fatalf("alias list %+v", list)
	}

	// Update: a certificate that expires within 14 days; one alert.
	soonChain, soonKey := ca.Issue(t, time.Now().Add(10*24*time.Hour), "www.example.org")
	r = c.do(t, "PUT", aliases+"/www.example.org", admin, url.Values{"ssl_certificate": {soonChain}, "private_key": {soonKey}})
	if r.code != http.StatusOK {
		t.Fatalf("alias update: %d %s", r.code, r.text())
	}
	expiring := func() int {
		n := 0
		for _, a := range c.alerts(t) {
			if a.Kind == state.AlertCertExpiring && strings.Contains(a.Reason, "www.example.org") {
				n++
			}
		}
		return n
	}
	testutil.WaitFor(t, 10*time.Second, "cert_expiring alert", func() bool { return expiring() == 1 })
	if err := c.b.checkCertExpiry(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := expiring(); n != 1 {
		t.Errorf("%d cert_expiring alerts after another check, want 1", n)
	}
	wantErr(t, c.do(t, "PUT", aliases+"/nope.example.org", admin, url.Values{"ssl_certificate": {chain}, "private_key": {key}}), http.StatusNotFound, "no alias")

	// Removal takes the certificate with the alias.
	c.ok(t, "DELETE", aliases+"/www.example.org", admin, nil, nil)
	if _, err := c.st.GetRecord(state.BucketCerts, "www.example.org"); err == nil {
		t.Fatal("the certificate outlived its alias")
	}
	evs = c.events(t)
	if a, b := evs[len(evs)-2], evs[len(evs)-1]; a.Action != state.ActionRemoveSSL || b.Action != state.ActionRemoveAlias {
		t.Fatalf("events on removal: %s, %s; want remove_ssl, remove_alias", a.Action, b.Action)
	}
}
