package broker

import (
	"encoding/json"
	"errors"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"gearbox/broker/api"
	"gearbox/store"
	"gearbox/store/state"
)

// The routing event feed: every routing event the brokers wrote, in
// sequence order, for routing layers that are not gearbox's own (an F5,
// an nginx, a script). GET /broker/rest/routing/events?after=SEQ gives the
// events after SEQ; with follow=1 the answer is a stream that then goes on
// with each new event as it commits. A client that remembers the last
// sequence it handled and asks again with after=that sequence gets
// exactly the rest: events are never collected.
//
// Any broker serves the feed from its own replica, and a replica may get
// events out of order (gossip gives no order; anti-entropy fills what it
// missed within seconds). So the feed never passes over a missing
// sequence at once: it holds back the events after it for FeedGapWait,
// counted from the commit time of the event after the gap, and only then
// goes on without the missing ones, with a warning in the log. Such a gap
// stays for good when the leader that wrote the missing events died
// before any other member got them, or when two leaders wrote in a
// partition (each on its own side, from the same sequence: after the
// partition heals, last-writer-wins keeps one event per sequence, and a
// reader that had passed a sequence on one side does not see the other
// side's event for it). Webhook delivery reads the feed the same way.

// Bounds of a feed request.
const (
	// DefaultFeedLimit is how many events GET .../routing/events returns
	// without limit=.
	DefaultFeedLimit = 1000
	// MaxFeedLimit is the largest limit= accepted.
	MaxFeedLimit = 10000
	// feedBatch is how many events a followed feed or a webhook reads at
	// a time.
	feedBatch = 100
)

// Defaults of the feed's Config fields.
const (
	DefaultFeedGapWait   = 30 * time.Second
	DefaultFeedKeepAlive = 15 * time.Second
	// DefaultMaxFeedFollowers is the default of Config.MaxFeedFollowers:
	// each followed feed holds a connection and a goroutine, and reads
	// the events bucket on every change.
	DefaultMaxFeedFollowers = 100
)

// gapTimer ends the wait of a feed reader (a followed feed, a webhook
// deliverer) held back at a missing sequence; one timer, reused.
type gapTimer struct{ t *time.Timer }

// after returns a channel that fires after d, or nil (never fires) when d
// is not positive: nothing is held.
func (g *gapTimer) after(d time.Duration) <-chan time.Time {
	if d <= 0 {
		return nil
	}
	if g.t == nil {
		g.t = time.NewTimer(d)
	} else {
		g.t.Reset(d)
	}
	return g.t.C
}

// stop stops the timer, if any.
func (g *gapTimer) stop() {
	if g.t != nil {
		g.t.Stop()
	}
}

// feedHub knows the highest routing event sequence this member holds
// and wakes feed readers when events arrive. It is safe for concurrent
// use.
type feedHub struct {
	top atomic.Uint64

	mu   sync.Mutex
	ch   chan struct{}   // closed, and replaced, on the next arrival
	gaps map[uint64]bool // first sequences of the gaps already logged
}

func newFeedHub() *feedHub { return &feedHub{ch: make(chan struct{}), gaps: map[uint64]bool{}} }

// changed returns a channel closed when events arrive after this call.
func (h *feedHub) changed() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.ch
}

// arrived raises top to seq (if higher) and wakes the readers.
func (h *feedHub) arrived(seq uint64) {
	for {
		cur := h.top.Load()
		if seq <= cur || h.top.CompareAndSwap(cur, seq) {
			break
		}
	}
	h.mu.Lock()
	close(h.ch)
	h.ch = make(chan struct{})
	h.mu.Unlock()
}

// firstGapLog reports whether the gap starting at seq is logged for the
// first time.
func (h *feedHub) firstGapLog(seq uint64) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.gaps[seq] {
		return false
	}
	h.gaps[seq] = true
	return true
}

