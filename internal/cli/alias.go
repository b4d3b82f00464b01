package cli

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"time"

	"github.com/urfave/cli/v2"

	"gearbox/broker/api"
	"gearbox/internal/cmdline"
)

// aliasCommand is `gearbox app alias`: hostnames of the user's own
// domains that route to an app.
func aliasCommand() *cli.Command {
	cmds := []*cli.Command{
		{
			Name:      "add",
			Usage:     "make a hostname of your own domain route to an application",
			UsageText: "gearbox app alias add APP HOST -n NAMESPACE [flags]",
			Description: "HOST is a DNS name outside the cloud domain (whose names are the platform's), used by no\n" +
				"other application; an application has at most 32. Node fronts and routers serve it as they\n" +
				"serve the application's own name once they see the add_alias routing event. Point HOST's DNS\n" +
				"at the application: a CNAME to its ha- name when it is highly available, else to its name.\n" +
				"With --cert and --key (PEM files: the chain, the alias's certificate first, and its\n" +
				"unencrypted key), routers and node fronts serve HOST over HTTPS with that certificate; the\n" +
				"broker checks that the key matches, that the certificate covers HOST and is valid, and keeps\n" +
				"the key sealed with the cluster secret. 14 days before it expires, an alert says so.",
			Flags: appFlags(certFlags()...),
			Action: clientAction([]string{"APP", "HOST"}, func(s *session) error {
				ns, err := s.namespace()
				if err != nil {
					return err
				}
				chain, key, err := readCert(s, false)
				if err != nil {
					return err
				}
				var a api.Alias
				var msgs []api.Message
				if chain == "" {
					a, msgs, err = s.api.AddAlias(s.ctx(), ns, s.arg(0), s.arg(1))
				} else {
					a, msgs, err = s.api.AddAliasCert(s.ctx(), ns, s.arg(0), s.arg(1), chain, key)
				}
				if err != nil {
					return err
				}
				return s.result(msgs, a, nil)
			}),
		},
		{
			Name:      "update",
			Usage:     "give an alias a new TLS certificate",
			UsageText: "gearbox app alias update APP HOST --cert FILE --key FILE -n NAMESPACE [flags]",
			Description: "Replaces the certificate that routers and node fronts serve for HOST over HTTPS (or gives\n" +
				"it one). The broker checks it as 'alias add' does.",
			Flags: appFlags(certFlags()...),
			Action: clientAction([]string{"APP", "HOST"}, func(s *session) error {
				ns, err := s.namespace()
				if err != nil {
					return err
				}
				chain, key, err := readCert(s, true)
				if err != nil {
					return err
				}
				a, msgs, err := s.api.UpdateAliasCert(s.ctx(), ns, s.arg(0), s.arg(1), chain, key)
				if err != nil {
					return err
				}
				return s.result(msgs, a, nil)
			}),
		},
		{
			Name:      "remove",
			Aliases:   []string{"rm", "delete"},
			Usage:     "stop routing a hostname to an application",
			UsageText: "gearbox app alias remove APP HOST -n NAMESPACE [flags]",
			Flags:     appFlags(),
			Action: clientAction([]string{"APP", "HOST"}, func(s *session) error {
				ns, err := s.namespace()
				if err != nil {
					return err
				}
				msgs, err := s.api.RemoveAlias(s.ctx(), ns, s.arg(0), s.arg(1))
				if err != nil {
					return err
				}
				return s.result(msgs, nil, nil)
			}),
		},
		{
			Name:      "list",
			Usage:     "list an application's aliases",
			UsageText: "gearbox app alias list APP -n NAMESPACE [flags]",
			Flags:     appFlags(),
			Action: clientAction([]string{"APP"}, func(s *session) error {
				ns, err := s.namespace()
				if err != nil {
					return err
				}
				as, err := s.api.Aliases(s.ctx(), ns, s.arg(0))
				if err != nil {
					return err
				}
				if as == nil {
					as = []api.Alias{}
				}
				return s.show(as, func(w io.Writer) error {
					if len(as) == 0 {
						_, err := fmt.Fprintf(w, "Application %s has no aliases; add one with 'gearbox app alias add %s HOST -n %s'.\n", s.arg(0), s.arg(0), ns)
						return err
					}
					for _, a := range as {
						line := a.ID
						switch {
						case a.Cert != nil && a.Cert.ACME:
							line += fmt.Sprintf("  (ACME certificate, expires %s, renewed automatically)", a.Cert.NotAfter.UTC().Format(time.DateOnly))
						case a.Cert != nil:
							line += fmt.Sprintf("  (certificate, expires %s)", a.Cert.NotAfter.UTC().Format(time.DateOnly))
						}
						if a.ACME != nil {
							line += fmt.Sprintf("\n  no ACME certificate yet (%d tries failed, next at %s): %s", a.ACME.Failures, a.ACME.NextTry.UTC().Format(time.RFC3339), a.ACME.Error)
						}
						if _, err := fmt.Fprintln(w, line); err != nil {
							return err
						}
					}
					return nil
				})
			}),
		},
	}
	subcommands(cmds)
	return &cli.Command{
		Name:            "alias",
		Aliases:         []string{"aliases"},
		Usage:           "add, remove and list the hostnames of your own domains that route to an application",
		UsageText:       "gearbox app alias command APP [HOST] -n NAMESPACE [flags]",
		OnUsageError:    cmdline.UsageError,
		HideHelpCommand: true,
		Subcommands:     cmds,
	}
}

// certFlags are --cert and --key of alias add (optional) and update
// (required: readCert says so, since flags may follow the arguments).
func certFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "cert", Usage: "PEM `FILE` of the alias's certificate chain, its own certificate first"},
		&cli.StringFlag{Name: "key", Usage: "PEM `FILE` of the certificate's private key, unencrypted"},
	}
}

// readCert reads --cert and --key; both empty is no certificate. A key
// goes only to a broker reached over HTTPS or on this host: over plain
// HTTP it would cross the network in the clear.
func readCert(s *session, required bool) (chain, key string, err error) {
	cf, kf := s.c.String("cert"), s.c.String("key")
	if cf == "" && kf == "" && !required {
		return "", "", nil
	}
	if cf == "" || kf == "" {
		if required {
			return "", "", errors.New("pass the new certificate with --cert FILE and its key with --key FILE")
		}
		return "", "", errors.New("--cert and --key go together")
	}
	u, err := url.Parse(s.api.BaseURL)
	if err != nil {
		return "", "", err
	}
	if ip := net.ParseIP(u.Hostname()); u.Scheme != "https" && (ip == nil || !ip.IsLoopback()) && u.Hostname() != "localhost" {
		return "", "", fmt.Errorf("the broker's API %s is plain HTTP: the private key would cross the network in the clear; "+
			"serve the API over HTTPS (gearbox serve --tls-cert) or run this on the broker's host", s.api.BaseURL)
	}
	c, err := os.ReadFile(cf)
	if err != nil {
		return "", "", err
	}
	k, err := os.ReadFile(kf)
	if err != nil {
		return "", "", err
	}
	return string(c), string(k), nil
}
