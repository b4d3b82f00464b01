package node

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"gearbox/store"
	"gearbox/store/internalapi"
	"gearbox/store/state"
)

// deployment is a deployment of an app made ready on this node: unpacked
// in dir and, if its manifest asks, built for that app.
type deployment struct {
	id       string
	dir      string
	manifest Manifest
}

// depKey names a deployment of an app. Deployments are prepared per app:
// two apps that upload the same archive share its id (and the archive a
// node keeps), but each gets a tree of its own, built with its own env.
type depKey struct{ app, id string }

// deployJob is the preparation of one deployment of an app on this node:
// fetched, verified, unpacked and built once, whichever of the app's
// gears ask for it.
type deployJob struct {
	running bool
	phase   string // state.GearDeploying or state.GearBuilding while running
	ready   *deployment
	err     error         // of the last attempt
	delay   time.Duration // backoff after the last failure
	retryAt time.Time     // no new attempt before
	waiters map[*gear]bool
}

// deployer prepares the deployments that the gears of a node run. Its
// attempts run on the Supervisor's context and WaitGroup.
type deployer struct {
	s    *Supervisor
	http *http.Client

	mu   sync.Mutex
	jobs map[depKey]*deployJob
}

func newDeployer(s *Supervisor) *deployer {
	// Mutual TLS with the key derived from the cluster secret; one
	// connection per fetch.
	tr := internalapi.Transport(s.cfg.ClusterSecret)
	tr.DisableKeepAlives = true
	return &deployer{s: s, http: &http.Client{Transport: tr}, jobs: make(map[depKey]*deployJob)}
}

func (dp *deployer) root() string { return filepath.Join(dp.s.cfg.DataDir, "deployments") }

// appsDir holds a directory per app (appDirName) with the trees of the
// app's deployments: DATA_DIR/deployments/apps/NS+NAME/ID, its build
// marker ID.built and build log ID.build.log. The archives, shared by
// every app, are DATA_DIR/deployments/ID.tar.gz.
func (dp *deployer) appsDir() string { return filepath.Join(dp.root(), "apps") }

// appDirName is the name of app's directory under appsDir: its key
// "NS/NAME" as NS+NAME, refused unless both are plain names.
func appDirName(app string) (string, error) {
	ns, name, ok := strings.Cut(app, "/")
	if !ok || !plainName(ns) || !plainName(name) {
		return "", fmt.Errorf("app %q is not NAMESPACE/NAME", app)
	}
	return ns + "+" + name, nil
}

// plainName reports whether s is a name safe as a path component and
// without the '+' of appDirName: letters, digits, '-', '_' and '.', not
// starting with '.'.
func plainName(s string) bool {
	if s == "" || s[0] == '.' {
		return false
	}
	for _, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.':
		default:
			return false
		}
	}
	return true
}

// dir returns where deployment k.id of app k.app is unpacked and built.
func (dp *deployer) dir(k depKey) (string, error) {
	a, err := appDirName(k.app)
	if err != nil {
		return "", err
	}
	return filepath.Join(dp.appsDir(), a, k.id), nil
}

// get returns deployment d.deployment once it is ready. Until then it
// returns nil and the state and reason g should report (state is ""
// after a failed attempt, whose error is in err), starts an attempt if
// none runs and the backoff of the last failure has passed, and pokes g
// when the attempt ends. retryIn is how long until the next attempt may
// start after a failure.
func (dp *deployer) get(g *gear, d desired) (dep *deployment, phase string, retryIn time.Duration, err error) {
	id := d.deployment
	if !internalapi.ValidDeploymentID(id) {
		return nil, "", 0, fmt.Errorf("deployment id %q is not a sha256 hex digest", id)
	}
	k := depKey{app: d.gear.App, id: id}
	if _, err := appDirName(k.app); err != nil {
		return nil, "", 0, err
	}
	dp.mu.Lock()
	defer dp.mu.Unlock()
	j := dp.jobs[k]
	if j == nil {
		j = &deployJob{waiters: make(map[*gear]bool)}
		dp.jobs[k] = j
	}
	if j.ready != nil {
		return j.ready, "", 0, nil
	}
	j.waiters[g] = true
	if j.running {
		return nil, j.phase, 0, nil
	}
	now := time.Now()
	if j.err != nil && now.Before(j.retryAt) {
		return nil, "", j.retryAt.Sub(now), j.err
	}
	j.running, j.phase = true, state.GearDeploying
	// The build runs with the environment of the app's gear that asked
	// first (every gear of the app shares all of it but the gear's own
	// variables), and, when gears are isolated, as that gear's uid within
	// its limits. Another app's gears never share it: the job is the
	// app's own.
	env := slices.DeleteFunc(dp.s.gearEnv(d, g.dir, id), func(kv string) bool { return strings.HasPrefix(kv, "PORT=") })
	bj := dp.s.iso.jail("build-"+short(id), g.uid, d.gear.Size)
	dp.s.wg.Go(func() {
		dep, err := dp.prepare(dp.s.ctx, k, env, bj, func(phase string) {
			dp.mu.Lock()
			j.phase = phase
			ws := j.waitersLocked()
			dp.mu.Unlock()
			for _, w := range ws {
				w.poke()
			}
		})
		dp.mu.Lock()
		j.running = false
		if err != nil {
			dp.s.metrics.buildsFailed.Add(1)
			j.delay = dp.s.cfg.Backoff.Next(j.delay, 0)
			j.err, j.retryAt = err, time.Now().Add(j.delay)
			dp.s.log.Warn().Err(err).Str("app", k.app).Str("deployment", id).Dur("retry_in", j.delay).Msg("prepare deployment failed")
		} else {
			dp.s.metrics.buildsOK.Add(1)
			j.ready, j.err = dep, nil
			dp.s.log.Info().Str("app", k.app).Str("deployment", id).Msg("deployment ready")
		}
		ws := j.waitersLocked()
		clear(j.waiters)
		dp.mu.Unlock()
		for _, w := range ws {
			w.poke()
		}
	})
	return nil, j.phase, 0, nil
}

