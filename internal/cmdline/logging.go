package cmdline

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"
)

// Log formats accepted by --log-format.
const (
	logFormatAuto    = "auto"
	logFormatConsole = "console"
	logFormatJSON    = "json"
)

// LogTimeFormat is the timestamp layout of JSON logs: RFC 3339 with
// milliseconds, so that the events of one second stay ordered when read.
const LogTimeFormat = "2006-01-02T15:04:05.000Z07:00"

// LogFlags are the global flags that configure logging for every command.
func LogFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{
			Name:    "log-level",
			Value:   "info",
			Usage:   "least severe log level written: debug, info, warn or error",
			EnvVars: []string{"GEARBOX_LOG_LEVEL"},
		},
		&cli.StringFlag{
			Name:    "log-format",
			Value:   logFormatAuto,
			Usage:   "log format: console (for humans), json, or auto (console when stderr is a terminal, json otherwise)",
			EnvVars: []string{"GEARBOX_LOG_FORMAT"},
		},
	}
}

// NewLogger returns the logger for --log-level and --log-format, writing to
// w. terminal says whether w is a terminal, which decides the auto format.
func NewLogger(w io.Writer, level, format string, terminal bool) (zerolog.Logger, error) {
	lvl, err := parseLogLevel(level)
	if err != nil {
		return zerolog.Nop(), err
	}
	switch strings.ToLower(format) {
	case logFormatAuto:
		if terminal {
			w = ConsoleWriter(w, true)
		}
	case logFormatConsole:
		w = ConsoleWriter(w, terminal)
	case logFormatJSON:
	default:
		return zerolog.Nop(), fmt.Errorf("--log-format %q: want auto, console or json", format)
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger(), nil
}

func parseLogLevel(level string) (zerolog.Level, error) {
	switch strings.ToLower(level) {
	case "debug":
		return zerolog.DebugLevel, nil
	case "info":
		return zerolog.InfoLevel, nil
	case "warn", "warning":
		return zerolog.WarnLevel, nil
	case "error":
		return zerolog.ErrorLevel, nil
	}
	return zerolog.NoLevel, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
}

// ConsoleWriter formats events for humans, in colour on a terminal unless
// NO_COLOR is set (the no-color.org convention).
func ConsoleWriter(w io.Writer, terminal bool) io.Writer {
	_, noColor := os.LookupEnv("NO_COLOR")
	return zerolog.ConsoleWriter{Out: w, TimeFormat: "15:04:05.000", NoColor: noColor || !terminal}
}

// IsTerminal reports whether w is a terminal.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	return isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd())
}

// LogWriter turns the lines a standard library logger writes (such as
// http.Server's ErrorLog) into events with a fixed message and the line in
// a field.
type LogWriter struct {
	Log zerolog.Logger
	Msg string
}

func (w LogWriter) Write(p []byte) (int, error) {
	w.Log.Warn().Str("error", strings.TrimSpace(string(p))).Msg(w.Msg)
	return len(p), nil
}
