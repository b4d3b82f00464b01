package cli

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"gearbox/broker/api"
	"gearbox/broker/client"
	"gearbox/internal/cmdline"
)

// appEvents are the app subcommands that send one application event: the
// command's name, aliases, usage, and the event sent.
var appEvents = []struct {
	name    string
	aliases []string
	usage   string
	event   string
	summary bool // print the app's gear and LB summary after the messages
	follow  bool // follow the roll-out the event starts
	waitHA  bool // wait until HA is effective
}{
	{"start", nil, "start an application", "start", false, false, false},
	{"stop", nil, "stop an application", "stop", false, false, false},
	{"restart", nil, "restart an application's gears, one at a time", "restart", false, true, false},
	{"enable-ha", []string{"make-ha"}, "make a scalable application highly available (two or more LB gears), and wait until it is", "make-ha", true, false, true},
	{"disable-ha", nil, "return an application to one LB gear", "disable-ha", true, false, false},
	{"scale-up", nil, "add a gear to a scalable application", "scale-up", true, false, false},
	{"scale-down", nil, "remove a gear from a scalable application", "scale-down", true, false, false},
}

// appFlags are the flags of every app subcommand, then extra.
func appFlags(extra ...cli.Flag) []cli.Flag {
	return append(append(clientFlags(), namespaceFlag()), extra...)
}

