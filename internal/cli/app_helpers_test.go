package cli

import (
	"io"

	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"

	"gearbox/internal/cmdline"
)

// newApp is the gearbox command line with the user commands, as main
// builds it.
func newApp(stdout, stderr io.Writer) *cli.App {
	return cmdline.NewApp(stdout, stderr, "test", new(zerolog.Logger), Commands())
}