func (j *deployJob) waitersLocked() []*gear {
	ws := make([]*gear, 0, len(j.waiters))
	for w := range j.waiters {
		ws = append(ws, w)
	}
	return ws
}

// forget drops g from the waiters of every deployment.
func (dp *deployer) forget(g *gear) {
	dp.mu.Lock()
	defer dp.mu.Unlock()
	for _, j := range dp.jobs {
		delete(j.waiters, g)
	}
}

// prepare makes deployment k ready: unpacked from the archive (fetched
// from a holder first unless this node keeps it) into the app's own
// directory and built there if its manifest says so, confined by j if it
// is set. phase is told when the build starts.
func (dp *deployer) prepare(ctx context.Context, k depKey, env []string, j *jail, phase func(string)) (*deployment, error) {
	id := k.id
	dir, err := dp.dir(k)
	if err != nil {
		return nil, err
	}
	// Searchable, not listable, by gears, like DATA_DIR/deployments:
	// a gear reaches its app's deployment by the id it is given.
	for _, d := range []string{dp.root(), dp.appsDir(), filepath.Dir(dir)} {
		if err := os.Mkdir(d, 0o711); err == nil {
			err = os.Chmod(d, 0o711) // past the umask
		} else if errors.Is(err, os.ErrExist) {
			err = nil
		}
		if err != nil {
			return nil, fmt.Errorf("create %s: %w", d, err)
		}
	}
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		if err := dp.unpack(ctx, k.app, id, dir); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, err
	}
	m, err := ReadManifest(dir)
	if err != nil {
		return nil, brokenError{fmt.Errorf("deployment %s: %w", short(id), err)}
	}
	if m.Build != "" {
		marker := dir + ".built"
		if _, err := os.Stat(marker); err != nil {
			phase(state.GearBuilding)
			if err := dp.build(ctx, id, dir, m.Build, env, j); err != nil {
				if ctx.Err() != nil {
					return nil, err
				}
				return nil, brokenError{err}
			}
			if err := os.WriteFile(marker, nil, 0o644); err != nil {
				return nil, fmt.Errorf("note build of deployment %s: %w", short(id), err)
			}
		}
	}
	return &deployment{id: id, dir: dir, manifest: m}, nil
}

// brokenError is the error of a deployment that no retry will make
// ready: its archive does not unpack, its manifest is invalid, or its
// build failed. (A fetch that failed may work from another holder.)
type brokenError struct{ error }

func (e brokenError) Unwrap() error { return e.error }

