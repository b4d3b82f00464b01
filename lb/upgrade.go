package lb

import (
	"errors"
)

// errUpgradeRefused is why a 101 is answered 502: the backend switched
// protocols that the client did not ask for.
var errUpgradeRefused = errors.New("backend switched protocols the client did not ask for")

// Both server paths tunnel a 101 only when the client asked to upgrade
// (Connection: upgrade and an Upgrade field) and the 101 announces the
// switch the same way (Connection: upgrade) to the protocols the client
// named in its first Upgrade field (sameProtocols). Anything else is a
// backend taking over a front connection that may be shared (a router's
// keep-alive connection from a proxy, say): the client gets 502 and the
// backend's connection is closed. httputil.ReverseProxy applies the same
// rule on its own, comparing the two Upgrade values as strings.

// sameProtocols reports whether answered, the Upgrade field of a 101,
// names the protocols of asked, the Upgrade field of the request: the
// same comma-separated tokens in the same order, compared without regard
// to case or to white space around commas. A client that offers several
// protocols is switched only if the backend names them all, as
// httputil.ReverseProxy requires; WebSocket clients offer one.
func sameProtocols[T string | []byte](asked, answered T) bool {
	n := 0
	for {
		a, restA, okA := nextToken(asked)
		b, restB, okB := nextToken(answered)
		if !okA || !okB {
			return okA == okB && n > 0
		}
		if !equalFold(a, b) {
			return false
		}
		asked, answered = restA, restB
		n++
	}
}

// nextToken returns the first non-empty element of the comma-separated
// list v without surrounding white space, and what follows it; ok is
// false when none is left.
func nextToken[T string | []byte](v T) (tok, rest T, ok bool) {
	for len(v) > 0 {
		i := 0
		for i < len(v) && v[i] != ',' {
			i++
		}
		tok, rest = v[:i], v[i:]
		if len(rest) > 0 {
			rest = rest[1:]
		}
		for len(tok) > 0 && (tok[0] == ' ' || tok[0] == '\t') {
			tok = tok[1:]
		}
		for len(tok) > 0 && (tok[len(tok)-1] == ' ' || tok[len(tok)-1] == '\t') {
			tok = tok[:len(tok)-1]
		}
		if len(tok) > 0 {
			return tok, rest, true
		}
		v = rest
	}
	return v, v, false
}

// equalFold reports whether a and b are equal without regard to ASCII
// case.
func equalFold[T string | []byte](a, b T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
