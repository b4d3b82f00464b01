package broker

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"errors"
	"io/fs"
	"net/http"
	"time"

	"gearbox/store"
	"gearbox/store/state"
)

// The web console: a page and its script, embedded in the binary and
// served by every broker at /console/, that use the REST API with a
// session cookie. Logging in (POST /console/session with HTTP basic
// auth, as the API checks it) mints an API token that the cookie carries
// (HttpOnly, SameSite=Strict, Secure over HTTPS); the API takes the
// cookie as it takes the token, and a change made with it must carry the
// session's CSRF token in X-Gearbox-CSRF, which only the console's own
// script can read (from the login's answer). Logging out revokes the
// token.

//go:embed console
var consoleFiles embed.FS

// consoleCookie is the session cookie's name.
const consoleCookie = "gearbox_console"

// consoleHeader marks the console's own requests: a 401 to them carries
// no WWW-Authenticate, which would have the browser ask for a password.
const consoleHeader = "X-Gearbox-Console"

// consoleCSRFHeader carries a console session's CSRF token.
const consoleCSRFHeader = "X-Gearbox-CSRF"

// ConsoleSessionTTL is how long a console session lasts.
const ConsoleSessionTTL = 12 * time.Hour

// consoleSession is what the console learns about its session.
type consoleSession struct {
	Login string `json:"login"`
	Admin bool   `json:"admin"`
	CSRF  string `json:"csrf"`
}

// csrfFor is the CSRF token of the session whose API token is token.
func (b *Broker) csrfFor(token string) string {
	m := hmac.New(sha256.New, []byte("gearbox console csrf\x00"+b.cfg.ClusterSecret))
	m.Write([]byte(token))
	return hex.EncodeToString(m.Sum(nil))
}

// cookieUser authenticates a request by its console session cookie:
// ok is false when it has none. A change (not GET or HEAD) must carry the
// session's CSRF token.
func (b *Broker) cookieUser(r *http.Request) (u *state.User, ok bool, err error) {
	c, cerr := r.Cookie(consoleCookie)
	if cerr != nil || c.Value == "" {
		return nil, false, nil
	}
	u, _, err = b.userForToken(c.Value)
	if err != nil {
		return nil, true, errorf(http.StatusUnauthorized, 1, "The console session has ended; log in again.")
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		want := b.csrfFor(c.Value)
		if subtle.ConstantTimeCompare([]byte(r.Header.Get(consoleCSRFHeader)), []byte(want)) != 1 {
			return nil, true, errorf(http.StatusForbidden, 1, "A change made with the console's session needs its CSRF token (%s).", consoleCSRFHeader)
		}
	}
	return u, true, nil
}

// consoleHandler serves the console's files.
func (b *Broker) consoleHandler() http.Handler {
	sub, err := fs.Sub(consoleFiles, "console")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	files := http.StripPrefix("/console/", http.FileServer(http.FS(sub)))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'")
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})
}

// POST /console/session (HTTP basic auth): a console session for the
// caller: an API token in a cookie, and the session's CSRF token.
func (b *Broker) createConsoleSession(w http.ResponseWriter, r *http.Request, u *state.User, p params) error {
	if _, ok := bearerToken(r); ok {
		return errorf(http.StatusBadRequest, 1, "Log in to the console with a login and password.")
	}
	now := b.cfg.Now()
	if n, err := b.tokensOf(u.Login, now); err != nil {
		return err
	} else if n >= b.cfg.MaxTokensPerUser {
		return errorf(http.StatusConflict, 1, "You have %d API tokens, the most a user may have; revoke some (gearbox token list) to open a console session.", n)
	}
	token, id := newToken()
	t := state.Token{ID: id, Login: u.Login, Note: "console session", CreatedAt: now, ExpiresAt: now.Add(ConsoleSessionTTL)}
	if _, err := b.st.Put(r.Context(), state.BucketTokens, tokenKey(token), t); err != nil {
		return err
	}
	http.SetCookie(w, &http.Cookie{Name: consoleCookie, Value: token, Path: "/", HttpOnly: true, Secure: r.TLS != nil,
		SameSite: http.SameSiteStrictMode, Expires: t.ExpiresAt})
	b.log.Info().Str("login", u.Login).Str("token", id).Msg("console session opened")
	reply(w, http.StatusCreated, "session", consoleSession{Login: u.Login, Admin: u.Admin, CSRF: b.csrfFor(token)})
	return nil
}

// GET /console/session: the session of the cookie, for a page reloaded.
func (b *Broker) showConsoleSession(w http.ResponseWriter, r *http.Request, u *state.User, p params) error {
	c, err := r.Cookie(consoleCookie)
	if err != nil {
		return errUnauthenticated
	}
	reply(w, http.StatusOK, "session", consoleSession{Login: u.Login, Admin: u.Admin, CSRF: b.csrfFor(c.Value)})
	return nil
}

// DELETE /console/session: log out; the session's token is revoked.
func (b *Broker) deleteConsoleSession(w http.ResponseWriter, r *http.Request, u *state.User, p params) error {
	c, err := r.Cookie(consoleCookie)
	if err != nil {
		return errUnauthenticated
	}
	if _, err := b.st.Delete(r.Context(), state.BucketTokens, tokenKey(c.Value)); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	http.SetCookie(w, &http.Cookie{Name: consoleCookie, Value: "", Path: "/", HttpOnly: true, Secure: r.TLS != nil,
		SameSite: http.SameSiteStrictMode, MaxAge: -1})
	reply(w, http.StatusOK, "session", nil, "Logged out.")
	return nil
}
