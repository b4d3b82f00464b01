package member

import (
	"crypto/tls"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"testing"

	"gearbox/store/internalapi"
)

// The internal API serves what roles mount, to peers that hold the
// cluster secret, and a plain 404 for what no role here serves.
func TestInternalAPIMounts(t *testing.T) {
	const secret = "s3cret"
	storeAPI := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "store") })
	internal := &internalAPI{store: storeAPI}
	srv := httptest.NewUnstartedServer(internalapi.RequirePeer(secret, internal))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.Listener = tls.NewListener(srv.Listener, internalapi.ServerTLS(secret))
	srv.Start()
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	get := func(path, secret string) (int, string) {
		t.Helper()
		tr := internalapi.Transport(secret)
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr}).Get(internalapi.URL(addr, path))
		if internalapi.Refused(err) {
			return http.StatusUnauthorized, ""
		}
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	logsPath := internalapi.GearLogsPath("abc")
	if code, _ := get(logsPath, secret); code != http.StatusNotFound {
		t.Errorf("gear logs without the node role: %d, want 404", code)
	}
	var logs http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "logs of "+r.URL.Path) })
	internal.gearLogs.Store(&logs)
	var blobs http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "blob") })
	internal.blobs.Store(&blobs)
	for _, tt := range []struct {
		path, secret string
		code         int // 401: the handshake was refused
		body         string
	}{
		{logsPath, "", http.StatusUnauthorized, ""},
		{logsPath, "wrong", http.StatusUnauthorized, ""},
		{logsPath, secret, http.StatusOK, "logs of " + logsPath},
		{internalapi.BlobPath("x"), "", http.StatusUnauthorized, ""},
		{internalapi.BlobPath("x"), secret, http.StatusOK, "blob"},
		{internalapi.PathMembers, secret, http.StatusOK, "store"},
	} {
		code, body := get(tt.path, tt.secret)
		if code != tt.code || tt.body != "" && body != tt.body {
			t.Errorf("GET %s with secret %q: %d %q, want %d %q", tt.path, tt.secret, code, body, tt.code, tt.body)
		}
	}
}
