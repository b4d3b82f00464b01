package broker

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"gearbox/broker/api"
	"gearbox/store"
	"gearbox/store/internalapi"
	"gearbox/store/state"
)

// Deployment defaults.
const (
	// DefaultMaxDeploySize is the default of Config.MaxDeploySize.
	DefaultMaxDeploySize int64 = 512 << 20
	// DefaultKeepDeployments is the default of Config.KeepDeployments.
	DefaultKeepDeployments = 3
	// maxDeployEntries caps the entries of an archive, as nodes do.
	maxDeployEntries = 100_000
)

// deploymentContentTypes are the content types an upload may declare.
// An empty one is taken as raw bytes too.
var deploymentContentTypes = []string{"", "application/gzip", "application/x-gzip", "application/x-tar+gzip", "application/octet-stream"}

// viewDeployment is deployment d of app a as the API shows it.
func viewDeployment(d *state.Deployment, a *state.App) api.Deployment {
	return api.Deployment{ID: d.ID, Size: d.Size, Current: d.ID == a.Deployment, Holders: d.Holders, CreatedAt: d.CreatedAt, CreatedBy: d.CreatedBy}
}

// blobDir holds this member's deployment archives: DataDir/deployments.
func (b *Broker) blobDir() string { return filepath.Join(b.cfg.DataDir, "deployments") }

func (b *Broker) blobPath(id string) string { return internalapi.BlobFile(b.blobDir(), id) }

// uploadCall handles an upload whose body is the payload itself.
type uploadCall func(w http.ResponseWriter, r *http.Request, u *state.User) error

// handleUpload wraps fn like handle does, except that the body is left
// unread for fn to stream (handle reads at most MaxBodyBytes of it as
// parameters) and that b.mu is not held: fn takes it only to commit, so
// that a long upload does not stall every other change.
func (b *Broker) handleUpload(fn uploadCall) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := refuseCrossSite(r); err != nil {
			b.fail(w, r, err)
			return
		}
		if !b.isLeader() {
			b.forward(w, r) // streams the body to the leader
			return
		}
		u, err := b.authenticate(r)
		if err != nil {
			b.fail(w, r, err)
			return
		}
		if err := fn(w, r, u); err != nil {
			b.fail(w, r, err)
		}
	}
}

// POST /broker/rest/domains/{ns}/applications/{app}/deployments: the body
// is the gzip-compressed tar archive of the app's code. The archive is
// stored as DataDir/deployments/SHA256.tar.gz and becomes the app's
// current deployment.
func (b *Broker) createDeployment(w http.ResponseWriter, r *http.Request, u *state.User) error {
	ns, name := r.PathValue("ns"), r.PathValue("app")
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if !slices.Contains(deploymentContentTypes, ct) {
		return errorf(http.StatusUnsupportedMediaType, 1, "Unsupported content type %q for a deployment: send the tar.gz archive as application/gzip or application/octet-stream.", ct)
	}
	// Who may deploy is known before a byte of the body is read.
	if _, err := b.app(u, ns, name); err != nil {
		return err
	}
	limit := b.cfg.MaxDeploySize
	if r.ContentLength > limit {
		return tooLarge(limit)
	}
	tmp, id, size, err := b.receiveArchive(http.MaxBytesReader(w, r.Body, limit), limit)
	if err != nil {
		return err
	}
	defer os.Remove(tmp) // after a successful rename, a no-op
	d, a, created, err := b.addDeployment(r.Context(), u, ns, name, tmp, id, size)
	if err != nil {
		return err
	}
	code := http.StatusOK // the same archive again: current and newest
	if created {
		code = http.StatusCreated
	}
	reply(w, code, "deployment", viewDeployment(&d, a),
		fmt.Sprintf("Deployment %s of application %s is now current.", id, a.Name))
	return nil
}

