package internalapi

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"math/big"
	"net"
	"net/http"
	"sync"
	"time"
)

// The internal API runs over mutual TLS whose only key is derived from the
// cluster secret: every member that holds the secret derives the same
// ed25519 key and the same self-signed certificate, presents it on both
// sides of every connection, and accepts a peer only if the peer's
// certificate carries that key (the TLS 1.3 handshake proves that the
// peer holds its private key). So the secret itself never crosses the
// wire, a peer is authenticated by proof of it, and everything the API
// carries (records with password hashes, tokens, env vars; deployment
// archives; gear logs) is encrypted. Neither side checks names or
// certificate authorities: members reach each other at addresses taken
// from serf tags, often bare IPs, and the pinned key is the whole trust.
//
// An empty secret derives a key too, one that anyone can derive: traffic
// is still encrypted, but not authenticated. Members always have a
// secret; only tests run without.

// ServerName is the name in the derived certificate (its CommonName and
// only DNS name), and the server name clients ask for. Nothing checks
// it: the key is what is verified.
const ServerName = "gearbox-internal"

// tlsKeyLabel is the HMAC message that derives the ed25519 seed from the
// secret. Changing it changes every member's key: members with different
// labels cannot talk.
const tlsKeyLabel = "gearbox internal api tls key"

// ErrPeerNotInCluster is returned, within a TLS handshake error, by a
// connection whose peer presented no certificate, or one whose key is not
// derived from this cluster secret: the peer does not hold the secret.
var ErrPeerNotInCluster = errors.New("peer does not hold the cluster secret")

// identity is what a cluster secret derives: the key pair and the
// self-signed certificate built from it.
type identity struct {
	pub  ed25519.PublicKey
	cert tls.Certificate
	err  error // building the certificate failed (cannot happen with a valid template)
}

var (
	identityMu sync.Mutex
	identities = map[string]*identity{} // by secret
)

// identityFor returns the identity derived from secret, built once per
// secret and process.
func identityFor(secret string) *identity {
	identityMu.Lock()
	defer identityMu.Unlock()
	if id, ok := identities[secret]; ok {
		return id
	}
	id := deriveIdentity(secret)
	identities[secret] = id
	return id
}

// deriveIdentity derives the key from HMAC-SHA256(secret, tlsKeyLabel) and
// signs a certificate with a fixed template. ed25519 signatures are
// deterministic, so every member builds the same certificate; only the
// key matters to the peers, though.
func deriveIdentity(secret string) *identity {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(tlsKeyLabel))
	priv := ed25519.NewKeyFromSeed(m.Sum(nil))
	pub := priv.Public().(ed25519.PublicKey)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: ServerName},
		DNSNames:              []string{ServerName},
		NotBefore:             time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:              time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		return &identity{pub: pub, err: err}
	}
	return &identity{pub: pub, cert: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv}}
}

func (id *identity) certificate() (*tls.Certificate, error) {
	if id.err != nil {
		return nil, id.err
	}
	return &id.cert, nil
}

// holdsSecret reports whether cs's peer presented a certificate with
// id's key. The handshake has already checked that the peer holds the
// certificate's private key.
func (id *identity) holdsSecret(cs tls.ConnectionState) bool {
	if len(cs.PeerCertificates) == 0 {
		return false
	}
	pub, ok := cs.PeerCertificates[0].PublicKey.(ed25519.PublicKey)
	return ok && bytes.Equal(pub, id.pub)
}

func (id *identity) verify(cs tls.ConnectionState) error {
	if !id.holdsSecret(cs) {
		return ErrPeerNotInCluster
	}
	return nil
}

