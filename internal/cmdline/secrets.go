package cmdline

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"

	"github.com/urfave/cli/v2"
)

// A secret is never taken from the command line: /proc/PID/cmdline is
// readable by every process on the host, gears included. It comes from a
// file that only its owner may read (--NAME-file) or from the
// environment (GEARBOX_NAME; /proc/PID/environ is readable by the
// process's own user only). SecretFlags and Secret implement that for
// one secret.

// SecretFlags returns the flags of the secret called name (such as
// "cluster-secret"), read from GEARBOX_env (such as "CLUSTER_SECRET"):
// --NAME-file, and a hidden --NAME that is refused with a message naming
// the file and environment alternatives. what says what the secret is;
// category groups the flag in --help (empty: none).
func SecretFlags(name, env, category, what string) []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: name + "-file", EnvVars: Env(env + "_FILE"), Category: category,
			Usage: fmt.Sprintf("file that holds %s (readable by its owner only, such as mode 0600); or set GEARBOX_%s instead", what, env)},
		&cli.StringFlag{Name: name, Hidden: true, Category: category},
	}
}

// Secret returns the secret called name as SecretFlags defines it: from
// --NAME-file, else from GEARBOX_env, else empty. --NAME on the command
// line is an error, and so are both a file and the variable.
func Secret(c *cli.Context, name, env string) (string, error) {
	if c.IsSet(name) {
		return "", fmt.Errorf("--%s would put a secret on the command line, where every process on this host can read it: "+
			"write it to a file only you can read and give --%s-file FILE, or set GEARBOX_%s", name, name, env)
	}
	fromEnv := os.Getenv("GEARBOX_" + env)
	file := c.String(name + "-file")
	switch {
	case file != "" && fromEnv != "":
		return "", fmt.Errorf("--%s-file and GEARBOX_%s are both set: give one", name, env)
	case file != "":
		s, err := ReadSecretFile(file)
		if err != nil {
			return "", fmt.Errorf("--%s-file: %w", name, err)
		}
		return s, nil
	}
	return strings.TrimSpace(fromEnv), nil
}

// ReadSecretFile returns the contents of the secret file path, without
// surrounding white space. It refuses a file that users other than its
// owner may read or write, and an empty one.
func ReadSecretFile(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file", path)
	}
	// Windows has no such mode bits: there, the file's ACL is the
	// operator's to set.
	if perm := fi.Mode().Perm(); runtime.GOOS != "windows" && perm&0o077 != 0 {
		return "", fmt.Errorf("%s may be read or written by other users (mode %#o): make it readable by its owner only, as with chmod 600 %s",
			path, perm, path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", errors.New(path + " is empty")
	}
	return s, nil
}
