package store

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"gearbox/internal/testutil"
	"gearbox/store/internalapi"
)

func withSecret(secret string) memberOpts {
	return func(c *Config) { c.ClusterSecret = secret }
}

func withGossipKey(key []byte) memberOpts {
	return func(c *Config) { c.EncryptKey = key }
}

// TestInternalAPIRequiresTheSecret calls every endpoint of a member's
// internal API without proof of the cluster secret: over plain HTTP, over
// TLS without a client certificate, and over TLS with the certificate
// derived from another secret (the client does not check the server, so
// that the refusal is the server's). Each gets nothing: no answer, or no
// data, and no change of state. The handler itself, reached without TLS,
// answers 401. With the secret each call succeeds.
func TestInternalAPIRequiresTheSecret(t *testing.T) {
	const secret = "s3cret-cluster-key"
	m := startMember(t, "m1", filepath.Join(t.TempDir(), "m1"), ips.Next(), withSecret(secret))
	st := m.st
	if _, err := st.Put(context.Background(), "apps", "private", "do not leak"); err != nil {
		t.Fatal(err)
	}
	// Newer than "private", and within the clock skew a member accepts.
	injectedWall := strconv.FormatInt(time.Now().Add(time.Second).UnixMilli(), 10)
	putBody := func(key string) string {
		return `{"records":[{"b":"apps","k":"` + key + `","v":"injected","ver":{"w":` + injectedWall + `,"m":"intruder"}}]}`
	}
	endpoints := []struct {
		method, path, body string
	}{
		{http.MethodGet, internalapi.PathMembers, ""},
		{http.MethodGet, internalapi.PathStoreStatus, ""},
		{http.MethodPost, internalapi.PathStoreDigest, `{"prefixes":[""]}`},
		{http.MethodPost, internalapi.PathStoreSummaries, `{"prefixes":[""]}`},
		{http.MethodPost, internalapi.PathStoreGet, `{"refs":[{"b":"apps","k":"private"}]}`},
		{http.MethodPost, internalapi.PathStorePut, putBody("private")},
		{http.MethodPost, internalapi.PathStorePut, putBody("injected")},
	}
	otherSecret := internalapi.ClientTLS("wrong")
	otherSecret.VerifyConnection = nil
	refused := []struct {
		name   string
		scheme string
		tls    *tls.Config
		header string
	}{
		{"plain http", "http", nil, ""},
		{"plain http with the secret as bearer", "http", nil, "Bearer " + secret},
		{"tls without a client certificate", "https", &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true}, ""},
		{"tls without a client certificate, secret as bearer", "https", &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true}, "Bearer " + secret},
		{"tls with another secret's certificate", "https", otherSecret, ""},
		{"tls 1.2 with another secret's certificate", "https", func() *tls.Config {
			c := otherSecret.Clone()
			c.MinVersion, c.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
			return c
		}(), ""},
	}
	do := func(hc *http.Client, scheme, method, path, body, header string) (int, string, error) {
		req, err := http.NewRequest(method, scheme+"://"+m.addr+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if header != "" {
			req.Header.Set("Authorization", header)
		}
		resp, err := hc.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), err
	}
	digest, n := st.Digest(), st.Len()
	for _, c := range refused {
		t.Run(c.name, func(t *testing.T) {
			tr := &http.Transport{Proxy: nil, TLSClientConfig: c.tls, DisableKeepAlives: true}
			defer tr.CloseIdleConnections()
			hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
			for _, e := range endpoints {
				code, body, err := do(hc, c.scheme, e.method, e.path, e.body, c.header)
				if err == nil && code == http.StatusOK {
					t.Errorf("%s %s: status 200: %s", e.method, e.path, body)
				}
				if strings.Contains(body, "do not leak") || strings.Contains(body, "private") || strings.Contains(body, `"m1"`) {
					t.Errorf("%s %s: refused response leaks state: %s", e.method, e.path, body)
				}
			}
		})
	}
	t.Run("handler without tls", func(t *testing.T) {
		h := internalapi.RequirePeer(secret, st.Handler())
		for _, e := range endpoints {
			req := httptest.NewRequest(e.method, e.path, strings.NewReader(e.body))
			req.Header.Set("Authorization", "Bearer "+secret)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusUnauthorized || strings.Contains(rec.Body.String(), "private") {
				t.Errorf("%s %s: %d %s, want 401", e.method, e.path, rec.Code, rec.Body)
			}
		}
	})
	if st.Digest() != digest || st.Len() != n {
		t.Fatalf("refused calls changed the state: %d records, was %d", st.Len(), n)
	}
	var got string
	if _, err := st.Get("apps", "private", &got); err != nil || got != "do not leak" {
		t.Fatalf("record after refused puts: %q, %v", got, err)
	}
	if _, err := st.Get("apps", "injected", nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("refused put wrote a record: %v", err)
	}

	// With the secret, the same calls go through: the refusals above came
	// from the missing proof, not from a wrong path.
	tr := internalapi.Transport(secret)
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	for _, e := range endpoints[:5] {
		if code, body, err := do(hc, "https", e.method, e.path, e.body, ""); err != nil || code != http.StatusOK {
			t.Errorf("%s %s with the secret: %d %s %v", e.method, e.path, code, body, err)
		}
	}
	if code, body, err := do(hc, "https", http.MethodPost, internalapi.PathStorePut, putBody("injected"), ""); err != nil || code != http.StatusOK {
		t.Fatalf("put with the secret: %d %s %v", code, body, err)
	}
	if _, err := st.Get("apps", "injected", nil); err != nil {
		t.Fatalf("put with the secret did not write: %v", err)
	}
}

