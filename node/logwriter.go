package node

import (
	"strings"

	"github.com/rs/zerolog"
)

// logWriter turns the lines of a standard library logger (net/http's
// server and proxy errors) into debug events of l.
type logWriter struct{ l zerolog.Logger }

func (w logWriter) Write(p []byte) (int, error) {
	w.l.Debug().Str("detail", strings.TrimSpace(string(p))).Msg("http error")
	return len(p), nil
}
