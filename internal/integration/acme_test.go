package integration

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"gearbox/broker"
	"gearbox/broker/api"
	"gearbox/broker/client"
	"gearbox/internal/testutil"
	"gearbox/router"
	"gearbox/store/state"
)

// TestACMECertificates runs Debian's pebble, an ACME test certificate
// authority, with a DNS server of the test's that says where aliases
// point. The broker leader obtains a certificate for an alias that points
// at the router, answering pebble's HTTP-01 challenge through the router;
// the router serves it by SNI, chained to pebble's root; the leader renews
// it before it expires. An alias that points elsewhere gets no order, and
// says why.
func TestACMECertificates(t *testing.T) {
	pebble, err := exec.LookPath("pebble")
	if err != nil {
		t.Skip("pebble (Debian package pebble, an ACME test server) is not installed; .ci/run installs it")
	}
	caIP := ips.Next() // pebble and the DNS server
	ca := testutil.NewCA(t, "pebble listener CA")
	dir := t.TempDir()
	chain, key := ca.Issue(t, time.Now().Add(24*time.Hour), caIP)
	writeFile(t, filepath.Join(dir, "cert.pem"), chain)
	writeFile(t, filepath.Join(dir, "key.pem"), key)
	dnsAddr := net.JoinHostPort(caIP, "5353")
	directory := "https://" + caIP + ":14000/dir"

	reg := prometheus.NewRegistry()
	c := newCluster(t, []nodeSpec{{name: "n1", zone: "z1"}}, func(cfg *broker.Config) {
		cfg.Metrics = reg
		cfg.ACME = broker.ACMEConfig{Directory: directory, Roots: ca.Pool, Resolver: dnsAddr,
			RenewBefore: time.Hour, RetryMin: time.Minute}
	})
	n1 := c.node(t, "n1")
	routerIP := n1.Config.BindAddr
	rcfg := router.FastConfig(n1.Store, routerIP, "example.com")
	rcfg.HTTPAddr, rcfg.HTTPSAddr = routerIP+":5002", routerIP+":0"
	rcfg.ClusterSecret = testSecret
	r, err := router.New(rcfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })

	// The test's DNS: www.shop.example points at the router, elsewhere.example
	// at an address that is no member's.
	zone := map[string]string{"www.shop.example.": routerIP, "elsewhere.example.": "127.0.0.250",
		// A CNAME to the app's ha- name in the cloud domain, which the
		// cluster's DNS would answer with the routers' addresses.
		"cname.example.": "ha-shop-ns.example.com.", "ha-shop-ns.example.com.": routerIP}
	testutil.ServeDNS(t, dnsAddr, zone)

	// Certificates are valid for 30 s, and renewed a third of their life
	// before they expire (RenewBefore, an hour, is longer than that):
	// 20 s after they are issued.
	cfgFile := filepath.Join(dir, "pebble.json")
	writeFile(t, cfgFile, fmt.Sprintf(`{"pebble": {"listenAddress": "%s:14000", "managementListenAddress": "%s:15000",
		"certificate": "%s", "privateKey": "%s", "httpPort": 5002, "tlsPort": 5001,
		"ocspResponderURL": "", "externalAccountBindingRequired": false, "certificateValidityPeriod": 30}}`,
		caIP, caIP, filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")))
	cmd := exec.Command(pebble, "-config", cfgFile, "-dnsserver", dnsAddr)
	cmd.Env = append(os.Environ(), "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0")
	var out testutil.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("pebble's output:\n%s", out.String())
		}
	})
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool}}}
	testutil.WaitFor(t, 20*time.Second, "pebble's directory", func() bool {
		resp, err := hc.Get(directory)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, out.String)

	ctx := context.Background()
	newApp(t, c.admin, "ns", "shop", client.AppOptions{})
	for _, h := range []string{"www.shop.example", "elsewhere.example", "cname.example"} {
		if _, _, err := c.admin.AddAlias(ctx, "ns", "shop", h); err != nil {
			t.Fatal(err)
		}
	}

	var aliases []api.Alias
	alias := func(host string) api.Alias {
		aliases, err = c.admin.Aliases(ctx, "ns", "shop")
		for _, a := range aliases {
			if a.ID == host {
				return a
			}
		}
		return api.Alias{}
	}
	dump := func() string { b, _ := json.Marshal(aliases); return fmt.Sprintf("%s %v", b, err) }
	testutil.WaitFor(t, time.Minute, "an ACME certificate for www.shop.example", func() bool {
		a := alias("www.shop.example")
		return a.Cert != nil && a.Cert.ACME
	}, dump)
	first := alias("www.shop.example").Cert
	testutil.WaitFor(t, time.Minute, "an ACME certificate for cname.example", func() bool {
		a := alias("cname.example")
		return a.Cert != nil && a.Cert.ACME
	}, dump)

	// The router serves it, and it chains to pebble's root.
	roots := x509.NewCertPool()
	resp, err := hc.Get("https://" + caIP + ":15000/roots/0")
	if err != nil {
		t.Fatal(err)
	}
	root, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !roots.AppendCertsFromPEM(root) {
		t.Fatalf("pebble's root: %q", root)
	}
	served := func() (*x509.Certificate, error) {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", r.HTTPSAddr(),
			&tls.Config{ServerName: "www.shop.example", RootCAs: roots})
		if err != nil {
			return nil, err
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0], nil
	}
	servedFingerprint := func() string {
		leaf, err := served()
		if err != nil {
			return err.Error()
		}
		return fmt.Sprintf("%x", sha256.Sum256(leaf.Raw))
	}
	var got string
	testutil.WaitFor(t, 10*time.Second, "the router serving the ACME certificate", func() bool {
		// The alias's certificate of the moment: a loaded run may have
		// renewed the first one already.
		got = servedFingerprint()
		cur := alias("www.shop.example").Cert
		return cur != nil && got == cur.Fingerprint
	}, func() string { return got })

	// The alias that points elsewhere has no certificate, and says why.
	if a := alias("elsewhere.example"); a.Cert != nil || a.ACME == nil || !strings.Contains(a.ACME.Error, "127.0.0.250") ||
		!strings.Contains(a.ACME.Error, "not to the cluster") {
		t.Errorf("elsewhere.example: %+v, ACME %+v; want no certificate and why", a, a.ACME)
	}
	// No challenge is left in the store (once a renewal under way, if
	// any, is done).
	testutil.WaitFor(t, 30*time.Second, "no challenge left in the store", func() bool {
		recs, err := c.st.List(state.BucketACMEChallenges)
		return err == nil && len(recs) == 0
	})

	// The leader renews the certificate when it is due, 20 s after it was
	// issued, and the router serves the new one.
	var renewed *api.AliasCert
	testutil.WaitFor(t, time.Minute, "the ACME certificate renewed", func() bool {
		renewed = alias("www.shop.example").Cert
		return renewed != nil && renewed.ACME && renewed.Fingerprint != first.Fingerprint
	}, dump)
	if !renewed.NotAfter.After(first.NotAfter) {
		t.Errorf("renewed certificate expires %s, the first %s", renewed.NotAfter, first.NotAfter)
	}
	testutil.WaitFor(t, 10*time.Second, "the router serving the renewed certificate", func() bool {
		got = servedFingerprint()
		cur := alias("www.shop.example").Cert
		return cur != nil && got == cur.Fingerprint && got != first.Fingerprint
	}, func() string { return got })

	// The leader counted its orders.
	counts := map[string]float64{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "gearbox_broker_acme_orders_total" {
			for _, m := range mf.GetMetric() {
				counts[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
			}
		}
	}
	if counts["obtained"] != 2 || counts["renewed"] < 1 || counts["failed"] < 1 {
		t.Errorf("gearbox_broker_acme_orders_total by outcome: %v; want 2 obtained, renewed and failed", counts)
	}
}

// writeFile writes s to path, mode 0600, or fails the test.
func writeFile(t testing.TB, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}
