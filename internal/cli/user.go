package cli

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"gearbox/broker/api"
	"gearbox/internal/cmdline"
)

// userClientFlags are clientFlags for the user commands, with the
// caller's password's old name there, --auth-password, refused as
// --password is.
func userClientFlags() []cli.Flag {
	return append(clientFlags(), refusedFlag(authPasswordFlag))
}

// capabilityFlags are the capability flags of user create and user set.
func capabilityFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "ha", Usage: "may make applications highly available (--ha=false to revoke)"},
		&cli.IntFlag{Name: "max-gears", Usage: "may have at most `N` gears"},
		&cli.StringFlag{Name: "gear-sizes", Usage: "comma-separated gear `SIZES` the user may create: small, medium, large"},
		&cli.BoolFlag{Name: "admin", Usage: "is an administrator (--admin=false to revoke)"},
	}
}

// capabilityParams are the capability flags given, as API parameters.
func capabilityParams(c *cli.Context) url.Values {
	v := url.Values{}
	if c.IsSet("ha") {
		v.Set("ha", strconv.FormatBool(c.Bool("ha")))
	}
	if c.IsSet("max-gears") {
		v.Set("max_gears", strconv.Itoa(c.Int("max-gears")))
	}
	if c.IsSet("gear-sizes") {
		v.Set("gear_sizes", c.String("gear-sizes"))
	}
	if c.IsSet("admin") {
		v.Set("admin", strconv.FormatBool(c.Bool("admin")))
	}
	return v
}

// userCommand is `gearbox user`: accounts and capabilities (admin).
func userCommand() *cli.Command {
	cmds := []*cli.Command{
		{
			Name:      "create",
			Usage:     "create a user (administrators)",
			UsageText: "gearbox user create LOGIN [--ha] [--max-gears N] [--gear-sizes SIZES] [--admin] [flags]",
			Description: "Capabilities not given take the broker's defaults. The new user's password (8 to 72\n" +
				"bytes) comes from GEARBOX_NEW_PASSWORD or --new-password-file, else it is asked for\n" +
				"(twice) on a terminal; never from the command line, where every process on the host\n" +
				"can read it. The caller authenticates with the saved login, or --user and its password\n" +
				"(GEARBOX_PASSWORD or --password-file, else asked for on a terminal).",
			Flags: append(append(userClientFlags(), newPassword.flags()...), capabilityFlags()...),
			Action: clientAction([]string{"LOGIN"}, func(s *session) error {
				login := s.arg(0)
				password, err := newPassword.read(s.c, newPrompter(s.c), "Password for new user "+login+": ",
					"no password for the new user", true)
				if err != nil {
					return err
				}
				u, msgs, err := s.api.CreateUser(s.ctx(), login, password, capabilityParams(s.c))
				if err != nil {
					return err
				}
				return s.result(msgs, u, func(w io.Writer) error { return printUsers(w, []api.User{u}) })
			}),
		},
		{
			Name:            "list",
			Usage:           "list users and their capabilities (administrators)",
			UsageText:       "gearbox user list [flags]",
			Flags:           userClientFlags(),
			HideHelpCommand: true,
			Action: clientAction(nil, func(s *session) error {
				us, err := s.api.Users(s.ctx())
				if err != nil {
					return err
				}
				if us == nil {
					us = []api.User{}
				}
				return s.show(us, func(w io.Writer) error { return printUsers(w, us) })
			}),
		},
		{
			Name:      "set",
			Usage:     "change a user's capabilities or password (administrators; anyone: their own password)",
			UsageText: "gearbox user set LOGIN [--ha=BOOL] [--max-gears N] [--gear-sizes SIZES] [--admin=BOOL] [--change-password] [flags]",
			Description: "Changes only what is given. The caller authenticates with the saved login, or --user\n" +
				"and its password (GEARBOX_PASSWORD or --password-file, else asked for on a terminal).\n" +
				"--change-password sets a new password, from GEARBOX_NEW_PASSWORD or --new-password-file,\n" +
				"else asked for (twice) on a terminal. Changing your own password needs your current one:\n" +
				"GEARBOX_CURRENT_PASSWORD or --current-password-file, else the caller's password, else it is\n" +
				"asked for. A new password revokes all of the user's API tokens, the one saved by\n" +
				"'gearbox login' too. No password is ever taken from the command line.",
			Flags: append(append(append(append(userClientFlags(),
				&cli.BoolFlag{Name: "change-password", Usage: "set the user's new password (see above for where it comes from)"}),
				newPassword.flags()...), currentPassword.flags()...),
				capabilityFlags()...),
			Action: clientAction([]string{"LOGIN"}, func(s *session) error {
				login := s.arg(0)
				v := capabilityParams(s.c)
				if s.c.Bool("change-password") {
					in := newPrompter(s.c)
					password, err := newPassword.read(s.c, in, "New password for "+login+": ", "no new password", true)
					if err != nil {
						return err
					}
					v.Set("password", password)
					current, err := currentPasswordFor(s, in, login)
					if err != nil {
						return err
					}
					if current != "" {
						v.Set("current_password", current)
					}
				} else if p, err := newPassword.get(s.c); err != nil || p != "" {
					// A new password given without --change-password is
					// neither sent nor silently dropped.
					if err != nil {
						return err
					}
					return errors.New("a new password is given (GEARBOX_NEW_PASSWORD or --new-password-file) without --change-password: " +
						"pass --change-password to set it as " + login + "'s password, or leave it out")
				}
				if len(v) == 0 {
					return errors.New("nothing to change: pass --ha, --max-gears, --gear-sizes, --admin or --change-password")
				}
				u, msgs, err := s.api.UpdateUser(s.ctx(), login, v)
				if err != nil {
					return err
				}
				return s.result(msgs, u, func(w io.Writer) error { return printUsers(w, []api.User{u}) })
			}),
		},
	}
	subcommands(cmds)
	return &cli.Command{
		Name:         "user",
		Usage:        "create, list and change users (administrators)",
		UsageText:    "gearbox user command [flags]",
		OnUsageError: cmdline.UsageError,
		Subcommands:  cmds,
	}
}

// currentPasswordFor is the current password to send with a new
// password for login: GEARBOX_CURRENT_PASSWORD or --current-password-file;
// or, when the caller is login, the password it authenticates with, or
// else one asked for on a terminal. An administrator changing another
// user's password sends none.
func currentPasswordFor(s *session, in *prompter, login string) (string, error) {
	current, err := currentPassword.get(s.c)
	switch {
	case err != nil || current != "":
		return current, err
	case s.api.User == login && s.api.Password != "":
		return s.api.Password, nil
	case s.saved != nil && s.saved.User == login:
		return currentPassword.read(s.c, in, "Current password of "+login+": ",
			"changing your own password needs your current one", false)
	}
	return "", nil
}

// printUsers writes users and their capabilities as a table.
func printUsers(w io.Writer, us []api.User) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "LOGIN\tADMIN\tHA\tGEARS\tGEAR SIZES\tCREATED")
	for _, u := range us {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%s\t%s\n", u.Login, yesNo(u.Admin), yesNo(u.Capabilities.HA),
			u.ConsumedGears, u.Capabilities.MaxGears, orDash(strings.Join(u.Capabilities.GearSizes, ",")), when(u.CreatedAt))
	}
	return tw.Flush()
}
