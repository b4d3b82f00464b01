package broker

import (
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"gearbox/broker/api"
	"gearbox/store"
	"gearbox/store/state"
)

// userView is user u as the API shows it: never the password hash.
func (b *Broker) userView(u *state.User) (api.User, error) {
	n, err := b.gearsOwnedBy(u.Login)
	c := u.Capabilities
	return api.User{Login: u.Login, Admin: u.Admin, Capabilities: api.Capabilities{HA: c.HA, MaxGears: c.MaxGears, GearSizes: c.GearSizes},
		ConsumedGears: n, CreatedAt: u.CreatedAt}, err
}

func requireAdmin(u *state.User) error {
	if !u.Admin {
		return forbidden("This action needs an administrator.")
	}
	return nil
}

// GET /broker/rest/user
func (b *Broker) getUser(w http.ResponseWriter, r *http.Request, u *state.User, p params) error {
	v, err := b.userView(u)
	if err != nil {
		return err
	}
	reply(w, http.StatusOK, "user", v)
	return nil
}

// POST /broker/rest/user/authorizations: note=, expires_in= (seconds).
func (b *Broker) createToken(w http.ResponseWriter, r *http.Request, u *state.User, p params) error {
	ttl := b.cfg.TokenTTL
	if secs, ok, err := p.integer("expires_in"); err != nil {
		return err
	} else if ok {
		if secs <= 0 || secs > 365*24*3600 {
			return fieldErr("expires_in", 1, "expires_in must be between 1 and %d seconds.", 365*24*3600)
		}
		ttl = time.Duration(secs) * time.Second
	}
	note := p.str("note")
	if len(note) > 256 {
		return fieldErr("note", 1, "note must be at most 256 characters.")
	}
	now := b.cfg.Now()
	expires := now.Add(ttl)
	// A token minted with a token expires no later than its parent, so
	// that a leaked token cannot be stretched into a longer-lived one.
	if parent, ok := bearerToken(r); ok {
		_, pt, err := b.userForToken(parent)
		if err != nil {
			return err
		}
		if !pt.ExpiresAt.IsZero() && pt.ExpiresAt.Before(expires) {
			expires = pt.ExpiresAt
		}
	}
	if n, err := b.tokensOf(u.Login, now); err != nil {
		return err
	} else if n >= b.cfg.MaxTokensPerUser {
		return errorf(http.StatusConflict, 1, "You have %d API tokens, the most a user may have; revoke some or wait for them to expire (or ask an administrator to raise the limit).", n)
	}
	token, id := newToken()
	t := state.Token{ID: id, Login: u.Login, Note: note, CreatedAt: now, ExpiresAt: expires}
	if _, err := b.st.Put(r.Context(), state.BucketTokens, tokenKey(token), t); err != nil {
		return err
	}
	v := tokenView(t)
	v.Token = token
	reply(w, http.StatusCreated, "authorization", v, "Authorization created; the token is shown only once.")
	return nil
}

// tokenView is t as the API shows it: never the token itself, which only
// the answer that creates it carries.
func tokenView(t state.Token) api.Token {
	return api.Token{ID: t.ID, Login: t.Login, Note: t.Note, CreatedAt: t.CreatedAt, ExpiresAt: t.ExpiresAt,
		ExpiresIn: int(t.ExpiresAt.Sub(t.CreatedAt) / time.Second)}
}

// tokenRecords returns login's API token records, by key, expired ones
// included.
func (b *Broker) tokenRecords(login string) (map[string]state.Token, error) {
	recs, err := b.st.List(state.BucketTokens)
	if err != nil {
		return nil, err
	}
	out := map[string]state.Token{}
	for _, rec := range recs {
		var t state.Token
		if err := rec.Decode(&t); err == nil && t.Login == login {
			out[rec.Key] = t
		}
	}
	return out, nil
}

