package cli

import (
	"fmt"
	"io"

	"github.com/urfave/cli/v2"

	"gearbox/broker/api"
	"gearbox/internal/cmdline"
)

// tokenCommand is `gearbox token`: the caller's API tokens. They are
// created by 'gearbox login' (or POST /broker/rest/user/authorizations).
func tokenCommand() *cli.Command {
	cmds := []*cli.Command{
		{
			Name:      "list",
			Usage:     "list your API tokens that have not expired (never the tokens themselves)",
			UsageText: "gearbox token list [flags]",
			Flags:     clientFlags(),
			Action: clientAction(nil, func(s *session) error {
				ts, err := s.api.Tokens(s.ctx())
				if err != nil {
					return err
				}
				if ts == nil {
					ts = []api.Token{}
				}
				return s.show(ts, func(w io.Writer) error { return printTokens(w, ts) })
			}),
		},
		{
			Name:      "revoke",
			Usage:     "revoke one of your API tokens",
			UsageText: "gearbox token revoke ID [flags]",
			Description: "ID is the token's id, as 'gearbox token list' shows it. The broker refuses the token\n" +
				"from then on; revoking the token saved by 'gearbox login' logs that login out.",
			Flags: clientFlags(),
			Action: clientAction([]string{"ID"}, func(s *session) error {
				msgs, err := s.api.RevokeToken(s.ctx(), s.arg(0))
				if err != nil {
					return err
				}
				return s.result(msgs, nil, nil)
			}),
		},
	}
	subcommands(cmds)
	return &cli.Command{
		Name:         "token",
		Usage:        "list and revoke your API tokens",
		UsageText:    "gearbox token command [flags]",
		OnUsageError: cmdline.UsageError,
		Subcommands:  cmds,
	}
}

// printTokens writes tokens as a table.
func printTokens(w io.Writer, ts []api.Token) error {
	if len(ts) == 0 {
		_, err := fmt.Fprintln(w, "No API tokens; 'gearbox login' creates one.")
		return err
	}
	tw := newTable(w)
	fmt.Fprintln(tw, "ID\tNOTE\tCREATED\tEXPIRES")
	for _, t := range ts {
		note := t.Note
		if note == "" {
			note = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.ID, note, when(t.CreatedAt), when(t.ExpiresAt))
	}
	return tw.Flush()
}
