// Package internalapi is the contract of the internal API, the HTTP API
// that members call on each other (DESIGN.md, "The replicated store"):
// every path under Prefix, who serves it and what it answers, the helpers
// that build and parse the paths that carry an argument, the check of a
// deployment id and the serving of a deployment archive, which brokers and
// nodes both do.
//
// Every path is served on a member's internal listener over mutual TLS
// with a key derived from the cluster secret (tls.go: ServerTLS,
// ClientTLS, Transport, RequirePeer): a peer that cannot prove it holds
// the secret fails the handshake and reaches no handler, and the secret
// itself never crosses the wire.
//
// internalapi imports only the standard library, so that the store (which
// imports no gearbox package outside its own tree) and every role share it
// without importing each other.
package internalapi

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// Prefix starts every path of the internal API.
const Prefix = "/internal/v1/"

// Paths of the internal API served by every member's store (store.Handler).
const (
	// PathMembers is GET, served by every member's store: the member's name
	// and its view of cluster membership, JSON {self, members}.
	PathMembers = Prefix + "members"
	// PathStoreStatus is GET, served by every member's store: its name,
	// root digest, record count, last anti-entropy sync and counters,
	// JSON.
	PathStoreStatus = Prefix + "store/status"
	// PathStoreDigest is POST {prefixes}, served by every member's store
	// for anti-entropy: the digests of the children of each key-hash
	// prefix, and its last sync, JSON.
	PathStoreDigest = Prefix + "store/digest"
	// PathStoreSummaries is POST {prefixes}, served by every member's store
	// for anti-entropy: the bucket, key and version of every record under
	// each leaf prefix, and its last sync, JSON.
	PathStoreSummaries = Prefix + "store/summaries"
	// PathStoreGet is POST {refs}, served by every member's store: the
	// records named by bucket and key, tombstones included, JSON
	// {records}. Anti-entropy pulls with it, and so does a member that
	// heard of a record too large for a gossip event.
	PathStoreGet = Prefix + "store/get"
	// PathStorePut is POST {records}, served by every member's store: the
	// records are merged (last writer wins) and the count applied is
	// returned, JSON {applied}. Anti-entropy pushes with it.
	PathStorePut = Prefix + "store/put"
)

// Paths of the internal API served by the roles a member runs.
const (
	// PrefixBlobs starts BlobPath. GET or HEAD BlobPath(id), served by a
	// member with the node role for the archives its node keeps, else by
	// one with the broker role for those it holds (ServeBlob): the
	// deployment's archive, application/gzip, ranges allowed; 404 when the
	// member has no such archive or id is not a deployment id.
	PrefixBlobs = Prefix + "blobs/"
	// PrefixBundles starts BundlePath. GET or HEAD BundlePath(id), served
	// by a member with the broker role (ServeBundle): the git bundle of
	// every ref of an app's repository, as recorded after a push,
	// application/octet-stream, ranges allowed; 404 when the member does
	// not keep it.
	PrefixBundles = Prefix + "bundles/"
	// PrefixGears starts GearLogsPath. GET GearLogsPath(id)?tail=N&follow=1,
	// served by a member with the node role for the gears its node runs
	// (node.Supervisor.LogHandler): the gear's log, text/plain, one
	// time-stamped line each; with follow=1, an empty line at the end of
	// the tail and then new lines as the gear writes them. 404 for a gear
	// the node does not run, 400 for a bad tail or follow.
	//
	// GET GearLBStatusPath(id)?format=json, served by the same handler:
	// the status page of LB gear id's load balancer (lb.Pool's), HTML or
	// with format=json JSON; 404 for a gear whose load balancer does not
	// run on the node. It is here, not on the load balancer's port,
	// because it shows the cluster's addresses, ports and gear ids.
	//
	// GET GearDataPath(id), served by the same handler: gear id's data
	// directory as a gzip-compressed tar archive (regular files,
	// directories and symbolic links, with their modes and times), for
	// the node of a gear that replaces it in a planned move; 404 for a
	// gear the node does not run.
	PrefixGears = Prefix + "gears/"
	// PathRouterStatus is GET, served by a member with the router role
	// (router.Router.StatusHandler): what the router routes, each app's
	// hosts and its pool of LB gears, JSON. It is on the internal API
	// because the router's own listener passes every path of an app's
	// hosts to the app, its /lb-status included.
	PathRouterStatus = Prefix + "router/status"
	// PathMetrics is GET, served by every member: its Prometheus
	// metrics, in the text exposition format (as on --metrics-addr).
	PathMetrics = Prefix + "metrics"
)

// BlobPath is where deployment id's archive is served: PrefixBlobs + id.
func BlobPath(id string) string { return PrefixBlobs + id }

// BlobID returns the deployment id that path (a request's decoded
// URL.Path) asks for, and whether path is under PrefixBlobs at all. The
// id is not checked: see ValidDeploymentID.
func BlobID(path string) (id string, ok bool) { return strings.CutPrefix(path, PrefixBlobs) }

