package cli

import (
	"fmt"
	"io"

	"github.com/urfave/cli/v2"

	"gearbox/broker/api"
	"gearbox/internal/cmdline"
)

// aliasCommand is `gearbox app alias`: hostnames of the user's own
// domains that route to an app.
func aliasCommand() *cli.Command {
	cmds := []*cli.Command{
		{
			Name:      "add",
			Usage:     "make a hostname of your own domain route to an application",
			UsageText: "gearbox app alias add APP HOST -n NAMESPACE [flags]",
			Description: "HOST is a DNS name outside the cloud domain (whose names are the platform's), used by no\n" +
				"other application; an application has at most 32. Node fronts and routers serve it as they\n" +
				"serve the application's own name once they see the add_alias routing event. Point HOST's DNS\n" +
				"at the application: a CNAME to its ha- name when it is highly available, else to its name.",
			Flags: appFlags(),
			Action: clientAction([]string{"APP", "HOST"}, func(s *session) error {
				ns, err := s.namespace()
				if err != nil {
					return err
				}
				a, msgs, err := s.api.AddAlias(s.ctx(), ns, s.arg(0), s.arg(1))
				if err != nil {
					return err
				}
				return s.result(msgs, a, nil)
			}),
		},
		{
			Name:      "remove",
			Aliases:   []string{"rm", "delete"},
			Usage:     "stop routing a hostname to an application",
			UsageText: "gearbox app alias remove APP HOST -n NAMESPACE [flags]",
			Flags:     appFlags(),
			Action: clientAction([]string{"APP", "HOST"}, func(s *session) error {
				ns, err := s.namespace()
				if err != nil {
					return err
				}
				msgs, err := s.api.RemoveAlias(s.ctx(), ns, s.arg(0), s.arg(1))
				if err != nil {
					return err
				}
				return s.result(msgs, nil, nil)
			}),
		},
		{
			Name:      "list",
			Usage:     "list an application's aliases",
			UsageText: "gearbox app alias list APP -n NAMESPACE [flags]",
			Flags:     appFlags(),
			Action: clientAction([]string{"APP"}, func(s *session) error {
				ns, err := s.namespace()
				if err != nil {
					return err
				}
				as, err := s.api.Aliases(s.ctx(), ns, s.arg(0))
				if err != nil {
					return err
				}
				if as == nil {
					as = []api.Alias{}
				}
				return s.show(as, func(w io.Writer) error {
					if len(as) == 0 {
						_, err := fmt.Fprintf(w, "Application %s has no aliases; add one with 'gearbox app alias add %s HOST -n %s'.\n", s.arg(0), s.arg(0), ns)
						return err
					}
					for _, a := range as {
						if _, err := fmt.Fprintln(w, a.ID); err != nil {
							return err
						}
					}
					return nil
				})
			}),
		},
	}
	subcommands(cmds)
	return &cli.Command{
		Name:            "alias",
		Aliases:         []string{"aliases"},
		Usage:           "add, remove and list the hostnames of your own domains that route to an application",
		UsageText:       "gearbox app alias command APP [HOST] -n NAMESPACE [flags]",
		OnUsageError:    cmdline.UsageError,
		HideHelpCommand: true,
		Subcommands:     cmds,
	}
}
