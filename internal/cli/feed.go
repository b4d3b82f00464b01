package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// feedReader is what printFeed needs of one of the brokers' feeds (the
// routing events, the alerts).
type feedReader[T any] struct {
	what   string // "routing event", "alert"
	resume string // the command that follows the feed, without --after
	list   func(ctx context.Context, after uint64, limit int) ([]T, error)
	follow func(ctx context.Context, after uint64) (io.ReadCloser, error)
	seq    func(T) uint64
	line   func(T) string
}

// printFeed prints the entries of a feed after --after, one per line (or
// as NDJSON with --json), and with --follow goes on with each new one
// until interrupted.
func printFeed[T any](s *session, f feedReader[T]) error {
	after := s.c.Uint64("after")
	print := func(e T) error {
		if s.json() {
			b, err := json.Marshal(e)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(s.stdout(), "%s\n", b)
			return err
		}
		_, err := fmt.Fprintln(s.stdout(), f.line(e))
		return err
	}
	if !s.c.Bool("follow") {
		for {
			es, err := f.list(s.ctx(), after, 0)
			if err != nil {
				return err
			}
			if len(es) == 0 {
				return nil
			}
			for _, e := range es {
				if f.seq(e) <= after {
					return fmt.Errorf("the broker sent %s %d when asked for the ones after %d", f.what, f.seq(e), after)
				}
				if err := print(e); err != nil {
					return err
				}
				after = f.seq(e)
			}
		}
	}
	// Ctrl-C ends a followed feed: that is how it is meant to end.
	ctx, stop := signal.NotifyContext(s.ctx(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	body, err := f.follow(ctx, after)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	defer body.Close()
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue // keep-alive
		}
		var e T
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			return fmt.Errorf("the broker sent a line that is not a %s: %q", f.what, line)
		}
		if err := print(e); err != nil {
			return err
		}
		after = f.seq(e)
	}
	if ctx.Err() != nil {
		return nil
	}
	why := "the broker ended the feed"
	if err := sc.Err(); err != nil {
		why = fmt.Sprintf("the feed broke off (%v)", err)
	}
	return fmt.Errorf("%s; resume with '%s --after %d'", why, f.resume, after)
}