// addDeployment makes the archive in file tmp, of sha256 id and size
// bytes, the current deployment of app ns/name, as u: it enters the store
// of blobs (tmp is renamed) and the app's records. created is false when
// the app already kept that archive: it becomes current and newest.
func (b *Broker) addDeployment(ctx context.Context, u *state.User, ns, name, tmp, id string, size int64) (d state.Deployment, a *state.App, created bool, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	a, err = b.app(u, ns, name) // it may have been deleted meanwhile
	if err != nil {
		return d, nil, false, err
	}
	// The archive enters the store of blobs under b.mu, like the pruning
	// that removes blobs, so that a prune never removes an archive that
	// a concurrent upload is about to reference.
	final := b.blobPath(id)
	if _, err := os.Stat(final); errors.Is(err, fs.ErrNotExist) {
		if err := os.Rename(tmp, final); err != nil {
			return d, nil, false, fmt.Errorf("store deployment archive %s: %w", final, err)
		}
	} else if err != nil {
		return d, nil, false, fmt.Errorf("store deployment archive %s: %w", final, err)
	}
	appKey := state.AppKey(a.Domain, a.Name)
	key := state.DeploymentKey(appKey, id)
	d = state.Deployment{ID: id, App: appKey, Size: size, Holders: []string{b.st.Name()}, CreatedAt: b.cfg.Now(), CreatedBy: u.Login}
	created = true
	var old state.Deployment
	if _, err := b.st.Get(state.BucketDeployments, key, &old); err == nil {
		created = false
		for _, h := range old.Holders {
			if !slices.Contains(d.Holders, h) {
				d.Holders = append(d.Holders, h)
			}
		}
	} else if !errors.Is(err, store.ErrNotFound) {
		return d, nil, false, err
	}
	a.Deployment = id
	a.Deployments = append(slices.DeleteFunc(slices.Clone(a.Deployments), func(x string) bool { return x == id }), id)
	dropped := b.prune(a)
	ops := []store.Op{
		{Bucket: state.BucketApps, Key: appKey, Value: a},
		{Bucket: state.BucketDeployments, Key: key, Value: d},
	}
	for _, x := range dropped {
		ops = append(ops, store.Op{Bucket: state.BucketDeployments, Key: state.DeploymentKey(appKey, x), Delete: true})
	}
	if err := b.commit(ctx, ops, nil); err != nil {
		return d, nil, false, err
	}
	b.removeBlobs(dropped)
	b.log.Info().Str("app", a.Name).Str("domain", a.Domain).Str("deployment", id).Int64("size", size).Strs("dropped", dropped).Msg("deployment created")
	return d, a, created, nil
}

// prune drops the oldest of a's deployments beyond KeepDeployments, never
// the current one, and returns the dropped ids.
func (b *Broker) prune(a *state.App) []string {
	var dropped []string
	for len(a.Deployments) > b.cfg.KeepDeployments {
		i := slices.IndexFunc(a.Deployments, func(x string) bool { return x != a.Deployment })
		if i < 0 {
			break
		}
		dropped = append(dropped, a.Deployments[i])
		a.Deployments = slices.Delete(slices.Clone(a.Deployments), i, i+1)
	}
	return dropped
}

