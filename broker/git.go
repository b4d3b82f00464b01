package broker

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net"
	"net/http"
	"net/http/cgi"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"gearbox/broker/githook"
	"gearbox/store"
	"gearbox/store/internalapi"
	"gearbox/store/state"
)

// Each app has a git remote on the brokers, /git/NS/APP.git on the REST
// API's listener, served by git's own smart-HTTP backend (git
// http-backend, run as CGI). Pushes and fetches are authenticated like
// the REST API (HTTP basic auth with the password, or with an API token
// as the password) and authorised like the app's other endpoints; they
// are served by the broker leader (other brokers forward them), whose
// copy of the repository is brought up to date first.
//
// A push runs the repository's pre-receive hook (package githook), which
// hands the ref updates to this broker: a new commit of the app's deploy
// branch is archived (git archive: what is committed, nothing ignored),
// becomes the app's current deployment and is rolled out, the progress
// going back to the pusher as "remote:" lines. If the roll-out fails, the
// app goes back to the deployment it ran and the push is refused, so that
// the branch names what runs. Other branches are only stored.
//
// After each push the leader bundles the repository (git bundle of every
// ref) and records it (BucketRepos); every broker fetches the bundle from
// one that has it and applies it to its own copy, so that no broker holds
// the only one.

// gitRepoPathRE matches the paths of the git remotes: namespace, app and
// what of the smart-HTTP protocol is asked.
var gitRepoPathRE = regexp.MustCompile(`^/git/([a-z0-9]{1,16})/([a-z0-9]{1,32})\.git/(info/refs|git-upload-pack|git-receive-pack)$`)

// zeroID is the object id git gives a created or deleted ref's other side.
const zeroID = "0000000000000000000000000000000000000000"

// gitState is the broker's git remotes: the backend found on first use,
// the pushes in progress (by their hook's token), the per-app locks and
// the hook socket.
type gitState struct {
	findOnce sync.Once
	git      string // the git program
	backend  string // git-http-backend
	findErr  error

	sockOnce sync.Once
	sock     string
	sockErr  error

	mu     sync.Mutex
	pushes map[string]*gitPush
	locks  map[string]*sync.Mutex
}

// gitPush is a push being received.
type gitPush struct {
	user *state.User
	app  string // AppKey
	dir  string // the repository
}

// programs returns the git program and git-http-backend, or why they
// cannot be used.
func (g *gitState) programs() (string, string, error) {
	g.findOnce.Do(func() {
		git, err := exec.LookPath("git")
		if err != nil {
			g.findErr = errors.New("git is not installed on this broker (Debian: apt-get install git)")
			return
		}
		out, err := exec.Command(git, "--exec-path").Output()
		if err != nil {
			g.findErr = fmt.Errorf("git --exec-path: %w", err)
			return
		}
		backend := filepath.Join(strings.TrimSpace(string(out)), "git-http-backend")
		if _, err := os.Stat(backend); err != nil {
			g.findErr = fmt.Errorf("git's http-backend is missing: %w", err)
			return
		}
		g.git, g.backend = git, backend
	})
	return g.git, g.backend, g.findErr
}

// lock returns the lock of app's repository on this broker.
func (g *gitState) lock(app string) *sync.Mutex {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.locks == nil {
		g.locks = map[string]*sync.Mutex{}
	}
	l := g.locks[app]
	if l == nil {
		l = &sync.Mutex{}
		g.locks[app] = l
	}
	return l
}

// register notes push p and returns its hook's token; the returned
// function forgets it.
func (g *gitState) register(p *gitPush) (string, func()) {
	var raw [32]byte
	rand.Read(raw[:])
	token := hex.EncodeToString(raw[:])
	g.mu.Lock()
	if g.pushes == nil {
		g.pushes = map[string]*gitPush{}
	}
	g.pushes[token] = p
	g.mu.Unlock()
	return token, func() {
		g.mu.Lock()
		delete(g.pushes, token)
		g.mu.Unlock()
	}
}

func (g *gitState) push(token string) *gitPush {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.pushes[token]
}

// gitRoot is where this broker keeps the apps' repositories and bundles.
func (b *Broker) gitRoot() string { return filepath.Join(b.cfg.DataDir, "git") }

// repoDir is app's bare repository.
func (b *Broker) repoDir(app string) string {
	ns, name, _ := strings.Cut(app, "/")
	return filepath.Join(b.gitRoot(), "repos", ns, name+".git")
}

