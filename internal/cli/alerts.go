package cli

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"gearbox/broker/api"
	"gearbox/internal/cmdline"
)

// alertsCommand is `gearbox alerts`.
func alertsCommand() *cli.Command {
	return &cli.Command{
		Name:      "alerts",
		Usage:     "print the alerts (nodes lost and back, gears replaced or crashing, apps degraded, autoscaling), and with -f follow them",
		UsageText: "gearbox alerts [--after SEQ] [-f] [--json] [flags]",
		Description: "Prints the alerts after sequence SEQ (default 0: all), oldest first, one per line:\n" +
			"SEQ TIME KIND, what it is about (node, app, gear), the reason and what gearbox did about it.\n" +
			"Administrators see every alert; other users the alerts about their own apps. With -f it\n" +
			"then prints each new alert as the brokers commit it, until Ctrl-C; if the broker ends the\n" +
			"stream, run the command again with --after the last sequence printed. With --json each\n" +
			"alert is one JSON object per line (GET /broker/rest/alerts?after=SEQ&follow=1). To have\n" +
			"them POSTed somewhere: 'gearbox router webhook add URL --feed alerts'.",
		Flags: append(clientFlags(),
			&cli.Uint64Flag{Name: "after", Usage: "print the alerts after sequence `SEQ`"},
			&cli.BoolFlag{Name: "follow", Aliases: []string{"f"}, Usage: "keep printing new alerts until interrupted (Ctrl-C)"},
		),
		OnUsageError: cmdline.UsageError,
		Action: clientAction(nil, func(s *session) error {
			return printFeed(s, feedReader[api.Alert]{
				what:   "alert",
				resume: "gearbox alerts -f",
				list:   s.api.Alerts,
				follow: s.api.FollowAlerts,
				seq:    func(a api.Alert) uint64 { return a.Seq },
				line:   alertLine,
			})
		}),
	}
}

// alertLine is an alert for people.
func alertLine(a api.Alert) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d %s %s", a.Seq, a.Time.UTC().Format(cmdline.LogTimeFormat), a.Kind)
	if a.Node != "" {
		fmt.Fprintf(&b, " node=%s", a.Node)
	}
	if a.AppName != "" {
		fmt.Fprintf(&b, " app=%s/%s", a.Namespace, a.AppName)
	}
	if a.Gear != "" {
		fmt.Fprintf(&b, " gear=%s", a.Gear)
	}
	fmt.Fprintf(&b, ": %s", a.Reason)
	if a.Action != "" {
		fmt.Fprintf(&b, "; %s", a.Action)
	}
	// The end of a crashing gear's log, indented under its alert.
	for _, l := range a.Log {
		fmt.Fprintf(&b, "\n    | %s", printable(l))
	}
	return b.String()
}

// printable replaces the control characters of s (a gear's log line may
// hold terminal escapes) with '?'.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 && r != '\t' || r == 0x7f {
			return '?'
		}
		return r
	}, s)
}
