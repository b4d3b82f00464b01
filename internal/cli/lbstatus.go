package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"gearbox/broker/api"
	"gearbox/lb"
)

// lbStatusCommand is `gearbox app lb-status`: what haproxy's stats page
// showed an OpenShift app's owner, for each of the app's LB gears.
func lbStatusCommand() *cli.Command {
	return &cli.Command{
		Name:      "lb-status",
		Usage:     "show the status of an application's load balancers: backends, checks, sessions",
		UsageText: "gearbox app lb-status APP -n NAMESPACE [--json] [flags]",
		Description: "For each LB gear of a scalable application, the state of its load balancer as its node\n" +
			"reports it to the broker: balance, rotation, sessions and request counters, then each\n" +
			"backend (web gear) with its address, state (up or down, and progress towards a change),\n" +
			"whether it gets new requests, its last health check, its sessions and errors. Load\n" +
			"balancers do not serve this on the application's hostnames: only the owner and\n" +
			"administrators read it, through the broker. A gear whose status cannot be read gets a\n" +
			"line saying why. --json prints the broker's data.",
		Flags: appFlags(),
		Action: clientAction([]string{"APP"}, func(s *session) error {
			ns, err := s.namespace()
			if err != nil {
				return err
			}
			st, err := s.api.LBStatus(s.ctx(), ns, s.arg(0))
			if err != nil {
				return err
			}
			if st == nil {
				st = []api.LBStatus{}
			}
			return s.show(st, func(w io.Writer) error { return printLBStatus(w, s.arg(0), st) })
		}),
	}
}

// printLBStatus writes each LB gear's load balancer: a line on the pool,
// then a table of its backends.
func printLBStatus(w io.Writer, app string, sts []api.LBStatus) error {
	if len(sts) == 0 {
		_, err := fmt.Fprintf(w, "Application %s has no LB gear yet.\n", app)
		return err
	}
	for i, s := range sts {
		if i > 0 {
			fmt.Fprintln(w)
		}
		g := s.Gear
		name := g.ID
		if g.Head {
			name += " (head)"
		}
		fmt.Fprintf(w, "LB gear %s on %s, zone %s, %s: ", name, orDash(g.Node), orDash(g.Zone), orDash(g.State))
		if s.Status == nil {
			fmt.Fprintln(w, orDash(s.Error))
			continue
		}
		var p lb.Status
		if err := json.Unmarshal(s.Status, &p); err != nil {
			fmt.Fprintf(w, "the broker sent a status that is not a load balancer's: %v\n", err)
			continue
		}
		fmt.Fprintf(w, "balance %s, rotation %s, %d sessions, %d queued, %d requests, %d retries, %d without backend, %d queue timeouts\n",
			p.Balance, p.Rotation, p.Sessions, p.Queued, p.Requests, p.Retries, p.NoBackend, p.QueueTimeouts)
		if len(p.Backends) == 0 {
			fmt.Fprintln(w, "  no backend")
			continue
		}
		tw := newTable(w)
		fmt.Fprintln(tw, "  BACKEND\tADDRESS\tSTATE\tSERVING\tLAST CHECK\tSESSIONS\tTOTAL\tERRORS\tMARKS")
		for _, b := range p.Backends {
			state := b.State
			if b.Progress != "" {
				state += " (" + b.Progress + ")"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%s\n", b.ID, b.Addr, state, yesNo(b.Serving), lastCheck(b.LastCheck),
				b.SessionsCurrent, b.SessionsTotal, b.Errors, backendMarks(b))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}

// lastCheck says how a backend's last health check went.
func lastCheck(c lb.CheckResult) string {
	if c.Time.IsZero() {
		return "none"
	}
	out := "failed"
	if c.OK {
		out = "passed"
	}
	switch {
	case c.Status != 0:
		out += fmt.Sprintf(" %d", c.Status)
	case c.Error != "":
		out += ": " + c.Error
	}
	return out + " in " + c.Duration.Round(10*time.Microsecond).String()
}

// backendMarks says why a backend may get no request, and which is the
// LB gear's own web gear.
func backendMarks(b lb.BackendStatus) string {
	var m []string
	if b.Local {
		m = append(m, "local")
	}
	if b.RotatedOut {
		m = append(m, "rotated out")
	}
	if b.Draining {
		m = append(m, "draining")
	}
	if len(m) == 0 {
		return "-"
	}
	return strings.Join(m, ", ")
}
