package cli

import (
	"errors"
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"gearbox/internal/cmdline"
)

// A password never comes from the command line: /proc/PID/cmdline is
// readable by every process on the host, gears included. As with the
// member's secrets (cmdline.SecretFlags), it comes from the environment
// (GEARBOX_ENV), from a file that only its owner may read (--NAME-file),
// or, on a terminal, from a prompt that does not echo. --NAME itself is a
// hidden flag that is refused with a message naming the alternatives, so
// that an old script fails loudly instead of leaking the password.

// passwordFlag is one password that client commands take.
type passwordFlag struct {
	name string // --NAME-file, and the refused --NAME
	env  string // GEARBOX_ENV
	what string // what the password is, for --help and errors
}

var (
	// callerPassword authenticates --user: every client command has it.
	callerPassword = passwordFlag{name: "password", env: "PASSWORD", what: "the password of --user"}
	// newPassword is the password of the user that user create makes or
	// user set --change-password changes. It has its own variable so that
	// GEARBOX_PASSWORD never becomes someone else's password by accident.
	newPassword = passwordFlag{name: "new-password", env: "NEW_PASSWORD", what: "the user's new password"}
	// currentPassword is sent with a new password for oneself.
	currentPassword = passwordFlag{name: "current-password", env: "CURRENT_PASSWORD", what: "your current password"}
)

// authPasswordFlag is what the caller's password was called on the user
// commands before passwords left the command line; it is refused like
// --password.
const authPasswordFlag = "auth-password"

// flags returns --NAME-file (also GEARBOX_ENV_FILE) and the hidden,
// refused --NAME.
func (p passwordFlag) flags() []cli.Flag {
	return cmdline.SecretFlags(p.name, p.env, "", p.what)
}

// sources says where the password may come from.
func (p passwordFlag) sources() string {
	return fmt.Sprintf("set GEARBOX_%s or give --%s-file FILE (readable by you only)", p.env, p.name)
}

// get returns the password from --NAME-file or GEARBOX_ENV, or "" when
// neither is given. Surrounding white space is dropped, as from every
// secret file.
func (p passwordFlag) get(c *cli.Context) (string, error) {
	return cmdline.Secret(c, p.name, p.env)
}

// read returns the password as get does, else asks for it on a terminal
// with prompt (twice when confirm is set, for a new password). Without a
// terminal it fails with missing and the sources, instead of waiting for
// input.
func (p passwordFlag) read(c *cli.Context, in *prompter, prompt, missing string, confirm bool) (string, error) {
	s, err := p.get(c)
	if err != nil || s != "" {
		return s, err
	}
	if !in.terminal {
		return "", fmt.Errorf("%s: %s, or run this on a terminal to be asked for it", missing, p.sources())
	}
	if s, err = in.secret(prompt); err != nil {
		return "", err
	}
	if s == "" {
		return "", errors.New(missing)
	}
	if confirm {
		again, err := in.secret("Again: ")
		if err != nil {
			return "", err
		}
		if again != s {
			return "", errors.New("the passwords do not match")
		}
	}
	return s, nil
}

// refusePasswordFlags returns an error when a password was given on the
// command line: --password, the user commands' old --auth-password, or
// --new-password and --current-password. The error names where the
// password may come from instead. Every client command calls it first,
// whether or not it needs the password, so that none is silently
// accepted.
func refusePasswordFlags(c *cli.Context) error {
	// On user create and set, --password used to be the new password.
	userCmd := hasFlag(c.Command, newPassword.name+"-file")
	for _, f := range []struct {
		name    string
		instead []passwordFlag
	}{
		{callerPassword.name, []passwordFlag{callerPassword}},
		{authPasswordFlag, []passwordFlag{callerPassword}},
		{newPassword.name, []passwordFlag{newPassword}},
		{currentPassword.name, []passwordFlag{currentPassword}},
	} {
		if !hasFlag(c.Command, f.name) || !c.IsSet(f.name) {
			continue
		}
		if f.name == callerPassword.name && userCmd {
			f.instead = []passwordFlag{newPassword, callerPassword}
		}
		var alts []string
		for _, p := range f.instead {
			alts = append(alts, fmt.Sprintf("for %s, %s", p.what, p.sources()))
		}
		return fmt.Errorf("--%s would put a password on the command line, where every process on this host can read it: %s; "+
			"or leave it out to be asked on a terminal", f.name, strings.Join(alts, "; "))
	}
	return nil
}

// refusedFlag is a hidden flag that refusePasswordFlags refuses.
func refusedFlag(name string) cli.Flag {
	return &cli.StringFlag{Name: name, Hidden: true}
}
