package broker

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"time"

	"gearbox/broker/api"
	"gearbox/store"
	"gearbox/store/state"
)

// An alias may carry a TLS certificate of its own, which routers and node
// fronts serve for it by SNI. The owner uploads the PEM chain and key with
// the alias (ssl_certificate, private_key: OpenShift's names) or later;
// the broker checks them, keeps the key sealed with the cluster secret
// (BucketCerts), and appends the add_ssl event (remove_ssl when the
// certificate or its alias goes). The leader raises cert_expiring 14 days
// before a certificate expires.

// CertExpiryWarning is how long before a certificate expires its alert is
// raised.
const CertExpiryWarning = 14 * 24 * time.Hour

// checkedCert is an uploaded certificate that passed the checks.
type checkedCert struct {
	chain string // PEM, as given
	key   []byte // PEM
	leaf  *x509.Certificate
	// untrusted says why no CA this broker trusts signed it, if none
	// did: allowed (a private CA, a self-signed certificate for tests),
	// and said.
	untrusted string
}

// certErr is a certificate upload's error on field.
func certErr(field, format string, args ...any) *apiError {
	return fieldErr(field, 1, format, args...)
}

// checkCert checks a certificate chain and key in PEM for alias host at
// now: parseable, the chain in order (leaf first, each signed by the
// next), the key the leaf's, the leaf covering host, and valid now.
func checkCert(chainPEM, keyPEM, host string, now time.Time) (*checkedCert, *apiError) {
	if strings.TrimSpace(chainPEM) == "" {
		return nil, certErr("ssl_certificate", "Pass the certificate chain in ssl_certificate (PEM, the alias's certificate first) with its private_key.")
	}
	if strings.TrimSpace(keyPEM) == "" {
		return nil, certErr("private_key", "Pass the certificate's private key in private_key (PEM, unencrypted).")
	}
	var certs []*x509.Certificate
	rest := []byte(chainPEM)
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, certErr("ssl_certificate", "ssl_certificate holds a %q PEM block: it takes CERTIFICATE blocks only (the key goes in private_key).", block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, certErr("ssl_certificate", "Certificate %d of the chain cannot be read: %v.", len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, certErr("ssl_certificate", "ssl_certificate holds no PEM certificate (-----BEGIN CERTIFICATE-----).")
	}
	if kb, _ := pem.Decode([]byte(keyPEM)); kb == nil {
		return nil, certErr("private_key", "private_key holds no PEM key (-----BEGIN PRIVATE KEY-----).")
	} else if strings.Contains(kb.Type, "ENCRYPTED") || kb.Headers["Proc-Type"] != "" {
		return nil, certErr("private_key", "The private key is encrypted: upload it decrypted (openssl pkey -in KEY -out PLAIN); gearbox keeps it sealed with the cluster secret.")
	}
	if _, err := tls.X509KeyPair([]byte(chainPEM), []byte(keyPEM)); err != nil {
		return nil, certErr("private_key", "The private key does not go with the certificate: %v.", err)
	}
	leaf := certs[0]
	if err := leaf.VerifyHostname(host); err != nil {
		names := leaf.DNSNames
		if len(names) == 0 && leaf.Subject.CommonName != "" {
			names = []string{leaf.Subject.CommonName + " (common name only, which clients ignore)"}
		}
		return nil, certErr("ssl_certificate", "The certificate does not cover %s: it is for %s.", host, strings.Join(names, ", "))
	}
	if now.After(leaf.NotAfter) {
		return nil, certErr("ssl_certificate", "The certificate expired on %s.", leaf.NotAfter.UTC().Format(time.DateOnly))
	}
	if now.Add(time.Hour).Before(leaf.NotBefore) {
		return nil, certErr("ssl_certificate", "The certificate is not valid before %s.", leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	for i := 0; i+1 < len(certs); i++ {
		if err := certs[i].CheckSignatureFrom(certs[i+1]); err != nil {
			return nil, certErr("ssl_certificate", "Certificate %d of the chain (%s) is not signed by certificate %d (%s): give the chain in order, the alias's certificate first, then each issuer.",
				i+1, certs[i].Subject.CommonName, i+2, certs[i+1].Subject.CommonName)
		}
	}
	c := &checkedCert{chain: chainPEM, key: []byte(keyPEM), leaf: leaf}
	inter := x509.NewCertPool()
	for _, x := range certs[1:] {
		inter.AddCert(x)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: host, Intermediates: inter, CurrentTime: now}); err != nil {
		c.untrusted = err.Error()
	}
	return c, nil
}

// fingerprint is the SHA-256 of c's DER, hex.
func fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}

// certOps returns the ops and add_ssl event that install c for alias
// host of app a, marked as obtained by ACME when acme is set.
func (b *Broker) certOps(a *state.App, host string, c *checkedCert, acme bool) ([]store.Op, state.RoutingEvent, error) {
	sealed, err := store.SealSecret(b.cfg.ClusterSecret, state.CertKeyPurpose, c.key)
	if err != nil {
		return nil, state.RoutingEvent{}, err
	}
	rec := state.Cert{Host: host, App: state.AppKey(a.Domain, a.Name), Chain: c.chain, Key: sealed, NotAfter: c.leaf.NotAfter,
		Fingerprint: fingerprint(c.leaf), UpdatedAt: b.cfg.Now(), ACME: acme}
	e := aliasEvent(a, state.ActionAddSSL, host)
	e.SSL, e.PrivateKey = c.chain, sealed
	return []store.Op{{Bucket: state.BucketCerts, Key: host, Value: rec}}, e, nil
}

// certMessage is what an upload answers about c.
func certMessage(host string, c *checkedCert) string {
	msg := fmt.Sprintf("Certificate for %s installed (expires %s).", host, c.leaf.NotAfter.UTC().Format(time.DateOnly))
	if c.untrusted != "" {
		msg += " Note: no certificate authority this broker trusts signed it (" + c.untrusted + "); browsers may warn."
	}
	return msg
}

// certView is the certificate of an alias as the API shows it.
func certView(rec *state.Cert) *api.AliasCert {
	if rec == nil {
		return nil
	}
	return &api.AliasCert{NotAfter: rec.NotAfter, Fingerprint: rec.Fingerprint, ACME: rec.ACME}
}

// PUT .../applications/{app}/aliases/{alias}: ssl_certificate and
// private_key replace the alias's certificate (or give it one).
func (b *Broker) updateAlias(w http.ResponseWriter, r *http.Request, u *state.User, p params) error {
	a, err := b.app(u, r.PathValue("ns"), r.PathValue("app"))
	if err != nil {
		return err
	}
	host := normalizeAlias(r.PathValue("alias"))
	if !slices.Contains(a.Aliases, host) {
		return notFound("Application '%s' has no alias '%s'.", a.Name, host)
	}
	c, aerr := checkCert(p.str("ssl_certificate"), p.str("private_key"), host, b.cfg.Now())
	if aerr != nil {
		return aerr
	}
	ops, e, err := b.certOps(a, host, c, false)
	if err != nil {
		return err
	}
	if err := b.commit(r.Context(), ops, []state.RoutingEvent{e}); err != nil {
		return err
	}
	b.log.Info().Str("app", a.Name).Str("domain", a.Domain).Str("alias", host).Time("not_after", c.leaf.NotAfter).Msg("alias certificate installed")
	rec := state.Cert{NotAfter: c.leaf.NotAfter, Fingerprint: fingerprint(c.leaf)}
	reply(w, http.StatusOK, "alias", api.Alias{ID: host, HasPrivateSSLCertificate: true, Cert: certView(&rec)}, certMessage(host, c))
	return nil
}

// certLoop raises cert_expiring once for each certificate that expires
// within CertExpiryWarning, while this member leads, every hour and on
// every change of the certificates.
func (b *Broker) certLoop() {
	w := b.st.Watch(state.BucketCerts)
	defer w.Close()
	for {
		if b.isLeader() {
			if err := b.checkCertExpiry(b.ctx); err != nil && b.ctx.Err() == nil && !errors.Is(err, store.ErrClosed) {
				b.log.Warn().Err(err).Msg("check certificate expiry failed")
			}
		}
		select {
		case <-b.ctx.Done():
			return
		case <-w.C():
			w.Next()
		case <-time.After(time.Hour + rand.N(time.Minute)):
		}
	}
}

// checkCertExpiry is one pass of certLoop.
func (b *Broker) checkCertExpiry(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	certs, err := list[state.Cert](b.st, state.BucketCerts)
	if err != nil {
		return err
	}
	now := b.cfg.Now()
	var ops []store.Op
	var alerts []state.Alert
	for _, c := range certs {
		warn := CertExpiryWarning
		if c.ACME {
			// Renewed ahead: the alert says the renewal is overdue,
			// half-way through its window at the latest.
			warn = min(warn, c.NotAfter.Sub(acmeRenewal(c, b.cfg.ACME.RenewBefore))/2)
		}
		if c.ExpiryAlerted == c.Fingerprint || c.NotAfter.Sub(now) > warn {
			continue
		}
		ns, name, _ := strings.Cut(c.App, "/")
		reason := fmt.Sprintf("the certificate of alias %s expires on %s", c.Host, c.NotAfter.UTC().Format(time.DateOnly))
		if now.After(c.NotAfter) {
			reason = fmt.Sprintf("the certificate of alias %s expired on %s", c.Host, c.NotAfter.UTC().Format(time.DateOnly))
		}
		action := fmt.Sprintf("none: upload a new one (gearbox app alias update %s %s --cert FILE --key FILE)", name, c.Host)
		if c.ACME {
			action = fmt.Sprintf("none: its renewal by ACME has failed so far (gearbox app alias list %s says why); fix that, or upload a certificate (gearbox app alias update %s %s --cert FILE --key FILE)", name, name, c.Host)
		}
		alerts = append(alerts, state.Alert{Kind: state.AlertCertExpiring, AppName: name, Namespace: ns, Reason: reason, Action: action})
		c.ExpiryAlerted = c.Fingerprint
		ops = append(ops, store.Op{Bucket: state.BucketCerts, Key: c.Host, Value: c})
		b.log.Warn().Str("alias", c.Host).Str("app", c.App).Time("not_after", c.NotAfter).Msg("alias certificate expires soon")
	}
	if len(ops) == 0 {
		return nil
	}
	return b.commitAll(ctx, ops, nil, alerts)
}
