package broker

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
	"sync"

	"golang.org/x/crypto/bcrypt"

	"gearbox/store"
	"gearbox/store/state"
)

// tokenPrefix marks gearbox API tokens, so that they are recognisable in
// configuration files and secret scanners.
const tokenPrefix = "gbx_"

// authCache remembers passwords already checked against a bcrypt hash, by
// their sha256, so that HTTP basic auth does not cost a bcrypt round per
// request. An entry is only valid for the hash it was checked against.
type authCache struct {
	mu sync.Mutex
	m  map[string]cachedLogin

	dummyOnce sync.Once
	dummyHash []byte
}

type cachedLogin struct {
	hash   string   // the bcrypt hash checked against
	secret [32]byte // sha256 of the password that matched
}

// cached reports whether password is the one last checked for u against
// its current hash. It costs no bcrypt.
func (c *authCache) cached(u *state.User, password string) bool {
	sum := sha256.Sum256([]byte(password))
	c.mu.Lock()
	e, hit := c.m[u.Login]
	c.mu.Unlock()
	return hit && e.hash == u.PasswordHash && subtle.ConstantTimeCompare(e.secret[:], sum[:]) == 1
}

// remember records that password matched u's current hash.
func (c *authCache) remember(u *state.User, password string) {
	sum := sha256.Sum256([]byte(password))
	c.mu.Lock()
	if c.m == nil {
		c.m = map[string]cachedLogin{}
	}
	c.m[u.Login] = cachedLogin{hash: u.PasswordHash, secret: sum}
	c.mu.Unlock()
}

var errUnauthenticated = &apiError{code: http.StatusUnauthorized, exit: 1,
	msg: "Authentication required: use HTTP basic auth (--user login:password) or an API token (Authorization: Bearer TOKEN)."}

var errBadCredentials = &apiError{code: http.StatusUnauthorized, exit: 1, msg: "Invalid login or password, or the token is unknown or expired."}

// authenticate finds the user a request speaks for.
func (b *Broker) authenticate(r *http.Request) (*state.User, error) {
	if r.Header.Get("Authorization") == "" {
		// The web console's session (console.go).
		if u, ok, err := b.cookieUser(r); ok {
			return u, err
		}
		return nil, errUnauthenticated
	}
	if token, ok := bearerToken(r); ok {
		u, _, err := b.userForToken(token)
		return u, err
	}
	login, password, ok := r.BasicAuth()
	if !ok {
		return nil, errUnauthenticated
	}
	u, err := b.user(login)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	if u != nil && b.auth.cached(u, password) {
		return u, nil
	}
	// Only now does the attempt cost a bcrypt: it is charged to the
	// client's address and to the login first (authlimit.go).
	addr, key, now := b.clientAddr(r), loginKey(login), b.cfg.Now()
	if wait, ok := b.limits.reserve(addr, key, now); !ok {
		return nil, tooManyAttempts(wait)
	}
	if u == nil {
		// Spend the time a real check would, so that response times
		// do not tell which logins exist.
		b.compareHash(b.auth.dummy(b.cfg.BcryptCost), password)
		return nil, errBadCredentials
	}
	if b.compareHash([]byte(u.PasswordHash), password) != nil {
		return nil, errBadCredentials
	}
	b.limits.refund(addr, key, now)
	b.auth.remember(u, password)
	return u, nil
}

// loginKey is the key a login's failures are charged to: the login, or
// one key for every string that cannot be a login, so that made-up
// logins of any length do not fill the limiter's table.
func loginKey(login string) string {
	if state.LoginRE.MatchString(login) {
		return login
	}
	return "\x00invalid"
}

// compareHash checks password against a bcrypt hash, counted in
// b.bcrypts.
func (b *Broker) compareHash(hash []byte, password string) error {
	b.bcrypts.Add(1)
	if b.cfg.bcryptHook != nil {
		b.cfg.bcryptHook()
	}
	return bcrypt.CompareHashAndPassword(hash, []byte(password))
}

// hashPassword hashes password at the configured cost, counted in
// b.bcrypts. Callers run it before taking b.mu: it takes tens of
// milliseconds, during which other mutations must not wait.
func (b *Broker) hashPassword(password string) (string, error) {
	b.bcrypts.Add(1)
	if b.cfg.bcryptHook != nil {
		b.cfg.bcryptHook()
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), b.cfg.BcryptCost)
	return string(h), err
}

// dummy returns a hash at the broker's bcrypt cost that no password
// matches, made on first use: checking an unknown login against it costs
// what checking a real one does, also when the cost is not bcrypt's
// default.
func (c *authCache) dummy(cost int) []byte {
	c.dummyOnce.Do(func() {
		c.dummyHash, _ = bcrypt.GenerateFromPassword([]byte(randomID(16)), cost)
	})
	return c.dummyHash
}

// bearerToken returns the API token r authenticates with, if it uses
// the Bearer scheme.
func bearerToken(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	if len(h) >= 7 && strings.EqualFold(h[:7], "Bearer ") {
		// Auth schemes are case-insensitive (RFC 9110, 11.1).
		return strings.TrimSpace(h[7:]), true
	}
	return "", false
}

// userForToken returns the user token speaks for, and its record. Tokens
// are not cached: every request reads the token's record from the local
// replica of the store, so that a token revoked on this member (deleted
// from the store) is refused by the next request.
func (b *Broker) userForToken(token string) (*state.User, *state.Token, error) {
	if !strings.HasPrefix(token, tokenPrefix) {
		return nil, nil, errBadCredentials
	}
	var t state.Token
	if _, err := b.st.Get(state.BucketTokens, tokenKey(token), &t); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, nil, errBadCredentials
		}
		return nil, nil, err
	}
	if !t.ExpiresAt.IsZero() && b.cfg.Now().After(t.ExpiresAt) {
		return nil, nil, errBadCredentials
	}
	u, err := b.user(t.Login)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, errBadCredentials
	}
	if err != nil {
		return nil, nil, err
	}
	return u, &t, nil
}

// tokenKey is the record key of a token: its sha256, so that a copy of the
// state file does not hold usable tokens.
func tokenKey(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// newToken returns a fresh random token and its short public id.
func newToken() (token, id string) {
	var b [32]byte
	rand.Read(b[:])
	token = tokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	return token, tokenKey(token)[:12]
}

// randomID returns n random bytes in hex: ids of apps and gears.
func randomID(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// validPassword returns an error describing what is wrong with a password.
func validPassword(p string) *apiError {
	switch {
	case len(p) < 8:
		return fieldErr("password", 1, "Password must be at least 8 characters long.")
	case len(p) > 72:
		return fieldErr("password", 1, "Password must be at most 72 bytes long.")
	}
	return nil
}
