package cli

import (
	"fmt"
	"io"
	"strings"

	"github.com/urfave/cli/v2"

	"gearbox/broker/api"
	"gearbox/internal/cmdline"
)

// nodeCommand is `gearbox node`: the nodes that host gears (admin).
func nodeCommand() *cli.Command {
	cmds := []*cli.Command{
		{
			Name:      "list",
			Usage:     "list nodes with their zone, region, state and gears (administrators)",
			UsageText: "gearbox node list [flags]",
			Flags:     clientFlags(),
			Action: clientAction(nil, func(s *session) error {
				ns, err := s.api.Nodes(s.ctx())
				if err != nil {
					return err
				}
				if ns == nil {
					ns = []api.Node{}
				}
				return s.show(ns, func(w io.Writer) error { return printNodes(w, ns) })
			}),
		},
	}
	cmds = append(cmds, &cli.Command{
		Name:      "drain",
		Usage:     "stop placing gears on a node and move its gears to other nodes, one at a time (administrators)",
		UsageText: "gearbox node drain NODE [--no-evacuate] [flags]",
		Description: "The node gets no new gears. Its gears move to other nodes under the placement rules,\n" +
			"one at a time: a replacement gear starts on another node with a copy of the gear's data\n" +
			"directory, and only once it serves is the old gear drained from every load balancer and\n" +
			"stopped; its data directory is merged into the replacement once more (files the\n" +
			"replacement changed meanwhile keep its version), then the old gear is removed. An app\n" +
			"with two or more web gears, or an HA app, loses no request. 'gearbox node list' shows\n" +
			"how far it got; each gear moved is a gear_replaced alert. With --no-evacuate the gears\n" +
			"stay where they are (move them with 'gearbox gear move').",
		Flags: append(clientFlags(),
			&cli.BoolFlag{Name: "no-evacuate", Usage: "only stop new placements; leave the node's gears where they are"}),
		Action: clientAction([]string{"NODE"}, func(s *session) error {
			msgs, err := s.api.DrainNode(s.ctx(), s.arg(0), !s.c.Bool("no-evacuate"))
			if err != nil {
				return err
			}
			return s.result(msgs, nil, nil)
		}),
	}, &cli.Command{
		Name:      "undrain",
		Usage:     "place new gears on a drained node again, and stop evacuating it (administrators)",
		UsageText: "gearbox node undrain NODE [flags]",
		Description: "A gear move under way when the node is undrained is carried to its end; no other\n" +
			"gear moves.",
		Flags: clientFlags(),
		Action: clientAction([]string{"NODE"}, func(s *session) error {
			msgs, err := s.api.NodeEvent(s.ctx(), s.arg(0), "undrain")
			if err != nil {
				return err
			}
			return s.result(msgs, nil, nil)
		}),
	})
	cmds = append(cmds, &cli.Command{
		Name:      "remove",
		Usage:     "remove a node that will not return: its gears are replaced at once, its records erased (administrators)",
		UsageText: "gearbox node remove NODE [flags]",
		Description: "For a node that is dead for good (a lost VM). Its member is forced out of the cluster,\n" +
			"each of its gears is started anew on another node under the placement rules without\n" +
			"waiting for --node-failure-grace (their data directories are lost with the node), and\n" +
			"what it left in the cluster state is erased: its registration, its router, broker and\n" +
			"name-server records, its ha- DNS claims, its gears' status, and its server in the\n" +
			"cluster services. A node that is alive is refused: drain it, stop it, then remove it.\n" +
			"Started again later, the node joins as a new, empty one. A node_removed alert says\n" +
			"who removed it.",
		Flags: clientFlags(),
		Action: clientAction([]string{"NODE"}, func(s *session) error {
			msgs, err := s.api.RemoveNode(s.ctx(), s.arg(0))
			if err != nil {
				return err
			}
			return s.result(msgs, nil, nil)
		}),
	})
	subcommands(cmds)
	return &cli.Command{
		Name:         "node",
		Usage:        "list, drain, undrain and remove nodes (administrators)",
		UsageText:    "gearbox node command [flags]",
		OnUsageError: cmdline.UsageError,
		Subcommands:  cmds,
	}
}

