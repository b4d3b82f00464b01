package lb

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strings"
)

// cacheControlSetCookie keeps shared caches from storing a response that
// sets the affinity cookie (haproxy's "nocache").
const cacheControlSetCookie = `no-cache="set-cookie"`

// CookieValue returns the affinity cookie value that designates backend id
// under secret: the first 12 bytes of HMAC-SHA256(secret, id) in unpadded
// base64url, 16 characters. Every LB and router that shares the secret
// computes the same value, and a client without the secret cannot make one
// that points at a backend of its choosing.
func CookieValue(secret []byte, id string) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(id))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:12])
}

// cookieValue returns the value of the first cookie called name in Cookie
// header lines, or "".
func cookieValue(lines []string, name string) string {
	for _, line := range lines {
		for line != "" {
			var part string
			part, line, _ = strings.Cut(line, ";")
			k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
			if ok && k == name {
				return strings.Trim(v, `"`)
			}
		}
	}
	return ""
}

// stripCookie removes the cookies called name from the Cookie header lines
// of h, so that the app never sees the affinity cookie (haproxy's
// "indirect"). Other cookies are passed as they came.
func stripCookie(h http.Header, name string) {
	lines := h["Cookie"]
	found := false
	for _, l := range lines {
		if strings.Contains(l, name) {
			found = true
			break
		}
	}
	if !found {
		return
	}
	out := lines[:0]
	for _, l := range lines {
		if !strings.Contains(l, name) {
			out = append(out, l)
			continue
		}
		var kept []string
		for part := range strings.SplitSeq(l, ";") {
			part = strings.TrimSpace(part)
			if k, _, _ := strings.Cut(part, "="); k == name || part == "" {
				continue
			}
			kept = append(kept, part)
		}
		if len(kept) > 0 {
			out = append(out, strings.Join(kept, "; "))
		}
	}
	if len(out) == 0 {
		delete(h, "Cookie")
		return
	}
	h["Cookie"] = out
}
