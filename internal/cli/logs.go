package cli

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"
)

// logsCommand is `gearbox app logs`, the seed's `rhc tail`.
func logsCommand() *cli.Command {
	return &cli.Command{
		Name:      "logs",
		Aliases:   []string{"tail"},
		Usage:     "print, and with -f follow, the logs of an application's gears",
		UsageText: "gearbox app logs APP -n NAMESPACE [-f] [--tail N] [flags]",
		Description: "Prints the last lines of the log of each of the application's gears, merged in time\n" +
			"order, one per line as TIME GEAR_ID LINE (TIME in UTC). A gear's log holds what its web\n" +
			"process writes to stdout and stderr, and the node's notes on it (lines starting\n" +
			"\"gearbox:\": started, stopped, exited). With -f it then follows the logs, printing new\n" +
			"lines as the gears write them, until Ctrl-C. A gear whose node cannot be reached gets\n" +
			"one line saying so.\n\n" +
			"Each node keeps its gears' logs in DATA_DIR/gears/GEAR_ID/logs/gear.log, rotated by\n" +
			"size (gear.log.1, gear.log.2). With --json each line is printed as a JSON object with\n" +
			"time, gear and text.",
		Flags: appFlags(
			&cli.BoolFlag{Name: "follow", Aliases: []string{"f"}, Usage: "keep printing new lines until interrupted (Ctrl-C)"},
			&cli.IntFlag{Name: "tail", Value: 100, Usage: "print the last `N` lines of each gear's log first (0: none; at most 10000)"},
		),
		Action: clientAction([]string{"APP"}, func(s *session) error {
			ns, err := s.namespace()
			if err != nil {
				return err
			}
			tail := s.c.Int("tail")
			if tail < 0 {
				return fmt.Errorf("--tail %d: want 0 or more lines", tail)
			}
			// Ctrl-C ends a followed log: that is how it is meant to end.
			ctx, stop := signal.NotifyContext(s.ctx(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			body, err := s.api.Logs(ctx, ns, s.arg(0), tail, s.c.Bool("follow"))
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			defer body.Close()
			if s.json() {
				err = writeLogJSON(s.stdout(), body)
			} else {
				_, err = io.Copy(s.stdout(), body)
			}
			if err != nil && ctx.Err() == nil {
				return fmt.Errorf("read logs from the broker: %w", err)
			}
			return nil
		}),
	}
}

// logLineJSON is a log line under --json.
type logLineJSON struct {
	Time string `json:"time"`
	Gear string `json:"gear"`
	Text string `json:"text"`
}

// writeLogJSON writes each "TIME GEAR_ID LINE" line of r as a JSON object
// on a line of its own.
func writeLogJSON(w io.Writer, r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	enc := json.NewEncoder(w)
	for sc.Scan() {
		f := strings.SplitN(sc.Text(), " ", 3)
		for len(f) < 3 {
			f = append(f, "")
		}
		if err := enc.Encode(logLineJSON{Time: f[0], Gear: f[1], Text: f[2]}); err != nil {
			return err
		}
	}
	return sc.Err()
}
