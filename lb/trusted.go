package lb

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/netip"
	"slices"
)

// ProofField is the request field in which a trusted proxy proves that it
// holds the cluster secret (Config.TrustProof, Config.SendProof).
//
// An LB gear listens on its node's address, where the node's front
// listener and every gear of the node connect from: an address cannot
// tell the front from a gear, and on a member that runs a router too,
// not the router either. A source address of their own would not help on
// Linux: a gear's process may bind any local address as its source. So
// the front and the routers also send Proof(secret, app) for the app of
// the LB gear they proxy to, which gears cannot compute (they never see
// the cluster secret) and never receive (every pool drops the field
// before it proxies, and the front sends it to LB gears only). Bound to
// the app, a proof that leaks (to a process squatting an LB gear's port
// while its load balancer is down) is worth nothing against other apps.
const ProofField = "X-Gearbox-Proxy-Proof"

// proofLabel separates the proofs' use of the cluster secret from its
// other uses.
const proofLabel = "gearbox forwarded-proxy proof\x00"

// Proof returns what a trusted proxy sends in ProofField to the load
// balancers of app (a store app key), keyed by the cluster secret.
func Proof(secret []byte, app string) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(proofLabel))
	m.Write([]byte(app))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// trustedPeer reports whether a request from remote that carried proof in
// ProofField (has: it carried one) comes from a trusted proxy: its
// address is trusted and, if the pool requires a proof, it sent the right
// one.
func (p *Pool) trustedPeer(remote string, proof []byte, has bool) bool {
	if !p.trusted(remote) {
		return false
	}
	if p.trustProof == nil {
		return true
	}
	return has && subtle.ConstantTimeCompare(proof, p.trustProof) == 1
}

// SetTrustedProxies replaces the peers whose X-Forwarded-Proto and
// X-Forwarded-Host are passed on (Config.TrustedProxies) for the requests
// that begin from then on, without restarting the pool: an LB gear trusts
// the routers of its cluster, which come and go. It is safe to call at any
// time, from any goroutine; the list is copied.
//
// A pool served by a FastServer looks at its list only if it was created
// with at least one trusted proxy (as LB gears are, which always trust
// their node's front listener); give New a non-empty list to change it
// later.
func (p *Pool) SetTrustedProxies(list []netip.Prefix) {
	l := slices.Clone(list)
	p.trustedList.Store(&l)
}

// TrustedProxies returns the peers the pool trusts now, in the order
// given to New or SetTrustedProxies.
func (p *Pool) TrustedProxies() []netip.Prefix {
	return slices.Clone(*p.trustedList.Load())
}

// trusted reports whether the peer at addr is one of the trusted
// proxies.
func (p *Pool) trusted(addr string) bool {
	list := *p.trustedList.Load()
	if len(list) == 0 {
		return false
	}
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return false
	}
	ip := ap.Addr().Unmap()
	for _, pfx := range list {
		if pfx.Contains(ip) {
			return true
		}
	}
	return false
}
