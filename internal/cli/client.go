package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"gearbox/broker/api"
	"gearbox/broker/client"
	"gearbox/internal/cmdline"
)

// defaultAPI is the broker's REST API when neither --api nor a saved login
// names one: a broker on this host.
const defaultAPI = "http://127.0.0.1:7480"

// clientFlags are the flags of every command that calls the broker's REST
// API. Each command gets its own copies, so that they can be given after
// the command's arguments.
func clientFlags() []cli.Flag {
	flags := []cli.Flag{
		&cli.StringFlag{Name: "api", EnvVars: cmdline.Env("API"), DefaultText: "the one saved by 'gearbox login', else " + defaultAPI,
			Usage: "`URL` of the broker's REST API"},
		&cli.StringFlag{Name: "user", EnvVars: cmdline.Env("USER"), DefaultText: "the login saved by 'gearbox login'",
			Usage: "`LOGIN` to authenticate as (HTTP basic auth), with its password from GEARBOX_PASSWORD or --password-file, else asked for on a terminal"},
	}
	flags = append(flags, callerPassword.flags()...)
	return append(flags,
		&cli.BoolFlag{Name: "insecure", EnvVars: cmdline.Env("INSECURE"), Usage: "skip verification of the broker's TLS certificate"},
		&cli.BoolFlag{Name: "json", Usage: "print the broker's data as JSON, for scripts (messages go to stderr)"},
	)
}

// withoutFlag returns flags without the one called name.
func withoutFlag(flags []cli.Flag, name string) []cli.Flag {
	var out []cli.Flag
	for _, f := range flags {
		if f.Names()[0] != name {
			out = append(out, f)
		}
	}
	return out
}

// namespaceFlag is -n/--namespace, the domain of an app.
func namespaceFlag() cli.Flag {
	return &cli.StringFlag{Name: "namespace", Aliases: []string{"n"}, EnvVars: cmdline.Env("NAMESPACE"),
		Usage: "`NAMESPACE` (domain) of the application"}
}

// session is what a client command works with: its positional arguments,
// a client for the broker and where to print.
type session struct {
	c    *cli.Context
	api  *client.Client
	args []string
	// saved is the login whose token api uses; nil when the command
	// authenticates with --user and its password.
	saved *credentials
}

// clientAction returns a command action that takes exactly the arguments
// named in argNames (flags may come before or after them), builds a client
// from the common flags and the saved login, and runs fn.
func clientAction(argNames []string, fn func(s *session) error) cli.ActionFunc {
	return func(c *cli.Context) error {
		args, err := parseArgs(c)
		if err != nil || args == nil {
			return err
		}
		if err := checkArgs(c, args, argNames); err != nil {
			return err
		}
		api, saved, err := newClient(c)
		if err != nil {
			return err
		}
		s := &session{c: c, api: api, args: args, saved: saved}
		err = fn(s)
		if client.IsStatus(err, http.StatusUnauthorized) && saved != nil {
			return fmt.Errorf("%w (the token saved by 'gearbox login' for %s at %s may have expired or been revoked: run 'gearbox login' again)", err, saved.User, saved.API)
		}
		return err
	}
}

// parseArgs returns the command's positional arguments, after parsing the
// flags that follow them into c: the flag package stops at the first
// argument, but "gearbox app show APP -n NS" must work. A nil slice with a
// nil error means help was asked for and shown.
func parseArgs(c *cli.Context) ([]string, error) {
	set := flag.NewFlagSet(c.Command.Name, flag.ContinueOnError)
	set.SetOutput(io.Discard)
	byName := map[string]cli.Flag{}
	for _, f := range c.Command.Flags {
		if err := f.Apply(set); err != nil {
			return nil, err
		}
		for _, n := range f.Names() {
			byName[n] = f
		}
	}
	args := []string{}
	rest := c.Args().Slice()
	for len(rest) > 0 {
		if err := set.Parse(rest); err != nil {
			return nil, cmdline.UsageError(c, err, true)
		}
		used := len(rest) - set.NArg()
		if used > 0 && rest[used-1] == "--" {
			args = append(args, set.Args()...)
			break
		}
		rest = set.Args()
		if len(rest) > 0 {
			args, rest = append(args, rest[0]), rest[1:]
		}
	}
	help := false
	var err error
	set.Visit(func(fl *flag.Flag) {
		if fl.Name == "help" || fl.Name == "h" {
			help = true
			return
		}
		for _, n := range byName[fl.Name].Names() {
			if e := c.Set(n, fl.Value.String()); e != nil && err == nil {
				err = fmt.Errorf("--%s: %w", fl.Name, e)
			}
		}
	})
	if help {
		cli.HelpPrinter(c.App.Writer, cli.CommandHelpTemplate, c.Command)
		return nil, nil
	}
	return args, err
}

// checkArgs says clearly which arguments a command wants.
func checkArgs(c *cli.Context, args, names []string) error {
	if len(args) == len(names) {
		return nil
	}
	cmd := c.Command.HelpName
	switch {
	case len(names) == 0:
		return fmt.Errorf("%s takes no arguments, got %q; run '%s --help' for usage", cmd, args[0], cmd)
	case len(args) < len(names):
		return fmt.Errorf("%s needs %s; run '%s --help' for usage", cmd, strings.Join(names[len(args):], " "), cmd)
	}
	return fmt.Errorf("%s takes %s, got extra argument %q; run '%s --help' for usage", cmd, strings.Join(names, " "), args[len(names)], cmd)
}