// GET /broker/rest/user/authorizations: the caller's tokens that have not
// expired, oldest first, without the tokens themselves.
func (b *Broker) listTokens(w http.ResponseWriter, r *http.Request, u *state.User, p params) error {
	recs, err := b.tokenRecords(u.Login)
	if err != nil {
		return err
	}
	now := b.cfg.Now()
	out := []api.Token{}
	for _, t := range recs {
		if t.ExpiresAt.IsZero() || !now.After(t.ExpiresAt) {
			out = append(out, tokenView(t))
		}
	}
	slices.SortFunc(out, func(a, b api.Token) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	reply(w, http.StatusOK, "authorizations", out)
	return nil
}

// DELETE /broker/rest/user/authorizations/{id}: revokes one of the
// caller's tokens. Another user's token id is answered as unknown.
func (b *Broker) revokeToken(w http.ResponseWriter, r *http.Request, u *state.User, p params) error {
	id := r.PathValue("id")
	recs, err := b.tokenRecords(u.Login)
	if err != nil {
		return err
	}
	var ops []store.Op
	for key, t := range recs {
		if t.ID == id {
			ops = append(ops, store.Op{Bucket: state.BucketTokens, Key: key, Delete: true})
		}
	}
	if len(ops) == 0 {
		return notFound("Authorization '%s' not found.", id)
	}
	if _, err := b.st.Batch(r.Context(), ops); err != nil {
		return err
	}
	b.log.Info().Str("login", u.Login).Str("token", id).Msg("token revoked")
	reply(w, http.StatusOK, "authorization", nil, "Authorization '"+id+"' revoked.")
	return nil
}

// tokensOf counts login's API tokens that have not expired at now.
func (b *Broker) tokensOf(login string, now time.Time) (int, error) {
	recs, err := b.tokenRecords(login)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, t := range recs {
		if t.ExpiresAt.IsZero() || !now.After(t.ExpiresAt) {
			n++
		}
	}
	return n, nil
}

// GET /broker/rest/users (admin)
func (b *Broker) listUsers(w http.ResponseWriter, r *http.Request, u *state.User, p params) error {
	if err := requireAdmin(u); err != nil {
		return err
	}
	users, err := list[state.User](b.st, state.BucketUsers)
	if err != nil {
		return err
	}
	out := make([]api.User, 0, len(users))
	for i := range users {
		v, err := b.userView(&users[i])
		if err != nil {
			return err
		}
		out = append(out, v)
	}
	reply(w, http.StatusOK, "users", out)
	return nil
}

// GET /broker/rest/users/{login}: admins, or the user itself.
func (b *Broker) showUser(w http.ResponseWriter, r *http.Request, u *state.User, p params) error {
	login := r.PathValue("login")
	if !u.Admin && u.Login != login {
		return forbidden("You may only see your own user.")
	}
	target, err := b.user(login)
	if errors.Is(err, store.ErrNotFound) {
		return notFound("User '%s' not found.", login)
	} else if err != nil {
		return err
	}
	v, err := b.userView(target)
	if err != nil {
		return err
	}
	reply(w, http.StatusOK, "user", v)
	return nil
}

// POST /broker/rest/users (admin): login, password, and optional ha,
// max_gears, gear_sizes, admin. The password is hashed before the
// mutation lock is taken (mode ownLock).
func (b *Broker) createUser(w http.ResponseWriter, r *http.Request, u *state.User, p params) error {
	if err := requireAdmin(u); err != nil {
		return err
	}
	login := p.str("login")
	if !state.LoginRE.MatchString(login) {
		return fieldErr("login", 1, "Invalid login '%s': use 1 to 64 lower-case letters, digits, '.', '_', '@' or '-', starting with a letter or digit.", login)
	}
	// Passwords are taken as given, not trimmed: the one set here is the
	// one HTTP basic auth will present, as with PUT.
	password := p["password"]
	if perr := validPassword(password); perr != nil {
		return perr
	}
	nu := state.User{Login: login, CreatedAt: b.cfg.Now(), Capabilities: state.Capabilities{
		HA: b.cfg.DefaultAllowHA, MaxGears: b.cfg.DefaultMaxGears, GearSizes: append([]string(nil), b.cfg.DefaultGearSizes...)}}
	if err := applyUserParams(&nu, p); err != nil {
		return err
	}
	if _, err := b.user(login); err == nil {
		return errorf(http.StatusConflict, 1, "User '%s' already exists.", login)
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	hash, err := b.hashPassword(password)
	if err != nil {
		return err
	}
	nu.PasswordHash = hash
	b.mu.Lock()
	defer b.mu.Unlock()
	// Checked again under the lock: another call may have created it
	// while the password was hashed.
	if _, err := b.user(login); err == nil {
		return errorf(http.StatusConflict, 1, "User '%s' already exists.", login)
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if _, err := b.st.Put(r.Context(), state.BucketUsers, login, nu); err != nil {
		return err
	}
	v, err := b.userView(&nu)
	if err != nil {
		return err
	}
	b.log.Info().Str("login", login).Str("by", u.Login).Msg("user created")
	reply(w, http.StatusCreated, "user", v, "User '"+login+"' created.")
	return nil
}

// PUT /broker/rest/users/{login} (admin): ha, max_gears, gear_sizes,
// admin, password. A user may change its own password, given its
// current_password. A new password revokes all of the user's API tokens,
// and is hashed before the mutation lock is taken (mode ownLock).
func (b *Broker) updateUser(w http.ResponseWriter, r *http.Request, u *state.User, p params) error {
	login := r.PathValue("login")
	self := u.Login == login
	if !u.Admin && !(self && onlyKeys(p, "password", "current_password")) {
		return forbidden("Only administrators may change users; you may change your own password.")
	}
	if _, err := b.user(login); errors.Is(err, store.ErrNotFound) {
		return notFound("User '%s' not found.", login)
	} else if err != nil {
		return err
	}
	// The parameters are checked before the password costs a hash.
	if err := applyUserParams(&state.User{}, p); err != nil {
		return err
	}
	pw, newPassword := p["password"]
	var hash string
	if newPassword {
		if perr := validPassword(pw); perr != nil {
			return perr
		}
		if self {
			if err := b.checkCurrentPassword(r, login, p); err != nil {
				return err
			}
		}
		var err error
		if hash, err = b.hashPassword(pw); err != nil {
			return err
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	target, err := b.user(login)
	if errors.Is(err, store.ErrNotFound) {
		return notFound("User '%s' not found.", login)
	} else if err != nil {
		return err
	}
	if err := applyUserParams(target, p); err != nil {
		return err
	}
	if self && !target.Admin && u.Admin {
		return fieldErr("admin", 1, "You may not remove your own administrator rights.")
	}
	if newPassword {
		target.PasswordHash = hash
	}
	ops := []store.Op{{Bucket: state.BucketUsers, Key: login, Value: target}}
	if newPassword {
		// A new password revokes every token of the user: whoever
		// changes a password that leaked also cuts off the tokens
		// minted with it.
		tokens, err := b.tokenRecords(login)
		if err != nil {
			return err
		}
		for key := range tokens {
			ops = append(ops, store.Op{Bucket: state.BucketTokens, Key: key, Delete: true})
		}
	}
	if _, err := b.st.Batch(r.Context(), ops); err != nil {
		return err
	}
	v, err := b.userView(target)
	if err != nil {
		return err
	}
	b.log.Info().Str("login", login).Str("by", u.Login).Msg("user updated")
	reply(w, http.StatusOK, "user", v, "User '"+login+"' updated.")
	return nil
}

// errCurrentPasswordWrong answers a change of one's own password whose
// current_password does not match.
var errCurrentPasswordWrong = forbidden("The current password is wrong; your password was not changed.")

// checkCurrentPassword checks the current_password of a change of the
// caller's own password (login's). A token or a cached session is not
// enough to change a password: whoever holds one must also know the
// password. A wrong guess is charged like a failed login (authlimit.go).
func (b *Broker) checkCurrentPassword(r *http.Request, login string, p params) error {
	current, ok := p["current_password"]
	if !ok || current == "" {
		return fieldErr("current_password", 1, "Changing your own password needs your current password: send it as current_password.")
	}
	u, err := b.user(login)
	if err != nil {
		return err
	}
	if b.auth.cached(u, current) {
		return nil
	}
	addr, key, now := b.clientAddr(r), loginKey(login), b.cfg.Now()
	if wait, ok := b.limits.reserve(addr, key, now); !ok {
		return tooManyAttempts(wait)
	}
	if b.compareHash([]byte(u.PasswordHash), current) != nil {
		return errCurrentPasswordWrong
	}
	b.limits.refund(addr, key, now)
	return nil
}

// DELETE /broker/rest/users/{login} (admin): refused while it owns domains.
func (b *Broker) deleteUser(w http.ResponseWriter, r *http.Request, u *state.User, p params) error {
	if err := requireAdmin(u); err != nil {
		return err
	}
	login := r.PathValue("login")
	if login == u.Login {
		return fieldErr("login", 1, "You may not delete yourself.")
	}
	if _, err := b.user(login); errors.Is(err, store.ErrNotFound) {
		return notFound("User '%s' not found.", login)
	} else if err != nil {
		return err
	}
	domains, err := list[state.Domain](b.st, state.BucketDomains)
	if err != nil {
		return err
	}
	for _, d := range domains {
		if d.Owner == login {
			return errorf(http.StatusConflict, 128, "User '%s' still owns domain '%s'; delete its domains first.", login, d.Name)
		}
	}
	// The user's API tokens go with it: a user created later under the
	// same login must not inherit them.
	ops := []store.Op{{Bucket: state.BucketUsers, Key: login, Delete: true}}
	tokens, err := b.tokenRecords(login)
	if err != nil {
		return err
	}
	for key := range tokens {
		ops = append(ops, store.Op{Bucket: state.BucketTokens, Key: key, Delete: true})
	}
	if _, err := b.st.Batch(r.Context(), ops); err != nil {
		return err
	}
	reply(w, http.StatusOK, "user", nil, "User '"+login+"' deleted.")
	return nil
}

// applyUserParams sets the capability parameters present in p.
func applyUserParams(u *state.User, p params) error {
	var err error
	if _, ok := p["ha"]; ok {
		if u.Capabilities.HA, err = p.boolean("ha", false); err != nil {
			return err
		}
	}
	if _, ok := p["admin"]; ok {
		if u.Admin, err = p.boolean("admin", false); err != nil {
			return err
		}
	}
	if n, ok, err := p.integer("max_gears"); err != nil {
		return err
	} else if ok {
		if n < 0 || n > 100000 {
			return fieldErr("max_gears", 1, "max_gears must be between 0 and 100000.")
		}
		u.Capabilities.MaxGears = n
	}
	if v, ok := p["gear_sizes"]; ok {
		var sizes []string
		for _, s := range strings.Split(v, ",") {
			s = strings.TrimSpace(s)
			if s == "" {
				continue
			}
			if !slices.Contains(state.GearSizes, s) {
				return fieldErr("gear_sizes", 1, "Invalid gear size '%s'; valid sizes: %s.", s, strings.Join(state.GearSizes, ", "))
			}
			if !slices.Contains(sizes, s) {
				sizes = append(sizes, s)
			}
		}
		if len(sizes) == 0 {
			return fieldErr("gear_sizes", 1, "gear_sizes must name at least one size.")
		}
		u.Capabilities.GearSizes = sizes
	}
	return nil
}

func onlyKeys(p params, keys ...string) bool {
	for k := range p {
		if !slices.Contains(keys, k) {
			return false
		}
	}
	return true
}
