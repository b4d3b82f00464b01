package broker

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"gearbox/store"
	"gearbox/store/internalapi"
	"gearbox/store/state"
)

// Bounds of a logs request, as the node's (node.DefaultLogTail,
// node.MaxLogTail).
const (
	defaultLogTail = 100
	maxLogTail     = 10000
)

// logTimeFormat is the time stamp that starts every line of a gear's log
// (as nodes write it), and the broker's own lines.
const logTimeFormat = "2006-01-02T15:04:05.000Z07:00"

// logBuffer is how many lines of one gear may wait for the merge.
const logBuffer = 64

// logLine is one line of a gear's log.
type logLine struct {
	at    time.Time
	stamp string // the time as the node wrote it
	gear  string
	text  string
	done  bool // no more lines of this gear (follow only)
}

// newLogClient returns the client that reads gears' logs from nodes, over
// the internal API's mutual TLS with the key derived from secret: no
// overall timeout (a followed log lasts), but bounded connect, handshake
// and first answer (internalapi.Transport), and no idle connections left
// behind.
func newLogClient(secret string) *http.Client {
	tr := internalapi.Transport(secret)
	tr.DisableKeepAlives = true
	return &http.Client{Transport: tr}
}

// GET .../applications/{app}/logs?tail=N&follow=true: the log lines of
// every gear of the app, as text/plain, one per line:
// "TIME GEAR_ID LINE". The last tail lines of each gear (default 100, at
// most 10000) come first, merged in time order; with follow, new lines
// then come as the gears write them, until the client goes or every
// gear's stream ended. A gear whose node cannot be read gives one line
// saying so instead of its lines.
//
// Like other reads, any broker serves it, without b.mu: it holds no lock
// while it streams.
func (b *Broker) appLogs(w http.ResponseWriter, r *http.Request, u *state.User, p params) error {
	a, err := b.app(u, r.PathValue("ns"), r.PathValue("app"))
	if err != nil {
		return err
	}
	tail, ok, err := p.integer("tail")
	if err != nil {
		return err
	}
	switch {
	case !ok:
		tail = defaultLogTail
	case tail < 0:
		return fieldErr("tail", 1, "Invalid tail %d: use 0 or more lines.", tail)
	}
	tail = min(tail, maxLogTail)
	follow, err := p.boolean("follow", false)
	if err != nil {
		return err
	}
	all, err := list[state.Gear](b.st, state.BucketGears)
	if err != nil {
		return err
	}
	gears := gearsOf(all, state.AppKey(a.Domain, a.Name))
	members := make(map[string]store.Member)
	for _, m := range b.st.Members() {
		members[m.Name] = m
	}

	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	rc.Flush()

	ctx, cancel := context.WithCancel(r.Context())
	var wg sync.WaitGroup
	// Readers end once ctx does; the handler returns after them.
	defer wg.Wait()
	defer cancel()
	defer context.AfterFunc(b.ctx, cancel)()

	tails := make([]chan logLine, len(gears))
	live := make(chan logLine, logBuffer)
	for i, g := range gears {
		tails[i] = make(chan logLine, logBuffer)
		wg.Go(func() {
			b.readGearLog(ctx, g, members[g.Node], tail, follow, tails[i], live)
		})
	}

	out := bufio.NewWriterSize(w, 32<<10)
	write := func(l logLine) {
		out.WriteString(l.stamp)
		out.WriteByte(' ')
		out.WriteString(l.gear)
		out.WriteByte(' ')
		out.WriteString(l.text)
		out.WriteByte('\n')
	}
	flush := func() error {
		if err := out.Flush(); err != nil {
			return err
		}
		return rc.Flush()
	}
	if err := mergeTails(ctx, tails, write); err != nil {
		return nil
	}
	if flush() != nil || !follow {
		return nil
	}
	for ended := 0; ended < len(gears); {
		select {
		case <-ctx.Done():
			return nil
		case l := <-live:
			if l.done {
				ended++
			} else {
				write(l)
			}
			if len(live) == 0 && flush() != nil {
				return nil
			}
		}
	}
	return nil
}