// unpack unpacks the archive of deployment id into dir, fetching it
// first (for app) unless this node keeps it.
func (dp *deployer) unpack(ctx context.Context, app, id, dir string) error {
	if _, err := os.Stat(dp.archive(id)); errors.Is(err, os.ErrNotExist) {
		if err := dp.fetch(ctx, app, id); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	f, err := os.Open(dp.archive(id))
	if err != nil {
		return err
	}
	defer f.Close()
	if err := Unpack(f, dir, dp.s.cfg.MaxDeploySize); err != nil {
		return brokenError{fmt.Errorf("unpack deployment %s: %w", short(id), err)}
	}
	return nil
}

// fetch downloads the archive of deployment id of app from a live member
// that has it, verifies its sha256 and keeps it. The members that hold it (the
// broker that received it) are tried first, then the nodes that run the
// app's gears, which keep the archives they fetched: losing the broker
// that received an upload does not lose the deployment.
func (dp *deployer) fetch(ctx context.Context, app, id string) error {
	var rec state.Deployment
	if _, err := dp.s.st.Get(state.BucketDeployments, state.DeploymentKey(app, id), &rec); err != nil {
		return fmt.Errorf("read record of deployment %s: %w", short(id), err)
	}
	members := make(map[string]store.Member)
	for _, m := range dp.s.st.Members() {
		members[m.Name] = m
	}
	var errs []error
	for _, h := range dp.sources(app, rec.Holders) {
		m, ok := members[h]
		if !ok || m.Status != store.StatusAlive || m.InternalAddr == "" {
			errs = append(errs, fmt.Errorf("holder %s is not alive", h))
			continue
		}
		err := dp.fetchFrom(ctx, m.InternalAddr, id)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		errs = append(errs, fmt.Errorf("from %s: %w", h, err))
	}
	if len(errs) == 0 {
		return fmt.Errorf("fetch deployment %s: no member holds it", short(id))
	}
	return fmt.Errorf("fetch deployment %s: %w", short(id), errors.Join(errs...))
}

// sources returns the members to fetch a deployment of app from, in
// order: its holders, then the other nodes that run gears of app.
func (dp *deployer) sources(app string, holders []string) []string {
	out := slices.Clone(holders)
	recs, err := dp.s.st.List(state.BucketGears)
	if err != nil {
		return out
	}
	var nodes []string
	for _, r := range recs {
		var g state.Gear
		if r.Decode(&g) == nil && g.App == app && g.Node != dp.s.name && !slices.Contains(out, g.Node) && !slices.Contains(nodes, g.Node) {
			nodes = append(nodes, g.Node)
		}
	}
	slices.Sort(nodes)
	return append(out, nodes...)
}

// archive is where this node keeps the archive of deployment id, which it
// serves to other members (Supervisor.BlobHandler).
func (dp *deployer) archive(id string) string { return internalapi.BlobFile(dp.root(), id) }

// fetchFrom downloads archive id from the internal API at addr to a
// temporary file, checks its size and hash, and keeps it as
// dp.archive(id).
func (dp *deployer) fetchFrom(ctx context.Context, addr, id string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, internalapi.URL(addr, internalapi.BlobPath(id)), nil)
	if err != nil {
		return err
	}
	resp, err := dp.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", req.URL.Path, resp.Status)
	}
	f, err := os.CreateTemp(dp.root(), ".fetch-"+id+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	limit := dp.s.cfg.MaxDeploySize
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return fmt.Errorf("download: %w", err)
	}
	if n > limit {
		return fmt.Errorf("archive is larger than the limit of %d bytes (MaxDeploySize): %w", limit, ErrArchiveTooLarge)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != id {
		return fmt.Errorf("archive's sha256 is %s, not the deployment's id: %w", short(got), ErrHashMismatch)
	}
	if err := f.Close(); err != nil {
		return err
	}
	// Kept (root's alone, 0600) for the node's apps to unpack and for
	// other members to fetch.
	if err := os.Rename(f.Name(), dp.archive(id)); err != nil {
		return fmt.Errorf("keep archive: %w", err)
	}
	return nil
}

// build runs script with sh -c in dir, where deployment id of an app is
// unpacked, its output going to dir + ".build.log".
//
// Confined by j, the build runs as the uid of the gear that asked for the
// deployment first: the tree is handed to that uid for the build, and
// taken back by root afterwards, whatever the outcome, read-only for
// every gear (directories and executables 0755, other files 0644). Its
// name, the deployment's sha256, is what lets a gear find it: the
// directories above it cannot be listed by gears.
func (dp *deployer) build(ctx context.Context, id, dir, script string, env []string, j *jail) (err error) {
	logPath := dir + ".build.log"
	out, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|oNoFollow, 0o600)
	if err != nil {
		return fmt.Errorf("create build log: %w", err)
	}
	defer out.Close()
	ctx, cancel := context.WithTimeout(ctx, dp.s.cfg.BuildTimeout)
	defer cancel()
	c := ShellCommand(script, env, dir)
	if j != nil {
		if err := chownTree(dir, j.uid, j.uid, rootsUnlinked, nil); err != nil {
			return fmt.Errorf("build of deployment %s: %w", short(id), err)
		}
		defer func() {
			if serr := chownTree(dir, 0, 0, ownedBy(j.uid), readOnlyMode); serr != nil && err == nil {
				err = fmt.Errorf("build of deployment %s: seal: %w", short(id), serr)
			}
		}()
		c.jail = j
	}
	dp.s.log.Info().Str("deployment", id).Str("log", logPath).Int("uid", c.uid()).Msg("build deployment")
	run, err := c.Launch(out)
	if err != nil {
		return fmt.Errorf("build of deployment %s failed: %v", short(id), err)
	}
	// The build's whole process group (and cgroup) goes when the node
	// stops or the build takes too long.
	select {
	case <-run.Done():
	case <-ctx.Done():
		run.Stop(0)
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("build of deployment %s took longer than %s and was stopped (see %s)", short(id), dp.s.cfg.BuildTimeout, logPath)
		}
	}
	if err := run.Err(); err != nil {
		return fmt.Errorf("build of deployment %s failed: %v (see %s)", short(id), err, logPath)
	}
	return nil
}