// appCommand is `gearbox app`.
func appCommand() *cli.Command {
	cmds := []*cli.Command{
		{
			Name:      "create",
			Usage:     "create an application",
			UsageText: "gearbox app create APP -n NAMESPACE [--scale] [--ha] [--gear-size SIZE] [--region REGION] [--cartridge CART] [flags]",
			Description: "An application name is 1 to 32 lower-case letters and digits. A scalable application has\n" +
				"one gear group of web gears, the first of which also runs the load balancer; --ha implies\n" +
				"--scale and starts it with two LB gears on different nodes.",
			Flags: appFlags(
				&cli.BoolFlag{Name: "scale", Aliases: []string{"s"}, Usage: "make the application scalable"},
				&cli.BoolFlag{Name: "ha", Usage: "make the application highly available (implies --scale)"},
				&cli.StringFlag{Name: "gear-size", DefaultText: "small", Usage: "gear `SIZE`: small, medium or large"},
				&cli.StringFlag{Name: "region", Usage: "place the gears in `REGION` only"},
				&cli.StringFlag{Name: "cartridge", DefaultText: "static", Usage: "web framework `CARTRIDGE`"},
				&cli.StringFlag{Name: "deploy-branch", DefaultText: "main", Usage: "the git `BRANCH` whose pushes are deployed"},
				&cli.BoolFlag{Name: "git-remote", Usage: "add the app's git remote to the git repository of this folder (see 'gearbox app git-remote')"},
				&cli.StringFlag{Name: "remote", Value: "gearbox", Usage: "`NAME` of the git remote that --git-remote adds"},
			),
			Action: clientAction([]string{"APP"}, func(s *session) error {
				ns, err := s.namespace()
				if err != nil {
					return err
				}
				a, msgs, err := s.api.CreateApp(s.ctx(), ns, s.arg(0), client.AppOptions{
					Cartridge: s.c.String("cartridge"), Scale: s.c.Bool("scale"), HA: s.c.Bool("ha"),
					GearSize: s.c.String("gear-size"), Region: s.c.String("region"), DeployBranch: s.c.String("deploy-branch")})
				if err != nil {
					return err
				}
				if s.c.Bool("git-remote") {
					u, err := addGitRemote(s, ".", s.c.String("remote"), ns, s.arg(0))
					if err != nil {
						return fmt.Errorf("application %s created, but its git remote was not added: %w", s.arg(0), err)
					}
					msgs = append(msgs, api.Message{Severity: "info", Text: fmt.Sprintf("Git remote %s is %s: 'git push %s %s' deploys.", s.c.String("remote"), u, s.c.String("remote"), a.DeployBranch)})
				}
				return s.result(msgs, a, func(w io.Writer) error {
					fmt.Fprintln(w)
					return printApp(w, a, s.api.BaseURL, len(a.Gears) > 0)
				})
			}),
		},
		{
			Name:      "list",
			Usage:     "list the applications of a domain",
			UsageText: "gearbox app list -n NAMESPACE [flags]",
			Flags:     appFlags(),
			Action: clientAction(nil, func(s *session) error {
				ns, err := s.namespace()
				if err != nil {
					return err
				}
				as, err := s.api.Apps(s.ctx(), ns)
				if err != nil {
					return err
				}
				if as == nil {
					as = []api.App{}
				}
				return s.show(as, func(w io.Writer) error { return printApps(w, ns, as) })
			}),
		},
		{
			Name:      "show",
			Usage:     "show an application, and with --gears its gears",
			UsageText: "gearbox app show APP -n NAMESPACE [--gears] [flags]",
			Description: "Prints the application's URLs, settings, scale limits and where its LB gears are (on\n" +
				"how many nodes and zones, and whether that makes it really highly available). With\n" +
				"--gears, a table of its gears: LB marks the gears that run the load balancer (head: the\n" +
				"first; rotated out: no longer serving web requests themselves).",
			Flags: appFlags(&cli.BoolFlag{Name: "gears", Usage: "also list the application's gears"}),
			Action: clientAction([]string{"APP"}, func(s *session) error {
				ns, err := s.namespace()
				if err != nil {
					return err
				}
				gears := s.c.Bool("gears")
				a, err := s.api.App(s.ctx(), ns, s.arg(0), gears)
				if err != nil {
					return err
				}
				return s.show(a, func(w io.Writer) error { return printApp(w, a, s.api.BaseURL, gears) })
			}),
		},
		{
			Name:      "delete",
			Usage:     "delete an application and its gears",
			UsageText: "gearbox app delete APP -n NAMESPACE [flags]",
			Flags:     appFlags(),
			Action: clientAction([]string{"APP"}, func(s *session) error {
				ns, err := s.namespace()
				if err != nil {
					return err
				}
				msgs, err := s.api.DeleteApp(s.ctx(), ns, s.arg(0))
				if err != nil {
					return err
				}
				return s.result(msgs, nil, nil)
			}),
		},
	}
	for _, e := range appEvents {
		flags := appFlags()
		if e.follow {
			flags = appFlags(waitFlags()...)
		}
		if e.waitHA {
			flags = appFlags(
				&cli.BoolFlag{Name: "no-wait", Usage: "return once the broker has placed the LB gears; do not wait for HA to be effective"},
				&cli.DurationFlag{Name: "wait", Value: 5 * time.Minute, Usage: "wait at most `DURATION` for HA to be effective"})
		}
		cmds = append(cmds, &cli.Command{
			Name:      e.name,
			Aliases:   e.aliases,
			Usage:     e.usage,
			UsageText: "gearbox app " + e.name + " APP -n NAMESPACE [flags]",
			Flags:     flags,
			Action: clientAction([]string{"APP"}, func(s *session) error {
				ns, err := s.namespace()
				if err != nil {
					return err
				}
				a, msgs, err := s.api.AppEvent(s.ctx(), ns, s.arg(0), e.event)
				if err != nil {
					return err
				}
				if e.follow {
					s.messages(msgs)
					ro, err := s.api.Rollout(s.ctx(), ns, s.arg(0))
					if err != nil {
						return err
					}
					if _, err := s.waitRollout(ns, s.arg(0), ro.Deployment); err != nil {
						return err
					}
					msgs = nil
				}
				if e.waitHA {
					s.messages(msgs)
					msgs = nil
					if a, err = s.waitHA(ns, s.arg(0)); err != nil {
						return err
					}
				}
				var table func(io.Writer) error
				if e.summary {
					table = func(w io.Writer) error { return printAppSummary(w, a) }
				}
				return s.result(msgs, a, table)
			}),
		})
	}
	cmds = append(cmds, &cli.Command{
		Name:      "autoscale",
		Usage:     "turn a scalable application's autoscaling on or off",
		UsageText: "gearbox app autoscale APP on|off -n NAMESPACE [flags]",
		Description: "Scalable applications autoscale by default: every 5 s the broker samples the sessions\n" +
			"(requests in flight) of the app's load balancers; when the average of the last 10 samples\n" +
			"reaches 90 % of GEARBOX_MAX_SESSIONS_PER_GEAR (16) per gear, a gear is added, up to the\n" +
			"app's maximum and the owner's gear limit; when it stays below haproxy_ctld's remove\n" +
			"threshold for GEARBOX_AUTOSCALE_DOWN_HOLD samples (20), and the last scale-up is\n" +
			"GEARBOX_AUTOSCALE_COOLDOWN seconds (600) old, a gear goes, down to the minimum. A scale by\n" +
			"hand is not undone within the cool-down. Those three are the app's env variables\n" +
			"(gearbox env set). Each scale is an alert (gearbox alerts).",
		Flags: appFlags(),
		Action: clientAction([]string{"APP", "on|off"}, func(s *session) error {
			ns, err := s.namespace()
			if err != nil {
				return err
			}
			ev := ""
			switch s.arg(1) {
			case "on":
				ev = "enable-autoscale"
			case "off":
				ev = "disable-autoscale"
			default:
				return fmt.Errorf("autoscale %q: say on or off", s.arg(1))
			}
			a, msgs, err := s.api.AppEvent(s.ctx(), ns, s.arg(0), ev)
			if err != nil {
				return err
			}
			return s.result(msgs, a, nil)
		}),
	})
	cmds = append(cmds, &cli.Command{
		Name:      "scale",
		Usage:     "set the scale limits of a scalable application",
		UsageText: "gearbox app scale APP -n NAMESPACE [--min N] [--max M] [flags]",
		Description: "Sets the minimum and maximum number of gears of the application's web cartridge; the\n" +
			"application scales up or down to fit. A limit not given keeps its current value.",
		Flags: appFlags(
			&cli.IntFlag{Name: "min", Usage: "minimum number of gears `N`"},
			&cli.IntFlag{Name: "max", Usage: "maximum number of gears `M` (-1: no maximum)"},
		),
		Action: clientAction([]string{"APP"}, func(s *session) error {
			ns, err := s.namespace()
			if err != nil {
				return err
			}
			if !s.c.IsSet("min") && !s.c.IsSet("max") {
				return errors.New("pass --min N and/or --max M (-1: no maximum)")
			}
			a, err := s.api.App(s.ctx(), ns, s.arg(0), false)
			if err != nil {
				return err
			}
			if a.Framework == "" {
				return fmt.Errorf("the broker did not say which cartridge application %s runs", a.Name)
			}
			from, to := a.ScalesFrom, a.ScalesTo
			if s.c.IsSet("min") {
				from = s.c.Int("min")
			}
			if s.c.IsSet("max") {
				to = s.c.Int("max")
			}
			cart, msgs, err := s.api.SetScale(s.ctx(), ns, a.Name, a.Framework, from, to)
			if err != nil {
				return err
			}
			return s.result(msgs, cart, func(w io.Writer) error {
				_, err := fmt.Fprintf(w, "%s: %s; %s now.\n", a.Name, scaleLimits(cart.ScalesFrom, cart.ScalesTo), plural(cart.Gears, "gear"))
				return err
			})
		}),
	}, logsCommand(), lbStatusCommand(), aliasCommand(), gitRemoteCommand(), deployBranchCommand(), httpsCommand())
	subcommands(cmds)
	cmds = append(cmds, deployCommands()...)
	return &cli.Command{
		Name:         "app",
		Usage:        "create, show, scale and make highly available applications",
		UsageText:    "gearbox app command APP -n NAMESPACE [flags]",
		OnUsageError: cmdline.UsageError,
		Subcommands:  cmds,
	}
}

