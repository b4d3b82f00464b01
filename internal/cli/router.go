package cli

import (
	"bufio"
	"cmp"
	"fmt"
	"io"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"

	"gearbox/broker/api"
	"gearbox/internal/cmdline"
)

// routerCommand is `gearbox router`: the routing layer's view of the
// cluster, for routers that are not gearbox's own (administrators).
func routerCommand() *cli.Command {
	cmds := []*cli.Command{
		routerEventsCommand(),
		routerWebhookCommand(),
		routerExportCommand(),
	}
	subcommands(cmds)
	return &cli.Command{
		Name:         "router",
		Usage:        "follow the routing events, manage their webhooks, export routes for nginx (administrators)",
		UsageText:    "gearbox router command [flags]",
		OnUsageError: cmdline.UsageError,
		Subcommands:  cmds,
	}
}

// routerEventsCommand is `gearbox router events`.
func routerEventsCommand() *cli.Command {
	return &cli.Command{
		Name:      "events",
		Usage:     "print the routing events, and with -f follow them (administrators)",
		UsageText: "gearbox router events [--after SEQ] [-f] [--json] [flags]",
		Description: "Prints the routing events after sequence SEQ (default 0: all), oldest first, one per line:\n" +
			"SEQ TIME ACTION NAMESPACE/APP and what the event is about (gear, endpoint, alias). With -f it\n" +
			"then prints each new event as the brokers commit it, until Ctrl-C; if the broker ends the\n" +
			"stream, run the command again with --after the last sequence printed: nothing is lost or\n" +
			"repeated. With --json each event is printed as one JSON object per line (NDJSON), as the\n" +
			"broker's feed gives them (GET /broker/rest/routing/events?after=SEQ&follow=1).",
		Flags: append(clientFlags(),
			&cli.Uint64Flag{Name: "after", Usage: "print the events after sequence `SEQ`"},
			&cli.BoolFlag{Name: "follow", Aliases: []string{"f"}, Usage: "keep printing new events until interrupted (Ctrl-C)"},
		),
		Action: clientAction(nil, func(s *session) error {
			return printFeed(s, feedReader[api.RoutingEvent]{
				what:   "routing event",
				resume: "gearbox router events -f",
				list:   s.api.RoutingEvents,
				follow: s.api.FollowRoutingEvents,
				seq:    func(e api.RoutingEvent) uint64 { return e.Seq },
				line:   eventLine,
			})
		}),
	}
}

// eventLine is a routing event for people: SEQ TIME ACTION NS/APP and
// the fields the action uses.
func eventLine(e api.RoutingEvent) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d %s %s %s/%s", e.Seq, e.Time.UTC().Format(cmdline.LogTimeFormat), e.Action, e.Namespace, e.AppName)
	if e.GearID != "" {
		fmt.Fprintf(&b, " gear=%s", e.GearID)
	}
	if e.PublicAddress != "" || e.PublicPort > 0 {
		fmt.Fprintf(&b, " endpoint=%s:%d", e.PublicAddress, e.PublicPort)
	}
	if len(e.Types) > 0 {
		fmt.Fprintf(&b, " types=%s", strings.Join(e.Types, ","))
	}
	if e.Alias != "" {
		fmt.Fprintf(&b, " alias=%s", e.Alias)
	}
	switch e.Action {
	case "create_application", "delete_application", "enable_ha", "disable_ha":
		fmt.Fprintf(&b, " scalable=%t ha=%t", e.Scalable, e.HA)
	}
	return b.String()
}

