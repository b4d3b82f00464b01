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
	"regexp"
	"strings"
	"syscall"
	"time"
	"unicode"

	"gearbox/node/schedule"

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
	Web string
	// Health is the path the load balancer checks. Default "/".
	Health string
	// Build runs once per deployment on each node, before the first start.
	// Empty: nothing to build.
	Build string
	// Daemons are the app's HA daemons, by name: shell commands of which
	// the platform runs one instance per app, on one of its gears. Nil:
	// none.
	Daemons map[string]string
	// Jobs are the app's HA scheduled jobs, by name, run on one of its
	// gears at each tick of their schedule. Nil: none.
	Jobs map[string]Job
}

// Job is an HA scheduled job of a Manifest.
type Job struct {
	// Command is the shell command run at each tick, with the tick's id
	// in GEARBOX_JOB_TICK.
	Command string
	// Schedule is when the ticks are: every: or cron: (UTC).
	Schedule schedule.Spec
}

// manifestFile is gearbox.yml as written. daemons and jobs are walked by
// hand (parseDaemons, parseJobs): yaml.v3 checks unknown and repeated
// keys of structs only, and its messages name Go types.
type manifestFile struct {
	Web     string    `yaml:"web"`
	Health  string    `yaml:"health"`
	Build   string    `yaml:"build"`
	Daemons yaml.Node `yaml:"daemons"`
	Jobs    yaml.Node `yaml:"jobs"`
}

// Known keys of gearbox.yml and of a job, for error messages.
const (
	manifestKeys = "web, health, build, daemons, jobs"
	jobKeys      = "command, every, cron"
)

// Static reports whether m serves the deployment as static files.
func (m Manifest) Static() bool { return m.Web == "" }

// ReadManifest reads what the deployment unpacked in dir runs: its
// gearbox.yml (web, health, build, daemons, jobs), else the web line of
// its Heroku-style Procfile, else nothing (Manifest{}: static files).
//
// gearbox.yml, with every key but web optional:
//
//	web: ./demo web              # shell command serving $GEARBOX_IP:$PORT
//	health: /health              # path the load balancers check; default /
//	build: go build -o demo .    # run once per deployment on each node
//	daemons:                     # NAME: COMMAND, one instance per app
//	  counter: ./demo daemon
//	jobs:                        # NAME: {command:, every: or cron:}
//	  ajob: {command: ./demo job, every: 20s}
//	  nightly:
//	    command: ./demo report
//	    cron: "0 3 * * *"         # 5 fields or @hourly, @daily, ...; UTC
//
// Names are 1 to 32 lower-case letters, digits and hyphens, and a job may
// not take a daemon's name; every: is a Go duration of at least
// schedule.MinEvery (1s), its ticks at multiples of it since the Unix
// epoch; a job has exactly one of every: and cron:. Daemons and jobs need
// a web command: without one the gears serve the folder as static files,
// which for a worker would publish its code. There is no short form for
// jobs: one way to write them keeps the errors plain.
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
	var f manifestFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); errors.Is(err, io.EOF) {
		return Manifest{}, fmt.Errorf("%s is empty; it needs at least a web: command", ManifestFile)
	} else if err != nil {
		return Manifest{}, fmt.Errorf("%s: %w (known keys: %s)", ManifestFile, unwrapYAML(err), manifestKeys)
	}
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return Manifest{}, fmt.Errorf("%s holds more than one YAML document; keep one", ManifestFile)
	}
	m := Manifest{Web: strings.TrimSpace(f.Web), Health: strings.TrimSpace(f.Health), Build: strings.TrimSpace(f.Build)}
	var err error
	if m.Daemons, err = parseDaemons(&f.Daemons); err != nil {
		return Manifest{}, fmt.Errorf("%s: %w", ManifestFile, err)
	}
	if m.Jobs, err = parseJobs(&f.Jobs, m.Daemons); err != nil {
		return Manifest{}, fmt.Errorf("%s: %w", ManifestFile, err)
	}
	if m.Web == "" {
		// Daemons and jobs need one too: without it the gears would
		// serve the deployment's folder, a worker's code with it.
		also := ""
		if m.Daemons != nil || m.Jobs != nil {
			also = " (daemons and jobs need one too)"
		}
		return Manifest{}, fmt.Errorf("%s: web is empty; give the shell command that serves HTTP on $GEARBOX_IP:$PORT%s", ManifestFile, also)
	}
	if m.Health == "" {
		m.Health = "/"
	}
	if err := checkHealthPath(m.Health); err != nil {
		return Manifest{}, fmt.Errorf("%s: %w", ManifestFile, err)
	}
	return m, nil
}

