package layout

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "gearbox"

// The roles and the libraries, each the root of a tree of packages.
var (
	roles     = []string{"gearbox/broker", "gearbox/node", "gearbox/router", "gearbox/dnsmgr"}
	libraries = []string{"gearbox/lb", "gearbox/store"}
	// testHelpers are imported by tests only.
	testHelpers = []string{"gearbox/internal/testutil", "gearbox/store/storetest"}
)

const cliPkg = "gearbox/internal/cli"

// Layers, from the top: a package imports its own layer or lower ones.
const (
	layerMain = iota
	layerTop  // gearbox/internal/..., gearbox/scripts/...
	layerRole
	layerLibrary
)

// under reports whether package p is root or one of its sub-packages.
func under(p, root string) bool {
	return p == root || strings.HasPrefix(p, root+"/")
}

// treeOf returns the one of roots that p is under, or "".
func treeOf(p string, roots []string) string {
	for _, r := range roots {
		if under(p, r) {
			return r
		}
	}
	return ""
}

func layerOf(p string) int {
	switch {
	case p == module:
		return layerMain
	case treeOf(p, roles) != "":
		return layerRole
	case treeOf(p, libraries) != "":
		return layerLibrary
	default:
		return layerTop
	}
}

var layerNames = []string{"main", "internal", "a role", "a library"}

// check returns why package from may not import package to, or nil. test
// says whether the import is made by from's tests.
func check(from, to string, test bool) error {
	if !under(to, module) || from == to {
		return nil
	}
	if err := rule(from, to, test); err != nil {
		if test {
			return fmt.Errorf("the tests of %s import %s: %w", from, to, err)
		}
		return fmt.Errorf("%s imports %s: %w", from, to, err)
	}
	return nil
}

// rule returns the rule that from's import of to breaks, or nil.
func rule(from, to string, test bool) error {
	if h := treeOf(to, testHelpers); h != "" {
		if test || treeOf(from, testHelpers) != "" {
			return nil
		}
		return fmt.Errorf("only tests import %s", h)
	}
	if under(to, cliPkg) && from != module && !under(from, cliPkg) {
		return fmt.Errorf("only %s (main) imports %s", module, cliPkg)
	}
	lf, lt := layerOf(from), layerOf(to)
	switch {
	case lt < lf:
		return fmt.Errorf("%s imports no package above it (%s)", layerNames[lf], layerNames[lt])
	case lf == layerRole && lt == layerRole && treeOf(from, roles) != treeOf(to, roles):
		return fmt.Errorf("a role never imports another role (%s, %s)", treeOf(from, roles), treeOf(to, roles))
	case lf == layerLibrary && treeOf(from, libraries) != treeOf(to, libraries):
		return fmt.Errorf("a library imports no gearbox package outside its own tree (%s)", treeOf(from, libraries))
	}
	return nil
}

