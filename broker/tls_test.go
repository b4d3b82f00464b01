package broker

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gearbox/internal/testutil"
	"gearbox/store"
)

// writeSelfSigned writes a certificate and key for ip to dir, issued by
// a test CA, and returns their paths and a pool that trusts the CA.
func writeSelfSigned(t *testing.T, dir, ip string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	ca := testutil.NewCA(t, "gearbox test CA")
	chain, key := ca.Issue(t, time.Now().Add(time.Hour), ip)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, []byte(chain), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, []byte(key), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, ca.Pool
}

func TestAPIOverTLS(t *testing.T) {
	m := startMember(t, "b1", []string{store.RoleBroker}, "", "")
	certFile, keyFile, pool := writeSelfSigned(t, t.TempDir(), m.ip)
	b, url := startBroker(t, m, &testClock{}, clusterOpts{cfg: func(c *Config) { c.TLSCert, c.TLSKey = certFile, keyFile }})
	if !strings.HasPrefix(url, "https://") || !strings.HasPrefix(b.URL(), "https://") {
		t.Fatalf("broker URL %q, want https", url)
	}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer hc.CloseIdleConnections()
	r := do(t, hc, url, "GET", "/broker/rest/api", nobody, nil)
	if r.code != http.StatusOK {
		t.Fatalf("GET /broker/rest/api over TLS: %d %s", r.code, r.text())
	}
	// Plain HTTP to the TLS port gets no API answer.
	plain := &http.Client{Timeout: 5 * time.Second}
	resp, err := plain.Get("http://" + strings.TrimPrefix(url, "https://") + "/broker/rest/api")
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("plain HTTP got an API answer from the TLS listener")
		}
	}
}
