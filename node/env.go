package node

import (
	"maps"
	"net"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"gearbox/store/state"
)

// defaultPath is the PATH of gear processes unless the app's env sets one.
const defaultPath = "/usr/local/bin:/usr/bin:/bin"

// gearEnv returns the environment of a process of gear d, sorted: a PATH,
// HOME (the gear's app directory, its own to write) and LANG, then the app's env, then the
// platform's variables, which the app's env cannot override:
//
//	PORT                   the gear's web port
//	GEARBOX_IP             the node's address: serve on $GEARBOX_IP:$PORT
//	GEARBOX_APP            the app's name
//	GEARBOX_NAMESPACE      the app's domain (namespace)
//	GEARBOX_GEAR_ID        the gear's id
//	GEARBOX_APP_DNS        the app's hostname, APP-NS.DOMAIN
//	GEARBOX_DATA_DIR       the gear's persistent data directory
//	GEARBOX_DEPLOYMENT_ID  the deployment the gear runs ("" for none)
//
// and, when the node runs cluster services, the NATS variables of natsEnv.
//
// Nothing of the node's own environment is passed on.
func (s *Supervisor) gearEnv(d desired, dir, deploymentID string) []string {
	g := &d.gear
	m := map[string]string{
		"PATH": defaultPath,
		"HOME": filepath.Join(dir, "app"),
		"LANG": "C.UTF-8",
	}
	for k, v := range d.env {
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.ContainsRune(v, 0) {
			continue
		}
		m[k] = v
	}
	for k, v := range map[string]string{
		"PORT":                  strconv.Itoa(g.Port),
		"GEARBOX_IP":            s.cfg.Addr,
		"GEARBOX_APP":           g.AppName,
		"GEARBOX_NAMESPACE":     g.Domain,
		"GEARBOX_GEAR_ID":       g.ID,
		"GEARBOX_APP_DNS":       state.AppHost(g.AppName, g.Domain, s.cfg.Domain),
		"GEARBOX_DATA_DIR":      filepath.Join(dir, "data"),
		"GEARBOX_DEPLOYMENT_ID": deploymentID,
	} {
		m[k] = v
	}
	maps.Copy(m, s.natsEnv(d, dir))
	env := make([]string, 0, len(m))
	for k, v := range m {
		env = append(env, k+"="+v)
	}
	sort.Strings(env)
	return env
}

// defaultProgram is what a gear runs: until code is deployed, the static
// cartridge's welcome page, served from inside the node on the gear's
// port; then the deployment's web command, run in the deployment's
// directory, or, for a deployment without one, its files served from
// inside the node.
//
// A gear's deployment directory is shared by the gears of the app on
// this node; gears keep what they write in GEARBOX_DATA_DIR.
func (s *Supervisor) defaultProgram(d desired, dir string) (Program, string) {
	g := &d.gear
	addr := net.JoinHostPort(s.cfg.Addr, strconv.Itoa(g.Port))
	if dep := d.dep; dep != nil {
		if dep.manifest.Static() {
			return serverProgram{addr: addr, handler: staticHandler(dep.dir)}, "static " + addr + " " + dep.id
		}
		env := s.gearEnv(d, dir, dep.id)
		return ShellCommand(dep.manifest.Web, env, dep.dir), "web " + dep.id + " " + strings.Join(programKeyEnv(env), " ")
	}
	return serverProgram{addr: addr, handler: welcomeHandler(g.AppName, g.Domain, g.ID)},
		"welcome " + addr + " " + g.AppName + " " + g.Domain
}

// programKeyEnv returns env without the variables that must not restart a
// gear when they change (envNATSReplicas).
func programKeyEnv(env []string) []string {
	return slices.DeleteFunc(slices.Clone(env), func(kv string) bool { return strings.HasPrefix(kv, envNATSReplicas+"=") })
}
