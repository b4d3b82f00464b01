package lb

import (
	"net/netip"
	"slices"
)

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
