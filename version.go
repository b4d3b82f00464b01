package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"gearbox/internal/cmdline"

	"github.com/urfave/cli/v2"
)

// version is the release of this binary, set at build time with
// -ldflags "-X main.version=v1.2.3".
var version = "dev"

// versionCommand is `gearbox version`.
func versionCommand() *cli.Command {
	return &cli.Command{
		Name:         "version",
		Usage:        "print the version of this binary",
		UsageText:    "gearbox version",
		OnUsageError: cmdline.UsageError,
		Action: func(c *cli.Context) error {
			_, err := fmt.Fprint(c.App.Writer, versionInfo(debug.ReadBuildInfo))
			return err
		},
	}
}

// versionInfo describes this build: the gearbox version, the Go version
// and platform, and the source revision when the build recorded it.
func versionInfo(readBuildInfo func() (*debug.BuildInfo, bool)) string {
	var b strings.Builder
	fmt.Fprintf(&b, "gearbox %s\n", version)
	fmt.Fprintf(&b, "built with %s %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
	info, ok := readBuildInfo()
	if !ok {
		return b.String()
	}
	var rev, at string
	modified := false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if rev != "" {
		fmt.Fprintf(&b, "revision %s", rev)
		if modified {
			b.WriteString(" (modified)")
		}
		if at != "" {
			fmt.Fprintf(&b, " %s", at)
		}
		b.WriteString("\n")
	}
	return b.String()
}