// prune removes the deployments prepared on this node that keep does not
// name, nor anyApp by id (their directory, build marker and build log),
// unless they are being prepared, then the directories of apps left with
// none, and the archives of ids that no deployment kept or being prepared
// has. It returns the deployments removed, as APP/ID.
//
// Trees of the layout before deployments were kept per app
// (DATA_DIR/deployments/ID) are removed with their archive's id.
func (dp *deployer) prune(keep map[depKey]bool, anyApp map[string]bool) []string {
	dp.mu.Lock()
	defer dp.mu.Unlock()
	ids := maps.Clone(anyApp) // the ids whose archive stays
	if ids == nil {
		ids = make(map[string]bool)
	}
	for k := range keep {
		ids[k.id] = true
	}
	for k, j := range dp.jobs {
		if j.running {
			ids[k.id] = true
		}
	}
	var removed []string
	apps, _ := os.ReadDir(dp.appsDir())
	for _, a := range apps {
		ns, name, ok := strings.Cut(a.Name(), "+")
		if !a.IsDir() || !ok {
			continue
		}
		app := ns + "/" + name
		if an, err := appDirName(app); err != nil || an != a.Name() {
			continue
		}
		adir := filepath.Join(dp.appsDir(), a.Name())
		ents, err := os.ReadDir(adir)
		if err != nil {
			continue
		}
		left := 0
		for _, e := range ents {
			id := e.Name()
			k := depKey{app: app, id: id}
			if !e.IsDir() || !internalapi.ValidDeploymentID(id) {
				if !strings.HasPrefix(id, ".") { // an unpack under way
					left++
				}
				continue
			}
			if keep[k] || anyApp[id] || (dp.jobs[k] != nil && dp.jobs[k].running) {
				left++
				continue
			}
			dir := filepath.Join(adir, id)
			if err := os.RemoveAll(dir); err != nil {
				dp.s.log.Warn().Err(err).Str("app", app).Str("deployment", id).Msg("remove unused deployment failed")
				left++
				continue
			}
			os.Remove(dir + ".built")
			os.Remove(dir + ".build.log")
			delete(dp.jobs, k)
			removed = append(removed, app+"/"+id)
		}
		if left == 0 {
			os.Remove(adir) // only if empty: an unpack may have begun
		}
	}
	for k, j := range dp.jobs {
		if !keep[k] && !anyApp[k.id] && !j.running && j.ready == nil {
			delete(dp.jobs, k) // a failed attempt at a deployment no app keeps
		}
	}
	ents, _ := os.ReadDir(dp.root())
	for _, e := range ents {
		id, isArchive := strings.CutSuffix(e.Name(), ".tar.gz")
		if !internalapi.ValidDeploymentID(id) || ids[id] {
			continue
		}
		if isArchive {
			os.Remove(dp.archive(id))
			continue
		}
		if e.IsDir() { // the layout before deployments were kept per app
			if err := os.RemoveAll(filepath.Join(dp.root(), id)); err == nil {
				os.Remove(filepath.Join(dp.root(), id+".built"))
				os.Remove(filepath.Join(dp.root(), id+".build.log"))
				removed = append(removed, id)
			}
		}
	}
	return removed
}

// HasBlob reports whether this node keeps the archive of deployment id.
func (s *Supervisor) HasBlob(id string) bool {
	if !internalapi.ValidDeploymentID(id) {
		return false
	}
	_, err := os.Stat(s.deploys.archive(id))
	return err == nil
}

// BlobHandler serves the deployment archives this node keeps on the
// internal API, at the path brokers serve theirs (GET
// internalapi.BlobPath(id), answered by internalapi.ServeBlob): 404 for
// one it does not keep. It must be mounted on the internal API, whose
// mutual TLS admits only members with the cluster secret.
// Fetchers verify the hash of what they receive.
func (s *Supervisor) BlobHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := internalapi.ServeBlob(w, r, s.deploys.root()); err != nil {
			s.log.Warn().Err(err).Msg("serve deployment archive failed")
		}
	})
}

// short abbreviates a deployment id for messages.
func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