// routerWebhookCommand is `gearbox router webhook`.
func routerWebhookCommand() *cli.Command {
	cmds := []*cli.Command{
		{
			Name:      "add",
			Usage:     "have the broker leader POST every routing event to a URL (administrators)",
			UsageText: "gearbox router webhook add URL [--after SEQ] [flags]",
			Description: "The broker leader POSTs each routing event (or, with --feed alerts, each alert) to URL\n" +
				"as JSON, one at a time, in sequence\n" +
				"order, with headers X-Gearbox-Event-Seq and X-Gearbox-Signature: sha256=HEX (the\n" +
				"HMAC-SHA256 of the body keyed with the webhook's secret, printed once, now). An answer\n" +
				"other than 2xx, or none within 10 s, is retried after 1 s, doubling up to 1 min, until it\n" +
				"is taken: no event is skipped, and a webhook that stays down holds up no other. A new\n" +
				"leader resumes from the last event recorded as delivered, so an event may come twice:\n" +
				"deduplicate by X-Gearbox-Event-Seq. Without --after only events from now on are sent.",
			Flags: append(clientFlags(),
				&cli.Uint64Flag{Name: "after", DefaultText: "the last event now", Usage: "send the events after sequence `SEQ`"},
				&cli.StringFlag{Name: "feed", Value: "routing", Usage: "what to send: `routing` events, or alerts (see 'gearbox alerts')"}),
			Action: clientAction([]string{"URL"}, func(s *session) error {
				var after *uint64
				if s.c.IsSet("after") {
					a := s.c.Uint64("after")
					after = &a
				}
				h, msgs, err := s.api.AddFeedWebhook(s.ctx(), s.c.String("feed"), s.arg(0), after)
				if err != nil {
					return err
				}
				return s.result(msgs, h, func(w io.Writer) error {
					_, err := fmt.Fprintf(w, "Secret: %s\n", h.Secret)
					return err
				})
			}),
		},
		{
			Name:      "list",
			Usage:     "list the webhooks and how far delivery got (administrators)",
			UsageText: "gearbox router webhook list [flags]",
			Description: "AFTER is the last event delivered, PENDING how many events are still to go, LAST ERROR\n" +
				"why the last delivery failed (empty once one succeeds).",
			Flags: clientFlags(),
			Action: clientAction(nil, func(s *session) error {
				hs, err := s.api.Webhooks(s.ctx())
				if err != nil {
					return err
				}
				if hs == nil {
					hs = []api.Webhook{}
				}
				return s.show(hs, func(w io.Writer) error {
					if len(hs) == 0 {
						_, err := fmt.Fprintln(w, "No webhooks; add one with 'gearbox router webhook add URL'.")
						return err
					}
					sort.Slice(hs, func(i, j int) bool { return hs[i].CreatedAt.Before(hs[j].CreatedAt) })
					tw := newTable(w)
					fmt.Fprintln(tw, "ID\tFEED\tURL\tAFTER\tPENDING\tLAST ERROR")
					for _, h := range hs {
						fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\n", h.ID, cmp.Or(h.Feed, "routing"), h.URL, h.After, h.Pending, orDash(h.LastError))
					}
					return tw.Flush()
				})
			}),
		},
		{
			Name:      "remove",
			Aliases:   []string{"rm", "delete"},
			Usage:     "stop sending routing events to a webhook (administrators)",
			UsageText: "gearbox router webhook remove ID [flags]",
			Flags:     clientFlags(),
			Action: clientAction([]string{"ID"}, func(s *session) error {
				msgs, err := s.api.RemoveWebhook(s.ctx(), s.arg(0))
				if err != nil {
					return err
				}
				return s.result(msgs, nil, nil)
			}),
		},
	}
	subcommands(cmds)
	return &cli.Command{
		Name:         "webhook",
		Aliases:      []string{"webhooks"},
		Usage:        "add, list and remove the URLs that receive every routing event (administrators)",
		UsageText:    "gearbox router webhook command [flags]",
		OnUsageError: cmdline.UsageError,
		Subcommands:  cmds,
	}
}

// exportFormats are the formats of `gearbox router export`.
var exportFormats = []string{"nginx", "json"}

// listenRE is a sane nginx listen parameter: a port, or address:port.
var listenRE = regexp.MustCompile(`^(\[[0-9a-fA-F:.]+\]:|[0-9a-zA-Z.-]+:)?[0-9]{1,5}$`)

