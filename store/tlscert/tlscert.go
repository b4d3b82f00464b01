// Package tlscert serves the cluster's TLS certificates to the listeners
// that terminate HTTPS for apps (routers and node fronts): the cloud
// domain's wildcard certificate from files, and the aliases' own
// certificates from the store (state.Cert), whose keys it unseals with
// the cluster secret. A Set picks a handshake's certificate by its server
// name (SNI).
package tlscert

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"gearbox/store"
	"gearbox/store/state"
)

// Set is the certificates a listener serves. The zero Set serves none;
// it is safe for concurrent use.
type Set struct {
	v atomic.Pointer[certs]
}

type certs struct {
	aliases  map[string]*tls.Certificate
	wildcard *tls.Certificate
}

// Update makes aliases (by host name, lower-case) and wildcard (may be
// nil) the certificates served from now on.
func (s *Set) Update(aliases map[string]*tls.Certificate, wildcard *tls.Certificate) {
	s.v.Store(&certs{aliases: aliases, wildcard: wildcard})
}

// Get returns the certificate for a handshake: the alias's own if the
// server name has one, else the wildcard certificate (for the apps'
// names, and a client that sends no name), else an error that fails the
// handshake.
func (s *Set) Get(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	c := s.v.Load()
	if c == nil {
		return nil, errors.New("no certificate")
	}
	name := strings.TrimSuffix(strings.ToLower(hello.ServerName), ".")
	if cert := c.aliases[name]; cert != nil {
		return cert, nil
	}
	if c.wildcard != nil {
		return c.wildcard, nil
	}
	return nil, fmt.Errorf("no certificate for %q", name)
}

// Config returns a server TLS config that takes its certificates from s:
// TLS 1.2 or later, HTTP/1.1.
func (s *Set) Config() *tls.Config {
	return &tls.Config{GetCertificate: s.Get, MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}}
}

// LoadFiles loads the wildcard certificate and key from PEM files; both
// empty is none.
func LoadFiles(certFile, keyFile string) (*tls.Certificate, error) {
	if certFile == "" && keyFile == "" {
		return nil, nil
	}
	if certFile == "" || keyFile == "" {
		return nil, errors.New("--tls-cert and --tls-key go together")
	}
	c, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("load TLS certificate %s: %w", certFile, err)
	}
	return &c, nil
}

// Loader reads the aliases' certificates from the store, unsealing their
// keys with the cluster secret; it keeps what it parsed, so that reading
// them again after every change of the routing table costs little. Not
// safe for concurrent use.
type Loader struct {
	Secret string
	cache  map[string]loaded // by host
}

type loaded struct {
	chain, key string // as recorded
	cert       *tls.Certificate
}

// Load returns the aliases' certificates in st, by host. A record that
// cannot be used is left out, and said in the error, which does not stop
// the others.
func (l *Loader) Load(st *store.Store) (map[string]*tls.Certificate, error) {
	recs, err := st.List(state.BucketCerts)
	if err != nil {
		return nil, err
	}
	out := make(map[string]*tls.Certificate, len(recs))
	next := make(map[string]loaded, len(recs))
	var errs []error
	for _, r := range recs {
		var c state.Cert
		if err := r.Decode(&c); err != nil {
			errs = append(errs, fmt.Errorf("certificate of %s: %w", r.Key, err))
			continue
		}
		if e, ok := l.cache[c.Host]; ok && e.chain == c.Chain && e.key == c.Key {
			out[c.Host], next[c.Host] = e.cert, e
			continue
		}
		key, err := store.OpenSecret(l.Secret, state.CertKeyPurpose, c.Key)
		if err != nil {
			errs = append(errs, fmt.Errorf("certificate of %s: key: %w", c.Host, err))
			continue
		}
		pair, err := tls.X509KeyPair([]byte(c.Chain), key)
		if err != nil {
			errs = append(errs, fmt.Errorf("certificate of %s: %w", c.Host, err))
			continue
		}
		out[c.Host], next[c.Host] = &pair, loaded{chain: c.Chain, key: c.Key, cert: &pair}
	}
	l.cache = next
	return out, errors.Join(errs...)
}

// Challenge returns the answer to the ACME HTTP-01 challenge token for
// host (the request's Host, any case, with or without a port), which the
// broker leader recorded in st (state.BucketACMEChallenges) for as long
// as the challenge runs; ok is false if there is none.
func Challenge(st *store.Store, host, token string) (answer string, ok bool) {
	if token == "" || strings.ContainsAny(token, "/?#") {
		return "", false
	}
	var c state.ACMEChallenge
	if _, err := st.Get(state.BucketACMEChallenges, token, &c); err != nil {
		return "", false
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if !strings.EqualFold(strings.TrimSuffix(host, "."), c.Host) || time.Now().After(c.Expires) {
		return "", false
	}
	return c.KeyAuth, true
}