// mergeTails writes the lines of tails, each in time order and closed at
// its end, merged in time order (the first gear's line first on a tie).
// It holds one line per gear.
func mergeTails(ctx context.Context, tails []chan logLine, write func(logLine)) error {
	heads := make([]*logLine, len(tails))
	next := func(i int) error {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case l, ok := <-tails[i]:
			if ok {
				heads[i] = &l
			} else {
				heads[i] = nil
			}
			return nil
		}
	}
	for i := range tails {
		if err := next(i); err != nil {
			return err
		}
	}
	for {
		first := -1
		for i, h := range heads {
			if h != nil && (first < 0 || h.at.Before(heads[first].at)) {
				first = i
			}
		}
		if first < 0 {
			return nil
		}
		write(*heads[first])
		if err := next(first); err != nil {
			return err
		}
	}
}

// readGearLog reads gear g's log from its node m: its tail to tailCh,
// which it closes at the tail's end, then, with follow, new lines to
// live, and a done line last. A node that cannot be read gives one line
// that says why.
func (b *Broker) readGearLog(ctx context.Context, g state.Gear, m store.Member, tail int, follow bool, tailCh, live chan<- logLine) {
	inTail := true
	endTail := func() {
		if inTail {
			close(tailCh)
			inTail = false
		}
	}
	send := func(l logLine) bool {
		ch := live
		if inTail {
			ch = tailCh
		}
		select {
		case ch <- l:
			return true
		case <-ctx.Done():
			return false
		}
	}
	say := func(format string, args ...any) {
		now := b.cfg.Now().UTC()
		send(logLine{at: now, stamp: now.Format(logTimeFormat), gear: g.ID, text: "gearbox: " + fmt.Sprintf(format, args...)})
	}
	defer func() {
		endTail()
		if follow {
			send(logLine{done: true})
		}
	}()

	if m.Name == "" || m.Status != store.StatusAlive || m.InternalAddr == "" {
		why := "not a member of the cluster"
		if m.Name != "" {
			why = "not alive (" + m.Status + ")"
		}
		say("cannot read this gear's log: its node %s is %s", g.Node, why)
		return
	}
	q := url.Values{"tail": {strconv.Itoa(tail)}}
	if follow {
		q.Set("follow", "1")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, internalapi.URL(m.InternalAddr, internalapi.GearLogsPath(g.ID)+"?"+q.Encode()), nil)
	if err != nil {
		say("cannot read this gear's log: %v", err)
		return
	}
	resp, err := b.logClient.Do(req)
	if err != nil {
		if ctx.Err() == nil {
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err
			}
			say("cannot read this gear's log from node %s: %v", g.Node, err)
		}
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		say("cannot read this gear's log: node %s answered %s: %s", g.Node, resp.Status, strings.TrimSpace(string(msg)))
		return
	}
	br := bufio.NewReaderSize(resp.Body, 32<<10)
	for {
		line, err := readLogLine(br)
		switch {
		case err == nil:
		case ctx.Err() != nil:
			return
		case !errors.Is(err, io.EOF):
			say("the log stream from node %s broke: %v", g.Node, err)
			return
		case follow:
			say("node %s ended this gear's log stream: the gear left it, or it stopped", g.Node)
			return
		default:
			return
		}
		if line == "" {
			endTail()
			continue
		}
		if !send(parseLogLine(g.ID, line, b.cfg.Now)) {
			return
		}
	}
}

// maxLogLine caps a line read from a node (which cuts its lines at
// 16 KiB); the rest of a longer line is dropped.
const maxLogLine = 64 << 10

// readLogLine reads one line without its newline, cut at maxLogLine.
func readLogLine(br *bufio.Reader) (string, error) {
	var sb strings.Builder
	for {
		chunk, err := br.ReadSlice('\n')
		if sb.Len() < maxLogLine {
			sb.Write(chunk[:min(len(chunk), maxLogLine-sb.Len())])
		}
		switch {
		case err == nil:
			return strings.TrimSuffix(sb.String(), "\n"), nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && sb.Len() > 0:
			// A last line without newline.
			return sb.String(), nil
		default:
			return "", err
		}
	}
}

// parseLogLine splits a node's log line into its time stamp and text; a
// line without a stamp is given the time it arrived.
func parseLogLine(gear, line string, now func() time.Time) logLine {
	stamp, text, _ := strings.Cut(line, " ")
	at, err := time.Parse(time.RFC3339Nano, stamp)
	if err != nil {
		t := now().UTC()
		return logLine{at: t, stamp: t.Format(logTimeFormat), gear: gear, text: line}
	}
	return logLine{at: at, stamp: stamp, gear: gear, text: text}
}