// TestMemberWithWrongSecretCannotReadOrWrite lets a member with another
// cluster secret join the serf pool (gossip is not encrypted here). Its
// events are rejected, it cannot decode the cluster's, and anti-entropy
// fails both ways, so the states stay disjoint.
func TestMemberWithWrongSecretCannotReadOrWrite(t *testing.T) {
	ctx := context.Background()
	fast := func(c *Config) { c.AntiEntropyInterval = 150 * time.Millisecond }
	ms := startCluster(t, 2, withSecret("right secret"), fast)
	x := startMember(t, "x", filepath.Join(t.TempDir(), "x"), ips.Next(), withSecret("wrong secret"), fast)
	if n, err := x.st.Join([]string{ms[0].gossipAddr(), ms[1].gossipAddr()}); n != 2 {
		t.Fatalf("join the serf pool: reached %d of 2: %v", n, err)
	}
	testutil.WaitFor(t, 20*time.Second, "x alive in everyone's view", func() bool {
		for _, m := range ms {
			alive := false
			for _, mm := range m.st.Members() {
				alive = alive || (mm.Name == "x" && mm.Status == StatusAlive)
			}
			if !alive {
				return false
			}
		}
		return true
	})

	base := []uint64{ms[0].st.Stats().Rejected, ms[1].st.Stats().Rejected, x.st.Stats().Rejected}
	const writes = 3
	for i := range writes {
		if _, err := x.st.Put(ctx, "apps", "from-x-"+string(rune('a'+i)), i); err != nil {
			t.Fatal(err)
		}
		if _, err := ms[i%2].st.Put(ctx, "apps", "from-cluster-"+string(rune('a'+i)), i); err != nil {
			t.Fatal(err)
		}
	}
	testutil.WaitFor(t, 20*time.Second, "every member to reject the other side's events", func() bool {
		for i, m := range []*testMember{ms[0], ms[1], x} {
			if m.st.Stats().Rejected < base[i]+writes {
				return false
			}
		}
		return true
	})

	// Anti-entropy fails both ways, with the sentinel error.
	if _, err := x.st.SyncWith(ctx, ms[0].addr); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("x syncs with m00: %v, want ErrUnauthorized", err)
	}
	if _, err := ms[0].st.SyncWith(ctx, x.addr); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("m00 syncs with x: %v, want ErrUnauthorized", err)
	}
	if _, _, err := FetchMembers(ctx, nil, ms[1].addr, "wrong secret"); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("x asks m01 for members: %v, want ErrUnauthorized", err)
	}
	// Give background anti-entropy time to run: the cluster members
	// complete rounds with each other, while every round with x, in
	// either direction, fails.
	for _, m := range ms {
		before := m.st.Stats().SyncRounds
		testutil.WaitFor(t, 20*time.Second, m.cfg.Name+" to complete three more anti-entropy rounds", func() bool {
			return m.st.Stats().SyncRounds >= before+3
		})
	}
	testutil.WaitFor(t, 20*time.Second, "the cluster to converge", func() bool { return converged(ms) })

	if got := x.st.Stats().SyncRounds; got != 0 {
		t.Fatalf("x completed %d anti-entropy rounds", got)
	}
	for _, m := range append(ms, x) {
		for _, r := range mustDump(t, m.st) {
			if fromX := strings.HasPrefix(r.Key, "from-x-"); fromX != (m == x) {
				t.Fatalf("%s holds %s", m.cfg.Name, r.Key)
			}
		}
	}
	if x.st.Len() != writes || ms[0].st.Len() != writes {
		t.Fatalf("x holds %d records, m00 %d; want %d each", x.st.Len(), ms[0].st.Len(), writes)
	}
}

