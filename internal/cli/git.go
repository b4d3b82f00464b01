package cli

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"strings"

	"github.com/urfave/cli/v2"

	"gearbox/broker/api"
	"gearbox/broker/githook"
)

// gitURL is app ns/name's git remote on the broker whose REST API is at
// base.
func gitURL(base, ns, name string) string {
	return strings.TrimRight(base, "/") + "/git/" + url.PathEscape(ns) + "/" + url.PathEscape(name) + ".git"
}

// gitHookCommand is `gearbox git-hook`, the pre-receive hook that the
// brokers' repositories run (githook.Run); not for people.
func gitHookCommand() *cli.Command {
	return &cli.Command{
		Name:   "git-hook",
		Usage:  "the pre-receive hook of the apps' git repositories on the brokers",
		Hidden: true,
		Action: func(c *cli.Context) error {
			if code := githook.Run(c.Context, os.Stdin, c.App.Writer, os.Getenv); code != 0 {
				return cli.Exit("", code)
			}
			return nil
		},
	}
}

// gitCredentialCommand is `gearbox git-credential get`, a git credential
// helper that answers for the broker of the saved login with its user and
// API token, so that git pushes with the CLI's login.
func gitCredentialCommand() *cli.Command {
	return &cli.Command{
		Name:      "git-credential",
		Usage:     "git credential helper: gives git the saved login's token for its broker",
		UsageText: "git config credential.https://BROKER.helper \"!gearbox git-credential\"",
		Description: "git runs it as 'gearbox git-credential get' with the protocol and host it asks for on\n" +
			"standard input; when they are those of the broker saved by 'gearbox login', it answers\n" +
			"with the saved user and API token (the broker takes a token as the password). 'gearbox\n" +
			"app git-remote' and 'gearbox app create --git-remote' set it up for a folder. store and\n" +
			"erase do nothing: the login is 'gearbox login''s to keep.",
		Action: func(c *cli.Context) error {
			if c.Args().First() != "get" {
				return nil
			}
			want := map[string]string{}
			sc := bufio.NewScanner(c.App.Reader)
			for sc.Scan() {
				if k, v, ok := strings.Cut(sc.Text(), "="); ok {
					want[k] = v
				}
			}
			cr, err := loadCredentials()
			if err != nil || cr == nil {
				return err
			}
			u, err := url.Parse(cr.API)
			if err != nil || u.Scheme != want["protocol"] || u.Host != want["host"] {
				return nil // another helper's, or git's prompt
			}
			fmt.Fprintf(c.App.Writer, "username=%s\npassword=%s\n", cr.User, cr.Token)
			return nil
		},
	}
}

// addGitRemote adds app ns/name's git remote to the git repository in
// dir as remote, and has git authenticate to the broker with the saved
// login (gearbox git-credential), trusting its certificate if the login
// does.
func addGitRemote(s *session, dir, remote, ns, name string) (string, error) {
	git, err := exec.LookPath("git")
	if err != nil {
		return "", errors.New("git is not installed: install it, or deploy with 'gearbox app deploy'")
	}
	run := func(args ...string) (string, error) {
		cmd := exec.Command(git, args...)
		cmd.Dir = dir
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return "", fmt.Errorf("git %s: %s", strings.Join(args, " "), strings.TrimSpace(stderr.String()))
		}
		return strings.TrimSpace(string(out)), nil
	}
	if _, err := run("rev-parse", "--git-dir"); err != nil {
		return "", fmt.Errorf("%s is not a git repository ('git init' makes one): %w", dir, err)
	}
	base := s.api.BaseURL
	remoteURL := gitURL(base, ns, name)
	if cur, err := run("remote", "get-url", remote); err == nil {
		if cur != remoteURL {
			return "", fmt.Errorf("remote %s already points to %s: pass --remote NAME for another", remote, cur)
		}
	} else if _, err := run("remote", "add", remote, remoteURL); err != nil {
		return "", err
	}
	if s.saved != nil && s.saved.API == strings.TrimRight(base, "/") {
		exe, err := os.Executable()
		if err != nil {
			return "", err
		}
		// An empty helper first resets the list for this URL, so that
		// only gearbox answers for the broker.
		key := "credential." + strings.TrimRight(base, "/") + ".helper"
		run("config", "--unset-all", key)
		if _, err := run("config", "--add", key, ""); err != nil {
			return "", err
		}
		if _, err := run("config", "--add", key, "!'"+strings.ReplaceAll(exe, "'", `'\''`)+"' git-credential"); err != nil {
			return "", err
		}
		if s.saved.Insecure {
			if _, err := run("config", "http."+strings.TrimRight(base, "/")+"/.sslVerify", "false"); err != nil {
				return "", err
			}
		}
	}
	return remoteURL, nil
}

