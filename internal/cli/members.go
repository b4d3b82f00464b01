package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"gearbox/internal/cmdline"
	"gearbox/store"
)

// membersTimeout bounds the whole `gearbox members` call.
const membersTimeout = 10 * time.Second

// membersCommand is `gearbox members`: the cluster as one member sees it.
func membersCommand() *cli.Command {
	return &cli.Command{
		Name:      "members",
		Usage:     "list the members of the cluster",
		UsageText: "gearbox members [flags]",
		Description: "Asks a member's internal API for its view of the cluster and prints it as a table\n" +
			"(the broker leader is marked with *) or, with --json, as JSON.",
		Flags: append(append([]cli.Flag{
			&cli.StringFlag{Name: "addr", Value: "127.0.0.1:7947", EnvVars: cmdline.Env("ADDR"),
				Usage: "host[:port] of a member's internal API (port default 7947)"},
			&cli.BoolFlag{Name: "json", Usage: "print the members as JSON"},
		}, cmdline.SecretFlags("cluster-secret", "CLUSTER_SECRET", "", "the cluster secret, as gearbox serve is given it")...),
			cmdline.SecretFlags("encrypt", "ENCRYPT", "", "the cluster's gossip key, to derive the secret from when no cluster secret is given")...),
		OnUsageError: cmdline.UsageError,
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return fmt.Errorf("members takes no arguments, got %q; run 'gearbox members --help' for usage", c.Args().First())
			}
			addr, err := cmdline.WithDefaultPort(c.String("addr"), cmdline.DefaultInternalPort)
			if err != nil {
				return fmt.Errorf("--addr %q: %w", c.String("addr"), err)
			}
			given, serr := cmdline.Secret(c, "cluster-secret", "CLUSTER_SECRET")
			key, kerr := cmdline.Secret(c, "encrypt", "ENCRYPT")
			if err := cmdline.JoinErrors([]error{serr, kerr}); err != nil {
				return err
			}
			secret, _, err := cmdline.ClusterSecret(given, key)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(c.Context, membersTimeout)
			defer cancel()
			members, err := fetchMembers(ctx, addr, secret)
			if err != nil {
				return err
			}
			if c.Bool("json") {
				return printMembersJSON(c.App.Writer, members)
			}
			return printMembers(c.App.Writer, members)
		},
	}
}

// fetchMembers asks the member at addr for its view of the cluster and
// turns failures into messages that say what to do.
func fetchMembers(ctx context.Context, addr, secret string) ([]store.Member, error) {
	_, members, err := store.FetchMembers(ctx, nil, addr, secret)
	var uerr *url.Error
	switch {
	case err == nil:
		return members, nil
	case errors.Is(err, store.ErrUnauthorized):
		return nil, errors.New("unauthorized: wrong or missing cluster secret (--cluster-secret-file or GEARBOX_CLUSTER_SECRET)")
	case errors.As(err, &uerr):
		// The request never got an HTTP answer: refused, timed out,
		// unresolvable.
		return nil, fmt.Errorf("cannot reach gearbox member at %s: %w", addr, uerr.Err)
	}
	return nil, fmt.Errorf("list members from %s: %w", addr, err)
}

// printMembers writes members as an aligned table, the broker leader's name
// marked with *.
func printMembers(w io.Writer, members []store.Member) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tADDRESS\tROLES\tZONE\tREGION\tSTATUS")
	leader := false
	for _, m := range members {
		name := m.Name
		if m.Leader {
			name += " *"
			leader = true
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", name, gossipAddr(m),
			orDash(strings.Join(m.Roles, ",")), orDash(m.Zone), orDash(m.Region), m.Status)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if leader {
		_, err := fmt.Fprintln(w, "\n* broker leader")
		return err
	}
	return nil
}

// printMembersJSON writes members as an indented JSON array.
func printMembersJSON(w io.Writer, members []store.Member) error {
	if members == nil {
		members = []store.Member{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(members)
}

func gossipAddr(m store.Member) string {
	if m.Port == 0 {
		return m.Addr
	}
	return net.JoinHostPort(m.Addr, strconv.Itoa(m.Port))
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