// TestMemberWithWrongGossipKeyCannotJoin runs an encrypted cluster and
// members with another key, or none, that try to join it.
func TestMemberWithWrongGossipKeyCannotJoin(t *testing.T) {
	ctx := context.Background()
	key := bytes.Repeat([]byte{7}, 32)
	const secret = "same secret everywhere"
	ms := startCluster(t, 2, withGossipKey(key), withSecret(secret))
	if _, err := ms[0].st.Put(ctx, "apps", "before", 1); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		key      []byte
		wantJoin bool
	}{
		{"same key", key, true},
		{"other 16-byte key", bytes.Repeat([]byte{7}, 16), false},
		{"other 32-byte key", append(bytes.Repeat([]byte{7}, 31), 8), false},
		{"no key", nil, false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := "joiner" + string(rune('a'+i))
			x := startMember(t, name, filepath.Join(t.TempDir(), name), ips.Next(), withGossipKey(tt.key), withSecret(secret))
			n, err := x.st.Join([]string{ms[0].gossipAddr(), ms[1].gossipAddr()})
			if tt.wantJoin {
				if err != nil || n != 2 {
					t.Fatalf("join with the cluster's key: reached %d, %v", n, err)
				}
				testutil.WaitFor(t, 20*time.Second, "the records to reach the new member", func() bool { return converged(append(ms, x)) })
				return
			}
			if err == nil || n != 0 {
				t.Fatalf("join with the wrong key: reached %d, err %v; want an error", n, err)
			}
			// A write that reaches both cluster members by gossip does not
			// reach x, and nobody lists x.
			key := "after-" + name
			if _, err := ms[1].st.Put(ctx, "apps", key, 1); err != nil {
				t.Fatal(err)
			}
			testutil.WaitFor(t, 20*time.Second, key+" on both cluster members", func() bool {
				_, err := ms[0].st.Get("apps", key, nil)
				return err == nil && converged(ms)
			})
			if x.st.Len() != 0 {
				t.Fatalf("%s holds %d records", name, x.st.Len())
			}
			if got := len(x.st.Members()); got != 1 {
				t.Fatalf("%s sees %d members", name, got)
			}
			for _, m := range ms {
				for _, mm := range m.st.Members() {
					if mm.Name == name {
						t.Fatalf("%s lists %s as %s", m.cfg.Name, name, mm.Status)
					}
				}
			}
			x.stop()
		})
	}
}
