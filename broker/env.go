package broker

import (
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strings"

	"gearbox/broker/api"
	"gearbox/store/state"
)

// envNameRE is a shell-safe environment variable name.
var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)

// Limits of an app's environment.
const (
	maxEnvVars     = 128
	maxEnvValueLen = 32 << 10
)

// envList is app a's environment, by name.
func envList(a *state.App) []api.EnvVar {
	out := []api.EnvVar{}
	for k, v := range a.Env {
		out = append(out, api.EnvVar{Name: k, Value: v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// GET .../applications/{app}/environment-variables
func (b *Broker) listEnv(w http.ResponseWriter, r *http.Request, u *state.User, p params) error {
	a, err := b.app(u, r.PathValue("ns"), r.PathValue("app"))
	if err != nil {
		return err
	}
	reply(w, http.StatusOK, "environment-variables", envList(a))
	return nil
}

// POST .../applications/{app}/environment-variables: name, value. Gears
// running a deployment restart with the new environment; the app's
// GEARBOX_LB_* variables tune its load balancers, GEARBOX_LB_GEAR_RATIO
// its rotation, GEARBOX_MAX_SESSIONS_PER_GEAR and GEARBOX_AUTOSCALE_* its
// autoscaling.
func (b *Broker) setEnv(w http.ResponseWriter, r *http.Request, u *state.User, p params) error {
	a, err := b.app(u, r.PathValue("ns"), r.PathValue("app"))
	if err != nil {
		return err
	}
	name, value := p.str("name"), p["value"]
	switch {
	case !envNameRE.MatchString(name):
		return fieldErr("name", 1, "Invalid environment variable name '%s': use letters, digits and '_', not starting with a digit.", name)
	case strings.HasPrefix(name, "GEARBOX_") && !strings.HasPrefix(name, "GEARBOX_LB_") && !autoscaleEnv(name):
		return fieldErr("name", 1, "Environment variable names starting with GEARBOX_ are set by the platform; only GEARBOX_LB_*, %s, %s and %s may be set.",
			EnvMaxSessionsPerGear, EnvAutoscaleDownHold, EnvAutoscaleCooldown)
	case autoscaleEnv(name) && badAutoscaleEnv(name, value) != "":
		return fieldErr("value", 1, "Invalid %s.", badAutoscaleEnv(name, value))
	case len(value) > maxEnvValueLen:
		return fieldErr("value", 1, "The value of %s is longer than %d bytes.", name, maxEnvValueLen)
	case strings.ContainsRune(value, 0):
		return fieldErr("value", 1, "The value of %s contains a NUL byte.", name)
	}
	if name == GearRatioEnv {
		if _, err := parseGearRatio(value); err != nil {
			return fieldErr("value", 1, "Invalid %s: %v.", name, err)
		}
	}
	if _, exists := a.Env[name]; !exists && len(a.Env) >= maxEnvVars {
		return fieldErr("name", 1, "Application '%s' already has %d environment variables, the most it may have.", a.Name, maxEnvVars)
	}
	if a.Env == nil {
		a.Env = map[string]string{}
	}
	a.Env[name] = value
	return b.saveEnv(w, r, a, fmt.Sprintf("Environment variable %s set.", name), http.StatusCreated)
}

// DELETE .../applications/{app}/environment-variables/{name}
func (b *Broker) unsetEnv(w http.ResponseWriter, r *http.Request, u *state.User, p params) error {
	a, err := b.app(u, r.PathValue("ns"), r.PathValue("app"))
	if err != nil {
		return err
	}
	name := r.PathValue("name")
	if _, ok := a.Env[name]; !ok {
		return notFound("Application '%s' has no environment variable %s.", a.Name, name)
	}
	delete(a.Env, name)
	return b.saveEnv(w, r, a, fmt.Sprintf("Environment variable %s removed.", name), http.StatusOK)
}

// saveEnv writes the app through a plan, so that a changed gear ratio
// rotates its LB gears at once.
func (b *Broker) saveEnv(w http.ResponseWriter, r *http.Request, a *state.App, msg string, code int) error {
	owner, err := b.owner(a)
	if err != nil {
		return err
	}
	pl, err := b.planFor(owner, a)
	if err != nil {
		return err
	}
	if err := b.apply(r.Context(), pl); err != nil {
		return err
	}
	b.log.Info().Str("app", a.Name).Str("domain", a.Domain).Str("change", msg).Msg("environment changed")
	reply(w, code, "environment-variables", envList(a), msg)
	return nil
}

// autoscaleEnv reports whether name is one of the autoscaling settings.
func autoscaleEnv(name string) bool {
	return name == EnvMaxSessionsPerGear || name == EnvAutoscaleDownHold || name == EnvAutoscaleCooldown
}

// badAutoscaleEnv says what is wrong with value for autoscaling setting
// name, or "".
func badAutoscaleEnv(name, value string) string {
	_, bad := autoscaleSettings(&state.App{Env: map[string]string{name: value}})
	if len(bad) > 0 {
		return bad[0]
	}
	return ""
}