// removeBlobs deletes the archives of ids that no deployment record
// references any more (another app may have deployed the same archive).
// The caller holds b.mu.
func (b *Broker) removeBlobs(ids []string) {
	if len(ids) == 0 {
		return
	}
	ds, err := list[state.Deployment](b.st, state.BucketDeployments)
	if err != nil {
		b.log.Warn().Err(err).Msg("list deployments to remove archives failed")
		return
	}
	for _, id := range ids {
		if slices.ContainsFunc(ds, func(d state.Deployment) bool { return d.ID == id }) {
			continue
		}
		if err := os.Remove(b.blobPath(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			b.log.Warn().Err(err).Str("deployment", id).Msg("remove deployment archive failed")
		}
	}
}

// GET /broker/rest/domains/{ns}/applications/{app}/deployments: the kept
// deployments, oldest first.
func (b *Broker) listDeployments(w http.ResponseWriter, r *http.Request, u *state.User, p params) error {
	a, err := b.app(u, r.PathValue("ns"), r.PathValue("app"))
	if err != nil {
		return err
	}
	ds, err := b.deploymentsOf(a)
	if err != nil {
		return err
	}
	out := []api.Deployment{}
	for i := range ds {
		out = append(out, viewDeployment(&ds[i], a))
	}
	reply(w, http.StatusOK, "deployments", out)
	return nil
}

// activateDeployment makes the kept deployment id current on a (event
// activate, deployment_id=id: a rollback). It only changes a; the caller
// holds b.mu and commits a, as appEvent does through its plan.
func (b *Broker) activateDeployment(a *state.App, id string) (string, error) {
	id = strings.ToLower(strings.TrimSpace(id))
	if id == "" {
		return "", fieldErr("deployment_id", 1, "Event activate needs deployment_id: one of the ids that GET .../deployments lists.")
	}
	if !slices.Contains(a.Deployments, id) {
		return "", notFound("Deployment '%s' is not kept for application '%s'; GET .../deployments lists those that are.", id, a.Name)
	}
	if _, err := b.st.GetRecord(state.BucketDeployments, state.DeploymentKey(state.AppKey(a.Domain, a.Name), id)); errors.Is(err, store.ErrNotFound) {
		return "", notFound("Deployment '%s' of application '%s' has no record.", id, a.Name)
	} else if err != nil {
		return "", err
	}
	if a.Deployment == id {
		return fmt.Sprintf("Deployment %s is already current for application %s.", id, a.Name), nil
	}
	a.Deployment = id
	return fmt.Sprintf("Application %s now runs deployment %s.", a.Name, id), nil
}

func tooLarge(limit int64) *apiError {
	return errorf(http.StatusRequestEntityTooLarge, 1, "The deployment is larger than the limit of %d bytes (--max-deploy-size).", limit)
}

// stickyReader remembers the first error of r.
type stickyReader struct {
	r   io.Reader
	n   int64
	err error
}

func (s *stickyReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	s.n += int64(n)
	if err != nil && !errors.Is(err, io.EOF) && s.err == nil {
		s.err = err
	}
	return n, err
}

// receiveArchive streams body to a temporary file in blobDir, hashing it
// and checking it is a tar.gz archive on the way; it returns the file,
// the archive's sha256 hex and its size.
func (b *Broker) receiveArchive(body io.Reader, limit int64) (tmp, id string, size int64, err error) {
	dir := b.blobDir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", 0, fmt.Errorf("create %s: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, ".upload-*")
	if err != nil {
		return "", "", 0, fmt.Errorf("create upload file in %s: %w", dir, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	h := sha256.New()
	src := &stickyReader{r: body}
	tee := io.TeeReader(src, io.MultiWriter(f, h))
	checkErr := checkArchive(tee, limit)
	if checkErr == nil {
		// Bytes after the gzip stream end are stored and hashed too: the
		// id is the hash of exactly what was sent.
		_, checkErr = io.Copy(io.Discard, tee)
	}
	var mbe *http.MaxBytesError
	switch {
	case errors.As(src.err, &mbe):
		return "", "", 0, tooLarge(limit)
	case src.err != nil:
		return "", "", 0, bodyError("deployment archive", src.err)
	case checkErr != nil:
		var ae *apiError
		if errors.As(checkErr, &ae) {
			return "", "", 0, ae
		}
		return "", "", 0, fmt.Errorf("store deployment upload: %w", checkErr)
	}
	if err := f.Sync(); err != nil {
		return "", "", 0, fmt.Errorf("store deployment upload: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", "", 0, fmt.Errorf("store deployment upload: %w", err)
	}
	return f.Name(), hex.EncodeToString(h.Sum(nil)), src.n, nil
}

// checkArchive walks the headers of a tar.gz archive so that an upload
// that is obviously not one, or that no node would unpack, is refused at
// once with a clear message. Nodes unpack with the complete checks (links
// out of the tree, writes through links) and remain the authority.
func checkArchive(r io.Reader, limit int64) error {
	bad := func(format string, args ...any) error {
		return errorf(http.StatusUnprocessableEntity, 1, "The deployment is not a usable tar.gz archive: "+format, args...)
	}
	zr, err := gzip.NewReader(r)
	if err != nil {
		return bad("%v.", err)
	}
	unzipped := &stickyReader{r: io.LimitReader(zr, limit+1)}
	tr := tar.NewReader(unzipped)
	for n := 0; ; n++ {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if unzipped.n > limit {
			return errorf(http.StatusRequestEntityTooLarge, 1, "The deployment unpacks to more than the limit of %d bytes (--max-deploy-size).", limit)
		}
		if err != nil {
			return bad("%v.", err)
		}
		if n >= maxDeployEntries {
			return bad("it has more than %d entries.", maxDeployEntries)
		}
		if hdr.Size > limit {
			return errorf(http.StatusRequestEntityTooLarge, 1, "The deployment entry %q is larger than the limit of %d bytes (--max-deploy-size).", hdr.Name, limit)
		}
		if strings.HasPrefix(hdr.Name, "/") || slices.Contains(strings.Split(hdr.Name, "/"), "..") {
			return bad("entry %q: absolute paths and '..' components are not allowed.", hdr.Name)
		}
		switch hdr.Typeflag {
		case tar.TypeReg, tar.TypeDir:
		case tar.TypeXGlobalHeader: // git archive's commit id: nodes skip it
		case tar.TypeSymlink:
			if strings.HasPrefix(hdr.Linkname, "/") {
				return bad("entry %q: symbolic link to the absolute path %q.", hdr.Name, hdr.Linkname)
			}
		case tar.TypeLink:
			return bad("entry %q: hard links are not supported; archive the file itself (tar --hard-dereference).", hdr.Name)
		case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
			return bad("entry %q: devices and fifos are not allowed.", hdr.Name)
		default:
			return bad("entry %q: unsupported entry type %q.", hdr.Name, hdr.Typeflag)
		}
	}
	// The rest of the gzip stream, so that its checksum is verified.
	if _, err := io.Copy(io.Discard, unzipped); err != nil {
		return bad("%v.", err)
	}
	if unzipped.n > limit {
		return errorf(http.StatusRequestEntityTooLarge, 1, "The deployment unpacks to more than the limit of %d bytes (--max-deploy-size).", limit)
	}
	return nil
}

// BlobHandler serves this member's deployment archives on the internal
// API: GET internalapi.BlobPath(id) streams DataDir/deployments/ID.tar.gz
// (internalapi.ServeBlob: ranges allowed, so that a node can resume), 404
// when this member does not hold it. It must be mounted on the internal
// API, whose mutual TLS admits only members with the cluster secret
// (internalapi.ServerTLS). Fetchers verify the hash of what they receive.
func (b *Broker) BlobHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := internalapi.ServeBlob(w, r, b.blobDir()); err != nil {
			b.log.Warn().Err(err).Msg("serve deployment archive failed")
		}
	})
}

// deploymentsOf reads the records of a's kept deployments, oldest first;
// one whose record has not reached this member yet is left out.
func (b *Broker) deploymentsOf(a *state.App) ([]state.Deployment, error) {
	appKey := state.AppKey(a.Domain, a.Name)
	var out []state.Deployment
	for _, id := range a.Deployments {
		var d state.Deployment
		if _, err := b.st.Get(state.BucketDeployments, state.DeploymentKey(appKey, id), &d); err == nil {
			out = append(out, d)
		} else if !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
	}
	return out, nil
}
