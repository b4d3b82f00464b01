package services

import (
	"fmt"
	"strings"

	"github.com/rs/zerolog"
)

// natsLogger passes the NATS server's logs to zerolog: notices (many at
// start, one per route and election) at debug level, warnings and errors
// as such, with the server's name. A failed attempt to reach a route is
// logged at info level: peers that are starting or stopping cause them,
// the server retries on its own, and the member list says which peers are
// down.
type natsLogger struct{ log zerolog.Logger }

func (l natsLogger) Noticef(format string, v ...any) { l.log.Debug().Msg(fmt.Sprintf(format, v...)) }
func (l natsLogger) Warnf(format string, v ...any)   { l.log.Warn().Msg(fmt.Sprintf(format, v...)) }
func (l natsLogger) Fatalf(format string, v ...any)  { l.log.Error().Msg(fmt.Sprintf(format, v...)) }
func (l natsLogger) Debugf(format string, v ...any)  {}
func (l natsLogger) Tracef(format string, v ...any)  {}

func (l natsLogger) Errorf(format string, v ...any) {
	if strings.HasPrefix(format, "Error trying to connect to route") {
		l.log.Info().Msg(fmt.Sprintf(format, v...))
		return
	}
	l.log.Error().Msg(fmt.Sprintf(format, v...))
}
