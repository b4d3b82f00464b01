package broker

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/crypto/acme"

	"gearbox/store"
	"gearbox/store/state"
)

// With ACME on (Config.ACME.Directory), the broker leader obtains a
// certificate from the cluster's ACME certificate authority for every
// alias that has none uploaded and whose DNS points at the cluster, and
// renews it ACMEConfig.RenewBefore its expiry. It proves control of the
// name by HTTP-01: the challenge's answer goes in the store
// (BucketACMEChallenges), from which every router and node front answers
// /.well-known/acme-challenge/TOKEN for that name, so it does not matter
// which of them the authority reaches. An issued certificate becomes the
// alias's certificate (BucketCerts, marked ACME) with its add_ssl event,
// as an upload does; an upload replaces it and ACME leaves the alias
// alone from then on.
//
// golang.org/x/crypto/acme's client is used rather than its autocert
// manager: autocert orders from within a TLS handshake of the process
// that serves the name and keeps tls-alpn-01 answers in its memory,
// whereas here the leader orders and any router answers.

// ACMEConfig configures ACME. The zero value is off.
type ACMEConfig struct {
	// Directory is the certificate authority's ACME directory URL
	// (--acme-directory), such as Let's Encrypt's
	// https://acme-v02.api.letsencrypt.org/directory. Empty: ACME is off.
	Directory string
	// Email is the account's contact (--acme-email); optional.
	Email string
	// Roots, if set, are the only CAs trusted for the directory's HTTPS
	// (--acme-ca-file); default the system's.
	Roots *x509.CertPool
	// Resolver is the DNS server, host:port, asked where aliases point
	// (--acme-resolver); default the first server of /etc/resolv.conf.
	Resolver string
	// RenewBefore is how long before its expiry a certificate is renewed.
	// Default 30 days.
	RenewBefore time.Duration
	// Interval is how often the leader looks for certificates to obtain
	// or renew, beside every change of the apps and certificates.
	// Default 1 h.
	Interval time.Duration
	// RetryMin is the wait after a first failure for one alias, doubled
	// after each further failure up to 12 h. Default 5 min.
	RetryMin time.Duration
}

// Defaults of ACMEConfig.
const (
	DefaultACMERenewBefore = 30 * 24 * time.Hour
	DefaultACMEInterval    = time.Hour
	DefaultACMERetryMin    = 5 * time.Minute
	acmeRetryMax           = 12 * time.Hour
	// acmeOrderTimeout bounds one alias's order, from the DNS check to
	// the issued certificate.
	acmeOrderTimeout = 5 * time.Minute
	// acmeChallengeTTL is how long a challenge's answer is served.
	acmeChallengeTTL = 10 * time.Minute
)

func (c *ACMEConfig) withDefaults() {
	if c.RenewBefore <= 0 {
		c.RenewBefore = DefaultACMERenewBefore
	}
	if c.Interval <= 0 {
		c.Interval = DefaultACMEInterval
	}
	if c.RetryMin <= 0 {
		c.RetryMin = DefaultACMERetryMin
	}
}

// acmeLoop obtains and renews certificates while this member leads.
func (b *Broker) acmeLoop() {
	if b.cfg.ACME.Directory == "" {
		return
	}
	w := b.st.Watch(state.BucketApps, state.BucketCerts, state.BucketRouters)
	defer w.Close()
	members := b.st.MemberChanges()
	for {
		wait := b.cfg.ACME.Interval + mrand.N(b.cfg.ACME.Interval/10+1)
		if b.isLeader() {
			next, err := b.acmePass(b.ctx)
			if err != nil && b.ctx.Err() == nil && !errors.Is(err, store.ErrClosed) {
				b.log.Warn().Err(err).Msg("acme: pass failed")
			}
			if d := next.Sub(b.cfg.Now()); !next.IsZero() && d < wait {
				wait = max(d, time.Second)
			}
		}
		select {
		case <-b.ctx.Done():
			return
		case <-w.C():
			w.Next()
		case <-members:
		case <-time.After(wait):
		}
	}
}

// acmeWant is an alias that ACME should obtain a certificate for now.
type acmeWant struct {
	app  state.App
	host string
}

