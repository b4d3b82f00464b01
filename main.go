// Command gearbox is a self-hosted platform-as-a-service for highly
// available web applications: one static binary that runs as broker, node
// and router members of a cluster (gearbox serve) and talks to them
// (gearbox members).
//
// Package main holds only the command line: flags, configuration, signals
// and the wiring of roles. It imports the role packages and libraries; none
// of them imports it.
package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"
)

func main() {
	zerolog.TimeFieldFormat = logTimeFormat
	if err := newApp(os.Stdout, os.Stderr).Run(os.Args); err != nil {
		// One line, whatever the error: multi-error texts are joined.
		fmt.Fprintf(os.Stderr, "gearbox: %s\n", strings.ReplaceAll(strings.TrimSpace(err.Error()), "\n", "; "))
		os.Exit(1)
	}
}

// newApp returns the gearbox command line, writing output to stdout and
// logs and help errors to stderr.
func newApp(stdout, stderr io.Writer) *cli.App {
	log := zerolog.Nop()
	return &cli.App{
		Name:      "gearbox",
		Usage:     "a self-hosted platform-as-a-service for highly available web applications",
		UsageText: "gearbox [global flags] command [flags]",
		Version:   version,
		Writer:    stdout,
		ErrWriter: stderr,
		Flags:     logFlags(),
		Before: func(c *cli.Context) error {
			l, err := newLogger(stderr, c.String("log-level"), c.String("log-format"), isTerminal(stderr))
			log = l
			return err
		},
		Commands: []*cli.Command{
			serveCommand(&log),
			devCommand(&log),
			membersCommand(),
			versionCommand(),
			loginCommand(),
			logoutCommand(),
			domainCommand(),
			appCommand(),
			userCommand(),
			nodeCommand(),
			gearCommand(),
			envCommand(),
			routerCommand(),
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return fmt.Errorf("unknown command %q; run 'gearbox --help' for the list", c.Args().First())
			}
			return cli.ShowAppHelp(c)
		},
		OnUsageError: usageError,
		// Errors are printed once, by main, as one line; the library must
		// neither print them nor exit.
		ExitErrHandler: func(*cli.Context, error) {},
	}
}

// usageError makes a flag parsing error a one-line error that points at
// --help, instead of printing the whole help after it.
func usageError(c *cli.Context, err error, isSubcommand bool) error {
	name := "gearbox"
	if c.Command != nil && c.Command.HelpName != "" {
		name = c.Command.HelpName
	}
	if flag, ok := strings.CutPrefix(err.Error(), "flag provided but not defined: -"); ok {
		flag = strings.TrimPrefix(flag, "-")
		for _, g := range logFlags() {
			if isSubcommand && g.Names()[0] == flag {
				return fmt.Errorf("--%s is a global flag: give it before the command, as in 'gearbox --%s ... %s'", flag, flag, c.Command.Name)
			}
		}
		return fmt.Errorf("unknown flag --%s; run '%s --help' for usage", flag, name)
	}
	msg := strings.Replace(err.Error(), "for flag -", "for flag --", 1)
	return fmt.Errorf("%s; run '%s --help' for usage", msg, name)
}