// printNodes writes nodes as a table.
func printNodes(w io.Writer, ns []api.Node) error {
	if len(ns) == 0 {
		_, err := fmt.Fprintln(w, "No nodes have registered.")
		return err
	}
	tw := newTable(w)
	fmt.Fprintln(tw, "NAME\tADDRESS\tZONE\tREGION\tSTATUS\tGEARS\tISOLATION")
	for _, n := range ns {
		status := "alive"
		if !n.Alive {
			status = "down"
		}
		if n.Draining {
			status += ", draining"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d/%d\t%s\n", n.Name, orDash(n.Addr), orDash(n.Zone), orDash(n.Region), status,
			n.Gears, n.MaxGears, orDash(n.Isolation))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	var notes []string
	for _, n := range ns {
		if n.Evacuation != "" {
			notes = append(notes, fmt.Sprintf("%s evacuation: %s\n", n.Name, n.Evacuation))
		}
	}
	if len(notes) > 0 {
		_, err := fmt.Fprint(w, "\n"+strings.Join(notes, ""))
		return err
	}
	return nil
}

// gearCommand is `gearbox gear`: single gears (admin).
func gearCommand() *cli.Command {
	return &cli.Command{
		Name:         "gear",
		Usage:        "stop, start and move single gears",
		UsageText:    "gearbox gear command [flags]",
		OnUsageError: cmdline.UsageError,
		Subcommands: []*cli.Command{{
			Name:      "move",
			Usage:     "move a gear to another node, with its data directory (administrators)",
			UsageText: "gearbox gear move GEAR --node NODE [--force] [flags]",
			Description: "The gear is replaced on NODE, as a drain moves gears: a new gear (printed) starts there\n" +
				"with a copy of the gear's data directory, and only once it serves is the gear drained from\n" +
				"its load balancers and stopped; its data directory is merged into the new gear once more,\n" +
				"then it is removed ('gearbox alerts' says when). The broker refuses a move that would put\n" +
				"the LB gears of an HA application on one node or in one zone, unless --force is given.",
			Flags: append(clientFlags(),
				&cli.StringFlag{Name: "node", Usage: "`NODE` to move the gear to"},
				&cli.BoolFlag{Name: "force", Usage: "move even if the application loses its high availability"}),
			HideHelpCommand: true,
			OnUsageError:    cmdline.UsageError,
			Action: clientAction([]string{"GEAR"}, func(s *session) error {
				node := s.c.String("node")
				if node == "" {
					return fmt.Errorf("pass --node NODE, the node to move gear %s to (see 'gearbox node list')", s.arg(0))
				}
				g, msgs, err := s.api.MoveGear(s.ctx(), s.arg(0), node, s.c.Bool("force"))
				if err != nil {
					return err
				}
				return s.result(msgs, g, nil)
			}),
		}, gearEventCommand("stop", "stop one gear: its load balancers drain it first"),
			gearEventCommand("start", "start one stopped gear")},
	}
}

// gearEventCommand is `gearbox gear stop|start GEAR`.
func gearEventCommand(event, usage string) *cli.Command {
	return &cli.Command{
		Name:            event,
		Usage:           usage,
		UsageText:       "gearbox gear " + event + " GEAR [flags]",
		Flags:           clientFlags(),
		HideHelpCommand: true,
		OnUsageError:    cmdline.UsageError,
		Action: clientAction([]string{"GEAR"}, func(s *session) error {
			g, msgs, err := s.api.GearEvent(s.ctx(), s.arg(0), event)
			if err != nil {
				return err
			}
			return s.result(msgs, g, nil)
		}),
	}
}