// acmePass obtains the certificates due, one alias at a time, and
// returns when the next one is due (zero: none).
func (b *Broker) acmePass(ctx context.Context) (time.Time, error) {
	want, next, err := b.acmeDue()
	if err != nil {
		return time.Time{}, err
	}
	for _, w := range want {
		if ctx.Err() != nil || !b.isLeader() {
			return next, ctx.Err()
		}
		octx, cancel := context.WithTimeout(ctx, acmeOrderTimeout)
		cert, oerr := b.acmeObtain(octx, &w.app, w.host)
		cancel()
		retry, err := b.acmeRecord(ctx, w, cert, oerr)
		if err != nil {
			return next, err
		}
		if !retry.IsZero() && (next.IsZero() || retry.Before(next)) {
			next = retry
		}
	}
	return next, nil
}

// acmeDue lists the aliases whose certificate ACME should obtain or renew
// now, renewals first, and when the next one is due after them (a
// renewal, or a try after a failure). It deletes what is no longer
// needed: challenges past their expiry, the status of an alias that has
// a certificate of its owner's, and that of an alias that is gone once
// its wait is over (removing and adding an alias again does not reset
// its back-off).
func (b *Broker) acmeDue() ([]acmeWant, time.Time, error) {
	apps, err := list[state.App](b.st, state.BucketApps)
	if err != nil {
		return nil, time.Time{}, err
	}
	statuses, err := list[state.ACMEStatus](b.st, state.BucketACME)
	if err != nil {
		return nil, time.Time{}, err
	}
	challenges, err := list[state.ACMEChallenge](b.st, state.BucketACMEChallenges)
	if err != nil {
		return nil, time.Time{}, err
	}
	now := b.cfg.Now()
	byHost := make(map[string]state.ACMEStatus, len(statuses))
	for _, s := range statuses {
		if s.Host != "" {
			byHost[s.Host] = s
		}
	}
	var renewals, news []acmeWant
	var next time.Time
	soonest := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	var ops []store.Op
	aliases := make(map[string]string) // host -> app key
	for _, a := range apps {
		key := state.AppKey(a.Domain, a.Name)
		for _, h := range a.Aliases {
			aliases[h] = key
			var c state.Cert
			_, err := b.st.Get(state.BucketCerts, h, &c)
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return nil, time.Time{}, err
			}
			have := err == nil && c.App == key
			if have && !c.ACME {
				if _, ok := byHost[h]; ok {
					ops = append(ops, store.Op{Bucket: state.BucketACME, Key: h, Delete: true})
				}
				continue // the owner's own
			}
			if have {
				if due := acmeRenewal(c, b.cfg.ACME.RenewBefore); now.Before(due) {
					soonest(due)
					continue
				}
			}
			if s, ok := byHost[h]; ok && now.Before(s.NextTry) {
				soonest(s.NextTry)
				continue
			}
			if have {
				renewals = append(renewals, acmeWant{app: a, host: h})
			} else {
				news = append(news, acmeWant{app: a, host: h})
			}
		}
	}
	for h, s := range byHost {
		if aliases[h] == "" && !now.Before(s.NextTry) {
			ops = append(ops, store.Op{Bucket: state.BucketACME, Key: h, Delete: true})
		}
	}
	for _, c := range challenges {
		if c.Token != "" && now.After(c.Expires) {
			ops = append(ops, store.Op{Bucket: state.BucketACMEChallenges, Key: c.Token, Delete: true})
		}
	}
	if len(ops) > 0 {
		if err := b.commit(b.ctx, ops, nil); err != nil {
			return nil, time.Time{}, err
		}
	}
	return append(renewals, news...), next, nil
}

// acmeRenewal is when ACME certificate c is renewed: renewBefore its
// expiry, or a third of its lifetime (from when it was recorded) before
// it, whichever is later, so that a certificate that lives shorter than
// renewBefore (a private authority's, of a day) is not ordered again at
// once.
func acmeRenewal(c state.Cert, renewBefore time.Duration) time.Time {
	if life := c.NotAfter.Sub(c.UpdatedAt); !c.UpdatedAt.IsZero() && life/3 < renewBefore {
		renewBefore = life / 3
	}
	return c.NotAfter.Add(-renewBefore)
}