// ServerTLS returns the TLS config of a member's internal API listener
// for the cluster secret: TLS 1.3 only, the derived certificate, and a
// client certificate required and accepted only with the derived key, so
// that a client without the secret fails the handshake and gets nothing.
// It offers HTTP/1.1 only. Serve with tls.NewListener(ln, ServerTLS(s)).
func ServerTLS(secret string) *tls.Config {
	id := identityFor(secret)
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return id.certificate()
		},
		ClientAuth: tls.RequireAnyClientCert,
		// VerifyConnection, unlike VerifyPeerCertificate, also runs on
		// resumed sessions.
		VerifyConnection: id.verify,
	}
}

// ClientTLS returns the TLS config of a client of the internal API for the
// cluster secret: TLS 1.3 only, the derived certificate presented, and the
// server accepted only if its certificate has the derived key, whatever
// address it was reached at (names and CAs are not checked; the pinned
// key replaces them).
func ClientTLS(secret string) *tls.Config {
	id := identityFor(secret)
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		ServerName: ServerName,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return id.certificate()
		},
		InsecureSkipVerify: true, // replaced by VerifyConnection's pinned key
		VerifyConnection:   id.verify,
	}
}

// PeerTLS returns one TLS config for both ends of a connection between
// two members that is not the internal API (the routes between the
// nodes' NATS servers): TLS 1.3 only, the derived certificate presented
// on either side, a client certificate required, and the peer accepted
// only with the derived key, as ServerTLS and ClientTLS do. Here the
// derived certificate is also the only root of trust, so that the peer's
// chain is verified the ordinary way (servers that warn about
// InsecureSkipVerify have nothing to warn about); the pinned key is
// checked as well. Callers that dial set nothing more: ServerName is set.
func PeerTLS(secret string) *tls.Config {
	id := identityFor(secret)
	pool := x509.NewCertPool()
	if id.err == nil {
		if c, err := x509.ParseCertificate(id.cert.Certificate[0]); err == nil {
			pool.AddCert(c)
		}
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		ServerName: ServerName,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return id.certificate()
		},
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return id.certificate()
		},
		RootCAs:          pool,
		ClientCAs:        pool,
		ClientAuth:       tls.RequireAndVerifyClientCert,
		VerifyConnection: id.verify,
	}
}

// Transport returns a new transport for calls to the internal API with
// the cluster secret (ClientTLS), over HTTP/1.1, with no proxy, and with
// bounded connect (5 s), handshake (10 s) and wait for the response's
// headers (30 s); idle connections are kept 90 s. Callers may adjust it
// (DisableKeepAlives, for one-off calls) before first use. Call URLs made
// with URL.
func Transport(secret string) *http.Transport {
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       ClientTLS(secret),
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConnsPerHost:   4,
	}
}

// URL is the URL of path (with its query, if any) on the internal API at
// addr (host:port): https://addr/path.
func URL(addr, path string) string { return "https://" + addr + path }

// Refused reports whether err, from a call to the internal API, means that
// the TLS handshake failed on the cluster secret: the peer's certificate
// is not derived from ours (ErrPeerNotInCluster), or the peer refused
// ours (a bad certificate alert, or certificate required).
func Refused(err error) bool {
	if errors.Is(err, ErrPeerNotInCluster) {
		return true
	}
	// crypto/tls reports the peer's alert as a *net.OpError with Op
	// "remote error" around an unexported alert type: its text is all
	// there is to go by.
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "remote error" && oe.Err != nil {
		switch oe.Err.Error() {
		case "tls: bad certificate", "tls: certificate required":
			return true
		}
	}
	return false
}

// RequirePeer wraps h, the internal API's handler, so that only requests
// that came over TLS from a peer holding the cluster secret reach it;
// others get 401. Served over ServerTLS(secret), every request passes
// (the handshake has refused the others already); the check makes a
// handler mounted on the wrong listener refuse everything rather than
// serve it.
func RequirePeer(secret string, h http.Handler) http.Handler {
	id := identityFor(secret)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || !id.holdsSecret(*r.TLS) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			json.NewEncoder(w).Encode(map[string]string{"error": "cluster secret required: call over mutual TLS with the certificate derived from it"})
			return
		}
		h.ServeHTTP(w, r)
	})
}
