// Command gearbox is a self-hosted platform-as-a-service for highly
// available web applications: one static binary that runs as broker, node
// and router members of a cluster (gearbox serve), runs a whole cluster on
// one machine (gearbox dev), and talks to them (the user commands).
//
// Package main only builds the command line from the commands that the
// packages under internal/ provide, and handles signals. Imports go one
// way: main -> internal/* -> roles (broker, node, router, dnsmgr) ->
// libraries (lb, store); never upward.
package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"

	usercli "gearbox/internal/cli"
	"gearbox/internal/cmdline"
	"gearbox/internal/demo"
	"gearbox/internal/dev"
	"gearbox/internal/member"
)

func main() {
	zerolog.TimeFieldFormat = cmdline.LogTimeFormat
	if err := newApp(os.Stdout, os.Stderr).Run(os.Args); err != nil {
		// One line, whatever the error: multi-error texts are joined.
		fmt.Fprintf(os.Stderr, "gearbox: %s\n", strings.ReplaceAll(strings.TrimSpace(err.Error()), "\n", "; "))
		os.Exit(1)
	}
}

// newApp returns the gearbox command line, writing output to stdout and
// logs and help errors to stderr.
func newApp(stdout, stderr io.Writer) *cli.App {
	log := new(zerolog.Logger)
	serve, devCmd := member.ServeCommand(log), dev.Command(log)
	// Only the commands that run members stop gracefully on a signal;
	// the others end at once, as any command line tool does.
	stopOnSignal(serve, stderr, os.Exit)
	stopOnSignal(devCmd, stderr, os.Exit)
	// `gearbox --help` lists serve, dev, members, version, then the other
	// user commands.
	commands := []*cli.Command{serve, devCmd}
	for _, c := range usercli.Commands() {
		commands = append(commands, c)
		if c.Name == "members" {
			commands = append(commands, versionCommand())
		}
	}
	// The sample app's gears run `gearbox cluster-demo` (hidden).
	commands = append(commands, demo.Command())
	return cmdline.NewApp(stdout, stderr, version, log, commands)
}