// routerExportCommand is `gearbox router export`.
func routerExportCommand() *cli.Command {
	return &cli.Command{
		Name:      "export",
		Usage:     "print a configuration for an existing router (nginx) from the current routes (administrators)",
		UsageText: "gearbox router export [--format nginx|json] [--listen PORT] [flags]",
		Description: "With --format nginx (the default), prints an nginx configuration to include in its http\n" +
			"block: an upstream per application (its LB gears' load balancers when it is scalable, else\n" +
			"its gear; gears not started are marked down), and a server per ha- name and per alias that\n" +
			"proxies to it with Host rewritten to the application's name, X-Forwarded-For, -Proto and\n" +
			"-Host set, and retries on another upstream server after a connection error or timeout.\n" +
			"Applications with neither an ha- name nor an alias get no server (node fronts serve their\n" +
			"own names). Regenerate it, and reload nginx, when routing events arrive (see 'gearbox\n" +
			"router events -f' and 'gearbox router webhook'). --format json (or --json) prints the\n" +
			"routes as the broker gives them (GET /broker/rest/routing/routes).",
		Flags: append(clientFlags(),
			&cli.StringFlag{Name: "format", Value: "nginx", Usage: "output `FORMAT`: " + strings.Join(exportFormats, " or ")},
			&cli.StringFlag{Name: "listen", Value: "80", Usage: "nginx listen `ADDRESS`: a port, or address:port"},
		),
		Action: clientAction(nil, func(s *session) error {
			format := s.c.String("format")
			if s.json() {
				format = "json"
			}
			listen := s.c.String("listen")
			switch {
			case !slices.Contains(exportFormats, format):
				return fmt.Errorf("unknown --format %q; formats: %s", format, strings.Join(exportFormats, ", "))
			case !listenRE.MatchString(listen):
				return fmt.Errorf("--listen %q: want a port (80) or address:port (10.0.0.1:80)", listen)
			}
			routes, err := s.api.Routes(s.ctx())
			if err != nil {
				return err
			}
			if routes == nil {
				routes = []api.Route{}
			}
			if format == "json" {
				return writeJSON(s.stdout(), routes)
			}
			return writeNginx(s.stdout(), routes, listen)
		}),
	}
}

// nginxProxy is the location of every server: proxy to the app's
// upstream as its own hostname, keep connections to it alive, pass
// WebSocket upgrades, say who asked, and try another LB gear when one
// cannot be reached (never after it received the request: that is what
// "error timeout" without "non_idempotent" means).
const nginxProxy = `    location / {
        proxy_pass http://%s;
        proxy_http_version 1.1;
        proxy_set_header Host %s;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection $gearbox_connection;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_set_header X-Forwarded-Host $host;
        proxy_next_upstream error timeout;
    }
`

// writeNginx writes routes as an nginx configuration for its http block.
func writeNginx(w io.Writer, routes []api.Route, listen string) error {
	bw := bufio.NewWriter(w)
	fmt.Fprint(bw, `# gearbox routes, from 'gearbox router export --format nginx': include this file in
# nginx's http block, and regenerate it when routing events arrive.

# WebSocket upgrades pass through; other requests keep upstream connections alive.
map $http_upgrade $gearbox_connection {
    default upgrade;
    ''      '';
}
`)
	for _, r := range routes {
		names := r.Aliases
		if r.HAHost != "" {
			names = append([]string{r.HAHost}, names...)
		}
		if len(names) == 0 {
			continue
		}
		for _, n := range append([]string{r.Host}, names...) {
			if !nginxNameRE.MatchString(n) {
				return fmt.Errorf("the broker sent the hostname %q for %s/%s, which cannot go into an nginx configuration", n, r.Namespace, r.App)
			}
		}
		kind := "not scalable"
		if r.HA {
			kind = "scalable, HA"
		} else if r.Scalable {
			kind = "scalable"
		}
		fmt.Fprintf(bw, "\n# %s/%s (%s): %s\n", r.Namespace, r.App, kind, r.Host)
		if len(r.Endpoints) == 0 {
			fmt.Fprintf(bw, "# no endpoint yet: not routed\n")
			continue
		}
		upstream := "gearbox_" + r.Namespace + "_" + r.App
		fmt.Fprintf(bw, "upstream %s {\n", upstream)
		for _, e := range r.Endpoints {
			if !nginxAddrRE.MatchString(e.Address) {
				return fmt.Errorf("the broker sent the address %q for gear %s, which cannot go into an nginx configuration", e.Address, e.GearID)
			}
			down := ""
			if e.State != "started" {
				down = " down"
			}
			note := "gear " + e.GearID
			if e.Head {
				note += " (head)"
			}
			fmt.Fprintf(bw, "    server %s%s; # %s, %s\n", e.Address, down, note, e.State)
		}
		fmt.Fprintf(bw, "    keepalive 8;\n}\n")
		for _, n := range names {
			fmt.Fprintf(bw, "server {\n    listen %s;\n    server_name %s;\n", listen, n)
			fmt.Fprintf(bw, nginxProxy, upstream, r.Host)
			fmt.Fprintf(bw, "}\n")
		}
	}
	return bw.Flush()
}

// Sanity checks of what goes into the nginx configuration: the broker
// validates names, but a configuration file is no place to trust them.
var (
	nginxNameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$`)
	nginxAddrRE = regexp.MustCompile(`^(\[[0-9a-fA-F:.]+\]|[0-9a-zA-Z.-]+):[0-9]{1,5}$`)
)