// printApps writes the apps of namespace ns as a table.
func printApps(w io.Writer, ns string, as []api.App) error {
	if len(as) == 0 {
		_, err := fmt.Fprintf(w, "No applications in domain %s; create one with 'gearbox app create APP -n %s'.\n", ns, ns)
		return err
	}
	tw := newTable(w)
	fmt.Fprintln(tw, "NAME\tCARTRIDGE\tGEARS\tSCALABLE\tHA\tSTATE\tURL")
	for _, a := range as {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\n", a.Name, a.Framework, a.GearCount, yesNo(a.Scalable), yesNo(a.HA), orDash(a.State), a.AppURL)
	}
	return tw.Flush()
}

// printApp writes an app as rhc's `app show` did: its URLs and settings,
// then, when gears is set, its gears.
func printApp(w io.Writer, a api.App, base string, gears bool) error {
	fmt.Fprintf(w, "%s @ %s\n", a.Name, a.AppURL)
	tw := newTable(w)
	row := func(k, v string) { fmt.Fprintf(tw, "  %s:\t%s\n", k, v) }
	if a.HAURL != "" {
		row("HA URL", a.HAURL)
	}
	row("Domain", a.Domain)
	row("Owner", a.Owner)
	row("Cartridge", a.Framework)
	row("Gear size", a.GearProfile)
	if a.Region != "" {
		row("Region", a.Region)
	}
	row("State", orDash(a.State))
	row("Created", when(a.CreatedAt))
	row("Scalable", yesNo(a.Scalable))
	row("HA", yesNo(a.HA))
	row("Gears", fmt.Sprint(a.GearCount))
	row("Git remote", gitRow(base, a))
	if a.Scalable {
		row("Scale limits", scaleLimits(a.ScalesFrom, a.ScalesTo))
		auto := "off (gearbox app autoscale APP on)"
		if a.Autoscale {
			auto = "on, by the sessions of its load balancers"
		}
		row("Autoscale", auto)
	}
	if a.HA {
		row("HA multiplier", haMultiplier(a.HAMultiplier))
	}
	if a.LB != nil {
		row("Load balancers", lbSummary(*a.LB))
		row("Really HA", reallyHA(a))
		if e := a.LB.Effective; e != nil {
			if *e {
				row("HA effective", "yes: losing any one node loses no request")
			} else {
				row("HA effective", "not yet: "+a.LB.Pending)
			}
		}
	}
	if len(a.Aliases) > 0 {
		row("Aliases", strings.Join(a.Aliases, ", "))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if !gears {
		return nil
	}
	fmt.Fprintln(w)
	return printGears(w, a)
}

// printGears writes an app's gears as a table, like rhc's
// `app show --gears`, with where each runs and which run the load
// balancer.
func printGears(w io.Writer, a api.App) error {
	if len(a.Gears) == 0 {
		_, err := fmt.Fprintln(w, "No gears.")
		return err
	}
	tw := newTable(w)
	fmt.Fprintln(tw, "ID\tSTATE\tCARTRIDGES\tSIZE\tNODE\tZONE\tLB")
	for _, g := range a.Gears {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", g.ID, orDash(g.State), strings.Join(g.Cartridges, " "),
			orDash(a.GearProfile), orDash(g.Node), orDash(g.Zone), lbMarks(g))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	// A crashing gear says why, with the end of its log.
	for _, g := range a.Gears {
		if g.State != "crashing" {
			continue
		}
		fmt.Fprintf(w, "\nGear %s is crashing: %s\n", g.ID, printable(g.Reason))
		for _, l := range g.LogTail {
			fmt.Fprintf(w, "    | %s\n", printable(l))
		}
	}
	return nil
}

// lbMarks says whether a gear runs the load balancer: head (the first LB
// gear), yes, or -, and whether it is rotated out of serving.
func lbMarks(g api.Gear) string {
	var m string
	switch {
	case g.Head:
		m = "head"
	case g.LB:
		m = "yes"
	default:
		return "-"
	}
	if g.RotatedOut {
		m += ", rotated out"
	}
	return m
}

// printAppSummary writes one line on an app's gears and LB gears, after a
// scale or HA event.
func printAppSummary(w io.Writer, a api.App) error {
	line := fmt.Sprintf("%s: %s", a.Name, plural(a.GearCount, "gear"))
	if a.LB != nil {
		line += "; load balancers: " + lbSummary(*a.LB) + "; really HA: " + reallyHA(a)
	}
	_, err := fmt.Fprintln(w, line)
	return err
}

// lbSummary says where an app's LB gears are.
func lbSummary(s api.LBSummary) string {
	out := fmt.Sprintf("%s on %s in %s", plural(s.Gears, "LB gear"), plural(s.Nodes, "node"), plural(s.Zones, "zone"))
	if s.RotatedOut {
		out += ", rotated out of serving"
	}
	return out
}

// reallyHA says whether an app's LB gears make it highly available: they
// run on two or more alive nodes.
func reallyHA(a api.App) string {
	if a.LB == nil || !a.LB.ReallyHA {
		if a.HA {
			return "no: its LB gears are not on two or more alive nodes"
		}
		return "no"
	}
	return "yes"
}

func scaleLimits(from, to int) string {
	return fmt.Sprintf("min %d, max %s", from, maxText(to))
}

func haMultiplier(m int) string {
	if m == 0 {
		return "0 (two LB gears)"
	}
	return fmt.Sprintf("%d (an LB gear for every %d gears, at least two)", m, m)
}

// plural is "1 gear", "2 gears".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// waitHA waits until HA app APP is effective (losing a node loses no
// request), printing what it waits for, or until --wait passes. It
// returns the app as last read; under --no-wait it reads it once.
func (s *session) waitHA(ns, app string) (api.App, error) {
	out := s.c.App.ErrWriter
	deadline := time.Now().Add(s.c.Duration("wait"))
	last := ""
	for {
		a, err := s.api.App(s.ctx(), ns, app, false)
		if err != nil || s.c.Bool("no-wait") {
			return a, err
		}
		if a.LB == nil || a.LB.Effective == nil {
			return a, nil // a broker that does not say
		}
		if *a.LB.Effective {
			fmt.Fprintln(out, "HA: effective: losing any one node loses no request")
			return a, nil
		}
		if line := "HA: waiting: " + a.LB.Pending; line != last {
			fmt.Fprintln(out, line)
			last = line
		}
		if time.Now().After(deadline) {
			return a, fmt.Errorf("HA of %s not effective after %s (%s); the broker goes on: 'gearbox app show %s' says when it is", app, s.c.Duration("wait"), a.LB.Pending, app)
		}
		select {
		case <-s.ctx().Done():
			return a, s.ctx().Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}
