package scripts

import (
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The Grafana dashboard is valid JSON whose every query names metrics
// that gearbox defines, and the Prometheus scrape configuration passes
// promtool (Debian's prometheus package, which .ci/run installs).
func TestObservabilityFiles(t *testing.T) {
	raw, err := os.ReadFile("grafana/gearbox.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			ID      int    `json:"id"`
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("grafana/gearbox.json: %v", err)
	}
	// Every metric name the Go sources define.
	var src strings.Builder
	err = filepath.WalkDir("..", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if strings.HasSuffix(p, ".go") && !strings.HasSuffix(p, "_test.go") {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			src.Write(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defined := src.String()
	nameRE := regexp.MustCompile(`gearbox_[a-z_]+`)
	ids := map[int]bool{}
	for _, p := range dash.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			for _, n := range nameRE.FindAllString(tg.Expr, -1) {
				base := n
				for _, suffix := range []string{"_bucket", "_count", "_sum"} {
					base = strings.TrimSuffix(base, suffix)
				}
				if !strings.Contains(defined, `"`+base+`"`) {
					t.Errorf("panel %q queries %s, which no gearbox source defines", p.Title, n)
				}
			}
		}
	}
	if _, err := exec.LookPath("promtool"); err != nil {
		t.Skip("promtool (Debian package prometheus) is not installed: the scrape configuration is not checked")
	}
	if out, err := exec.Command("promtool", "check", "config", "--syntax-only", "prometheus/prometheus.yml").CombinedOutput(); err != nil {
		t.Errorf("promtool check config: %v\n%s", err, out)
	}
}
