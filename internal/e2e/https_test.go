//go:build linux

package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gearbox/broker/client"
	"gearbox/internal/testutil"
)

// TestHTTPSEndToEnd runs the README's HTTPS lines exactly as written
// against a broker, a node and a router (separate processes): the router
// serves the alias over HTTPS with its uploaded certificate, then with
// the updated one, without a restart, and redirects plain HTTP.
func TestHTTPSEndToEnd(t *testing.T) {
	c := startAppClusterWith(t, "e2e-https-secret", []memberSpec{
		{"b1", "127.0.0.94", "broker", ""}, {"n1", "127.0.0.95", "node", "za"}, {"r1", "127.0.0.96", "router", ""},
	}, nil, map[string][]string{"r1": {"--https-addr", "127.0.0.96:8443"}})
	ctx := context.Background()
	if _, _, err := c.admin.CreateDomain(ctx, "test"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.admin.CreateApp(ctx, "test", "testha", client.AppOptions{Scale: true}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.Symlink(gearboxBinary(t), filepath.Join(dir, "gearbox")); err != nil {
		t.Fatal(err)
	}
	ca := testutil.NewCA(t, "e2e CA")
	files := map[string]time.Duration{"www": 30 * 24 * time.Hour, "new": 90 * 24 * time.Hour}
	serials := map[string]string{}
	for name, valid := range files {
		chain, key := ca.Issue(t, time.Now().Add(valid), "www.example.org")
		os.WriteFile(filepath.Join(dir, name+".pem"), []byte(chain), 0o600)
		os.WriteFile(filepath.Join(dir, name+".key"), []byte(key), 0o600)
		b, _ := pem.Decode([]byte(chain))
		cert, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		serials[name] = cert.SerialNumber.String()
	}
	env := append(childEnv(), "HOME="+dir, "XDG_CONFIG_HOME="+filepath.Join(dir, "config"), "GEARBOX_API="+c.api)
	sh := func(script string) (string, error) {
		cmd := exec.Command("bash", "-ec", script)
		cmd.Dir, cmd.Env = dir, env
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := sh("GEARBOX_PASSWORD=adminpass1 ./gearbox login --user admin"); err != nil {
		t.Fatalf("login: %v\n%s", err, out)
	}
	raw, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(readmeBlock(t, string(raw), "### HTTPS")), "\n")
	if len(lines) != 3 || !strings.Contains(lines[0], "alias add") || !strings.Contains(lines[1], "alias update") || !strings.Contains(lines[2], "app https") {
		t.Fatalf("README's HTTPS block changed shape: %q", lines)
	}

	routerTLS := c.ip("r1") + ":8443"
	served := func() (string, error) {
		conn, err := tls.Dial("tcp", routerTLS, &tls.Config{RootCAs: ca.Pool, ServerName: "www.example.org"})
		if err != nil {
			return "", err
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.String(), nil
	}
	for i, name := range []string{"www", "new"} {
		out, err := sh(lines[i])
		if err != nil {
			t.Fatalf("%s: %v\n%s", lines[i], err, out)
		}
		var got string
		waitUntil(t, 30*time.Second, "the router serves "+name+".pem", c.logs, func() bool {
			got, _ = served()
			return got == serials[name]
		})
	}
	httpsClient := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool}}}
	waitUntil(t, 60*time.Second, "the app answers over HTTPS", c.logs, func() bool {
		req, _ := http.NewRequest("GET", "https://"+routerTLS+"/", nil)
		req.Host = "www.example.org"
		httpsClient.Transport.(*http.Transport).TLSClientConfig.ServerName = "www.example.org"
		resp, err := httpsClient.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})

	if out, err := sh(lines[2]); err != nil {
		t.Fatalf("%s: %v\n%s", lines[2], err, out)
	}
	noFollow := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	var loc string
	waitUntil(t, 30*time.Second, "plain HTTP redirected to HTTPS", c.logs, func() bool {
		req, _ := http.NewRequest("GET", "http://"+c.ip("r1")+":8080/x", nil)
		req.Host = "www.example.org"
		resp, err := noFollow.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		loc = resp.Header.Get("Location")
		return resp.StatusCode == http.StatusPermanentRedirect
	})
	if loc != "https://www.example.org/x" {
		t.Errorf("redirected to %q", loc)
	}
	out, errOut, code := runGearboxEnv(t, 30*time.Second, []string{"XDG_CONFIG_HOME=" + filepath.Join(dir, "config")},
		"app", "alias", "list", "testha", "-n", "test", "--api", c.api)
	if code != 0 || !strings.Contains(out, "www.example.org  (certificate, expires ") {
		t.Errorf("alias list (exit %d):\n%s%s", code, out, errOut)
	}
}