// gitRemoteCommand is `gearbox app git-remote`.
func gitRemoteCommand() *cli.Command {
	return &cli.Command{
		Name:      "git-remote",
		Usage:     "add an application's git remote to the git repository of this folder",
		UsageText: "gearbox app git-remote APP -n NAMESPACE [--remote NAME] [--dir DIR] [flags]",
		Description: "Adds the application's git remote (https://BROKER/git/NAMESPACE/APP.git, the broker's\n" +
			"REST API) as remote NAME (default gearbox), and, with a saved login ('gearbox login'),\n" +
			"has git authenticate with it through 'gearbox git-credential'. Then 'git push gearbox main'\n" +
			"deploys: see 'gearbox app deploy-branch'.",
		Flags: appFlags(
			&cli.StringFlag{Name: "remote", Value: "gearbox", Usage: "`NAME` of the git remote"},
			&cli.StringFlag{Name: "dir", Value: ".", Usage: "the git repository's `DIR`"},
		),
		Action: clientAction([]string{"APP"}, func(s *session) error {
			ns, err := s.namespace()
			if err != nil {
				return err
			}
			if _, err := s.api.App(s.ctx(), ns, s.arg(0), false); err != nil {
				return err
			}
			u, err := addGitRemote(s, s.c.String("dir"), s.c.String("remote"), ns, s.arg(0))
			if err != nil {
				return err
			}
			fmt.Fprintf(s.stdout(), "Remote %s is %s.\n", s.c.String("remote"), u)
			return nil
		}),
	}
}

// deployBranchCommand is `gearbox app deploy-branch`.
func deployBranchCommand() *cli.Command {
	return &cli.Command{
		Name:      "deploy-branch",
		Usage:     "set the branch whose pushes to the application's git remote are deployed",
		UsageText: "gearbox app deploy-branch APP BRANCH -n NAMESPACE [flags]",
		Description: "A push of the deploy branch (main unless set) builds a deployment from the pushed commit\n" +
			"and rolls it out; the push shows the progress and is refused if the build or a health\n" +
			"check fails, the app going back to what it ran. Pushes of other branches are stored only.",
		Flags: appFlags(),
		Action: clientAction([]string{"APP", "BRANCH"}, func(s *session) error {
			ns, err := s.namespace()
			if err != nil {
				return err
			}
			a, msgs, err := s.api.SetDeployBranch(s.ctx(), ns, s.arg(0), s.arg(1))
			if err != nil {
				return err
			}
			return s.result(msgs, a, nil)
		}),
	}
}

// httpsCommand is `gearbox app https`.
func httpsCommand() *cli.Command {
	return &cli.Command{
		Name:      "https",
		Usage:     "redirect an application's plain HTTP requests to HTTPS, and set HSTS",
		UsageText: "gearbox app https APP [--redirect=true|false] [--hsts-max-age DURATION] -n NAMESPACE [flags]",
		Description: "Routers and node fronts that serve HTTPS (gearbox serve --tls-cert, or aliases with\n" +
			"certificates of their own) answer the app's plain HTTP requests with a redirect (308) to\n" +
			"HTTPS under --redirect, and send Strict-Transport-Security with --hsts-max-age (0: none)\n" +
			"over HTTPS. Without flags, prints the app's settings.",
		Flags: appFlags(
			&cli.BoolFlag{Name: "redirect", Usage: "redirect plain HTTP requests to HTTPS"},
			&cli.DurationFlag{Name: "hsts-max-age", Usage: "Strict-Transport-Security max-age, such as 8760h (a year); 0 for none"},
		),
		Action: clientAction([]string{"APP"}, func(s *session) error {
			ns, err := s.namespace()
			if err != nil {
				return err
			}
			var redirect *bool
			var hsts *int
			if s.c.IsSet("redirect") {
				v := s.c.Bool("redirect")
				redirect = &v
			}
			if s.c.IsSet("hsts-max-age") {
				v := int(s.c.Duration("hsts-max-age").Seconds())
				hsts = &v
			}
			var a api.App
			var msgs []api.Message
			if redirect == nil && hsts == nil {
				a, err = s.api.App(s.ctx(), ns, s.arg(0), false)
			} else {
				a, msgs, err = s.api.SetHTTPS(s.ctx(), ns, s.arg(0), redirect, hsts)
			}
			if err != nil {
				return err
			}
			return s.result(msgs, a, func(w io.Writer) error {
				_, err := fmt.Fprintf(w, "%s: redirect to HTTPS %s; HSTS max-age %d s\n", a.Name, yesNo(a.HTTPSRedirect), a.HSTSMaxAge)
				return err
			})
		}),
	}
}

// gitRow is app a's git remote and deploy branch, as app show prints
// them.
func gitRow(base string, a api.App) string {
	return fmt.Sprintf("%s (deploys branch %s)", gitURL(base, a.Domain, a.Name), a.DeployBranch)
}
