package node

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"unicode"

	// yaml.v3 rather than a hand-written parser: it is the maintained
	// reference YAML library for Go, it decodes into plain structs only
	// (no custom tags that construct objects), and its KnownFields mode
	// makes a typo such as "helth:" an error instead of a silently
	// ignored key.
	"gopkg.in/yaml.v3"
)

// Manifest files a deployment may carry at its root. ManifestFile wins
// when both are present.
const (
	ManifestFile = "gearbox.yml"
	ProcfileFile = "Procfile"
)

// maxManifestSize caps the manifest files ReadManifest reads, in bytes.
const maxManifestSize = 64 << 10

// Manifest says what a deployment's gears run. The zero value means: no
// command, serve the deployment's folder as static files.
type Manifest struct {
	// Web is the shell command that serves HTTP on $GEARBOX_IP:$PORT.
	// Empty: the folder is served as static files.
	Web string `yaml:"web"`
	// Health is the path the load balancer checks. Default "/".
	Health string `yaml:"health"`
	// Build runs once per deployment on each node, before the first start.
	// Empty: nothing to build.
	Build string `yaml:"build"`
}

// Static reports whether m serves the deployment as static files.
func (m Manifest) Static() bool { return m.Web == "" }

// ReadManifest reads what the deployment unpacked in dir runs: its
// gearbox.yml (web, health, build), else the web line of its Heroku-style
// Procfile, else nothing (Manifest{}: static files).
func ReadManifest(dir string) (Manifest, error) {
	data, err := readSmall(filepath.Join(dir, ManifestFile))
	if err == nil {
		return parseManifest(data)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return Manifest{}, err
	}
	data, err = readSmall(filepath.Join(dir, ProcfileFile))
	if err == nil {
		return parseProcfile(data)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return Manifest{}, err
	}
	return Manifest{}, nil
}

// readSmall reads a regular file of at most maxManifestSize bytes.
func readSmall(path string) ([]byte, error) {
	// The node reads as root a file that a build, run as a gear's uid,
	// may have replaced: never through a link, nor a file linked
	// elsewhere too, such as a hard link to one the gear may not read.
	name := filepath.Base(path)
	f, err := os.OpenFile(path, os.O_RDONLY|oNoFollow|oNonBlock, 0)
	if errors.Is(err, syscall.ELOOP) {
		return nil, fmt.Errorf("%s is not a regular file (it is a link)", name)
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", name)
	}
	if st, ok := statOf(fi); ok && st.nlink > 1 {
		return nil, fmt.Errorf("%s is not a regular file of its own (it has %d links)", name, st.nlink)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxManifestSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if len(data) > maxManifestSize {
		return nil, fmt.Errorf("%s is larger than %d bytes", name, maxManifestSize)
	}
	return data, nil
}

func parseManifest(data []byte) (Manifest, error) {
	var m Manifest
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&m); errors.Is(err, io.EOF) {
		return Manifest{}, fmt.Errorf("%s is empty; it needs at least a web: command", ManifestFile)
	} else if err != nil {
		return Manifest{}, fmt.Errorf("%s: %w (known keys: web, health, build)", ManifestFile, unwrapYAML(err))
	}
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return Manifest{}, fmt.Errorf("%s holds more than one YAML document; keep one", ManifestFile)
	}
	m.Web, m.Health, m.Build = strings.TrimSpace(m.Web), strings.TrimSpace(m.Health), strings.TrimSpace(m.Build)
	if m.Web == "" {
		return Manifest{}, fmt.Errorf("%s: web is empty; give the shell command that serves HTTP on $GEARBOX_IP:$PORT", ManifestFile)
	}
	if m.Health == "" {
		m.Health = "/"
	}
	if err := checkHealthPath(m.Health); err != nil {
		return Manifest{}, fmt.Errorf("%s: %w", ManifestFile, err)
	}
	return m, nil
}

// unwrapYAML drops yaml.v3's "yaml: " prefix, which says nothing to the
// user that the file name does not.
func unwrapYAML(err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		return errors.New(strings.Join(te.Errors, "; "))
	}
	return errors.New(strings.TrimPrefix(err.Error(), "yaml: "))
}

func checkHealthPath(p string) error {
	if !strings.HasPrefix(p, "/") {
		return fmt.Errorf("health %q must be a path starting with /", p)
	}
	if strings.IndexFunc(p, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0 {
		return fmt.Errorf("health %q must not hold spaces or control characters", p)
	}
	return nil
}

// parseProcfile reads the web process type of a Procfile: lines of
// "type: command", blank lines and # comments ignored.
func parseProcfile(data []byte) (Manifest, error) {
	var m Manifest
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), maxManifestSize+1)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		typ, cmd, ok := strings.Cut(line, ":")
		if !ok {
			return Manifest{}, fmt.Errorf("%s line %d: want \"type: command\", got %q", ProcfileFile, n, line)
		}
		if strings.TrimSpace(typ) != "web" {
			continue // other process types are not run
		}
		if m.Web != "" {
			return Manifest{}, fmt.Errorf("%s line %d: a second web: line", ProcfileFile, n)
		}
		if m.Web = strings.TrimSpace(cmd); m.Web == "" {
			return Manifest{}, fmt.Errorf("%s line %d: web is empty; give the shell command that serves HTTP on $GEARBOX_IP:$PORT", ProcfileFile, n)
		}
	}
	if err := sc.Err(); err != nil {
		return Manifest{}, fmt.Errorf("read %s: %w", ProcfileFile, err)
	}
	if m.Web == "" {
		return Manifest{}, fmt.Errorf("%s has no web: line; it needs one, or remove the file to serve the folder as static files", ProcfileFile)
	}
	m.Health = "/"
	return m, nil
}
