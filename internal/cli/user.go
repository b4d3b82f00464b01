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

// userClientFlags are clientFlags for the user commands, whose --password
// is the password of the user being created or changed: the caller's own
// password is --auth-password there, so that GEARBOX_PASSWORD never
// becomes someone else's password by accident.
func userClientFlags() []cli.Flag {
	var out []cli.Flag
	for _, f := range clientFlags() {
		if f.Names()[0] == "password" {
			f = &cli.StringFlag{Name: authPasswordFlag, EnvVars: cmdline.Env("PASSWORD"), Usage: "`PASSWORD` of --user (the caller)"}
		}
		out = append(out, f)
	}
	return out
}

// authPasswordFlag is the caller's password on commands where --password
// means something else.
const authPasswordFlag = "auth-password"

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
			UsageText: "gearbox user create LOGIN --password PASSWORD [--ha] [--max-gears N] [--gear-sizes SIZES] [--admin] [flags]",
			Description: "Capabilities not given take the broker's defaults. The new user's password is asked\n" +
				"for on a terminal when --password is not given, else read from standard input. The\n" +
				"caller authenticates with the saved login, or --user and --auth-password.",
			Flags: append(append(userClientFlags(),
				&cli.StringFlag{Name: "password", Usage: "the new user's `PASSWORD` (8 to 72 bytes)"}),
				capabilityFlags()...),
			Action: clientAction([]string{"LOGIN"}, func(s *session) error {
				login := s.arg(0)
				password := s.c.String("password")
				if password == "" {
					var err error
					if password, err = newPrompter(s.c).secret("Password for new user "+login+": ",
						"no password for the new user: pass --password"); err != nil {
						return err
					}
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
			UsageText: "gearbox user set LOGIN [--ha=BOOL] [--max-gears N] [--gear-sizes SIZES] [--admin=BOOL] [--password PASSWORD [--current-password PASSWORD]] [flags]",
			Description: "Changes only what is given. The caller authenticates with the saved login, or --user\n" +
				"and --auth-password. Changing your own password needs your current one: --current-password,\n" +
				"else --auth-password, else it is asked for. A new password revokes all of the user's API\n" +
				"tokens, the one saved by 'gearbox login' too.",
			Flags: append(append(userClientFlags(),
				&cli.StringFlag{Name: "password", Usage: "the user's new `PASSWORD` (8 to 72 bytes)"},
				&cli.StringFlag{Name: "current-password", Usage: "your current `PASSWORD`, to change your own"}),
				capabilityFlags()...),
			Action: clientAction([]string{"LOGIN"}, func(s *session) error {
				v := capabilityParams(s.c)
				if s.c.IsSet("password") {
					v.Set("password", s.c.String("password"))
					current, err := currentPassword(s, s.arg(0))
					if err != nil {
						return err
					}
					if current != "" {
						v.Set("current_password", current)
					}
				}
				if len(v) == 0 {
					return errors.New("nothing to change: pass --ha, --max-gears, --gear-sizes, --admin or --password")
				}
				u, msgs, err := s.api.UpdateUser(s.ctx(), s.arg(0), v)
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

// currentPassword is the current password to send with a new password
// for login: --current-password; or, when the caller is login, the
// password it authenticates with, or else one asked for. An administrator
// changing another user's password sends none.
func currentPassword(s *session, login string) (string, error) {
	switch {
	case s.c.IsSet("current-password"):
		return s.c.String("current-password"), nil
	case s.api.User == login && s.api.Password != "":
		return s.api.Password, nil
	case s.saved != nil && s.saved.User == login:
		return newPrompter(s.c).secret("Current password of "+login+": ",
			"no current password: changing your own password needs --current-password")
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