// GearLogsPath is where gear id's log is served: PrefixGears + id +
// "/logs", the id escaped as a path segment.
func GearLogsPath(id string) string { return PrefixGears + url.PathEscape(id) + "/logs" }

// GearLogsID returns the gear id whose log path (a request's decoded
// URL.Path) asks for, and whether path has the shape of GearLogsPath. The
// id is not checked: gear ids are the node's to accept.
func GearLogsID(path string) (id string, ok bool) {
	rest, ok := strings.CutPrefix(path, PrefixGears)
	if !ok {
		return "", false
	}
	return strings.CutSuffix(rest, "/logs")
}

// GearDataPath is where gear id's data directory is served:
// PrefixGears + id + "/data", the id escaped as a path segment.
func GearDataPath(id string) string { return PrefixGears + url.PathEscape(id) + "/data" }

// GearDataID returns the gear id whose data path (a request's decoded
// URL.Path) asks for, and whether path has the shape of GearDataPath.
// The id is not checked.
func GearDataID(path string) (id string, ok bool) {
	rest, ok := strings.CutPrefix(path, PrefixGears)
	if !ok {
		return "", false
	}
	return strings.CutSuffix(rest, "/data")
}

// GearLBStatusPath is where the status page of LB gear id's load balancer
// is served: PrefixGears + id + "/lb-status", the id escaped as a path
// segment.
func GearLBStatusPath(id string) string { return PrefixGears + url.PathEscape(id) + "/lb-status" }

// GearLBStatusID returns the gear id whose load balancer's status path (a
// request's decoded URL.Path) asks for, and whether path has the shape of
// GearLBStatusPath. The id is not checked.
func GearLBStatusID(path string) (id string, ok bool) {
	rest, ok := strings.CutPrefix(path, PrefixGears)
	if !ok {
		return "", false
	}
	return strings.CutSuffix(rest, "/lb-status")
}

// ValidDeploymentID reports whether id is a deployment id: the lower-case
// sha256 hex digest of its archive. A valid id is safe as a file name: it
// holds no separator and no dot.
func ValidDeploymentID(id string) bool {
	if len(id) != sha256.Size*2 {
		return false
	}
	for _, c := range id {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// BlobFile is where a member keeps deployment id's archive in dir:
// dir/ID.tar.gz. Brokers and nodes both keep theirs in
// DATA_DIR/deployments.
func BlobFile(dir, id string) string { return filepath.Join(dir, id+".tar.gz") }

// ServeBlob answers r, a request for BlobPath(id), with the archive
// BlobFile(dir, id): GET or HEAD (else 405), ranges allowed so that a
// fetcher can resume, Content-Type application/gzip and the id as ETag;
// 404 when the path is not under PrefixBlobs, the id is not a deployment
// id, or dir holds no such archive. Fetchers verify the hash of what they
// receive.
//
// It returns the error of an archive that exists but cannot be read, after
// answering 500, so that the caller can log it; nil otherwise.
func ServeBlob(w http.ResponseWriter, r *http.Request, dir string) error {
	id, ok := BlobID(r.URL.Path)
	return serveFile(w, r, "deployment archive", id, ok, func(id string) string { return BlobFile(dir, id) }, "application/gzip")
}

// BundlePath is where the git bundle id is served: PrefixBundles + id.
func BundlePath(id string) string { return PrefixBundles + id }

// ServeBundle answers r, a request for BundlePath(id), with dir/ID.bundle,
// as ServeBlob does archives.
func ServeBundle(w http.ResponseWriter, r *http.Request, dir string) error {
	id, ok := strings.CutPrefix(r.URL.Path, PrefixBundles)
	return serveFile(w, r, "git bundle", id, ok, func(id string) string { return filepath.Join(dir, id+".bundle") }, "application/octet-stream")
}

// serveFile answers r with file(id), a what named by its sha256 id; ok
// says whether r's path had the shape of one.
func serveFile(w http.ResponseWriter, r *http.Request, what, id string, ok bool, file func(string) string, contentType string) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return nil
	}
	if !ok || !ValidDeploymentID(id) {
		http.Error(w, "no such "+what, http.StatusNotFound)
		return nil
	}
	f, err := os.Open(file(id))
	if errors.Is(err, fs.ErrNotExist) {
		http.Error(w, "no such "+what, http.StatusNotFound)
		return nil
	}
	if err != nil {
		http.Error(w, "cannot read "+what, http.StatusInternalServerError)
		return fmt.Errorf("open %s %s: %w", what, id, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		http.Error(w, "cannot read "+what, http.StatusInternalServerError)
		return fmt.Errorf("stat %s %s: %w", what, id, err)
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("ETag", `"`+id+`"`)
	http.ServeContent(w, r, "", fi.ModTime(), f)
	return nil
}
