package cli

import (
	"fmt"
	"io"
	"strings"

	"gearbox/internal/cmdline"

	"github.com/urfave/cli/v2"
)

// envCommand is `gearbox env`: an app's environment variables.
func envCommand() *cli.Command {
	return &cli.Command{
		Name:         "env",
		Usage:        "set, unset and list an application's environment variables",
		UsageText:    "gearbox env command APP -n NAMESPACE [flags]",
		OnUsageError: cmdline.UsageError,
		Subcommands: []*cli.Command{
			{
				Name:      "set",
				Usage:     "set an environment variable; gears running a deployment restart with it",
				UsageText: "gearbox env set APP NAME=VALUE -n NAMESPACE [flags]",
				Flags:     appFlags(),
				Action: clientAction([]string{"APP", "NAME=VALUE"}, func(s *session) error {
					ns, err := s.namespace()
					if err != nil {
						return err
					}
					name, value, ok := strings.Cut(s.arg(1), "=")
					if !ok {
						return fmt.Errorf("want NAME=VALUE, got %q", s.arg(1))
					}
					vs, msgs, err := s.api.SetEnv(s.ctx(), ns, s.arg(0), name, value)
					if err != nil {
						return err
					}
					return s.result(msgs, vs, nil)
				}),
			},
			{
				Name:      "unset",
				Usage:     "remove an environment variable",
				UsageText: "gearbox env unset APP NAME -n NAMESPACE [flags]",
				Flags:     appFlags(),
				Action: clientAction([]string{"APP", "NAME"}, func(s *session) error {
					ns, err := s.namespace()
					if err != nil {
						return err
					}
					msgs, err := s.api.UnsetEnv(s.ctx(), ns, s.arg(0), s.arg(1))
					if err != nil {
						return err
					}
					return s.result(msgs, nil, nil)
				}),
			},
			{
				Name:      "list",
				Usage:     "list an application's environment variables",
				UsageText: "gearbox env list APP -n NAMESPACE [flags]",
				Flags:     appFlags(),
				Action: clientAction([]string{"APP"}, func(s *session) error {
					ns, err := s.namespace()
					if err != nil {
						return err
					}
					vs, err := s.api.Env(s.ctx(), ns, s.arg(0))
					if err != nil {
						return err
					}
					return s.show(vs, func(w io.Writer) error {
						for _, v := range vs {
							if _, err := fmt.Fprintf(w, "%s=%s\n", v.Name, v.Value); err != nil {
								return err
							}
						}
						return nil
					})
				}),
			},
		},
	}
}
