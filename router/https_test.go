package router

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gearbox/internal/testutil"
	"gearbox/store"
	"gearbox/store/state"
)

// The router serves HTTPS on HTTPSAddr with the certificate SNI picks
// (an alias's own from the store, else the wildcard of the files), says
// so to the app (X-Forwarded-Proto), and applies the app's HTTPS choices:
// a redirect of plain HTTP, HSTS over HTTPS.
func TestRouterHTTPS(t *testing.T) {
	testutil.CheckNoLeaks(t, leakPatterns...)
	m := startMember(t, "r1")
	f := fixture{m}
	nodeIP := ips.Next()
	f.node("n1", nodeIP)
	shopLB := newLBGear(t, "lb1", nodeIP, "/")
	shop := state.App{Name: "shop", Domain: "ns", Scalable: true, State: state.GearStarted, Aliases: []string{"www.shop.example"}}
	f.app(shop)
	f.lbGearRecord(shopLB, "ns", "shop", "n1", 1, "")

	ca := testutil.NewCA(t, "test CA")
	dir := t.TempDir()
	wildChain, wildKey := ca.Issue(t, time.Now().Add(24*time.Hour), "*."+zone)
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, []byte(wildChain), 0o600)
	os.WriteFile(keyFile, []byte(wildKey), 0o600)
	aliasChain, aliasKey := ca.Issue(t, time.Now().Add(24*time.Hour), "www.shop.example")
	sealed, err := store.SealSecret("sekrit", state.CertKeyPurpose, []byte(aliasKey))
	if err != nil {
		t.Fatal(err)
	}
	m.put(state.BucketCerts, "www.shop.example", state.Cert{Host: "www.shop.example", App: "ns/shop", Chain: aliasChain, Key: sealed})

	r := startRouter(t, m, func(c *Config) {
		c.HTTPSAddr = m.ip + ":0"
		c.TLSCert, c.TLSKey = certFile, keyFile
	})
	waitServed(t, r, "shop-ns."+zone, 200, "gear lb1")

	// getTLS GETs / over HTTPS with SNI name, trusting only the test CA,
	// and returns the status, the body, the certificate's names and the
	// HSTS header.
	getTLS := func(name string) (int, string, []string, string, error) {
		tr := &http.Transport{DisableKeepAlives: true, TLSClientConfig: &tls.Config{RootCAs: ca.Pool, ServerName: name}}
		defer tr.CloseIdleConnections()
		c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
		req, _ := http.NewRequest("GET", "https://"+r.HTTPSAddr()+"/path?q=1", nil)
		req.Host = name
		resp, err := c.Do(req)
		if err != nil {
			return 0, "", nil, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.TLS.PeerCertificates[0].DNSNames, resp.Header.Get("Strict-Transport-Security"), nil
	}
	for _, tt := range []struct{ host, cert string }{{"shop-ns." + zone, "*." + zone}, {"www.shop.example", "www.shop.example"}} {
		code, body, names, _, err := getTLS(tt.host)
		if err != nil || code != 200 || !strings.Contains(body, "gear lb1") || len(names) != 1 || names[0] != tt.cert {
			t.Errorf("GET https://%s: %v %d %q, certificate for %v; want 200 from the gear with the certificate for %s", tt.host, err, code, body, names, tt.cert)
		}
	}
	if got := shopLB.last().Header.Get("X-Forwarded-Proto"); got != "https" {
		t.Errorf("the app was told X-Forwarded-Proto %q, want https", got)
	}
	// A name the router has no certificate for of its own gets the
	// wildcard, which the client refuses.
	if _, _, _, _, err := getTLS("www.other.example"); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("GET https://www.other.example: %v, want a certificate error", err)
	}

	// The app's choices: redirect plain HTTP, HSTS over HTTPS.
	shop.HTTPSRedirect, shop.HSTSMaxAge = true, 3600
	f.app(shop)
	noFollow := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	var loc string
	testutil.WaitFor(t, 10*time.Second, "plain HTTP redirected", func() bool {
		req, _ := http.NewRequest("POST", "http://"+r.HTTPAddr()+"/cart?item=2", strings.NewReader("x"))
		req.Host = "www.shop.example:80"
		resp, err := noFollow.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		loc = resp.Header.Get("Location")
		return resp.StatusCode == http.StatusPermanentRedirect
	})
	if loc != "https://www.shop.example/cart?item=2" {
		t.Errorf("redirect to %q, want https://www.shop.example/cart?item=2", loc)
	}
	if code, _, _, hsts, err := getTLS("www.shop.example"); err != nil || code != 200 || hsts != "max-age=3600" {
		t.Errorf("over HTTPS: %v %d, Strict-Transport-Security %q; want 200 with max-age=3600", err, code, hsts)
	}

	// A new alias certificate is served without a restart.
	newChain, newKey := ca.Issue(t, time.Now().Add(48*time.Hour), "www.shop.example")
	sealed, _ = store.SealSecret("sekrit", state.CertKeyPurpose, []byte(newKey))
	m.put(state.BucketCerts, "www.shop.example", state.Cert{Host: "www.shop.example", App: "ns/shop", Chain: newChain, Key: sealed})
	leaf := func(chain string) *x509.Certificate {
		b, _ := pemFirst(chain)
		c, _ := x509.ParseCertificate(b)
		return c
	}
	want := leaf(newChain).SerialNumber
	testutil.WaitFor(t, 10*time.Second, "the new certificate served", func() bool {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", r.HTTPSAddr(), &tls.Config{RootCAs: ca.Pool, ServerName: "www.shop.example"})
		if err != nil {
			return false
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.Cmp(want) == 0
	})
}

// pemFirst returns the DER of the first PEM block of s.
func pemFirst(s string) ([]byte, error) {
	b, _ := pem.Decode([]byte(s))
	if b == nil {
		return nil, errors.New("no PEM block")
	}
	return b.Bytes, nil
}
