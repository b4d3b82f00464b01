package node

import (
	"crypto/tls"
	"io"
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

// The front serves HTTPS with the certificate SNI picks (an alias's own,
// else the wildcard's), and applies the app's HTTPS choices: plain HTTP
// redirected, HSTS over HTTPS.
func TestFrontHTTPS(t *testing.T) {
	ca := testutil.NewCA(t, "test CA")
	dir := t.TempDir()
	wildChain, wildKey := ca.Issue(t, time.Now().Add(24*time.Hour), "*.example.test")
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, []byte(wildChain), 0o600)
	os.WriteFile(keyFile, []byte(wildKey), 0o600)
	n := newTestStore(t)
	n.setup = helperPrograms
	n.s = n.startSupervisor(func(c *Config) {
		c.ClusterSecret = "sekrit"
		c.HTTPSAddr = n.ip + ":0"
		c.TLSCert, c.TLSKey = certFile, keyFile
	})
	aliasChain, aliasKey := ca.Issue(t, time.Now().Add(24*time.Hour), "www.one.example")
	sealed, err := store.SealSecret("sekrit", state.CertKeyPurpose, []byte(aliasKey))
	if err != nil {
		t.Fatal(err)
	}
	n.put(state.BucketCerts, "www.one.example", state.Cert{Host: "www.one.example", App: "ns/one", Chain: aliasChain, Key: sealed})
	app := state.App{ID: "a1", Name: "one", Domain: "ns", State: state.GearStarted, Aliases: []string{"www.one.example"},
		Env: map[string]string{"GEARBOX_NODE_TEST_HELPER": "serve"}, HTTPSRedirect: true, HSTSMaxAge: 600}
	n.put(state.BucketApps, "ns/one", app)
	g := n.gear("eeee00000000000000000011", "one", "ns", 1)
	n.put(state.BucketGears, g.ID, g)
	n.waitState(g.ID, state.GearStarted)

	httpsAddr := n.s.front.tlsLn.Addr().String()
	get := func(host string) (int, string, string, []string, error) {
		tr := &http.Transport{DisableKeepAlives: true, TLSClientConfig: &tls.Config{RootCAs: ca.Pool, ServerName: host}}
		defer tr.CloseIdleConnections()
		req, _ := http.NewRequest("GET", "https://"+httpsAddr+"/", nil)
		req.Host = host
		resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			return 0, "", "", nil, err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header.Get("Strict-Transport-Security"), resp.TLS.PeerCertificates[0].DNSNames, nil
	}
	for _, tt := range []struct{ host, cert string }{{"one-ns.example.test", "*.example.test"}, {"www.one.example", "www.one.example"}} {
		var code int
		var body, hsts string
		var names []string
		testutil.WaitFor(t, 10*time.Second, "HTTPS for "+tt.host, func() bool {
			code, body, hsts, names, err = get(tt.host)
			return err == nil && code == 200
		}, func() string { return body })
		if hsts != "max-age=600" || len(names) != 1 || names[0] != tt.cert {
			t.Errorf("https://%s: HSTS %q, certificate for %v; want max-age=600 and %s", tt.host, hsts, names, tt.cert)
		}
	}
	noFollow := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest("GET", "http://"+n.s.FrontAddr()+"/a/b?c=d", nil)
	req.Host = "www.one.example"
	resp, err := noFollow.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != "https://www.one.example/a/b?c=d" {
		t.Errorf("plain HTTP: %d to %q, want 308 to https://www.one.example/a/b?c=d", resp.StatusCode, resp.Header.Get("Location"))
	}
	if strings.Contains(resp.Header.Get("Strict-Transport-Security"), "max-age") {
		t.Error("HSTS sent over plain HTTP")
	}
}

// The front answers the ACME HTTP-01 challenges that the broker leader
// records, for their host only and until they expire, over plain HTTP.
func TestFrontAnswersACME(t *testing.T) {
	n := newTestStore(t)
	n.s = n.startSupervisor(func(c *Config) { c.ClusterSecret = "sekrit" })
	n.put(state.BucketACMEChallenges, "tok-1", state.ACMEChallenge{Token: "tok-1", Host: "www.one.example", KeyAuth: "tok-1.thumb",
		Expires: time.Now().Add(time.Minute)})
	n.put(state.BucketACMEChallenges, "tok-2", state.ACMEChallenge{Token: "tok-2", Host: "www.one.example", KeyAuth: "tok-2.thumb",
		Expires: time.Now().Add(-time.Second)})
	for _, tc := range []struct {
		host, token string
		code        int
		want        string
	}{
		{"WWW.one.example:80", "tok-1", 200, "tok-1.thumb"},
		{"other.example", "tok-1", 404, "No application"},
		{"www.one.example", "tok-2", 404, "No application"}, // expired
		{"www.one.example", "tok-1/../tok-1", 404, "No application"},
	} {
		req, _ := http.NewRequest("GET", "http://"+n.s.FrontAddr()+"/.well-known/acme-challenge/"+tc.token, nil)
		req.Host = tc.host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.code || !strings.Contains(string(body), tc.want) || tc.code == 200 && string(body) != tc.want {
			t.Errorf("%s %s: %d %q, want %d %q", tc.host, tc.token, resp.StatusCode, body, tc.code, tc.want)
		}
	}
}
