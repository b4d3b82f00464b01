package member

import (
	"io"

	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"

	"gearbox/internal/cmdline"
)

// newApp is the gearbox command line with `gearbox serve`, as main builds
// it.
func newApp(stdout, stderr io.Writer) *cli.App {
	log := new(zerolog.Logger)
	return cmdline.NewApp(stdout, stderr, "test", log, []*cli.Command{ServeCommand(log)})
}
