package member

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"gearbox/store"
	"gearbox/store/internalapi"
)

// The internal API serves what roles mount, behind the cluster secret, and
// a plain 404 for what no role here serves.
func TestInternalAPIMounts(t *testing.T) {
	storeAPI := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "store") })
	internal := &internalAPI{store: storeAPI}
	srv := httptest.NewServer(store.RequireSecret("s3cret", internal))
	defer srv.Close()
	get := func(path, secret string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		if secret != "" {
			req.Header.Set("Authorization", "Bearer "+secret)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	logsPath := internalapi.GearLogsPath("abc")
	if code, _ := get(logsPath, "s3cret"); code != http.StatusNotFound {
		t.Errorf("gear logs without the node role: %d, want 404", code)
	}
	var logs http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "logs of "+r.URL.Path) })
	internal.gearLogs.Store(&logs)
	var blobs http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "blob") })
	internal.blobs.Store(&blobs)
	for _, tt := range []struct {
		path, secret string
		code         int
		body         string
	}{
		{logsPath, "", http.StatusUnauthorized, ""},
		{logsPath, "wrong", http.StatusUnauthorized, ""},
		{logsPath, "s3cret", http.StatusOK, "logs of " + logsPath},
		{internalapi.BlobPath("x"), "", http.StatusUnauthorized, ""},
		{internalapi.BlobPath("x"), "s3cret", http.StatusOK, "blob"},
		{internalapi.PathMembers, "s3cret", http.StatusOK, "store"},
	} {
		code, body := get(tt.path, tt.secret)
		if code != tt.code || tt.body != "" && body != tt.body {
			t.Errorf("GET %s with secret %q: %d %q, want %d %q", tt.path, tt.secret, code, body, tt.code, tt.body)
		}
	}
}
