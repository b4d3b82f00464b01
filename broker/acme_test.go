package broker

import (
	"context"
	"errors"
	"net"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"gearbox/broker/api"
	"gearbox/internal/testutil"
	"gearbox/store"
	"gearbox/store/state"
)

// The leader's choice of aliases for ACME: those without a certificate
// and those whose ACME certificate is due for renewal, never one the
// owner uploaded, and not before a failed one's next try. The exchange
// with a certificate authority is tested against pebble in
// internal/integration (TestACMECertificates).
func TestACMEDue(t *testing.T) {
	c := newCluster(t, clusterOpts{nodes: []nodeSpec{{name: "n1", zone: "z1"}}})
	c.domain(t, admin, "ns")
	c.createApp(t, admin, "ns", "web", nil)
	hosts := []string{"own.example", "fresh.example", "due.example", "none.example", "wait.example", "short.example"}
	for _, h := range hosts {
		if r := c.do(t, "POST", appPath("ns", "web", "/aliases"), admin, url.Values{"id": {h}}); r.code != 201 {
			t.Fatalf("add alias %s: %d %s", h, r.code, r.text())
		}
	}
	// The loop is off (no directory at New); the test runs its steps.
	c.b.cfg.ACME = ACMEConfig{Directory: "https://ca.invalid/dir"}
	c.b.cfg.ACME.withDefaults()
	now := c.clock.Now()
	day := 24 * time.Hour
	put := func(bucket, key string, v any) {
		t.Helper()
		if _, err := c.st.Put(context.Background(), bucket, key, v); err != nil {
			t.Fatal(err)
		}
	}
	put(state.BucketCerts, "own.example", state.Cert{Host: "own.example", App: "ns/web", NotAfter: now.Add(day)})
	put(state.BucketACME, "own.example", state.ACMEStatus{Host: "own.example", App: "ns/web", Error: "x", Failures: 1, NextTry: now})
	put(state.BucketCerts, "fresh.example", state.Cert{Host: "fresh.example", App: "ns/web", NotAfter: now.Add(60 * day), ACME: true})
	put(state.BucketCerts, "due.example", state.Cert{Host: "due.example", App: "ns/web", NotAfter: now.Add(10 * day), ACME: true})
	// A certificate of a day, 9 hours old: within 30 days of its expiry,
	// but renewed a third of its life ahead, in 7 hours.
	short := state.Cert{Host: "short.example", App: "ns/web", NotAfter: now.Add(15 * time.Hour), UpdatedAt: now.Add(-9 * time.Hour), ACME: true}
	put(state.BucketCerts, "short.example", short)
	retry := now.Add(time.Hour)
	put(state.BucketACME, "wait.example", state.ACMEStatus{Host: "wait.example", App: "ns/web", Error: "x", Failures: 1, NextTry: retry})
	// A removed alias keeps its wait (removing it and adding it again
	// does not reset the back-off) until the wait is over.
	put(state.BucketACME, "gone.example", state.ACMEStatus{Host: "gone.example", App: "ns/web", Error: "x", Failures: 1, NextTry: retry})
	put(state.BucketACME, "gone-long.example", state.ACMEStatus{Host: "gone-long.example", App: "ns/web", Error: "x", Failures: 1, NextTry: now.Add(-time.Minute)})
	put(state.BucketACMEChallenges, "old", state.ACMEChallenge{Token: "old", Host: "none.example", Expires: now.Add(-time.Minute)})
	put(state.BucketACMEChallenges, "new", state.ACMEChallenge{Token: "new", Host: "none.example", Expires: now.Add(time.Minute)})

	want, next, err := c.b.acmeDue()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range want {
		got = append(got, w.host)
	}
	// Renewals first.
	if !slices.Equal(got, []string{"due.example", "none.example"}) || !next.Equal(retry) {
		t.Errorf("due %v, next %s; want due.example then none.example, next %s", got, next, retry)
	}
	if due := acmeRenewal(short, DefaultACMERenewBefore); !due.Equal(now.Add(7 * time.Hour)) {
		t.Errorf("a day's certificate renewed at %s, want 7 hours from now (%s)", due, now.Add(7*time.Hour))
	}
	for _, tt := range []struct {
		bucket, key string
		kept        bool
	}{
		{state.BucketACME, "gone.example", true}, {state.BucketACME, "gone-long.example", false},
		{state.BucketACME, "own.example", false}, {state.BucketACME, "wait.example", true},
		{state.BucketACMEChallenges, "old", false}, {state.BucketACMEChallenges, "new", true},
	} {
		if _, err := c.st.GetRecord(tt.bucket, tt.key); (err == nil) != tt.kept {
			t.Errorf("%s/%s: %v, want kept %v", tt.bucket, tt.key, err, tt.kept)
		}
	}

	// A failure is recorded with its reason, and each one in a row
	// doubles the wait before the next try.
	w := want[slices.IndexFunc(want, func(w acmeWant) bool { return w.host == "none.example" })]
	for i, wait := range []time.Duration{DefaultACMERetryMin, 2 * DefaultACMERetryMin, 4 * DefaultACMERetryMin} {
		before := c.clock.Now()
		at, err := c.b.acmeRecord(context.Background(), w, nil, errors.New("refused by the CA"))
		if err != nil {
			t.Fatal(err)
		}
		if d := at.Sub(before); d < wait || d > wait+time.Minute {
			t.Errorf("failure %d: next try in %s, want %s", i+1, d, wait)
		}
	}
	var app state.App
	if _, err := c.st.Get(state.BucketApps, "ns/web", &app); err != nil {
		t.Fatal(err)
	}
	views := aliasViews(c.st, &app)
	i := slices.IndexFunc(views, func(v api.Alias) bool { return v.ID == "none.example" })
	if a := views[i].ACME; a == nil || a.Failures != 3 || !strings.Contains(a.Error, "refused by the CA") {
		t.Errorf("the alias's view: %+v", a)
	}

	// An issued certificate becomes the alias's, marked ACME, with its
	// add_ssl event; the failure's status goes.
	ca := testutil.NewCA(t, "ACME test CA")
	chain, key := ca.Issue(t, now.Add(90*day), "none.example")
	if _, err := c.b.acmeRecord(context.Background(), w, &acmeIssued{chain: chain, key: []byte(key)}, nil); err != nil {
		t.Fatal(err)
	}
	var cert state.Cert
	if _, err := c.st.Get(state.BucketCerts, "none.example", &cert); err != nil || !cert.ACME || cert.Chain != chain ||
		strings.Contains(cert.Key, "PRIVATE KEY") {
		t.Errorf("certificate record %+v, %v: want the chain, marked ACME, the key sealed", cert, err)
	}
	if _, err := c.st.GetRecord(state.BucketACME, "none.example"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("status after success: %v, want it deleted", err)
	}
	if es := c.events(t); len(es) == 0 {
		t.Error("no routing event")
	} else if e := es[len(es)-1]; e.Action != state.ActionAddSSL || e.Alias != "none.example" {
		t.Errorf("last routing event %+v, want add_ssl of none.example", e)
	}

	// A certificate the owner uploaded meanwhile is not replaced.
	chain2, key2 := ca.Issue(t, now.Add(90*day), "own.example")
	if _, err := c.b.acmeRecord(context.Background(), acmeWant{app: w.app, host: "own.example"}, &acmeIssued{chain: chain2, key: []byte(key2)}, nil); err != nil {
		t.Fatal(err)
	}
	var own state.Cert
	if _, err := c.st.Get(state.BucketCerts, "own.example", &own); err != nil || own.ACME || own.Chain == chain2 {
		t.Errorf("the owner's certificate was replaced: %+v, %v", own, err)
	}
}