// startFeed sets the hub's top from the store and returns the watch that
// feedLoop follows; the watch exists before the scan, so that no event
// committed in between goes unnoticed.
func (b *Broker) startFeed() (*store.Watch, error) {
	w := b.st.Watch(state.BucketRoutingEvents)
	recs, err := b.st.List(state.BucketRoutingEvents)
	if err != nil {
		w.Close()
		return nil, err
	}
	if n := len(recs); n > 0 {
		if seq, err := strconv.ParseUint(recs[n-1].Key, 10, 64); err == nil {
			b.feed.top.Store(seq)
		}
	}
	return w, nil
}

// feedLoop follows the routing events committed to this member's store
// (written here or merged from others) and wakes feed readers.
func (b *Broker) feedLoop(w *store.Watch) {
	defer w.Close()
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-w.C():
			var top uint64
			for _, r := range w.Next() {
				if seq, err := strconv.ParseUint(r.Key, 10, 64); err == nil && !r.Deleted {
					top = max(top, seq)
				}
			}
			b.feed.arrived(top)
		}
	}
}

// readFeed returns up to limit routing events after seq after, in
// sequence order. At a missing sequence it stops, and hold says how long
// until the gap is old enough to be skipped (zero: the feed simply ends
// there for now); a gap older than FeedGapWait is skipped, and logged
// once.
func (b *Broker) readFeed(after uint64, limit int) (evs []state.RoutingEvent, hold time.Duration, err error) {
	next := after + 1
	for len(evs) < limit {
		var e state.RoutingEvent
		_, err := b.st.Get(state.BucketRoutingEvents, state.EventKey(next), &e)
		if err == nil {
			evs = append(evs, e)
			next++
			continue
		}
		if !errors.Is(err, store.ErrNotFound) {
			return evs, 0, err
		}
		if b.feed.top.Load() < next {
			return evs, 0, nil // the end of the feed
		}
		later, ok, err := b.eventFrom(next)
		if err != nil || !ok {
			return evs, 0, err
		}
		if age := b.cfg.Now().Sub(later.Time); age < b.cfg.FeedGapWait {
			return evs, b.cfg.FeedGapWait - age, nil
		}
		if b.feed.firstGapLog(next) {
			b.log.Warn().Uint64("from", next).Uint64("to", later.Seq-1).Dur("waited", b.cfg.FeedGapWait).
				Msg("routing feed skips events missing from this member")
		}
		next = later.Seq
	}
	return evs, 0, nil
}

// eventFrom returns the first routing event with a sequence of seq or
// more. It scans the bucket: it is only called at a gap.
func (b *Broker) eventFrom(seq uint64) (state.RoutingEvent, bool, error) {
	recs, err := b.st.List(state.BucketRoutingEvents)
	if err != nil {
		return state.RoutingEvent{}, false, err
	}
	key := state.EventKey(seq)
	i := sort.Search(len(recs), func(i int) bool { return recs[i].Key >= key })
	if i == len(recs) {
		return state.RoutingEvent{}, false, nil
	}
	var e state.RoutingEvent
	if err := recs[i].Decode(&e); err != nil {
		return e, false, err
	}
	return e, true, nil
}

