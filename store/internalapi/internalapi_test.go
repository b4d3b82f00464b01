package internalapi

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestValidDeploymentID(t *testing.T) {
	sum := sha256.Sum256([]byte("archive"))
	id := hex.EncodeToString(sum[:])
	tests := []struct {
		name string
		id   string
		want bool
	}{
		{"sha256 hex", id, true},
		{"zeros", strings.Repeat("0", 64), true},
		{"empty", "", false},
		{"short", id[:63], false},
		{"long", id + "0", false},
		{"upper case", strings.ToUpper(id), false},
		{"not hex", strings.Repeat("g", 64), false},
		{"path traversal", "../x", false},
		{"path traversal of the right length", "../" + id[3:], false},
		{"separator", id[:32] + "/" + id[33:], false},
		{"multi-byte", "é" + id[2:], false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ValidDeploymentID(tt.id); got != tt.want {
				t.Errorf("ValidDeploymentID(%q) = %v, want %v", tt.id, got, tt.want)
			}
		})
	}
}

func TestServeBlob(t *testing.T) {
	dir := t.TempDir()
	archive := bytes.Repeat([]byte("gzip bytes "), 100)
	sum := sha256.Sum256(archive)
	id := hex.EncodeToString(sum[:])
	if err := os.WriteFile(BlobFile(dir, id), archive, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "..", "state.db"), []byte("secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := strings.Repeat("0", 64)
	tests := []struct {
		name     string
		method   string
		path     string
		rng      string
		code     int
		body     []byte
		wantType string
	}{
		{"served", "GET", BlobPath(id), "", http.StatusOK, archive, "application/gzip"},
		{"head", "HEAD", BlobPath(id), "", http.StatusOK, nil, "application/gzip"},
		{"range", "GET", BlobPath(id), "bytes=10-19", http.StatusPartialContent, archive[10:20], "application/gzip"},
		{"missing", "GET", BlobPath(missing), "", http.StatusNotFound, nil, ""},
		{"upper case id", "GET", BlobPath(strings.ToUpper(id)), "", http.StatusNotFound, nil, ""},
		{"short id", "GET", BlobPath(id[:10]), "", http.StatusNotFound, nil, ""},
		{"empty id", "GET", PrefixBlobs, "", http.StatusNotFound, nil, ""},
		{"path traversal", "GET", BlobPath("../state.db"), "", http.StatusNotFound, nil, ""},
		{"other path", "GET", PathMembers, "", http.StatusNotFound, nil, ""},
		{"delete", "DELETE", BlobPath(id), "", http.StatusMethodNotAllowed, nil, ""},
		{"put", "PUT", BlobPath(id), "", http.StatusMethodNotAllowed, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, tt.path, nil)
			if tt.rng != "" {
				req.Header.Set("Range", tt.rng)
			}
			rec := httptest.NewRecorder()
			if err := ServeBlob(rec, req, dir); err != nil {
				t.Fatalf("ServeBlob: %v", err)
			}
			if rec.Code != tt.code {
				t.Fatalf("%s %s: %d %q, want %d", tt.method, tt.path, rec.Code, rec.Body.String(), tt.code)
			}
			if tt.body != nil && !bytes.Equal(rec.Body.Bytes(), tt.body) {
				t.Errorf("body: %d bytes, want %d", rec.Body.Len(), len(tt.body))
			}
			if tt.wantType != "" {
				if got := rec.Header().Get("Content-Type"); got != tt.wantType {
					t.Errorf("Content-Type %q, want %q", got, tt.wantType)
				}
				if got := rec.Header().Get("ETag"); got != `"`+id+`"` {
					t.Errorf("ETag %q", got)
				}
			}
			if tt.code == http.StatusMethodNotAllowed && rec.Header().Get("Allow") != "GET, HEAD" {
				t.Errorf("Allow %q", rec.Header().Get("Allow"))
			}
		})
	}
}

// TestPathsParseBack checks that the paths the helpers build reach the
// parsers as the servers see them: through a request's decoded URL.Path.
func TestPathsParseBack(t *testing.T) {
	sum := sha256.Sum256(nil)
	blob := hex.EncodeToString(sum[:])
	r := httptest.NewRequest("GET", "http://127.0.0.1:7947"+BlobPath(blob), nil)
	if id, ok := BlobID(r.URL.Path); !ok || id != blob {
		t.Errorf("BlobID(%q) = %q, %v; want %q", r.URL.Path, id, ok, blob)
	}
	for _, gear := range []string{"dddd00000000000000000001", "a", "has space", "a/b", "..", "%2f"} {
		r := httptest.NewRequest("GET", "http://127.0.0.1:7947"+GearLogsPath(gear)+"?tail=5&follow=1", nil)
		if id, ok := GearLogsID(r.URL.Path); !ok || id != gear {
			t.Errorf("GearLogsID(%q) = %q, %v; want %q", r.URL.Path, id, ok, gear)
		}
		if r.URL.Query().Get("tail") != "5" {
			t.Errorf("query of %q lost", GearLogsPath(gear))
		}
	}
	for _, gear := range []string{"dddd00000000000000000001", "a", "has space", "a/b", "..", "%2f"} {
		r := httptest.NewRequest("GET", "http://127.0.0.1:7947"+GearLBStatusPath(gear)+"?format=json", nil)
		if id, ok := GearLBStatusID(r.URL.Path); !ok || id != gear {
			t.Errorf("GearLBStatusID(%q) = %q, %v; want %q", r.URL.Path, id, ok, gear)
		}
		if _, ok := GearLogsID(r.URL.Path); ok {
			t.Errorf("GearLogsID took %q", r.URL.Path)
		}
	}
	for _, p := range []string{PathMembers, PrefixGears + "x", GearLogsPath("x"), PrefixBlobs + "x/lb-status"} {
		if id, ok := GearLBStatusID(p); ok {
			t.Errorf("GearLBStatusID(%q) = %q, true; want false", p, id)
		}
	}
	for _, p := range []string{PathMembers, PrefixGears + "x", PrefixGears + "x/other", PrefixBlobs + "x/logs"} {
		if id, ok := GearLogsID(p); ok {
			t.Errorf("GearLogsID(%q) = %q, true; want false", p, id)
		}
	}
	if _, ok := BlobID(PrefixGears + blob); ok {
		t.Errorf("BlobID took a gear path")
	}
}

// TestPathsDistinct checks that no path of the contract is served by
// another's prefix: a member routes by them.
func TestPathsDistinct(t *testing.T) {
	paths := []string{PathMembers, PathStoreStatus, PathStoreDigest, PathStoreSummaries, PathStoreGet, PathStorePut, PathRouterStatus}
	prefixes := []string{PrefixBlobs, PrefixGears}
	seen := map[string]bool{}
	for _, p := range append(append([]string(nil), paths...), prefixes...) {
		if !strings.HasPrefix(p, Prefix) {
			t.Errorf("%s is not under %s", p, Prefix)
		}
		if seen[p] {
			t.Errorf("%s twice", p)
		}
		seen[p] = true
		for _, pre := range prefixes {
			if p != pre && strings.HasPrefix(p, pre) {
				t.Errorf("%s is under %s", p, pre)
			}
		}
	}
}