// newClient builds a client from --api, --user, its password and
// --insecure, or else from the saved login: its API when --api is not
// given, and its token when the API is the saved one and no --user is
// given. A password given on the command line is refused.
func newClient(c *cli.Context) (*client.Client, *credentials, error) {
	if err := refusePasswordFlags(c); err != nil {
		return nil, nil, err
	}
	// A saved login that cannot be read only matters when it is needed.
	saved, err := loadCredentials()
	if err != nil && (c.String("user") == "" || c.String("api") == "") {
		return nil, nil, err
	}
	api := strings.TrimRight(c.String("api"), "/")
	switch {
	case api != "":
	case saved != nil:
		api = saved.API
	default:
		api = defaultAPI
	}
	// A login made with --insecure keeps skipping verification of its
	// broker's certificate.
	cl := &client.Client{BaseURL: api, Insecure: c.Bool("insecure") || saved != nil && saved.API == api && saved.Insecure}
	user := c.String("user")
	password, err := callerPassword.get(c)
	switch {
	case err != nil:
		return nil, nil, err
	case user != "":
		if password == "" {
			password, err = callerPassword.read(c, newPrompter(c), fmt.Sprintf("Password for %s at %s: ", user, api),
				"--user "+user+" needs a password", false)
			if err != nil {
				return nil, nil, fmt.Errorf("%w; or run 'gearbox login' once to save a token", err)
			}
		}
		cl.User, cl.Password = user, password
		return cl, nil, nil
	case password != "":
		return nil, nil, errors.New("a password (GEARBOX_PASSWORD or --password-file) needs --user (or GEARBOX_USER)")
	case saved != nil && saved.API == api:
		cl.Token = saved.Token
		return cl, saved, nil
	}
	return nil, nil, fmt.Errorf("not logged in to %s: run 'gearbox login --api %s --user LOGIN', or pass --user (its password in GEARBOX_PASSWORD or --password-file)", api, api)
}

// hasFlag reports whether cmd has a flag called name.
func hasFlag(cmd *cli.Command, name string) bool {
	for _, f := range cmd.Flags {
		for _, n := range f.Names() {
			if n == name {
				return true
			}
		}
	}
	return false
}

// ctx is the context of the command's broker calls.
func (s *session) ctx() context.Context { return s.c.Context }

// arg is the i-th positional argument.
func (s *session) arg(i int) string { return s.args[i] }

// namespace is -n, required.
func (s *session) namespace() (string, error) {
	ns := s.c.String("namespace")
	if ns == "" {
		return "", fmt.Errorf("no namespace: pass -n NAMESPACE or set GEARBOX_NAMESPACE (see 'gearbox domain list')")
	}
	return ns, nil
}

// json reports whether --json was given.
func (s *session) json() bool { return s.c.Bool("json") }

// stdout is where data and tables go.
func (s *session) stdout() io.Writer { return s.c.App.Writer }

// messages prints the broker's messages: to stdout for people, to stderr
// under --json so that stdout stays parseable. Warnings are marked.
func (s *session) messages(msgs []api.Message) {
	w := s.stdout()
	if s.json() {
		w = s.c.App.ErrWriter
	}
	for _, m := range msgs {
		if m.Text == "" {
			continue
		}
		if m.Severity == "warning" {
			fmt.Fprintf(w, "warning: %s\n", m.Text)
			continue
		}
		fmt.Fprintln(w, m.Text)
	}
}

// result prints the outcome of a mutating call: its messages, then, under
// --json, its data, or the messages as JSON when the call returns none;
// else table, when not nil.
func (s *session) result(msgs []api.Message, data any, table func(w io.Writer) error) error {
	s.messages(msgs)
	if s.json() {
		if data == nil {
			if msgs == nil {
				msgs = []api.Message{}
			}
			data = struct {
				Messages []api.Message `json:"messages"`
			}{msgs}
		}
		return writeJSON(s.stdout(), data)
	}
	if table != nil {
		return table(s.stdout())
	}
	return nil
}

// show prints data: as JSON under --json, else with table.
func (s *session) show(data any, table func(w io.Writer) error) error {
	if s.json() {
		return writeJSON(s.stdout(), data)
	}
	return table(s.stdout())
}

// writeJSON writes v as indented JSON.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// newTable returns a writer that aligns tab-separated columns; Flush it.
func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
}

// yesNo is a boolean for people.
func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// maxText is a maximum where -1 means none.
func maxText(n int) string {
	if n < 0 {
		return "unlimited"
	}
	return fmt.Sprint(n)
}

// subcommands gives every command of a group the settings all gearbox
// sub-commands share: no "help" sub-command of their own, and usage
// errors as one line that points at --help.
func subcommands(cmds []*cli.Command) {
	for _, c := range cmds {
		c.HideHelpCommand = true
		c.OnUsageError = cmdline.UsageError
	}
}