// GET /broker/rest/routing/events?after=SEQ&limit=N[&follow=1] (admin):
// the routing events after SEQ (default 0: all), in sequence order, at
// most N (default 1000, at most 10000). With follow, an NDJSON stream
// instead (application/x-ndjson): one event per line, the ones after SEQ
// and then each new one as it commits, and an empty line every
// FeedKeepAlive when there is nothing to say (readers skip blank lines).
// It ends when the client goes or the broker stops; the client resumes
// with after= the last sequence it saw. A broker serves at most
// Config.MaxFeedFollowers streams at once; one more gets 503.
func (b *Broker) routingEvents(w http.ResponseWriter, r *http.Request, u *state.User, p params) error {
	if err := requireAdmin(u); err != nil {
		return err
	}
	after, err := p.seq("after")
	if err != nil {
		return err
	}
	limit, ok, err := p.integer("limit")
	if err != nil {
		return err
	}
	switch {
	case !ok:
		limit = DefaultFeedLimit
	case limit < 1 || limit > MaxFeedLimit:
		return fieldErr("limit", 1, "Invalid limit %d: use 1 to %d events.", limit, MaxFeedLimit)
	}
	follow, err := p.boolean("follow", false)
	if err != nil {
		return err
	}
	if follow {
		if n := b.followers.Add(1); n > int64(b.cfg.MaxFeedFollowers) {
			b.followers.Add(-1)
			return errorf(http.StatusServiceUnavailable, 1, "This broker already serves %d followed routing feeds, its limit; retry later, follow another broker, or read with after= instead.", b.cfg.MaxFeedFollowers)
		}
		defer b.followers.Add(-1)
		b.followFeed(w, r, after)
		return nil
	}
	evs, _, err := b.readFeed(after, limit)
	if err != nil {
		return err
	}
	out := make([]api.RoutingEvent, 0, len(evs))
	for i := range evs {
		out = append(out, routingEventView(&evs[i]))
	}
	reply(w, http.StatusOK, "routing_events", out)
	return nil
}

// routingEventView is routing event e as the API (the feed, followed or
// not, and webhook deliveries) shows it.
func routingEventView(e *state.RoutingEvent) api.RoutingEvent {
	v := api.RoutingEvent{Seq: e.Seq, Action: e.Action, AppName: e.AppName, Namespace: e.Namespace, Scalable: e.Scalable, HA: e.HA,
		GearID: e.GearID, PublicPortName: e.PublicPortName, PublicAddress: e.PublicAddress, PublicPort: e.PublicPort,
		Protocols: e.Protocols, Types: e.Types, Alias: e.Alias, Time: e.Time}
	for _, m := range e.Mappings {
		v.Mappings = append(v.Mappings, api.Mapping{Frontend: m.Frontend, Backend: m.Backend})
	}
	return v
}

// followFeed streams the feed after seq after as NDJSON until the client
// goes or the broker closes. Like other reads it holds no lock.
func (b *Broker) followFeed(w http.ResponseWriter, r *http.Request, after uint64) {
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no") // nginx: pass each line on at once
	w.WriteHeader(http.StatusOK)
	// Each write must be taken within APIWriteTimeout (the listener's
	// guard, listener.go): a client that stops reading is cut off rather
	// than holding the stream for ever.
	rc := http.NewResponseController(w)
	send := func(write func() error) bool {
		return write() == nil && rc.Flush() == nil
	}
	if !send(func() error { return nil }) {
		return
	}
	enc := json.NewEncoder(w) // one line per value
	keepAlive := time.NewTicker(b.cfg.FeedKeepAlive)
	defer keepAlive.Stop()
	var hold gapTimer
	defer hold.stop()
	for {
		wake := b.feed.changed()
		evs, wait, err := b.readFeed(after, feedBatch)
		if err != nil {
			b.log.Warn().Err(err).Msg("read routing feed failed")
			return
		}
		if len(evs) > 0 {
			ok := send(func() error {
				for i := range evs {
					if err := enc.Encode(routingEventView(&evs[i])); err != nil {
						return err
					}
				}
				return nil
			})
			if !ok {
				return
			}
			after = evs[len(evs)-1].Seq
			keepAlive.Reset(b.cfg.FeedKeepAlive)
			continue
		}
		held := hold.after(wait)
		select {
		case <-r.Context().Done():
			return
		case <-b.ctx.Done():
			return
		case <-wake:
		case <-held:
		case <-keepAlive.C:
			if !send(func() error { _, err := w.Write([]byte("\n")); return err }) {
				return
			}
		}
	}
}

// seq reads a routing event sequence parameter; absent is 0.
func (p params) seq(name string) (uint64, error) {
	v := p.str(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, fieldErr(name, 1, "Invalid value for %s: %q; use a routing event sequence number (0 or more).", name, v)
	}
	return n, nil
}
