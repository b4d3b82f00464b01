package internalapi

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// Every member derives the same certificate from the same secret, and
// another one from another secret.
func TestDerivedCertificateIsDeterministic(t *testing.T) {
	a, b := deriveIdentity("secret one"), deriveIdentity("secret one")
	other := deriveIdentity("secret two")
	for _, id := range []*identity{a, b, other} {
		if id.err != nil {
			t.Fatal(id.err)
		}
	}
	if !bytes.Equal(a.cert.Certificate[0], b.cert.Certificate[0]) || !bytes.Equal(a.pub, b.pub) {
		t.Error("two derivations from one secret differ")
	}
	if bytes.Equal(a.pub, other.pub) {
		t.Error("two secrets derive the same key")
	}
	if identityFor("secret one") != identityFor("secret one") {
		t.Error("identity not cached per secret")
	}
}

// serveTLS serves h over ServerTLS(secret) and returns its address.
func serveTLS(t *testing.T, secret string, h http.Handler) string {
	t.Helper()
	srv := httptest.NewUnstartedServer(RequirePeer(secret, h))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.Listener = tls.NewListener(srv.Listener, ServerTLS(secret))
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// Only a client and a server that hold the same secret talk; in every
// other pairing the handshake fails, and Refused recognises the failure
// on the client's side whichever side refused.
func TestMutualTLSHandshakes(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	addr := serveTLS(t, "right", ok)
	noVerify := func(secret string) *tls.Config { c := ClientTLS(secret); c.VerifyConnection = nil; return c }
	tests := []struct {
		name    string
		tls     *tls.Config
		wantOK  bool
		refused bool // Refused(err) on failure
	}{
		{"same secret", ClientTLS("right"), true, false},
		{"other secret", ClientTLS("wrong"), false, true},
		{"empty secret", ClientTLS(""), false, true},
		{"other secret, server not checked", noVerify("wrong"), false, true},
		{"no client certificate", &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true}, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := &http.Transport{Proxy: nil, TLSClientConfig: tt.tls, DisableKeepAlives: true}
			defer tr.CloseIdleConnections()
			resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get(URL(addr, PathMembers))
			if err == nil {
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if !tt.wantOK || string(body) != "ok" {
					t.Fatalf("status %d %q, want a failed handshake", resp.StatusCode, body)
				}
				return
			}
			if tt.wantOK {
				t.Fatal(err)
			}
			if Refused(err) != tt.refused {
				t.Fatalf("Refused(%v) = %v", err, !tt.refused)
			}
		})
	}

	// A client with the secret refuses a server that does not hold it.
	other := serveTLS(t, "wrong", ok)
	tr := Transport("right")
	defer tr.CloseIdleConnections()
	_, err := (&http.Client{Transport: tr}).Get(URL(other, PathMembers))
	if !errors.Is(err, ErrPeerNotInCluster) || !Refused(err) {
		t.Fatalf("server with another secret: %v, want ErrPeerNotInCluster", err)
	}

	// Plain HTTP gets nothing.
	resp, err := (&http.Client{Transport: &http.Transport{Proxy: nil}}).Get("http://" + addr + PathMembers)
	if err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK || bytes.Contains(body, []byte("ok")) {
			t.Fatalf("plain http: %d %q", resp.StatusCode, body)
		}
	}
}
