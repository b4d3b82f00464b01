package broker

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"gearbox/broker/api"
	"gearbox/internal/testutil"
	"gearbox/store"
	"gearbox/store/internalapi"
	"gearbox/store/state"
)

// testArchive is a tar.gz archive of files (name -> body), in name order.
func testArchive(t testing.TB, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		if err := tw.WriteHeader(&tar.Header{Name: n, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(files[n]))}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(files[n]))
	}
	tw.Close()
	zw.Close()
	return buf.Bytes()
}

// rawArchive is an archive of a single header h and body.
func rawArchive(t testing.TB, h *tar.Header, body []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	if err := tw.WriteHeader(h); err != nil {
		t.Fatal(err)
	}
	tw.Write(body)
	tw.Close()
	zw.Close()
	return buf.Bytes()
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func (c *testCluster) deploy(t testing.TB, who creds, ns, name string, archive []byte) response {
	t.Helper()
	return c.do(t, "POST", appPath(ns, name, "/deployments"), who, rawBody{contentType: "application/gzip", body: string(archive)})
}

func (c *testCluster) appRecord(t testing.TB, ns, name string) state.App {
	t.Helper()
	var a state.App
	if _, err := c.st.Get(state.BucketApps, state.AppKey(ns, name), &a); err != nil {
		t.Fatal(err)
	}
	return a
}

// blobs lists the archives in the broker's blob directory.
func (c *testCluster) blobs(t testing.TB) []string {
	t.Helper()
	ents, err := os.ReadDir(c.b.blobDir())
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func TestDeploymentUpload(t *testing.T) {
	// A tiny MaxBodyBytes shows that uploads are not read as parameters.
	c := newCluster(t, clusterOpts{cfg: func(cfg *Config) { cfg.MaxBodyBytes = 512 }})
	c.domain(t, admin, "ns")
	c.createApp(t, admin, "ns", "web", nil)
	noise := make([]byte, 8<<10)
	rand.Read(noise)
	archive := testArchive(t, map[string]string{"gearbox.yml": "web: ./server\n", "server": string(noise)})
	id := sha(archive)

	r := c.deploy(t, admin, "ns", "web", archive)
	if r.code != http.StatusCreated {
		t.Fatalf("deploy: %d %s", r.code, r.text())
	}
	var v api.Deployment
	r.decode(t, &v)
	if v.ID != id || v.Size != int64(len(archive)) || !v.Current || v.CreatedBy != adminLogin || !slices.Equal(v.Holders, []string{"b1"}) {
		t.Fatalf("deployment %+v, want id %s size %d, current, by admin, held by b1", v, id, len(archive))
	}
	stored, err := os.ReadFile(c.b.blobPath(id))
	if err != nil || !bytes.Equal(stored, archive) {
		t.Fatalf("stored archive: %v (equal: %v)", err, bytes.Equal(stored, archive))
	}
	if got := c.blobs(t); !slices.Equal(got, []string{id + ".tar.gz"}) {
		t.Fatalf("blob dir holds %v", got)
	}
	a := c.appRecord(t, "ns", "web")
	if a.Deployment != id || !slices.Equal(a.Deployments, []string{id}) {
		t.Fatalf("app deployment %q, kept %v; want %s", a.Deployment, a.Deployments, id)
	}
	var d state.Deployment
	if _, err := c.st.Get(state.BucketDeployments, state.DeploymentKey("ns/web", id), &d); err != nil {
		t.Fatal(err)
	}
	if d.App != "ns/web" || d.Size != int64(len(archive)) || d.CreatedBy != adminLogin {
		t.Fatalf("record %+v", d)
	}

	var listed []api.Deployment
	c.ok(t, "GET", appPath("ns", "web", "/deployments"), admin, nil, &listed)
	if len(listed) != 1 || listed[0].ID != id || !listed[0].Current {
		t.Fatalf("listed %+v", listed)
	}

	// The same archive again is no new deployment.
	if r := c.deploy(t, admin, "ns", "web", archive); r.code != http.StatusOK {
		t.Fatalf("deploy again: %d %s", r.code, r.text())
	}
	if a := c.appRecord(t, "ns", "web"); !slices.Equal(a.Deployments, []string{id}) {
		t.Fatalf("kept %v after the same archive again", a.Deployments)
	}

	// The internal API serves the archive to nodes.
	h := c.b.BlobHandler()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", internalapi.BlobPath(id), nil))
	if rec.Code != http.StatusOK || !bytes.Equal(rec.Body.Bytes(), archive) || rec.Header().Get("Content-Type") != "application/gzip" {
		t.Fatalf("blob: %d %s, %d bytes", rec.Code, rec.Header().Get("Content-Type"), rec.Body.Len())
	}
	rec = httptest.NewRecorder()
	req := httptest.NewRequest("GET", internalapi.BlobPath(id), nil)
	req.Header.Set("Range", "bytes=10-19")
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusPartialContent || !bytes.Equal(rec.Body.Bytes(), archive[10:20]) {
		t.Fatalf("blob range: %d, %d bytes", rec.Code, rec.Body.Len())
	}
	for _, p := range []string{internalapi.BlobPath(strings.Repeat("0", 64)), internalapi.BlobPath("../state.db"), internalapi.BlobPath(strings.ToUpper(id))} {
		rec = httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", p, nil))
		if rec.Code != http.StatusNotFound {
			t.Fatalf("GET %s: %d, want 404", p, rec.Code)
		}
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("DELETE", internalapi.BlobPath(id), nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Fatalf("DELETE blob: %d, want 405", rec.Code)
	}
}

func TestDeploymentRefused(t *testing.T) {
	const limit = 16 << 10
	c := newCluster(t, clusterOpts{cfg: func(cfg *Config) { cfg.MaxDeploySize = limit }})
	c.domain(t, admin, "ns")
	c.createApp(t, admin, "ns", "web", nil)
	bob := c.user(t, "bob", nil)
	noise := make([]byte, 2*limit)
	rand.Read(noise)
	good := testArchive(t, map[string]string{"index.html": "hi"})
	corrupt := slices.Clone(good)
	corrupt[len(corrupt)-5] ^= 0xff // the checksum's neighbour: the length
	tests := []struct {
		name string
		who  creds
		ct   string
		body []byte
		code int
		text string
	}{
		{"oversize", admin, "application/gzip", testArchive(t, map[string]string{"big": string(noise)}), http.StatusRequestEntityTooLarge, "larger than the limit"},
		{"gzip bomb", admin, "application/gzip", rawArchive(t, &tar.Header{Name: "zeros", Typeflag: tar.TypeReg, Mode: 0o644, Size: 4 * limit}, make([]byte, 4*limit)), http.StatusRequestEntityTooLarge, "limit"},
		{"not gzip", admin, "application/octet-stream", []byte("hello, not an archive"), http.StatusUnprocessableEntity, "not a usable tar.gz"},
		{"corrupt gzip", admin, "application/gzip", corrupt, http.StatusUnprocessableEntity, "not a usable tar.gz"},
		{"absolute path", admin, "application/gzip", rawArchive(t, &tar.Header{Name: "/etc/x", Typeflag: tar.TypeReg, Mode: 0o644}, nil), http.StatusUnprocessableEntity, `"/etc/x"`},
		{"dot-dot", admin, "application/gzip", rawArchive(t, &tar.Header{Name: "a/../../x", Typeflag: tar.TypeReg, Mode: 0o644}, nil), http.StatusUnprocessableEntity, "'..'"},
		{"hard link", admin, "application/gzip", rawArchive(t, &tar.Header{Name: "l", Typeflag: tar.TypeLink, Linkname: "a"}, nil), http.StatusUnprocessableEntity, "hard links"},
		{"device", admin, "application/gzip", rawArchive(t, &tar.Header{Name: "null", Typeflag: tar.TypeChar}, nil), http.StatusUnprocessableEntity, "devices"},
		{"form body", admin, "application/x-www-form-urlencoded", good, http.StatusUnsupportedMediaType, "application/gzip"},
		{"unknown app", admin, "application/gzip", good, http.StatusNotFound, "'nope' not found"},
		{"another user's app", bob, "application/gzip", good, http.StatusForbidden, "belongs to another user"},
		{"no credentials", nobody, "application/gzip", good, http.StatusUnauthorized, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			app := "web"
			if tc.name == "unknown app" {
				app = "nope"
			}
			c.unchanged(t, func() {
				r := c.do(t, "POST", appPath("ns", app, "/deployments"), tc.who, rawBody{contentType: tc.ct, body: string(tc.body)})
				wantErr(t, r, tc.code, tc.text)
			})
			if got := c.blobs(t); len(got) != 0 {
				t.Fatalf("blob dir holds %v after a refused upload", got)
			}
		})
	}
}

func TestDeploymentsKeepAndActivate(t *testing.T) {
	c := newCluster(t, clusterOpts{cfg: func(cfg *Config) { cfg.KeepDeployments = 3 }})
	c.domain(t, admin, "ns")
	c.createApp(t, admin, "ns", "web", nil)
	c.createApp(t, admin, "ns", "twin", nil)
	var ids []string
	for i := range 5 {
		archive := testArchive(t, map[string]string{"index.html": strings.Repeat("v", i+1)})
		if i == 0 {
			// twin deploys the same archive: dropping it from web must
			// keep the file that twin still uses.
			if r := c.deploy(t, admin, "ns", "twin", archive); r.code != http.StatusCreated {
				t.Fatalf("deploy twin: %d %s", r.code, r.text())
			}
		}
		if r := c.deploy(t, admin, "ns", "web", archive); r.code != http.StatusCreated {
			t.Fatalf("deploy %d: %d %s", i, r.code, r.text())
		}
		ids = append(ids, sha(archive))
	}
	a := c.appRecord(t, "ns", "web")
	if !slices.Equal(a.Deployments, ids[2:]) || a.Deployment != ids[4] {
		t.Fatalf("kept %v current %s; want %v current %s", a.Deployments, a.Deployment, ids[2:], ids[4])
	}
	wantBlobs := []string{ids[0] + ".tar.gz"} // twin's
	for _, id := range ids[2:] {
		wantBlobs = append(wantBlobs, id+".tar.gz")
	}
	slices.Sort(wantBlobs)
	if got := c.blobs(t); !slices.Equal(got, wantBlobs) {
		t.Fatalf("blobs %v, want %v", got, wantBlobs)
	}
	recs, err := list[state.Deployment](c.st, state.BucketDeployments)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 4 {
		t.Fatalf("%d deployment records, want 3 of web and 1 of twin: %+v", len(recs), recs)
	}
	var listed []api.Deployment
	c.ok(t, "GET", appPath("ns", "web", "/deployments"), admin, nil, &listed)
	if len(listed) != 3 || listed[0].ID != ids[2] || listed[2].ID != ids[4] || !listed[2].Current || listed[0].Current {
		t.Fatalf("listed %+v", listed)
	}

	// Roll back to the oldest kept deployment through the events API.
	events := appPath("ns", "web", "/events")
	wantErr(t, c.do(t, "POST", events, admin, url.Values{"event": {"activate"}, "deployment_id": {ids[0]}}), http.StatusNotFound, "not kept")
	wantErr(t, c.do(t, "POST", events, admin, url.Values{"event": {"activate"}}), http.StatusUnprocessableEntity, "deployment_id")
	if r := c.ok(t, "POST", events, admin, url.Values{"event": {"activate"}, "deployment_id": {ids[2]}}, nil); !strings.Contains(r.text(), ids[2]) {
		t.Fatalf("activate message %q", r.text())
	}
	if a := c.appRecord(t, "ns", "web"); a.Deployment != ids[2] {
		t.Fatalf("current %s after rollback, want %s", a.Deployment, ids[2])
	}

	// A new deployment becomes current and drops the oldest kept one.
	next := testArchive(t, map[string]string{"index.html": "next"})
	if r := c.deploy(t, admin, "ns", "web", next); r.code != http.StatusCreated {
		t.Fatalf("deploy: %d %s", r.code, r.text())
	}
	a = c.appRecord(t, "ns", "web")
	if want := []string{ids[3], ids[4], sha(next)}; !slices.Equal(a.Deployments, want) {
		t.Fatalf("kept %v, want %v", a.Deployments, want)
	}
	if _, err := os.Stat(c.b.blobPath(ids[2])); !os.IsNotExist(err) {
		t.Fatalf("archive of dropped %s: %v, want removed", ids[2], err)
	}
}

func TestDeploymentConfig(t *testing.T) {
	cfg := DefaultConfig(nil, "x")
	if cfg.MaxDeploySize != 512<<20 || cfg.KeepDeployments != 3 {
		t.Fatalf("defaults: %d, %d", cfg.MaxDeploySize, cfg.KeepDeployments)
	}
	cfg.MaxDeploySize, cfg.KeepDeployments = -1, -2
	err := cfg.validate()
	if err == nil || !strings.Contains(err.Error(), "MaxDeploySize") || !strings.Contains(err.Error(), "KeepDeployments") {
		t.Fatalf("validate: %v, want errors naming both fields", err)
	}
}

// TestDeploymentForwarded: an upload to a broker that does not lead is
// streamed to the leader, which stores the archive and the record.
func TestDeploymentForwarded(t *testing.T) {
	c := newCluster(t, clusterOpts{cfg: func(cfg *Config) { cfg.MaxBodyBytes = 512 }})
	c.domain(t, admin, "ns")
	c.createApp(t, admin, "ns", "web", nil)
	m2 := startMember(t, "b2", []string{store.RoleBroker}, "", "")
	if _, err := m2.st.Join([]string{c.bm.GossipAddr()}); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "b2 sees the leader and the app", func() bool {
		l, ok := m2.st.Leader()
		if !ok || l.Name != "b1" {
			return false
		}
		if _, err := m2.st.GetRecord(state.BucketBrokers, "b1"); err != nil {
			return false
		}
		_, err := m2.st.GetRecord(state.BucketApps, "ns/web")
		return err == nil
	})
	b2, url2 := startBroker(t, m2, c.clock, clusterOpts{cfg: func(cfg *Config) { cfg.MaxBodyBytes = 512 }})
	noise := make([]byte, 8<<10)
	rand.Read(noise)
	archive := testArchive(t, map[string]string{"index.html": string(noise)})
	r := do(t, testClient(t), url2, "POST", appPath("ns", "web", "/deployments"), admin, rawBody{contentType: "application/gzip", body: string(archive)})
	if r.code != http.StatusCreated {
		t.Fatalf("deploy through b2: %d %s", r.code, r.text())
	}
	id := sha(archive)
	if _, err := os.Stat(c.b.blobPath(id)); err != nil {
		t.Fatalf("leader's archive: %v", err)
	}
	if _, err := os.Stat(b2.blobPath(id)); !os.IsNotExist(err) {
		t.Fatalf("follower's archive: %v, want none", err)
	}
	if a := c.appRecord(t, "ns", "web"); a.Deployment != id {
		t.Fatalf("current %q, want %s", a.Deployment, id)
	}
}