// acmeIssued is a certificate the authority issued, with its key.
type acmeIssued struct {
	chain string
	key   []byte
}

// acmeRecord stores the outcome of w's order: the certificate, or why
// there is none and when it is tried again, which it returns. The alias
// must still be the app's and have no uploaded certificate.
func (b *Broker) acmeRecord(ctx context.Context, w acmeWant, issued *acmeIssued, oerr error) (time.Time, error) {
	if oerr != nil && ctx.Err() != nil {
		return time.Time{}, nil // stopped, not failed
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.isLeader() {
		// Leadership moved during the order: the new leader decides, on
		// its copy, which may hold an upload this one has not seen.
		return time.Time{}, nil
	}
	key := state.AppKey(w.app.Domain, w.app.Name)
	var a state.App
	if _, err := b.st.Get(state.BucketApps, key, &a); errors.Is(err, store.ErrNotFound) {
		return time.Time{}, nil
	} else if err != nil {
		return time.Time{}, err
	}
	if !slices.Contains(a.Aliases, w.host) {
		return time.Time{}, nil
	}
	var old state.Cert
	if _, err := b.st.Get(state.BucketCerts, w.host, &old); err == nil && old.App == key && !old.ACME {
		return time.Time{}, nil // uploaded meanwhile
	}
	now := b.cfg.Now()
	if oerr == nil {
		c, aerr := checkCert(issued.chain, string(issued.key), w.host, now)
		if aerr != nil {
			oerr = fmt.Errorf("the certificate issued is unusable: %s", aerr.msg)
		} else {
			ops, e, err := b.certOps(&a, w.host, c, true)
			if err != nil {
				return time.Time{}, err
			}
			ops = append(ops, store.Op{Bucket: state.BucketACME, Key: w.host, Delete: true})
			if err := b.commit(ctx, ops, []state.RoutingEvent{e}); err != nil {
				return time.Time{}, err
			}
			b.log.Info().Str("alias", w.host).Str("app", key).Time("not_after", c.leaf.NotAfter).
				Bool("renewal", old.ACME).Msg("acme: certificate obtained")
			outcome := "obtained"
			if old.ACME {
				outcome = "renewed"
			}
			b.metrics.acmeOrdered(outcome)
			return time.Time{}, nil
		}
	}
	var s state.ACMEStatus
	if _, err := b.st.Get(state.BucketACME, w.host, &s); err != nil || s.App != key {
		s = state.ACMEStatus{Host: w.host, App: key}
	}
	s.Failures++
	s.Error, s.LastTry = oerr.Error(), now
	d := b.cfg.ACME.RetryMin
	for i := 1; i < s.Failures && d < acmeRetryMax; i++ {
		d *= 2
	}
	s.NextTry = now.Add(min(d, acmeRetryMax))
	b.log.Warn().Str("alias", w.host).Str("app", key).Int("failures", s.Failures).Time("next_try", s.NextTry).
		Str("error", s.Error).Msg("acme: no certificate")
	b.metrics.acmeOrdered("failed")
	return s.NextTry, b.commit(ctx, []store.Op{{Bucket: state.BucketACME, Key: w.host, Value: s}}, nil)
}

// acmeObtain checks that host points at the cluster, then orders its
// certificate and answers the authority's HTTP-01 challenge through the
// routers and node fronts.
func (b *Broker) acmeObtain(ctx context.Context, a *state.App, host string) (*acmeIssued, error) {
	targets, err := b.acmeTargets()
	if err != nil {
		return nil, err
	}
	if err := b.acmePointsHere(ctx, a, host, targets); err != nil {
		return nil, err
	}
	cl, err := b.acmeClient(ctx)
	if err != nil {
		return nil, err
	}
	order, err := cl.AuthorizeOrder(ctx, acme.DomainIDs(host))
	if err != nil {
		return nil, fmt.Errorf("order: %w", err)
	}
	var tokens []string
	defer func() { b.acmeForget(tokens) }()
	for _, u := range order.AuthzURLs {
		authz, err := cl.GetAuthorization(ctx, u)
		if err != nil {
			return nil, fmt.Errorf("authorization: %w", err)
		}
		if authz.Status == acme.StatusValid {
			continue
		}
		var chal *acme.Challenge
		for _, c := range authz.Challenges {
			if c.Type == "http-01" {
				chal = c
			}
		}
		if chal == nil {
			return nil, errors.New("the certificate authority offers no http-01 challenge, the only kind gearbox answers")
		}
		answer, err := cl.HTTP01ChallengeResponse(chal.Token)
		if err != nil {
			return nil, err
		}
		tokens = append(tokens, chal.Token)
		rec := state.ACMEChallenge{Token: chal.Token, Host: host, KeyAuth: answer, Expires: b.cfg.Now().Add(acmeChallengeTTL)}
		if err := b.commit(ctx, []store.Op{{Bucket: state.BucketACMEChallenges, Key: chal.Token, Value: rec}}, nil); err != nil {
			return nil, err
		}
		if err := b.acmeAnswered(ctx, host, rec, targets); err != nil {
			return nil, err
		}
		if _, err := cl.Accept(ctx, chal); err != nil {
			return nil, fmt.Errorf("accept challenge: %w", err)
		}
		if _, err := cl.WaitAuthorization(ctx, authz.URI); err != nil {
			return nil, fmt.Errorf("the certificate authority could not check %s%s%s: %w", host, state.ACMEChallengePath, chal.Token, err)
		}
	}
	if order, err = cl.WaitOrder(ctx, order.URI); err != nil {
		return nil, fmt.Errorf("order: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: []string{host}}, key)
	if err != nil {
		return nil, err
	}
	ders, _, err := cl.CreateOrderCert(ctx, order.FinalizeURL, csr, true)
	if err != nil {
		return nil, fmt.Errorf("finalize: %w", err)
	}
	var chain strings.Builder
	for _, d := range ders {
		pem.Encode(&chain, &pem.Block{Type: "CERTIFICATE", Bytes: d})
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return &acmeIssued{chain: chain.String(), key: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})}, nil
}

// acmeForget deletes the challenges of tokens.
func (b *Broker) acmeForget(tokens []string) {
	if len(tokens) == 0 {
		return
	}
	ops := make([]store.Op, len(tokens))
	for i, t := range tokens {
		ops[i] = store.Op{Bucket: state.BucketACMEChallenges, Key: t, Delete: true}
	}
	if err := b.commit(b.ctx, ops, nil); err != nil && b.ctx.Err() == nil {
		b.log.Warn().Err(err).Msg("acme: delete challenges")
	}
}

// acmeTarget is a listener that answers challenges: an alive router's or
// node front's.
type acmeTarget struct {
	ip   string // the member's advertised IP
	http string // host:port of its HTTP listener, "" if unknown
}

// acmeTargets lists the alive routers, or, in a cluster without any, the
// alive nodes (whose fronts then serve the aliases).
func (b *Broker) acmeTargets() ([]acmeTarget, error) {
	alive := make(map[string]bool)
	for _, m := range b.st.Members() {
		alive[m.Name] = m.Status == "alive"
	}
	routers, err := list[state.Router](b.st, state.BucketRouters)
	if err != nil {
		return nil, err
	}
	var out []acmeTarget
	for _, r := range routers {
		if alive[r.Name] {
			out = append(out, acmeTarget{ip: r.Addr, http: r.HTTP})
		}
	}
	if len(out) > 0 {
		return out, nil
	}
	nodes, err := list[state.Node](b.st, state.BucketNodes)
	if err != nil {
		return nil, err
	}
	for _, n := range nodes {
		if alive[n.Name] && n.HTTP != "" {
			out = append(out, acmeTarget{ip: n.Addr, http: n.HTTP})
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no router or node front is alive to answer the certificate authority's challenge")
	}
	return out, nil
}

// acmePointsHere checks that host's DNS points at the cluster: a CNAME
// chain that passes through a name in the cloud domain (the app's name,
// its ha- name), or addresses shared with targets or with the app's own
// names as the same resolver gives them (which covers routers behind
// NAT, whose public addresses the cluster's DNS or --router-hostname
// gives out).
func (b *Broker) acmePointsHere(ctx context.Context, a *state.App, host string, targets []acmeTarget) error {
	server, err := b.acmeResolver()
	if err != nil {
		return err
	}
	names, addrs, err := acmeResolve(ctx, server, host)
	if err != nil {
		return fmt.Errorf("look up %s: %w", host, err)
	}
	for _, n := range names[1:] {
		if strings.HasSuffix(n, "."+b.cfg.Domain) {
			return nil
		}
	}
	ours := make(map[netip.Addr]bool)
	var listed []string
	for _, t := range targets {
		if ip, err := netip.ParseAddr(t.ip); err == nil {
			ours[ip.Unmap()] = true
			listed = append(listed, t.ip)
		}
	}
	if a != nil {
		for _, n := range []string{b.haHost(a), state.AppHost(a.Name, a.Domain, b.cfg.Domain)} {
			if _, ips, err := acmeResolve(ctx, server, n); err == nil {
				for _, ip := range ips {
					ours[ip] = true
				}
			}
		}
	}
	var got []string
	for _, ip := range addrs {
		if ours[ip] {
			return nil
		}
		got = append(got, ip.String())
	}
	if len(got) == 0 {
		got = []string{"no address"}
	}
	return fmt.Errorf("%s resolves to %s, not to the cluster: point it at the app with a CNAME to its name in %s, or with A/AAAA records of the routers (%s)",
		host, strings.Join(got, ", "), b.cfg.Domain, strings.Join(listed, ", "))
}

// acmeResolver is the DNS server asked where aliases point: the
// configured one, else the first of the system's.
func (b *Broker) acmeResolver() (string, error) {
	if b.cfg.ACME.Resolver != "" {
		return b.cfg.ACME.Resolver, nil
	}
	cc, err := dns.ClientConfigFromFile("/etc/resolv.conf")
	if err != nil || len(cc.Servers) == 0 {
		return "", fmt.Errorf("no DNS server to ask where aliases point (/etc/resolv.conf: %v); give --acme-resolver", err)
	}
	return net.JoinHostPort(cc.Servers[0], cc.Port), nil
}

// acmeResolve asks server (recursively) for name's addresses, and returns
// the names of the CNAME chain (name first, lower-case, without the final
// dot) and the addresses at its end.
func acmeResolve(ctx context.Context, server, name string) ([]string, []netip.Addr, error) {
	names := []string{strings.ToLower(strings.TrimSuffix(name, "."))}
	var addrs []netip.Addr
	seen := map[string]bool{}
	cl := &dns.Client{Timeout: 5 * time.Second}
	for _, qtype := range []uint16{dns.TypeA, dns.TypeAAAA} {
		q := new(dns.Msg)
		q.SetQuestion(dns.Fqdn(name), qtype)
		r, _, err := cl.ExchangeContext(ctx, q, server)
		if err == nil && r.Truncated {
			r, _, err = (&dns.Client{Net: "tcp", Timeout: 5 * time.Second}).ExchangeContext(ctx, q, server)
		}
		if err != nil {
			return nil, nil, err
		}
		if r.Rcode != dns.RcodeSuccess {
			return nil, nil, fmt.Errorf("%s", dns.RcodeToString[r.Rcode])
		}
		for _, rr := range r.Answer {
			switch rr := rr.(type) {
			case *dns.CNAME:
				if t := strings.ToLower(strings.TrimSuffix(rr.Target, ".")); !seen[t] {
					seen[t] = true
					names = append(names, t)
				}
			case *dns.A:
				if ip, ok := netip.AddrFromSlice(rr.A); ok {
					addrs = append(addrs, ip.Unmap())
				}
			case *dns.AAAA:
				if ip, ok := netip.AddrFromSlice(rr.AAAA); ok {
					addrs = append(addrs, ip)
				}
			}
		}
	}
	return names, addrs, nil
}

// acmeAnswered waits until every target's HTTP listener gives rec's
// answer for host, which it reads from its member's copy of the store.
func (b *Broker) acmeAnswered(ctx context.Context, host string, rec state.ACMEChallenge, targets []acmeTarget) error {
	// Straight to each listener: no proxy of the environment.
	cl := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	defer cl.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for _, t := range targets {
		if t.http == "" {
			continue
		}
		for {
			got, err := acmeFetch(ctx, cl, t.http, host, rec.Token)
			if err == nil && got == rec.KeyAuth {
				break
			}
			select {
			case <-ctx.Done():
				if err == nil {
					err = fmt.Errorf("answered %q", got)
				}
				return fmt.Errorf("the listener at %s did not give the challenge's answer within 30 s: %v", t.http, err)
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	return nil
}

// acmeFetch asks the HTTP listener at addr for host's challenge token.
func acmeFetch(ctx context.Context, cl *http.Client, addr, host, token string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+state.ACMEChallengePath+token, nil)
	if err != nil {
		return "", err
	}
	req.Host = host
	resp, err := cl.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %d", resp.StatusCode)
	}
	return string(body), err
}

// acmeClient returns a client of the cluster's account, made and
// registered on first use.
func (b *Broker) acmeClient(ctx context.Context) (*acme.Client, error) {
	cfg := b.cfg.ACME
	hc := &http.Client{Timeout: time.Minute}
	if cfg.Roots != nil {
		hc.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: cfg.Roots, MinVersion: tls.VersionTLS12}, Proxy: http.ProxyFromEnvironment}
	}
	var acct state.ACMEAccount
	_, err := b.st.Get(state.BucketCluster, state.KeyACMEAccount, &acct)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	var key crypto.Signer
	if err == nil && acct.Directory == cfg.Directory {
		pemKey, err := store.OpenSecret(b.cfg.ClusterSecret, state.ACMEAccountPurpose, acct.Key)
		if err != nil {
			return nil, fmt.Errorf("acme account key: %w", err)
		}
		blk, _ := pem.Decode(pemKey)
		if blk == nil {
			return nil, errors.New("acme account key: no PEM block")
		}
		k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("acme account key: %w", err)
		}
		var ok bool
		if key, ok = k.(crypto.Signer); !ok {
			return nil, errors.New("acme account key: not a signing key")
		}
		cl := &acme.Client{Key: key, DirectoryURL: cfg.Directory, HTTPClient: hc, UserAgent: "gearbox"}
		if acct.URI != "" {
			cl.KID = acme.KeyID(acct.URI)
			return cl, nil
		}
		return b.acmeRegister(ctx, cl, acct)
	}
	ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(ek)
	if err != nil {
		return nil, err
	}
	sealed, err := store.SealSecret(b.cfg.ClusterSecret, state.ACMEAccountPurpose, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	if err != nil {
		return nil, err
	}
	acct = state.ACMEAccount{Directory: cfg.Directory, Key: sealed, CreatedAt: b.cfg.Now()}
	if err := b.commit(ctx, []store.Op{{Bucket: state.BucketCluster, Key: state.KeyACMEAccount, Value: acct}}, nil); err != nil {
		return nil, err
	}
	return b.acmeRegister(ctx, &acme.Client{Key: ek, DirectoryURL: cfg.Directory, HTTPClient: hc, UserAgent: "gearbox"}, acct)
}

// acmeRegister registers acct's key with the authority, accepting its
// terms, and records the account's URL.
func (b *Broker) acmeRegister(ctx context.Context, cl *acme.Client, acct state.ACMEAccount) (*acme.Client, error) {
	a := &acme.Account{}
	if b.cfg.ACME.Email != "" {
		a.Contact = []string{"mailto:" + b.cfg.ACME.Email}
	}
	reg, err := cl.Register(ctx, a, acme.AcceptTOS)
	if errors.Is(err, acme.ErrAccountAlreadyExists) {
		reg, err = cl.GetReg(ctx, "")
	}
	if err != nil {
		return nil, fmt.Errorf("register the ACME account with %s: %w", b.cfg.ACME.Directory, err)
	}
	acct.URI = reg.URI
	if err := b.commit(ctx, []store.Op{{Bucket: state.BucketCluster, Key: state.KeyACMEAccount, Value: acct}}, nil); err != nil {
		return nil, err
	}
	b.log.Info().Str("directory", b.cfg.ACME.Directory).Str("account", reg.URI).Msg("acme: account registered")
	cl.KID = acme.KeyID(reg.URI)
	return cl, nil
}
