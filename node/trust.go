package node

import (
	"net/netip"
	"slices"

	"gearbox/store/state"
)

// The load balancer of an LB gear passes on the X-Forwarded-Proto and
// X-Forwarded-Host that trusted proxies send: this node's own front
// listener, and every router of the cluster (the routers' records, with
// their advertised addresses). Routers come and go without restarting
// any LB gear: the reconcile loop follows their records and hands each
// running pool the new list.
//
// An address is not enough: the gears of this node connect from its
// address too, and on a member that also runs a router, from the
// router's. So the front and the routers also send lb.Proof of the app,
// an HMAC keyed by the cluster secret that gears never see, and the load
// balancer trusts only requests that carry it from these addresses; the
// others get their X-Forwarded-* set from the hop, X-Forwarded-For
// included (see lb.ProofField for why not a source address of their own).
//
// A router's record stays while the router is down (it is removed when
// the router stops gracefully); its address stays trusted meanwhile,
// which grants nothing to anyone who is not on that address.

// trustedProxies returns the peers LB gears trust now: those of
// Config.LB, this node's address, then the routers'.
func (s *Supervisor) trustedProxies() []netip.Prefix {
	out := slices.Clone(s.cfg.LB.TrustedProxies)
	if a, err := netip.ParseAddr(s.cfg.Addr); err == nil {
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	if rs := s.routerAddrs.Load(); rs != nil {
		for _, p := range *rs {
			if !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
	}
	return out
}

// refreshTrusted reads the routers' records and, if their addresses
// changed, hands every running load balancer the new list of trusted
// proxies.
func (s *Supervisor) refreshTrusted() {
	recs, err := s.st.List(state.BucketRouters)
	if err != nil {
		s.log.Warn().Err(err).Msg("list routers failed")
		return
	}
	var addrs []netip.Prefix
	for _, r := range recs {
		var rt state.Router
		if r.Decode(&rt) != nil {
			continue
		}
		a, err := netip.ParseAddr(rt.Addr)
		if err != nil {
			s.log.Warn().Str("router", r.Key).Str("addr", rt.Addr).Msg("ignore router with a bad address")
			continue
		}
		addrs = append(addrs, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	slices.SortFunc(addrs, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	addrs = slices.Compact(addrs)
	old := s.routerAddrs.Load()
	if old != nil && slices.Equal(*old, addrs) {
		return
	}
	// Stored before the pools are walked under lbMu: a load balancer that
	// registers meanwhile (startLB) reads the new list itself.
	s.routerAddrs.Store(&addrs)
	list := s.trustedProxies()
	s.lbMu.Lock()
	for _, l := range s.lbs {
		l.pool.SetTrustedProxies(list)
	}
	s.lbMu.Unlock()
	if old == nil && len(addrs) == 0 {
		return // the first look finds no router: nothing to say
	}
	strs := make([]string, len(addrs))
	for i, a := range addrs {
		strs[i] = a.Addr().String()
	}
	s.log.Info().Strs("routers", strs).Msg("load balancers trust routers")
}