func TestCheck(t *testing.T) {
	tests := []struct {
		from, to string
		test     bool
		want     string // part of the error; "" for none
	}{
		{"gearbox", "gearbox/internal/member", false, ""},
		{"gearbox", "gearbox/internal/cli", false, ""},
		{"gearbox/internal/member", "gearbox/node", false, ""},
		{"gearbox/internal/member", "gearbox/broker", false, ""},
		{"gearbox/internal/dev", "gearbox/internal/member", false, ""},
		{"gearbox/internal/cli", "gearbox/broker/client", false, ""},
		{"gearbox/internal/integration", "gearbox/broker", true, ""},
		{"gearbox/internal/integration", "gearbox/node", true, ""},
		{"gearbox/scripts/bench/lbserver", "gearbox/lb", false, ""},
		{"gearbox/node", "gearbox/lb", false, ""},
		{"gearbox/node", "gearbox/store/state", false, ""},
		{"gearbox/broker", "gearbox/broker/api", false, ""},
		{"gearbox/broker/client", "gearbox/broker/api", false, ""},
		{"gearbox/store", "gearbox/store/state", false, ""},
		{"gearbox/lb", "gearbox/lb/internal/h1", false, ""},
		{"gearbox/lb", "gearbox/internal/testutil", true, ""},
		{"gearbox/node", "gearbox/store/storetest", true, ""},
		{"gearbox/store/storetest", "gearbox/internal/testutil", false, ""},
		{"gearbox/node", "github.com/miekg/dns", false, ""},

		{"gearbox/node", "gearbox/broker/client", false, "a role never imports another role"},
		{"gearbox/broker", "gearbox/node", true, "a role never imports another role"},
		{"gearbox/dnsmgr", "gearbox/router", false, "a role never imports another role"},
		{"gearbox/node", "gearbox/internal/member", false, "a role imports no package above it"},
		{"gearbox/lb", "gearbox/store", false, "a library imports no gearbox package outside its own tree"},
		{"gearbox/store", "gearbox/lb", true, "a library imports no gearbox package outside its own tree"},
		{"gearbox/store/state", "gearbox/node", false, "a library imports no package above it"},
		{"gearbox/internal/member", "gearbox/internal/cli", false, "only gearbox (main) imports gearbox/internal/cli"},
		{"gearbox/broker", "gearbox/internal/cli", true, "only gearbox (main) imports gearbox/internal/cli"},
		{"gearbox/internal/member", "gearbox/internal/testutil", false, "only tests import gearbox/internal/testutil"},
		{"gearbox/node", "gearbox/store/storetest", false, "only tests import gearbox/store/storetest"},
		{"gearbox/internal/member", "gearbox", false, "internal imports no package above it"},
	}
	for _, tt := range tests {
		t.Run(tt.from+"->"+tt.to, func(t *testing.T) {
			err := check(tt.from, tt.to, tt.test)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("check(%q, %q, %v) = %v, want nil", tt.from, tt.to, tt.test, err)
			case tt.want != "" && err == nil:
				t.Errorf("check(%q, %q, %v) = nil, want an error with %q", tt.from, tt.to, tt.test, tt.want)
			case tt.want != "" && !strings.Contains(err.Error(), tt.want):
				t.Errorf("check(%q, %q, %v) = %v, want an error with %q", tt.from, tt.to, tt.test, err, tt.want)
			case err != nil && !tt.test && !strings.HasPrefix(err.Error(), tt.from+" imports "+tt.to+": "),
				err != nil && tt.test && !strings.HasPrefix(err.Error(), "the tests of "+tt.from+" import "+tt.to+": "):
				t.Errorf("check(%q, %q, %v) = %v, want it to name the import", tt.from, tt.to, tt.test, err)
			}
		})
	}
}

// listed is what `go list -json` says of a package, in part.
type listed struct {
	ImportPath   string
	Imports      []string
	TestImports  []string
	XTestImports []string
	Error        *struct{ Err string }
}

// goList lists the module's packages as built for goos.
func goList(t *testing.T, goos string) []listed {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("find the go command: %v", err)
	}
	cmd := exec.Command(gobin, "list", "-e", "-json=ImportPath,Imports,TestImports,XTestImports,Error", module+"/...")
	cmd.Dir = "../.." // the module's root
	cmd.Env = append(os.Environ(), "GOOS="+goos, "CGO_ENABLED=0")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list (GOOS=%s): %v\n%s", goos, err, stderr.Bytes())
	}
	var pkgs []listed
	for dec := json.NewDecoder(bytes.NewReader(out)); ; {
		var p listed
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("read go list (GOOS=%s): %v", goos, err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) == 0 {
		t.Fatalf("go list (GOOS=%s) lists no package", goos)
	}
	return pkgs
}

// TestImports checks every import of the module's packages and of their
// tests, as built for each system the binary is built for (.ci/run): a
// file built for one system only may import other packages.
func TestImports(t *testing.T) {
	var bad []string
	for _, goos := range []string{"linux", "darwin", "windows"} {
		for _, p := range goList(t, goos) {
			if p.Error != nil {
				// Left to the build to report; what could be read is
				// still checked.
				t.Logf("GOOS=%s: %s: %s", goos, p.ImportPath, p.Error.Err)
			}
			for _, imp := range p.Imports {
				if err := check(p.ImportPath, imp, false); err != nil {
					bad = append(bad, err.Error())
				}
			}
			for _, imp := range slices.Concat(p.TestImports, p.XTestImports) {
				if err := check(p.ImportPath, imp, true); err != nil {
					bad = append(bad, err.Error())
				}
			}
		}
	}
	slices.Sort(bad)
	for _, b := range slices.Compact(bad) {
		t.Error(b)
	}
}