// bundleFile is where this broker keeps bundle id.
func (b *Broker) bundleFile(id string) string {
	return filepath.Join(b.gitRoot(), "bundles", id+".bundle")
}

// serveGit answers git's smart-HTTP requests for /git/NS/APP.git.
func (b *Broker) serveGit(w http.ResponseWriter, r *http.Request) {
	m := gitRepoPathRE.FindStringSubmatch(r.URL.Path)
	gitErr := func(code int, format string, args ...any) {
		if code == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Basic realm="gearbox"`)
		}
		http.Error(w, fmt.Sprintf(format, args...), code)
	}
	if m == nil {
		gitErr(http.StatusNotFound, "not a git remote of gearbox: use /git/NAMESPACE/APP.git")
		return
	}
	ns, name, what := m[1], m[2], m[3]
	service := what
	if what == "info/refs" {
		if r.Method != http.MethodGet {
			gitErr(http.StatusMethodNotAllowed, "GET only")
			return
		}
		service = r.URL.Query().Get("service")
		if service != "git-upload-pack" && service != "git-receive-pack" {
			gitErr(http.StatusForbidden, "only git's smart HTTP protocol is served (git 1.6.6 or later)")
			return
		}
	} else if r.Method != http.MethodPost {
		gitErr(http.StatusMethodNotAllowed, "POST only")
		return
	}
	if !b.isLeader() {
		b.forward(w, r)
		return
	}
	u, err := b.gitUser(r)
	if err != nil {
		var ae *apiError
		if errors.As(err, &ae) {
			gitErr(ae.code, "%s", ae.msg)
		} else {
			b.log.Error().Err(err).Msg("authenticate git request failed")
			gitErr(http.StatusInternalServerError, "internal error; the broker log has the details")
		}
		return
	}
	a, err := b.app(u, ns, name)
	if err != nil {
		var ae *apiError
		if errors.As(err, &ae) {
			gitErr(ae.code, "%s", ae.msg)
		} else {
			gitErr(http.StatusInternalServerError, "internal error; the broker log has the details")
		}
		return
	}
	git, backend, err := b.git.programs()
	if err != nil {
		gitErr(http.StatusNotImplemented, "%v", err)
		return
	}
	key := state.AppKey(a.Domain, a.Name)
	receive := service == "git-receive-pack" && r.Method == http.MethodPost
	// A push holds the repository until it is recorded, so that pushes
	// and the copies brought up to date follow one another; a fetch holds
	// it only while the copy is brought up to date.
	l := b.git.lock(key)
	l.Lock()
	dir, err := b.ensureRepo(r.Context(), git, key, a.Branch())
	if err == nil {
		_, err = b.syncRepo(r.Context(), git, key, a.Branch())
	}
	if receive {
		defer l.Unlock()
	} else {
		l.Unlock()
	}
	if err != nil {
		b.log.Error().Err(err).Str("app", key).Msg("git repository not available")
		gitErr(http.StatusServiceUnavailable, "the repository is not available on this broker now: %v", err)
		return
	}
	env := []string{"GIT_PROJECT_ROOT=" + filepath.Dir(dir), "GIT_HTTP_EXPORT_ALL=1", "REMOTE_USER=" + u.Login,
		"GIT_CONFIG_NOSYSTEM=1", "HOME=" + b.gitRoot()}
	if receive {
		sock, err := b.hookSocket()
		if err != nil {
			gitErr(http.StatusServiceUnavailable, "cannot take pushes now: %v", err)
			return
		}
		token, done := b.git.register(&gitPush{user: u, app: key, dir: dir})
		defer done()
		env = append(env, githook.EnvSocket+"="+sock, githook.EnvToken+"="+token)
	}
	if r.Method == http.MethodPost && r.ContentLength < 0 {
		// git sends large packs chunked, which CGI cannot pass on: the
		// body is spooled to a file first, and its length given.
		body, n, err := spoolBody(r.Body, b.gitRoot(), gitPushLimit(b.cfg.MaxDeploySize))
		if err != nil {
			code := http.StatusBadRequest
			if errors.Is(err, errPushTooLarge) {
				code = http.StatusRequestEntityTooLarge
			}
			gitErr(code, "%v", err)
			return
		}
		defer body.Close()
		r.Body, r.ContentLength, r.TransferEncoding = body, n, nil
	}
	h := &cgi.Handler{Path: backend, Root: "/git/" + ns, Dir: dir, Env: env, InheritEnv: []string{"PATH"},
		Stderr: logLines{b.log, "git http-backend"}}
	h.ServeHTTP(flushWriter{w}, r)
	if receive {
		if err := b.recordRepo(context.WithoutCancel(r.Context()), git, u, key, dir); err != nil {
			b.log.Error().Err(err).Str("app", key).Msg("record git repository failed")
		}
	}
}

// gitPushLimit is the most a git request's body may carry: four times
// the largest deployment, for a pack of a repository's history.
func gitPushLimit(maxDeploy int64) int64 { return 4 * maxDeploy }

var errPushTooLarge = errors.New("the push is too large")

// spoolBody copies body, at most limit bytes, to a temporary file in dir
// that is removed when closed, and returns it at its start with its size.
func spoolBody(body io.Reader, dir string, limit int64) (io.ReadCloser, int64, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, 0, err
	}
	f, err := os.CreateTemp(dir, ".push-*")
	if err != nil {
		return nil, 0, err
	}
	os.Remove(f.Name()) // gone once closed
	n, err := io.Copy(f, io.LimitReader(body, limit+1))
	if err == nil && n > limit {
		err = fmt.Errorf("%w: more than %d bytes (4 × --max-deploy-size)", errPushTooLarge, limit)
	}
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, n, nil
}

// gitUser authenticates a git request: HTTP basic auth with the user's
// password, or with one of the user's API tokens as the password (what
// 'gearbox git-credential' gives git).
func (b *Broker) gitUser(r *http.Request) (*state.User, error) {
	if login, password, ok := r.BasicAuth(); ok && strings.HasPrefix(password, tokenPrefix) {
		u, _, err := b.userForToken(password)
		if err != nil {
			return nil, err
		}
		if u.Login != login {
			return nil, errBadCredentials
		}
		return u, nil
	}
	return b.authenticate(r)
}

// flushWriter sends each write to the client at once: the CGI's output is
// a push's progress.
type flushWriter struct{ http.ResponseWriter }

func (f flushWriter) Write(p []byte) (int, error) {
	n, err := f.ResponseWriter.Write(p)
	if fl, ok := f.ResponseWriter.(http.Flusher); ok {
		fl.Flush()
	}
	return n, err
}

func (f flushWriter) Flush() {
	if fl, ok := f.ResponseWriter.(http.Flusher); ok {
		fl.Flush()
	}
}

// logLines writes what a program prints on stderr to the log, a line
// each, as warnings.
type logLines struct {
	log  zerolog.Logger
	what string
}

func (l logLines) Write(p []byte) (int, error) {
	for line := range strings.Lines(string(p)) {
		if line = strings.TrimSpace(line); line != "" {
			l.log.Warn().Str("program", l.what).Str("detail", line).Msg("program said")
		}
	}
	return len(p), nil
}

// hookSocket returns the path of the Unix socket where the pre-receive
// hooks of pushes reach this broker, listening on it from the first call.
// It is in the broker's data folder (0700), or, when that path is too
// long for a socket, in a private temporary folder.
func (b *Broker) hookSocket() (string, error) {
	b.git.sockOnce.Do(func() {
		dir := b.gitRoot()
		if err := os.MkdirAll(dir, 0o700); err != nil {
			b.git.sockErr = err
			return
		}
		sock := filepath.Join(dir, "hook.sock")
		if len(sock) > 100 {
			tmp, err := os.MkdirTemp("", "gearbox-git-")
			if err != nil {
				b.git.sockErr = err
				return
			}
			sock = filepath.Join(tmp, "hook.sock")
		}
		os.Remove(sock) // left by a broker that was killed
		ln, err := net.Listen("unix", sock)
		if err != nil {
			b.git.sockErr = fmt.Errorf("listen on %s: %w", sock, err)
			return
		}
		os.Chmod(sock, 0o600)
		srv := &http.Server{Handler: http.HandlerFunc(b.serveHook), ReadHeaderTimeout: 10 * time.Second}
		b.wg.Go(func() { srv.Serve(ln) })
		b.wg.Go(func() {
			<-b.ctx.Done()
			srv.Close()
			os.Remove(sock)
		})
		b.git.sock = sock
	})
	return b.git.sock, b.git.sockErr
}

// serveHook answers a push's pre-receive hook (githook.Run): it deploys
// the new commit of the app's deploy branch, if the push has one,
// streaming the progress as githook.Message lines, the outcome last.
func (b *Broker) serveHook(w http.ResponseWriter, r *http.Request) {
	token, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	p := b.git.push(token)
	if r.Method != http.MethodPost || r.URL.Path != githook.Path || p == nil {
		http.Error(w, "no such push", http.StatusForbidden)
		return
	}
	var req githook.Request
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
		http.Error(w, "bad request: "+err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	enc := json.NewEncoder(w)
	say := func(m githook.Message) {
		enc.Encode(m)
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
	}
	ok := b.deployPush(r.Context(), p, req, func(format string, args ...any) {
		say(githook.Message{Line: fmt.Sprintf(format, args...)})
	})
	say(githook.Message{Done: true, OK: ok})
}

// deployPush decides on push p's ref updates: a new commit of the deploy
// branch is deployed and rolled out; it reports whether the push is
// accepted.
func (b *Broker) deployPush(ctx context.Context, p *gitPush, req githook.Request, say func(string, ...any)) bool {
	ns, name, _ := strings.Cut(p.app, "/")
	a, err := b.app(p.user, ns, name)
	if err != nil {
		say("error: %v", err)
		return false
	}
	branch := "refs/heads/" + a.Branch()
	var deploy *githook.Update
	for i, u := range req.Updates {
		switch {
		case u.Ref != branch:
			say("%s stored; pushes of %s are deployed", strings.TrimPrefix(u.Ref, "refs/heads/"), a.Branch())
		case u.New == zeroID:
			say("error: %s is the deploy branch of %s: it cannot be deleted", a.Branch(), a.Name)
			return false
		default:
			deploy = &req.Updates[i]
		}
	}
	if deploy == nil {
		return true
	}
	env := os.Environ()
	for _, k := range githook.ObjectEnv {
		v, ok := req.Env[k]
		if !ok {
			continue
		}
		// The quarantine git made for this push, inside the repository.
		for _, part := range filepath.SplitList(v) {
			if rel, err := filepath.Rel(p.dir, part); err != nil || rel == ".." || strings.HasPrefix(rel, "../") || filepath.IsAbs(rel) {
				say("error: object directory %s is not in the repository", part)
				return false
			}
		}
		env = append(env, k+"="+v)
	}
	git, _, err := b.git.programs()
	if err != nil {
		say("error: %v", err)
		return false
	}
	say("building a deployment of %s from commit %s", a.Name, shortID(deploy.New))
	cmd := exec.CommandContext(ctx, git, "archive", "--format=tar.gz", deploy.New)
	cmd.Dir, cmd.Env = p.dir, append(env, "GIT_DIR="+p.dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		say("error: %v", err)
		return false
	}
	if err := cmd.Start(); err != nil {
		say("error: git archive: %v", err)
		return false
	}
	tmp, id, size, recvErr := b.receiveArchive(out, b.cfg.MaxDeploySize)
	io.Copy(io.Discard, out)
	if err := cmd.Wait(); err != nil || recvErr != nil {
		if tmp != "" {
			os.Remove(tmp)
		}
		if recvErr == nil {
			recvErr = fmt.Errorf("git archive: %v: %s", err, strings.TrimSpace(stderr.String()))
		}
		say("error: %v", recvErr)
		return false
	}
	defer os.Remove(tmp)
	prev := a.Deployment
	d, _, _, err := b.addDeployment(ctx, p.user, ns, name, tmp, id, size)
	if err != nil {
		say("error: %v", err)
		return false
	}
	say("deployment %s (%s) of commit %s is current for %s; rolling it out", shortID(d.ID), byteCount(d.Size), shortID(deploy.New), a.Name)
	return b.followPushRollout(ctx, p, prev, d.ID, say)
}

// followPushRollout reports the roll-out of deployment id to a pusher
// until it is done (true) or failed: then the app goes back to prev, the
// deployment it ran, and the push is refused (false).
func (b *Broker) followPushRollout(ctx context.Context, p *gitPush, prev, id string, say func(string, ...any)) bool {
	ns, name, _ := strings.Cut(p.app, "/")
	deadline := time.Now().Add(b.cfg.RolloutTimeout + time.Minute)
	last := ""
	for {
		a, err := b.app(p.user, ns, name)
		if err != nil {
			say("error: %v", err)
			return false
		}
		ro, err := b.rolloutOf(a)
		if err != nil {
			say("error: %v", err)
			return false
		}
		if ro.Deployment != id {
			say("deployment %s is no longer current for %s (now %s): another deploy took over", shortID(id), a.Name, shortID(ro.Deployment))
			return true
		}
		if line := fmt.Sprintf("roll-out: %d of %d gears; %s", ro.Done, ro.Total, ro.Message); line != last {
			say("%s", line)
			last = line
		}
		switch ro.State {
		case state.RolloutDone:
			say("deployed: %s runs deployment %s", a.Name, shortID(id))
			return true
		case state.RolloutFailed:
			b.rollBack(ctx, p, prev, id, say)
			return false
		}
		if time.Now().After(deadline) {
			say("the roll-out is still running; it goes on ('gearbox app deployments %s' shows it)", a.Name)
			return true
		}
		select {
		case <-ctx.Done():
			say("the push was cut; the roll-out goes on")
			return false
		case <-b.ctx.Done():
			say("the broker is stopping; the roll-out goes on under the next leader")
			return false
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// rollBack makes prev current again for push p's app, if failed still
// is.
func (b *Broker) rollBack(ctx context.Context, p *gitPush, prev, failed string, say func(string, ...any)) {
	ns, name, _ := strings.Cut(p.app, "/")
	b.mu.Lock()
	defer b.mu.Unlock()
	a, err := b.app(p.user, ns, name)
	if err != nil || a.Deployment != failed {
		return
	}
	if prev == "" || !slices.Contains(a.Deployments, prev) {
		say("push refused: deployment %s failed; %s has no earlier deployment to go back to", shortID(failed), a.Name)
		return
	}
	a.Deployment = prev
	if err := b.commit(ctx, []store.Op{{Bucket: state.BucketApps, Key: p.app, Value: a}}, nil); err != nil {
		say("push refused: deployment %s failed, and going back to %s failed too: %v", shortID(failed), shortID(prev), err)
		return
	}
	b.log.Warn().Str("app", p.app).Str("deployment", failed).Str("back_to", prev).Msg("pushed deployment failed; rolled back")
	say("push refused: deployment %s failed; %s runs deployment %s again", shortID(failed), a.Name, shortID(prev))
}

// shortID is the first 12 characters of a commit or deployment id.
func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// byteCount prints a size for people.
func byteCount(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// runGit runs git with args in dir and returns its output.
func runGit(ctx context.Context, git, dir string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, git, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_TERMINAL_PROMPT=0")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("git %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// hookScript is the pre-receive hook of every repository.
func (b *Broker) hookScript() string {
	var sb strings.Builder
	sb.WriteString("#!/bin/sh\n# Written by gearbox: pushes of the deploy branch are deployed.\nexec")
	for _, a := range b.cfg.GitHook {
		sb.WriteString(" '" + strings.ReplaceAll(a, "'", `'\''`) + "'")
	}
	sb.WriteString("\n")
	return sb.String()
}

// ensureRepo creates app's bare repository on this broker if it is not
// there, and sets its HEAD to branch and its hook.
func (b *Broker) ensureRepo(ctx context.Context, git, app, branch string) (string, error) {
	dir := b.repoDir(app)
	if _, err := os.Stat(filepath.Join(dir, "HEAD")); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
			return "", err
		}
		if _, err := runGit(ctx, git, filepath.Dir(dir), "init", "-q", "--bare", dir); err != nil {
			return "", err
		}
		for _, kv := range [][2]string{{"http.receivepack", "true"}, {"receive.denyNonFastForwards", "false"}, {"core.logAllRefUpdates", "false"}} {
			if _, err := runGit(ctx, git, dir, "config", kv[0], kv[1]); err != nil {
				return "", err
			}
		}
		os.RemoveAll(filepath.Join(dir, "hooks"))
	} else if err != nil {
		return "", err
	}
	if _, err := runGit(ctx, git, dir, "symbolic-ref", "HEAD", "refs/heads/"+branch); err != nil {
		return "", err
	}
	hook := filepath.Join(dir, "hooks", "pre-receive")
	if cur, err := os.ReadFile(hook); err != nil || string(cur) != b.hookScript() {
		if err := os.MkdirAll(filepath.Dir(hook), 0o700); err != nil {
			return "", err
		}
		if err := os.WriteFile(hook+".tmp", []byte(b.hookScript()), 0o700); err != nil {
			return "", err
		}
		if err := os.Rename(hook+".tmp", hook); err != nil {
			return "", err
		}
	}
	return dir, nil
}

// appliedBundle is the file in a repository that names the bundle it
// was last brought to.
const appliedBundle = "gearbox-bundle"

// syncRepo brings this broker's copy of app's repository to the bundle
// its record names, fetching the bundle from another broker if need be,
// and returns the repository.
func (b *Broker) syncRepo(ctx context.Context, git, app, branch string) (string, error) {
	dir := b.repoDir(app)
	var rec state.Repo
	if _, err := b.st.Get(state.BucketRepos, app, &rec); errors.Is(err, store.ErrNotFound) {
		return dir, nil
	} else if err != nil {
		return "", err
	}
	if cur, _ := os.ReadFile(filepath.Join(dir, appliedBundle)); string(cur) == rec.Bundle {
		return dir, nil
	}
	if _, err := b.ensureRepo(ctx, git, app, branch); err != nil {
		return "", err
	}
	file := b.bundleFile(rec.Bundle)
	if _, err := os.Stat(file); err != nil {
		if err := b.fetchBundle(ctx, rec); err != nil {
			return "", err
		}
	}
	if _, err := runGit(ctx, git, dir, "fetch", "-q", "--prune", "--force", file, "+refs/*:refs/*"); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, appliedBundle), []byte(rec.Bundle), 0o600); err != nil {
		return "", err
	}
	b.removeBundlesBut(app, rec.Bundle)
	b.log.Info().Str("app", app).Str("bundle", rec.Bundle).Int("refs", len(rec.Refs)).Msg("git repository brought up to date")
	return dir, nil
}

// fetchBundle downloads rec's bundle from a broker that has it: its
// holders first, then the other brokers.
func (b *Broker) fetchBundle(ctx context.Context, rec state.Repo) error {
	var errs []error
	members := b.st.Members()
	slices.SortStableFunc(members, func(x, y store.Member) int {
		return boolRank(slices.Contains(rec.Holders, y.Name)) - boolRank(slices.Contains(rec.Holders, x.Name))
	})
	for _, m := range members {
		if m.Name == b.st.Name() || m.Status != store.StatusAlive || m.InternalAddr == "" || !slices.Contains(m.Roles, store.RoleBroker) {
			continue
		}
		err := b.fetchBundleFrom(ctx, m.InternalAddr, rec)
		if err == nil {
			return nil
		}
		errs = append(errs, fmt.Errorf("from %s: %w", m.Name, err))
	}
	if len(errs) == 0 {
		return fmt.Errorf("bundle %s: no other broker is alive to fetch it from", shortID(rec.Bundle))
	}
	return fmt.Errorf("bundle %s: %w", shortID(rec.Bundle), errors.Join(errs...))
}

func boolRank(v bool) int {
	if v {
		return 1
	}
	return 0
}

func (b *Broker) fetchBundleFrom(ctx context.Context, addr string, rec state.Repo) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, internalapi.URL(addr, internalapi.BundlePath(rec.Bundle)), nil)
	if err != nil {
		return err
	}
	resp, err := b.logClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", req.URL.Path, resp.Status)
	}
	dir := filepath.Dir(b.bundleFile(rec.Bundle))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".fetch-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(resp.Body, rec.Size+1)); err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != rec.Bundle {
		return fmt.Errorf("bundle's sha256 is %s, not %s", shortID(got), shortID(rec.Bundle))
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), b.bundleFile(rec.Bundle))
}

// removeBundlesBut removes the bundles of app this broker keeps but keep.
func (b *Broker) removeBundlesBut(app, keep string) {
	marker := filepath.Join(b.repoDir(app), "gearbox-bundles")
	old, _ := os.ReadFile(marker)
	for id := range strings.FieldsSeq(string(old)) {
		if id != keep {
			os.Remove(b.bundleFile(id))
		}
	}
	os.WriteFile(marker, []byte(keep+"\n"), 0o600)
}

// recordRepo bundles app's repository in dir after a push and records
// the bundle, unless its refs are those already recorded.
func (b *Broker) recordRepo(ctx context.Context, git string, u *state.User, app, dir string) error {
	out, err := runGit(ctx, git, dir, "for-each-ref", "--format=%(objectname) %(refname)")
	if err != nil {
		return err
	}
	refs := map[string]string{}
	for line := range strings.Lines(string(out)) {
		if id, ref, ok := strings.Cut(strings.TrimSpace(line), " "); ok {
			refs[ref] = id
		}
	}
	var rec state.Repo
	if _, err := b.st.Get(state.BucketRepos, app, &rec); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if len(refs) == 0 || maps.Equal(refs, rec.Refs) {
		return nil
	}
	bundles := filepath.Dir(b.bundleFile("x"))
	if err := os.MkdirAll(bundles, 0o700); err != nil {
		return err
	}
	tmp := filepath.Join(bundles, fmt.Sprintf(".new-%d.bundle", time.Now().UnixNano()))
	defer os.Remove(tmp)
	if _, err := runGit(ctx, git, dir, "bundle", "create", "-q", tmp, "--all"); err != nil {
		return err
	}
	f, err := os.Open(tmp)
	if err != nil {
		return err
	}
	h := sha256.New()
	size, err := io.Copy(h, f)
	f.Close()
	if err != nil {
		return err
	}
	id := hex.EncodeToString(h.Sum(nil))
	if err := os.Rename(tmp, b.bundleFile(id)); err != nil {
		return err
	}
	rec = state.Repo{App: app, Bundle: id, Size: size, Refs: refs, Holders: []string{b.st.Name()}, PushedAt: b.cfg.Now(), PushedBy: u.Login}
	b.mu.Lock()
	err = b.commit(ctx, []store.Op{{Bucket: state.BucketRepos, Key: app, Value: rec}}, nil)
	b.mu.Unlock()
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, appliedBundle), []byte(id), 0o600); err != nil {
		return err
	}
	b.removeBundlesBut(app, id)
	b.log.Info().Str("app", app).Str("bundle", id).Int64("size", size).Int("refs", len(refs)).Msg("git repository recorded")
	return nil
}

// BundleHandler serves the bundles of the apps' repositories that this
// broker keeps on the internal API (internalapi.BundlePath), for the
// other brokers to fetch.
func (b *Broker) BundleHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := internalapi.ServeBundle(w, r, filepath.Dir(b.bundleFile("x"))); err != nil {
			b.log.Warn().Err(err).Msg("serve git bundle failed")
		}
	})
}

// repoLoop keeps this broker's copies of the apps' repositories at their
// recorded bundles, and removes those of deleted apps, on every change of
// the records or of the apps, and every 30 s.
func (b *Broker) repoLoop() {
	w := b.st.Watch(state.BucketRepos, state.BucketApps)
	defer w.Close()
	for {
		if err := b.syncRepos(b.ctx); err != nil && b.ctx.Err() == nil && !errors.Is(err, store.ErrClosed) {
			b.log.Warn().Err(err).Msg("sync git repositories failed")
		}
		select {
		case <-b.ctx.Done():
			return
		case <-w.C():
			w.Next()
		case <-time.After(30 * time.Second):
		}
	}
}

// syncRepos is one pass of repoLoop.
func (b *Broker) syncRepos(ctx context.Context) error {
	recs, err := list[state.Repo](b.st, state.BucketRepos)
	if err != nil {
		return err
	}
	var errs []error
	if len(recs) > 0 {
		git, _, err := b.git.programs()
		if err != nil {
			return err
		}
		for _, rec := range recs {
			var a state.App
			if _, err := b.st.Get(state.BucketApps, rec.App, &a); err != nil {
				continue
			}
			l := b.git.lock(rec.App)
			l.Lock()
			_, err := b.syncRepo(ctx, git, rec.App, a.Branch())
			l.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", rec.App, err))
			}
		}
	}
	// Repositories of apps that are gone.
	nss, _ := os.ReadDir(filepath.Join(b.gitRoot(), "repos"))
	for _, ns := range nss {
		repos, _ := os.ReadDir(filepath.Join(b.gitRoot(), "repos", ns.Name()))
		for _, r := range repos {
			app := state.AppKey(ns.Name(), strings.TrimSuffix(r.Name(), ".git"))
			if _, err := b.st.GetRecord(state.BucketApps, app); errors.Is(err, store.ErrNotFound) {
				b.removeRepo(app)
			}
		}
	}
	return errors.Join(errs...)
}

// removeRepo removes app's repository and bundles from this broker.
func (b *Broker) removeRepo(app string) {
	l := b.git.lock(app)
	l.Lock()
	defer l.Unlock()
	b.removeBundlesBut(app, "")
	if err := os.RemoveAll(b.repoDir(app)); err == nil {
		b.log.Info().Str("app", app).Msg("git repository of a deleted app removed")
	}
}
