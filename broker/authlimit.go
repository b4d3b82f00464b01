package broker

import (
	lru "container/list"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Failed logins are limited per client address and per login, before a
// password is checked: a limited attempt costs no bcrypt, so that neither
// guessing passwords nor keeping the broker's cores busy with bcrypt pays.
//
// Each key (an address, a login) has a budget of AuthFailureLimit failures
// per AuthFailureWindow, as a token bucket kept in one time per key (GCRA):
// the whole budget may be spent at once, and it comes back at one failure
// every AuthFailureWindow/AuthFailureLimit. An attempt reserves one failure
// of its address and of its login before bcrypt runs, and a successful one
// gives both back, so that successful logins are never counted and many
// concurrent attempts cannot overrun the budget. A password that the
// broker has already checked (authCache) is accepted without bcrypt and
// without asking the limiter: an attacker who exhausts a login's budget
// does not lock out its owner's CLI.
//
// The client address is the TCP peer's IP: X-Forwarded-For is anyone's to
// write. A call a follower broker forwards to the leader carries the
// client's address in forwardedForHeader, with a MAC keyed by the cluster
// secret, so that the leader charges the client rather than the follower;
// without a valid MAC the header is ignored.

// forwardedForHeader carries, on a call a follower forwards to the leader,
// the client's IP and a MAC of it: "IP MAC".
const forwardedForHeader = "X-Gearbox-Forwarded-For"

// authLimiter is the failure budget of one kind of key. It is safe for
// concurrent use.
type authLimiter struct {
	interval time.Duration // one failure comes back every interval
	burst    time.Duration // the window: limit × interval
	max      int           // keys remembered at most

	mu    sync.Mutex
	m     map[string]*lru.Element // of *limitEntry
	order lru.List                // least recently charged at the back
}

type limitEntry struct {
	key string
	tat time.Time // when the key's budget is whole again
}

func newAuthLimiter(limit int, window time.Duration, max int) *authLimiter {
	return &authLimiter{interval: window / time.Duration(limit), burst: window, max: max, m: map[string]*lru.Element{}}
}

// reserve charges one failure to key, unless its budget is spent: then it
// returns how long until one failure has come back.
func (l *authLimiter) reserve(key string, now time.Time) (wait time.Duration, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, found := l.m[key]
	tat := now
	if found {
		if t := e.Value.(*limitEntry).tat; t.After(now) {
			tat = t
		}
	}
	next := tat.Add(l.interval)
	if over := next.Sub(now) - l.burst; over > 0 {
		return over, false
	}
	if found {
		e.Value.(*limitEntry).tat = next
		l.order.MoveToFront(e)
		return 0, true
	}
	// Bound the table: forget keys whose budget is whole again, then,
	// still full, the least recently charged one. Forgetting a key gives
	// it its budget back; with max well above the keys an attacker can
	// use within a window, that budget is small.
	for l.order.Len() >= l.max {
		back := l.order.Back()
		delete(l.m, back.Value.(*limitEntry).key)
		l.order.Remove(back)
	}
	for back := l.order.Back(); back != nil && !back.Value.(*limitEntry).tat.After(now); back = l.order.Back() {
		delete(l.m, back.Value.(*limitEntry).key)
		l.order.Remove(back)
	}
	l.m[key] = l.order.PushFront(&limitEntry{key: key, tat: next})
	return 0, true
}

// refund gives back a failure reserved for key.
func (l *authLimiter) refund(key string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.m[key]
	if !ok {
		return
	}
	le := e.Value.(*limitEntry)
	le.tat = le.tat.Add(-l.interval)
	if !le.tat.After(now) {
		delete(l.m, key)
		l.order.Remove(e)
	}
}

// len is how many keys l remembers.
func (l *authLimiter) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.m)
}

// authLimits are the failure budgets of client addresses and of logins.
// The zero value (nil limiters) limits nothing.
type authLimits struct {
	addrs, logins *authLimiter
}

func newAuthLimits(cfg Config) authLimits {
	if cfg.AuthFailureLimit < 0 {
		return authLimits{}
	}
	return authLimits{
		addrs:  newAuthLimiter(cfg.AuthFailureLimit, cfg.AuthFailureWindow, cfg.AuthLimiterEntries),
		logins: newAuthLimiter(cfg.AuthFailureLimit, cfg.AuthFailureWindow, cfg.AuthLimiterEntries),
	}
}

// reserve charges one failure to addr and to login, or to neither and
// returns how long to wait when either budget is spent.
func (a authLimits) reserve(addr, login string, now time.Time) (time.Duration, bool) {
	if a.addrs == nil {
		return 0, true
	}
	wait, ok := a.addrs.reserve(addr, now)
	if !ok {
		return wait, false
	}
	if wait, ok := a.logins.reserve(login, now); !ok {
		a.addrs.refund(addr, now)
		return wait, false
	}
	return 0, true
}

// refund gives back what reserve charged, after a successful login.
func (a authLimits) refund(addr, login string, now time.Time) {
	if a.addrs == nil {
		return
	}
	a.addrs.refund(addr, now)
	a.logins.refund(login, now)
}

// tooManyAttempts is the answer to a limited attempt: 429 with
// Retry-After, in whole seconds rounded up.
func tooManyAttempts(wait time.Duration) *apiError {
	secs := max(1, int((wait+time.Second-1)/time.Second))
	e := errorf(http.StatusTooManyRequests, 1, "Too many failed logins from this address or for this login; retry in %d seconds.", secs)
	e.retryAfter = secs
	return e
}

// clientAddr is the address failed logins of r are charged to: the TCP
// peer's IP, or for a call forwarded by a follower broker, the client's IP
// that the follower vouches for with a MAC.
func (b *Broker) clientAddr(r *http.Request) string {
	peer, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		peer = r.RemoteAddr
	}
	if v := r.Header.Get(forwardedForHeader); v != "" && b.cfg.ClusterSecret != "" {
		ip, mac, _ := strings.Cut(v, " ")
		got, err := hex.DecodeString(mac)
		if err == nil && hmac.Equal(got, b.forwardMAC(r.Header.Get(forwardedHeader), ip)) {
			return ip
		}
	}
	return peer
}

// forwardMAC authenticates the client address ip that broker from
// forwards, with a key derived from the cluster secret.
func (b *Broker) forwardMAC(from, ip string) []byte {
	key := sha256.Sum256([]byte("gearbox broker forwarded-for\x00" + b.cfg.ClusterSecret))
	m := hmac.New(sha256.New, key[:])
	m.Write([]byte(from + "\x00" + ip))
	return m.Sum(nil)
}

// setForwardedFor sets, on out, a call this broker forwards, the client
// address of in, the request it received.
func (b *Broker) setForwardedFor(out, in *http.Request) {
	out.Header.Del(forwardedForHeader)
	if b.cfg.ClusterSecret == "" {
		return
	}
	ip := b.clientAddr(in)
	out.Header.Set(forwardedForHeader, ip+" "+hex.EncodeToString(b.forwardMAC(b.st.Name(), ip)))
}