// An alias points at the cluster when its DNS has a CNAME chain through
// the cloud domain, or addresses of a router or of the app's own names
// (routers behind NAT); anything else, or no answer, is said.
func TestACMEPointsHere(t *testing.T) {
	dnsAddr := net.JoinHostPort(ips.Next(), "5353")
	testutil.ServeDNS(t, dnsAddr, map[string]string{
		"a.example.":             "127.0.0.200",
		"cname.example.":         "www.cname.example.",
		"www.cname.example.":     "ha-web-ns.example.com.",
		"ha-web-ns.example.com.": "lb.router.example.", // --router-hostname
		"lb.router.example.":     "192.0.2.7",          // the routers' public address
		"nat.example.":           "192.0.2.7",
		"far.example.":           "127.0.0.250",
		"outside.example.":       "lb.elsewhere.example.",
		"lb.elsewhere.example.":  "127.0.0.250",
	})
	b := &Broker{cfg: Config{Domain: "example.com", HAPrefix: "ha-", ACME: ACMEConfig{Resolver: dnsAddr}}}
	app := &state.App{Name: "web", Domain: "ns"}
	targets := []acmeTarget{{ip: "127.0.0.200"}, {ip: "127.0.0.201"}}
	ctx := context.Background()
	for host, want := range map[string]string{
		"a.example":       "",
		"cname.example":   "",
		"nat.example":     "",
		"far.example":     "far.example resolves to 127.0.0.250, not to the cluster: point it at the app with a CNAME to its name in example.com, or with A/AAAA records of the routers (127.0.0.200, 127.0.0.201)",
		"outside.example": "outside.example resolves to 127.0.0.250, not to the cluster",
		"none.example":    "look up none.example: NXDOMAIN",
	} {
		err := b.acmePointsHere(ctx, app, host, targets)
		if want == "" && err != nil || want != "" && (err == nil || !strings.Contains(err.Error(), want)) {
			t.Errorf("%s: %v, want %q", host, err, want)
		}
	}
}
