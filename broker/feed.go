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

// feed is one of the broker's sequenced feeds: the routing events or the
// alerts. Both are read, followed and delivered to webhooks alike.
type feed struct {
	name   string // for logs: "routing feed", "alert feed"
	bucket string
	hub    *feedHub
	// item decodes one record of the bucket.
	item func(store.Record) (feedItem, error)
}

// feedItem is one entry of a feed, with what the API shows of it.
type feedItem struct {
	Seq  uint64
	Time time.Time
	View any
	// Namespace is the domain of the app an alert is about ("" for the
	// routing feed and for alerts about nodes): who may read it.
	Namespace string
}

// routingFeed is the routing event feed.
func (b *Broker) routingFeed() feed {
	return feed{name: "routing feed", bucket: state.BucketRoutingEvents, hub: b.feed, item: func(r store.Record) (feedItem, error) {
		var e state.RoutingEvent
		if err := r.Decode(&e); err != nil {
			return feedItem{}, err
		}
		return feedItem{Seq: e.Seq, Time: e.Time, View: routingEventView(&e)}, nil
	}}
}

// alertFeed is the alert feed (alerts.go).
func (b *Broker) alertFeed() feed {
	return feed{name: "alert feed", bucket: state.BucketAlerts, hub: b.alertHub, item: func(r store.Record) (feedItem, error) {
		var a state.Alert
		if err := r.Decode(&a); err != nil {
			return feedItem{}, err
		}
		return feedItem{Seq: a.Seq, Time: a.Time, View: alertView(&a), Namespace: a.Namespace}, nil
	}}
}

// startFeed sets f's hub's top from the store and returns the watch that
// feedLoop follows; the watch exists before the scan, so that no entry
// committed in between goes unnoticed.
func (b *Broker) startFeed(f feed) (*store.Watch, error) {
	w := b.st.Watch(f.bucket)
	recs, err := b.st.List(f.bucket)
	if err != nil {
		w.Close()
		return nil, err
	}
	if n := len(recs); n > 0 {
		if seq, err := strconv.ParseUint(recs[n-1].Key, 10, 64); err == nil {
			f.hub.top.Store(seq)
		}
	}
	return w, nil
}

// feedLoop follows the entries of f committed to this member's store
// (written here or merged from others) and wakes f's readers.
func (b *Broker) feedLoop(f feed, w *store.Watch) {
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
			f.hub.arrived(top)
		}
	}
}

// readFeed returns up to limit entries of f after seq after, in sequence
// order. At a missing sequence it stops, and hold says how long until the
// gap is old enough to be skipped (zero: the feed simply ends there for
// now); a gap older than FeedGapWait is skipped, and logged once.
func (b *Broker) readFeed(f feed, after uint64, limit int) (items []feedItem, hold time.Duration, err error) {
	next := after + 1
	for len(items) < limit {
		r, err := b.st.GetRecord(f.bucket, state.EventKey(next))
		if err == nil && !r.Deleted {
			it, err := f.item(r)
			if err != nil {
				return items, 0, err
			}
			items = append(items, it)
			next++
			continue
		}
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return items, 0, err
		}
		if f.hub.top.Load() < next {
			return items, 0, nil // the end of the feed
		}
		later, ok, err := b.entryFrom(f, next)
		if err != nil || !ok {
			return items, 0, err
		}
		if age := b.cfg.Now().Sub(later.Time); age < b.cfg.FeedGapWait {
			return items, b.cfg.FeedGapWait - age, nil
		}
		if f.hub.firstGapLog(next) {
			b.log.Warn().Uint64("from", next).Uint64("to", later.Seq-1).Dur("waited", b.cfg.FeedGapWait).
				Str("feed", f.name).Msg("feed skips entries missing from this member")
		}
		next = later.Seq
	}
	return items, 0, nil
}

// entryFrom returns the first entry of f with a sequence of seq or more.
// It scans the bucket: it is only called at a gap.
func (b *Broker) entryFrom(f feed, seq uint64) (feedItem, bool, error) {
	recs, err := b.st.List(f.bucket)
	if err != nil {
		return feedItem{}, false, err
	}
	key := state.EventKey(seq)
	i := sort.Search(len(recs), func(i int) bool { return recs[i].Key >= key })
	if i == len(recs) {
		return feedItem{}, false, nil
	}
	it, err := f.item(recs[i])
	if err != nil {
		return it, false, err
	}
	return it, true, nil
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
	return b.serveFeed(w, r, p, b.routingFeed(), "routing_events", nil)
}

// serveFeed answers a read of feed f (routing events, alerts): after=,
// limit=, follow=. visible, if set, says which entries the caller may
// see; the others are left out.
func (b *Broker) serveFeed(w http.ResponseWriter, r *http.Request, p params, f feed, kind string, visible func(feedItem) bool) error {
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
		return fieldErr("limit", 1, "Invalid limit %d: use 1 to %d entries.", limit, MaxFeedLimit)
	}
	follow, err := p.boolean("follow", false)
	if err != nil {
		return err
	}
	if follow {
		if n := b.followers.Add(1); n > int64(b.cfg.MaxFeedFollowers) {
			b.followers.Add(-1)
			return errorf(http.StatusServiceUnavailable, 1, "This broker already serves %d followed feeds, its limit; retry later, follow another broker, or read with after= instead.", b.cfg.MaxFeedFollowers)
		}
		defer b.followers.Add(-1)
		b.followFeed(w, r, f, after, visible)
		return nil
	}
	items, _, err := b.readFeed(f, after, limit)
	if err != nil {
		return err
	}
	out := make([]any, 0, len(items))
	for _, it := range items {
		if visible == nil || visible(it) {
			out = append(out, it.View)
		}
	}
	reply(w, http.StatusOK, kind, out)
	return nil
}

// routingEventView is routing event e as the API (the feed, followed or
// not, and webhook deliveries) shows it.
func routingEventView(e *state.RoutingEvent) api.RoutingEvent {
	v := api.RoutingEvent{Seq: e.Seq, Action: e.Action, AppName: e.AppName, Namespace: e.Namespace, Scalable: e.Scalable, HA: e.HA,
		GearID: e.GearID, PublicPortName: e.PublicPortName, PublicAddress: e.PublicAddress, PublicPort: e.PublicPort,
		Protocols: e.Protocols, Types: e.Types, Alias: e.Alias, SSL: e.SSL, PrivateKey: e.PrivateKey, Time: e.Time}
	for _, m := range e.Mappings {
		v.Mappings = append(v.Mappings, api.Mapping{Frontend: m.Frontend, Backend: m.Backend})
	}
	return v
}

// followFeed streams feed f after seq after as NDJSON until the client
// goes or the broker closes. Like other reads it holds no lock.
func (b *Broker) followFeed(w http.ResponseWriter, r *http.Request, f feed, after uint64, visible func(feedItem) bool) {
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
		wake := f.hub.changed()
		items, wait, err := b.readFeed(f, after, feedBatch)
		if err != nil {
			b.log.Warn().Err(err).Str("feed", f.name).Msg("read feed failed")
			return
		}
		if len(items) > 0 {
			ok := send(func() error {
				for _, it := range items {
					if visible != nil && !visible(it) {
						continue
					}
					if err := enc.Encode(it.View); err != nil {
						return err
					}
				}
				return nil
			})
			if !ok {
				return
			}
			after = items[len(items)-1].Seq
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
		return 0, fieldErr(name, 1, "Invalid value for %s: %q; use a feed sequence number (0 or more).", name, v)
	}
	return n, nil
}
