package node

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadManifest(t *testing.T) {
	tests := []struct {
		name    string
		files   map[string]string
		want    Manifest
		wantErr string
	}{
		{"no manifest: static", nil, Manifest{}, ""},
		{"web only", map[string]string{"gearbox.yml": "web: ./server\n"}, Manifest{Web: "./server", Health: "/"}, ""},
		{"all keys", map[string]string{"gearbox.yml": "web: bin/app --port $PORT\nhealth: /healthz\nbuild: make\n"},
			Manifest{Web: "bin/app --port $PORT", Health: "/healthz", Build: "make"}, ""},
		{"block scalar", map[string]string{"gearbox.yml": "web: |\n  cd srv &&\n  exec ./run\n"}, Manifest{Web: "cd srv &&\nexec ./run", Health: "/"}, ""},
		{"comments", map[string]string{"gearbox.yml": "# app\nweb: ./s # serve\n"}, Manifest{Web: "./s", Health: "/"}, ""},
		{"gearbox.yml wins over Procfile", map[string]string{"gearbox.yml": "web: a\n", "Procfile": "web: b\n"}, Manifest{Web: "a", Health: "/"}, ""},
		{"unknown key", map[string]string{"gearbox.yml": "web: ./s\nhelth: /h\n"}, Manifest{}, `field helth not found`},
		{"bad yaml", map[string]string{"gearbox.yml": "web: [./s\n"}, Manifest{}, "gearbox.yml"},
		{"not a mapping", map[string]string{"gearbox.yml": "- web\n"}, Manifest{}, "gearbox.yml"},
		{"empty file", map[string]string{"gearbox.yml": ""}, Manifest{}, "is empty"},
		{"empty web", map[string]string{"gearbox.yml": "web: ''\nhealth: /\n"}, Manifest{}, "web is empty"},
		{"no web", map[string]string{"gearbox.yml": "build: make\n"}, Manifest{}, "web is empty"},
		{"relative health", map[string]string{"gearbox.yml": "web: ./s\nhealth: healthz\n"}, Manifest{}, `health "healthz" must be a path starting with /`},
		{"health with space", map[string]string{"gearbox.yml": "web: ./s\nhealth: /a b\n"}, Manifest{}, "spaces"},
		{"two documents", map[string]string{"gearbox.yml": "web: a\n---\nweb: b\n"}, Manifest{}, "more than one YAML document"},
		{"procfile", map[string]string{"Procfile": "# comment\n\nworker: ./w\nweb: bundle exec puma -p $PORT\n"},
			Manifest{Web: "bundle exec puma -p $PORT", Health: "/"}, ""},
		{"procfile without web", map[string]string{"Procfile": "worker: ./w\n"}, Manifest{}, "no web: line"},
		{"procfile empty web", map[string]string{"Procfile": "web:\n"}, Manifest{}, "line 1: web is empty"},
		{"procfile two webs", map[string]string{"Procfile": "web: a\nweb: b\n"}, Manifest{}, "line 2: a second web: line"},
		{"procfile bad line", map[string]string{"Procfile": "web ./s\n"}, Manifest{}, `line 1: want "type: command"`},
		{"too large", map[string]string{"gearbox.yml": "web: ./s\n#" + strings.Repeat("x", maxManifestSize)}, Manifest{}, "larger than"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, body := range tc.files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := ReadManifest(dir)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %+v, %v; want an error with %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			if got.Static() != (tc.want.Web == "") {
				t.Fatalf("Static() = %v", got.Static())
			}
		})
	}
}

func TestReadManifestNotRegular(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "gearbox.yml"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadManifest(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("got %v, want a not-a-regular-file error", err)
	}
}

// The node reads the manifest as root, after a build that ran as a gear's
// uid: it follows no link.
func TestReadManifestNoLinks(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("web: secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(dir, "gearbox.yml")); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadManifest(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("symbolic link: got %v, want a not-a-regular-file error", err)
	}
	os.Remove(filepath.Join(dir, "gearbox.yml"))
	if err := os.Link(secret, filepath.Join(dir, "gearbox.yml")); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadManifest(dir); err == nil || !strings.Contains(err.Error(), "2 links") {
		t.Errorf("hard link: got %v, want a links error", err)
	}
}