// processName is what a daemon's or job's name may be: a DNS label of at
// most 32 characters, since names go into KV keys, subjects and logs.
var processName = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$`)

// parseDaemons reads daemons: NAME: COMMAND, ... (absent or empty: none).
func parseDaemons(n *yaml.Node) (map[string]string, error) {
	pairs, err := mappingPairs(n, "daemons", "a mapping of name: command, such as {counter: ./demo daemon}")
	if err != nil || len(pairs) == 0 {
		return nil, err
	}
	daemons := make(map[string]string, len(pairs))
	for _, kv := range pairs {
		name, err := entryName(kv[0], "daemon", daemons)
		if err != nil {
			return nil, err
		}
		cmd, err := scalar(kv[1], fmt.Sprintf("daemon %s", name), "its shell command as a string")
		if err != nil {
			return nil, err
		}
		if cmd == "" {
			return nil, fmt.Errorf("line %d: daemon %s: the command is empty", kv[1].Line, name)
		}
		daemons[name] = cmd
	}
	return daemons, nil
}

// parseJobs reads jobs: NAME: {command: C, every: D | cron: E}, ...
// (absent or empty: none). A job may not share a daemon's name.
func parseJobs(n *yaml.Node, daemons map[string]string) (map[string]Job, error) {
	pairs, err := mappingPairs(n, "jobs", "a mapping of name: {command: ..., every: ... or cron: ...}")
	if err != nil || len(pairs) == 0 {
		return nil, err
	}
	jobs := make(map[string]Job, len(pairs))
	for _, kv := range pairs {
		name, err := entryName(kv[0], "job", jobs)
		if err != nil {
			return nil, err
		}
		if _, ok := daemons[name]; ok {
			return nil, fmt.Errorf("line %d: job %s: %s is a daemon's name too; give each its own", kv[0].Line, name, name)
		}
		what := "job " + name
		fields, err := mappingPairs(kv[1], what, "a mapping such as {command: ./demo job, every: 20s}")
		if err != nil {
			return nil, err
		}
		if len(fields) == 0 {
			return nil, fmt.Errorf("line %d: %s: give its command: and every: or cron:", kv[1].Line, what)
		}
		var cmd, every, cronExpr *string
		seen := map[string]bool{}
		for _, f := range fields {
			key, err := scalar(f[0], what, "keys that are names")
			if err != nil {
				return nil, err
			}
			if seen[key] {
				return nil, fmt.Errorf("line %d: %s: %s given twice", f[0].Line, what, key)
			}
			seen[key] = true
			v, err := scalar(f[1], what+": "+key, "a string")
			if err != nil {
				return nil, err
			}
			switch key {
			case "command":
				cmd = &v
			case "every":
				every = &v
			case "cron":
				cronExpr = &v
			default:
				return nil, fmt.Errorf("line %d: %s: unknown key %s (known keys: %s)", f[0].Line, what, key, jobKeys)
			}
		}
		line := kv[1].Line
		switch {
		case cmd == nil:
			return nil, fmt.Errorf("line %d: %s: give its command: (a shell command)", line, what)
		case *cmd == "":
			return nil, fmt.Errorf("line %d: %s: the command is empty", line, what)
		}
		job := Job{Command: *cmd}
		switch {
		case every != nil && cronExpr != nil:
			return nil, fmt.Errorf("line %d: %s: give every: or cron:, not both", line, what)
		case every != nil:
			d, err := time.ParseDuration(*every)
			if err != nil {
				return nil, fmt.Errorf("line %d: %s: every %q is not a duration such as 20s, 5m or 1h30m", line, what, *every)
			}
			if job.Schedule, err = schedule.Every(d); err != nil {
				return nil, fmt.Errorf("line %d: %s: %w", line, what, err)
			}
		case cronExpr != nil:
			if job.Schedule, err = schedule.Cron(*cronExpr); err != nil {
				return nil, fmt.Errorf("line %d: %s: %w", line, what, err)
			}
		default:
			return nil, fmt.Errorf("line %d: %s: say when it runs: every: (such as 20s) or cron: (such as \"*/5 * * * *\", in UTC)", line, what)
		}
		jobs[name] = job
	}
	return jobs, nil
}

// mappingPairs returns the key and value nodes of the mapping n, in the
// file's order; none for an absent or null n. what names n in errors,
// want says what it should be.
func mappingPairs(n *yaml.Node, what, want string) ([][2]*yaml.Node, error) {
	n = deref(n)
	if n.Kind == 0 || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null") {
		return nil, nil
	}
	if n.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("line %d: %s: want %s", n.Line, what, want)
	}
	var pairs [][2]*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		pairs = append(pairs, [2]*yaml.Node{deref(n.Content[i]), deref(n.Content[i+1])})
	}
	return pairs, nil
}

// entryName checks the name of a daemon or job (kind), new in seen.
func entryName[V any](n *yaml.Node, kind string, seen map[string]V) (string, error) {
	if n.Kind != yaml.ScalarNode {
		return "", fmt.Errorf("line %d: want a %s name", n.Line, kind)
	}
	name := n.Value
	if !processName.MatchString(name) {
		return "", fmt.Errorf("line %d: %s name %q: use 1 to 32 lower-case letters, digits and hyphens, not starting or ending with a hyphen", n.Line, kind, name)
	}
	if _, ok := seen[name]; ok {
		return "", fmt.Errorf("line %d: %s %s is declared twice", n.Line, kind, name)
	}
	return name, nil
}

// scalar returns the trimmed text of the scalar n ("" for null); what and
// want are for the error when n is a mapping or a list.
func scalar(n *yaml.Node, what, want string) (string, error) {
	if n.Kind != yaml.ScalarNode {
		return "", fmt.Errorf("line %d: %s: want %s", n.Line, what, want)
	}
	if n.ShortTag() == "!!null" {
		return "", nil
	}
	return strings.TrimSpace(n.Value), nil
}

// deref follows an alias (*name) to its anchored node.
func deref(n *yaml.Node) *yaml.Node {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		return n.Alias
	}
	return n
}

// unwrapYAML drops yaml.v3's "yaml: " prefix, which says nothing to the
// user that the file name does not, and the Go types its messages name.
func unwrapYAML(err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs := make([]string, len(te.Errors))
		for i, m := range te.Errors {
			msgs[i] = unknownField.ReplaceAllString(m, "unknown key $1")
		}
		return errors.New(strings.Join(msgs, "; "))
	}
	return errors.New(strings.TrimPrefix(err.Error(), "yaml: "))
}

// unknownField matches yaml.v3's KnownFields message.
var unknownField = regexp.MustCompile(`field (.*) not found in type \S+`)

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
// "type: command", blank lines and # comments ignored. Other process
// types are not run: daemons and jobs are declared in gearbox.yml, whose
// every: or cron: a Procfile line has no place for.
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
