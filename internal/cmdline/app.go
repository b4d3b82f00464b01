package cmdline

import (
	"fmt"
	"io"

	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"
)

// NewApp returns the gearbox command line with commands, writing output to
// stdout and logs and help errors to stderr. Before a command runs, *log is
// set to the logger the global flags ask for, so that commands built with
// log see it.
func NewApp(stdout, stderr io.Writer, version string, log *zerolog.Logger, commands []*cli.Command) *cli.App {
	*log = zerolog.Nop()
	return &cli.App{
		Name:      "gearbox",
		Usage:     "a self-hosted platform-as-a-service for highly available web applications",
		UsageText: "gearbox [global flags] command [flags]",
		Version:   version,
		Writer:    stdout,
		ErrWriter: stderr,
		Flags:     LogFlags(),
		Before: func(c *cli.Context) error {
			l, err := NewLogger(stderr, c.String("log-level"), c.String("log-format"), IsTerminal(stderr))
			*log = l
			return err
		},
		Commands: commands,
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return fmt.Errorf("unknown command %q; run 'gearbox --help' for the list", c.Args().First())
			}
			return cli.ShowAppHelp(c)
		},
		OnUsageError: UsageError,
		// Errors are printed once, by main, as one line; the library must
		// neither print them nor exit.
		ExitErrHandler: func(*cli.Context, error) {},
	}
}
