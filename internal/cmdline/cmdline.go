package cmdline

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"gearbox/store"
)

// Default ports of a member, as in DESIGN.md: both the member and the
// commands that reach it use them.
const (
	DefaultSerfPort     = 7946
	DefaultInternalPort = 7947
)

// Env returns the environment variable that sets a flag: GEARBOX_NAME.
func Env(name string) []string { return []string{"GEARBOX_" + name} }

// UsageError makes a flag parsing error a one-line error that points at
// --help, instead of printing the whole help after it.
func UsageError(c *cli.Context, err error, isSubcommand bool) error {
	name := "gearbox"
	if c.Command != nil && c.Command.HelpName != "" {
		name = c.Command.HelpName
	}
	if flag, ok := strings.CutPrefix(err.Error(), "flag provided but not defined: -"); ok {
		flag = strings.TrimPrefix(flag, "-")
		for _, g := range LogFlags() {
			if isSubcommand && g.Names()[0] == flag {
				return fmt.Errorf("--%s is a global flag: give it before the command, as in 'gearbox --%s ... %s'", flag, flag, c.Command.Name)
			}
		}
		return fmt.Errorf("unknown flag --%s; run '%s --help' for usage", flag, name)
	}
	msg := strings.Replace(err.Error(), "for flag -", "for flag --", 1)
	return fmt.Errorf("%s; run '%s --help' for usage", msg, name)
}

// WithDefaultPort returns addr (host[:port], IPv6 hosts in brackets when a
// port is given) as host:port, adding port when it has none.
func WithDefaultPort(addr string, port int) (string, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		// No port: a plain host, or a bare or bracketed IPv6 address.
		host = strings.TrimSuffix(strings.TrimPrefix(addr, "["), "]")
		if strings.ContainsAny(host, "[]") || (strings.Contains(host, ":") && net.ParseIP(host) == nil) {
			return "", errors.New("want host or host:port")
		}
		return net.JoinHostPort(host, strconv.Itoa(port)), nil
	}
	if host == "" {
		return "", errors.New("host is empty")
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("port %q is not in 1-65535", p)
	}
	return net.JoinHostPort(host, p), nil
}

// ClusterSecret returns the secret that authenticates the internal API:
// --cluster-secret when set, else one derived from the --encrypt gossip
// key, else none. derived reports the second case.
func ClusterSecret(secret, encrypt string) (s string, derived bool, err error) {
	switch {
	case secret != "":
		return secret, false, nil
	case encrypt != "":
		s, err := store.DeriveSecret(encrypt)
		if err != nil {
			return "", false, fmt.Errorf("--encrypt: %w", err)
		}
		return s, true, nil
	}
	return "", false, nil
}

// JoinErrors joins the errors of errs that are not nil into one error
// that prints on one line; nil if there are none.
func JoinErrors(errs []error) error {
	var msgs []string
	for _, e := range errs {
		if e != nil {
			msgs = append(msgs, e.Error())
		}
	}
	switch len(msgs) {
	case 0:
		return nil
	case 1:
		for _, e := range errs {
			if e != nil {
				return e
			}
		}
	}
	return errors.New(strings.Join(msgs, "; "))
}
