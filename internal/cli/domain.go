package cli

import (
	"fmt"
	"io"
	"time"

	"github.com/urfave/cli/v2"

	"gearbox/broker/api"
	"gearbox/internal/cmdline"
)

// domainCommand is `gearbox domain`: namespaces.
func domainCommand() *cli.Command {
	return &cli.Command{
		Name:         "domain",
		Usage:        "create, list and delete domains (namespaces)",
		UsageText:    "gearbox domain command [flags]",
		OnUsageError: cmdline.UsageError,
		Subcommands: []*cli.Command{
			{
				Name:      "create",
				Usage:     "create a domain",
				UsageText: "gearbox domain create NAMESPACE [flags]",
				Description: "A namespace is 1 to 16 lower-case letters and digits: app hostnames are\n" +
					"APP-NAMESPACE.ZONE.",
				Flags:           clientFlags(),
				HideHelpCommand: true,
				OnUsageError:    cmdline.UsageError,
				Action: clientAction([]string{"NAMESPACE"}, func(s *session) error {
					d, msgs, err := s.api.CreateDomain(s.ctx(), s.arg(0))
					if err != nil {
						return err
					}
					return s.result(msgs, d, nil)
				}),
			},
			{
				Name:            "list",
				Usage:           "list your domains (all domains, for administrators)",
				UsageText:       "gearbox domain list [flags]",
				Flags:           clientFlags(),
				HideHelpCommand: true,
				OnUsageError:    cmdline.UsageError,
				Action: clientAction(nil, func(s *session) error {
					ds, err := s.api.Domains(s.ctx())
					if err != nil {
						return err
					}
					if ds == nil {
						ds = []api.Domain{}
					}
					return s.show(ds, func(w io.Writer) error { return printDomains(w, ds) })
				}),
			},
			{
				Name:      "delete",
				Usage:     "delete a domain",
				UsageText: "gearbox domain delete NAMESPACE [--force] [flags]",
				Description: "The broker refuses to delete a domain that holds applications, unless --force\n" +
					"is given: then its applications are deleted too.",
				Flags: append(clientFlags(),
					&cli.BoolFlag{Name: "force", Usage: "also delete the domain's applications"}),
				HideHelpCommand: true,
				OnUsageError:    cmdline.UsageError,
				Action: clientAction([]string{"NAMESPACE"}, func(s *session) error {
					msgs, err := s.api.DeleteDomain(s.ctx(), s.arg(0), s.c.Bool("force"))
					if err != nil {
						return err
					}
					return s.result(msgs, nil, nil)
				}),
			},
		},
	}
}

// printDomains writes domains as a table.
func printDomains(w io.Writer, ds []api.Domain) error {
	if len(ds) == 0 {
		_, err := fmt.Fprintln(w, "No domains; create one with 'gearbox domain create NAMESPACE'.")
		return err
	}
	tw := newTable(w)
	fmt.Fprintln(tw, "NAMESPACE\tOWNER\tAPPS\tCREATED")
	for _, d := range ds {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", d.Name, d.Owner, d.Applications, when(d.CreatedAt))
	}
	return tw.Flush()
}

// when is a time for tables: local, to the minute.
func when(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04")
}
