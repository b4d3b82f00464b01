package node

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"gearbox/node/schedule"
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
		{"unknown key", map[string]string{"gearbox.yml": "web: ./s\nhelth: /h\n"}, Manifest{},
			"gearbox.yml: line 2: unknown key helth (known keys: web, health, build, daemons, jobs)"},
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
			if !reflect.DeepEqual(got, tc.want) {
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

func TestReadManifestDaemonsJobs(t *testing.T) {
	every := func(d time.Duration) schedule.Spec {
		s, err := schedule.Every(d)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	cron := func(expr string) schedule.Spec {
		s, err := schedule.Cron(expr)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	const web = "web: ./demo web\n"
	tests := []struct {
		name    string
		yml     string
		want    Manifest
		wantErr string
	}{
		{"daemons and jobs", web + `daemons: {counter: "./demo daemon"}
jobs:
  ajob: {command: ./demo job, every: 20s}
  nightly:
    command: |
      ./demo report
    cron: "0 3 * * *"
  hourly: {command: ./demo tidy, cron: "@hourly"}
`, Manifest{Web: "./demo web", Health: "/",
			Daemons: map[string]string{"counter": "./demo daemon"},
			Jobs: map[string]Job{
				"ajob":    {Command: "./demo job", Schedule: every(20 * time.Second)},
				"nightly": {Command: "./demo report", Schedule: cron("0 3 * * *")},
				"hourly":  {Command: "./demo tidy", Schedule: cron("@hourly")},
			}}, ""},
		{"empty sections", web + "daemons:\njobs: {}\n", Manifest{Web: "./demo web", Health: "/"}, ""},
		{"names at their limits", web + "daemons:\n  a: x\n  0-9: y\n  " + strings.Repeat("z", 32) + ": z\n",
			Manifest{Web: "./demo web", Health: "/", Daemons: map[string]string{"a": "x", "0-9": "y", strings.Repeat("z", 32): "z"}}, ""},
		{"every at the minimum", web + "jobs: {j: {command: x, every: 1s}}\n",
			Manifest{Web: "./demo web", Health: "/", Jobs: map[string]Job{"j": {Command: "x", Schedule: every(time.Second)}}}, ""},
		{"anchors and aliases", web + "daemons: {a: &c ./run}\njobs: {j: {command: *c, every: 1m}}\n",
			Manifest{Web: "./demo web", Health: "/", Daemons: map[string]string{"a": "./run"},
				Jobs: map[string]Job{"j": {Command: "./run", Schedule: every(time.Minute)}}}, ""},

		// Daemons and jobs need a web command (the folder is not served).
		{"daemons without web", "daemons: {counter: ./d}\n", Manifest{}, "gearbox.yml: web is empty; give the shell command that serves HTTP on $GEARBOX_IP:$PORT (daemons and jobs need one too)"},

		// daemons:
		{"daemons not a mapping", web + "daemons: [./d]\n", Manifest{}, "gearbox.yml: line 2: daemons: want a mapping of name: command"},
		{"daemons a string", web + "daemons: ./d\n", Manifest{}, "line 2: daemons: want a mapping"},
		{"daemon with keys", web + "daemons:\n  counter: {command: ./d}\n", Manifest{}, "line 3: daemon counter: want its shell command as a string"},
		{"daemon empty command", web + "daemons:\n  counter: ''\n", Manifest{}, "gearbox.yml: line 3: daemon counter: the command is empty"},
		{"daemon null command", web + "daemons:\n  counter:\n", Manifest{}, "daemon counter: the command is empty"},
		{"daemon blank command", web + "daemons:\n  counter: '  '\n", Manifest{}, "daemon counter: the command is empty"},
		{"daemon name upper case", web + "daemons:\n  Counter: ./d\n", Manifest{}, `line 3: daemon name "Counter": use 1 to 32 lower-case letters, digits and hyphens`},
		{"daemon name too long", web + "daemons:\n  " + strings.Repeat("z", 33) + ": ./d\n", Manifest{}, "daemon name \"" + strings.Repeat("z", 33) + "\": use 1 to 32"},
		{"daemon name hyphen first", web + "daemons:\n  -c: ./d\n", Manifest{}, `daemon name "-c"`},
		{"daemon name hyphen last", web + "daemons:\n  c-: ./d\n", Manifest{}, `daemon name "c-"`},
		{"daemon name with a dot", web + "daemons:\n  a.b: ./d\n", Manifest{}, `daemon name "a.b"`},
		{"daemon name empty", web + "daemons:\n  '': ./d\n", Manifest{}, `daemon name ""`},
		{"daemon name a list", web + "daemons:\n  [a]: ./d\n", Manifest{}, "line 3: want a daemon name"},
		{"daemon twice", web + "daemons:\n  c: ./a\n  c: ./b\n", Manifest{}, "line 4: daemon c is declared twice"},

		// jobs:
		{"jobs not a mapping", web + "jobs: [a]\n", Manifest{}, "line 2: jobs: want a mapping of name: {command: ..., every: ... or cron: ...}"},
		{"job short form", web + "jobs:\n  ajob: ./demo job\n", Manifest{}, "line 3: job ajob: want a mapping such as {command: ./demo job, every: 20s}"},
		{"job empty", web + "jobs:\n  ajob: {}\n", Manifest{}, "line 3: job ajob: give its command: and every: or cron:"},
		{"job unknown key", web + "jobs:\n  ajob:\n    command: ./j\n    evry: 20s\n", Manifest{},
			"gearbox.yml: line 5: job ajob: unknown key evry (known keys: command, every, cron)"},
		{"job key twice", web + "jobs:\n  ajob:\n    command: ./j\n    every: 20s\n    every: 30s\n", Manifest{}, "line 6: job ajob: every given twice"},
		{"job without command", web + "jobs:\n  ajob: {every: 20s}\n", Manifest{}, "line 3: job ajob: give its command: (a shell command)"},
		{"job empty command", web + "jobs:\n  ajob: {command: '', every: 20s}\n", Manifest{}, "line 3: job ajob: the command is empty"},
		{"job command a list", web + "jobs:\n  ajob: {command: [a, b], every: 20s}\n", Manifest{}, "job ajob: command: want a string"},
		{"job without schedule", web + "jobs:\n  ajob: {command: ./j}\n", Manifest{}, `job ajob: say when it runs: every: (such as 20s) or cron: (such as "*/5 * * * *", in UTC)`},
		{"job with both", web + "jobs:\n  ajob: {command: ./j, every: 20s, cron: '* * * * *'}\n", Manifest{}, "job ajob: give every: or cron:, not both"},
		{"job bad duration", web + "jobs:\n  ajob: {command: ./j, every: 20}\n", Manifest{}, `line 3: job ajob: every "20" is not a duration such as 20s, 5m or 1h30m`},
		{"job empty duration", web + "jobs:\n  ajob: {command: ./j, every: }\n", Manifest{}, `job ajob: every "" is not a duration`},
		{"job every too short", web + "jobs:\n  ajob: {command: ./j, every: 500ms}\n", Manifest{}, "line 3: job ajob: every 500ms is shorter than the minimum, 1s"},
		{"job every negative", web + "jobs:\n  ajob: {command: ./j, every: -20s}\n", Manifest{}, "every -20s is shorter than the minimum, 1s"},
		{"job bad cron", web + "jobs:\n  ajob: {command: ./j, cron: '61 * * * *'}\n", Manifest{}, `line 3: job ajob: cron "61 * * * *": end of range (61) above maximum (59)`},
		{"job cron with seconds", web + "jobs:\n  ajob: {command: ./j, cron: '0 * * * * *'}\n", Manifest{}, "expected exactly 5 fields"},
		{"job cron never", web + "jobs:\n  ajob: {command: ./j, cron: '0 0 30 2 *'}\n", Manifest{}, `cron "0 0 30 2 *" matches no date`},
		{"job cron @every", web + "jobs:\n  ajob: {command: ./j, cron: '@every 20s'}\n", Manifest{}, "use every: for intervals"},
		{"job cron time zone", web + "jobs:\n  ajob: {command: ./j, cron: 'TZ=Europe/Paris 0 3 * * *'}\n", Manifest{}, "cron runs in UTC"},
		{"job empty cron", web + "jobs:\n  ajob: {command: ./j, cron: ''}\n", Manifest{}, "job ajob: cron is empty"},
		{"job name bad", web + "jobs:\n  A_job: {command: ./j, every: 1m}\n", Manifest{}, `line 3: job name "A_job"`},
		{"job twice", web + "jobs:\n  j: {command: ./j, every: 1m}\n  j: {command: ./k, every: 1m}\n", Manifest{}, "line 4: job j is declared twice"},
		{"job named as a daemon", web + "daemons: {counter: ./d}\njobs:\n  counter: {command: ./j, every: 1m}\n", Manifest{},
			"line 4: job counter: counter is a daemon's name too; give each its own"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, ManifestFile), []byte(tc.yml), 0o644); err != nil {
				t.Fatal(err)
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
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestReadManifestProcfileWebOnly: a Procfile gives the web command only;
// its other process types are not run (daemons and jobs are in
// gearbox.yml), as the README says.
func TestReadManifestProcfileWebOnly(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, ProcfileFile), []byte("web: ./s\nworker: ./w\nclock: ./c\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Manifest{Web: "./s", Health: "/"}); !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}

// TestReadManifestReadme parses the gearbox.yml that README.md shows.
func TestReadManifestReadme(t *testing.T) {
	raw, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	const after = "A deployment's `gearbox.yml` says how to run it"
	_, rest, ok := strings.Cut(string(raw), after)
	if !ok {
		t.Fatalf("README.md has no %q", after)
	}
	_, rest, ok = strings.Cut(rest, "```yaml\n")
	if !ok {
		t.Fatal("no yaml block after it")
	}
	yml, _, _ := strings.Cut(rest, "```")
	m, err := parseManifest([]byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	if m.Web != "./demo web" || m.Health != "/health" || m.Build == "" || m.Daemons["counter"] != "./demo daemon" ||
		m.Jobs["ajob"].Schedule.Interval() != 20*time.Second || m.Jobs["nightly"].Schedule.Expr() != "0 3 * * *" {
		t.Fatalf("got %+v", m)
	}
}
