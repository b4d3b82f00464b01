package cli

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"gearbox/broker/client"
	"gearbox/internal/cmdline"
)

// credentials are what 'gearbox login' saves: one broker, one user, one API
// token. Later client commands use them when no --user is given.
type credentials struct {
	API       string    `json:"api"`
	User      string    `json:"user"`
	Token     string    `json:"token"`
	Insecure  bool      `json:"insecure,omitempty"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
}

// credentialsPath is $XDG_CONFIG_HOME/gearbox/credentials.json, else
// credentials.json in the gearbox folder of the user's configuration
// directory (os.UserConfigDir).
func credentialsPath() (string, error) {
	dir := os.Getenv("XDG_CONFIG_HOME")
	if !filepath.IsAbs(dir) {
		var err error
		if dir, err = os.UserConfigDir(); err != nil {
			return "", fmt.Errorf("find where to keep the saved login: %w", err)
		}
	}
	return filepath.Join(dir, "gearbox", "credentials.json"), nil
}

// loadCredentials returns the saved login, or nil when there is none.
func loadCredentials() (*credentials, error) {
	path, err := credentialsPath()
	if err != nil {
		return nil, err
	}
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("read saved login: %w", err)
	}
	var cr credentials
	if err := json.Unmarshal(raw, &cr); err != nil {
		return nil, fmt.Errorf("read saved login %s: %w; run 'gearbox logout' to remove it", path, err)
	}
	if cr.API == "" || cr.Token == "" {
		return nil, nil
	}
	cr.API = strings.TrimRight(cr.API, "/")
	return &cr, nil
}

// saveCredentials writes cr readable by the user only (file 0600, folder
// 0700), replacing the file in one step so that a reader never sees half
// of it.
func saveCredentials(cr credentials) (string, error) {
	path, err := credentialsPath()
	if err != nil {
		return "", err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("save login: %w", err)
	}
	// The folder is gearbox's own: tighten it if it was made looser.
	if err := os.Chmod(dir, 0o700); err != nil {
		return "", fmt.Errorf("save login: %w", err)
	}
	raw, err := json.MarshalIndent(cr, "", "  ")
	if err != nil {
		return "", err
	}
	f, err := os.CreateTemp(dir, ".credentials-*.json")
	if err != nil {
		return "", fmt.Errorf("save login: %w", err)
	}
	defer os.Remove(f.Name()) // fails harmlessly once renamed
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return "", fmt.Errorf("save login: %w", err)
	}
	if _, err := f.Write(append(raw, '\n')); err != nil {
		f.Close()
		return "", fmt.Errorf("save login %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("save login %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return "", fmt.Errorf("save login %s: %w", path, err)
	}
	return path, nil
}

// loginCommand is `gearbox login`.
func loginCommand() *cli.Command {
	return &cli.Command{
		Name:      "login",
		Usage:     "log in to a broker and save an API token for later commands",
		UsageText: "gearbox login [--api URL] [--user LOGIN] [--password-file FILE]",
		Description: "Creates an API token with the given login and password and saves it, with the broker's\n" +
			"address, in credentials.json under $XDG_CONFIG_HOME/gearbox (or the user's configuration\n" +
			"folder), readable by the user only. Later commands use it when no --user is given.\n" +
			"The password comes from GEARBOX_PASSWORD or --password-file (a file readable by you\n" +
			"only), else it is asked for on a terminal; never from the command line, where every\n" +
			"process on the host can read it.",
		Flags:           withoutFlag(clientFlags(), "json"), // login prints no data
		HideHelpCommand: true,
		OnUsageError:    cmdline.UsageError,
		Action: func(c *cli.Context) error {
			args, err := parseArgs(c)
			if err != nil || args == nil {
				return err
			}
			if err := checkArgs(c, args, nil); err != nil {
				return err
			}
			if err := refusePasswordFlags(c); err != nil {
				return err
			}
			saved, err := loadCredentials()
			if err != nil {
				return err
			}
			api := strings.TrimRight(c.String("api"), "/")
			if api == "" {
				api = defaultAPI
				if saved != nil {
					api = saved.API
				}
			}
			in := newPrompter(c)
			user := c.String("user")
			if user == "" {
				if !in.terminal {
					return errors.New("pass --user LOGIN (or set GEARBOX_USER)")
				}
				if user, err = in.line("Login: ", "no login given"); err != nil {
					return err
				}
			}
			password, err := callerPassword.read(c, in, fmt.Sprintf("Password for %s at %s: ", user, api), "no password for "+user, false)
			if err != nil {
				return err
			}
			cl := &client.Client{BaseURL: api, User: user, Password: password, Insecure: c.Bool("insecure")}
			host, _ := os.Hostname()
			tok, err := cl.CreateToken(c.Context, "gearbox login on "+host)
			if err != nil {
				return err
			}
			if tok.Token == "" {
				return fmt.Errorf("the broker at %s created a token but did not return it", api)
			}
			if tok.Login != "" {
				user = tok.Login
			}
			path, err := saveCredentials(credentials{API: api, User: user, Token: tok.Token, Insecure: cl.Insecure, ExpiresAt: tok.ExpiresAt})
			if err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "Logged in to %s as %s.\n", api, user)
			if !tok.ExpiresAt.IsZero() {
				fmt.Fprintf(c.App.Writer, "The token expires at %s.\n", tok.ExpiresAt.Local().Format(time.RFC1123))
			}
			fmt.Fprintf(c.App.Writer, "Saved in %s; 'gearbox logout' removes it.\n", path)
			return nil
		},
	}
}

// logoutCommand is `gearbox logout`.
func logoutCommand() *cli.Command {
	return &cli.Command{
		Name:      "logout",
		Usage:     "remove the login saved by 'gearbox login'",
		UsageText: "gearbox logout",
		Description: "Deletes the saved credentials file. The token itself stays valid at the broker until it\n" +
			"expires.",
		HideHelpCommand: true,
		OnUsageError:    cmdline.UsageError,
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return fmt.Errorf("logout takes no arguments, got %q; run 'gearbox logout --help' for usage", c.Args().First())
			}
			path, err := credentialsPath()
			if err != nil {
				return err
			}
			saved, _ := loadCredentials()
			switch err := os.Remove(path); {
			case errors.Is(err, fs.ErrNotExist):
				fmt.Fprintln(c.App.Writer, "Not logged in.")
				return nil
			case err != nil:
				return fmt.Errorf("remove saved login: %w", err)
			}
			if saved != nil {
				fmt.Fprintf(c.App.Writer, "Logged out of %s (was %s); removed %s.\n", saved.API, saved.User, path)
			} else {
				fmt.Fprintf(c.App.Writer, "Removed %s.\n", path)
			}
			return nil
		},
	}
}

// prompter asks questions on the command's standard input when that is
// a terminal: lines after a prompt, and passwords without echo.
type prompter struct {
	r        *bufio.Reader
	fd       int
	terminal bool
	w        io.Writer
}

func newPrompter(c *cli.Context) *prompter {
	p := &prompter{r: bufio.NewReader(c.App.Reader), w: c.App.ErrWriter}
	if f, ok := c.App.Reader.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.fd, p.terminal = int(f.Fd()), true
	}
	return p
}

// line prints prompt (on a terminal) and reads one line; missing is the
// error when there is none.
func (p *prompter) line(prompt, missing string) (string, error) {
	if p.terminal {
		fmt.Fprint(p.w, prompt)
	}
	s, err := p.r.ReadString('\n')
	s = strings.TrimRight(s, "\r\n")
	if s == "" && err != nil {
		if errors.Is(err, io.EOF) {
			return "", errors.New(missing)
		}
		return "", fmt.Errorf("read standard input: %w", err)
	}
	return s, nil
}

// secret asks for a password on the terminal, without echo. Callers
// check terminal first: without one, a password is never read from
// standard input, so that a command run with no password fails at once
// instead of waiting for input that may never come.
func (p *prompter) secret(prompt string) (string, error) {
	if !p.terminal {
		return "", errors.New("no terminal to ask for a password on")
	}
	fmt.Fprint(p.w, prompt)
	b, err := term.ReadPassword(p.fd)
	fmt.Fprintln(p.w)
	if err != nil {
		return "", fmt.Errorf("read password: %w", err)
	}
	return string(b), nil
}
