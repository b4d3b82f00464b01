package store

import "sync"

// Watch receives the records of some buckets after each committed local
// write or merge. It never blocks a writer and never drops a change: changes
// queue inside the watch, C is signalled (at most one pending signal), and
// Next takes everything queued. Reconcilers select on C, then call Next.
// A Watch is safe for concurrent use.
type Watch struct {
	buckets map[string]bool // nil: all buckets
	c       chan struct{}
	w       *watchers

	mu      sync.Mutex
	pending []Record
	closed  bool
}

// C is signalled when changes are queued, and closed by Close.
func (w *Watch) C() <-chan struct{} { return w.c }

// Next returns and clears the queued changes, oldest first. Tombstones are
// included (Deleted set) so that watchers see deletes. Records that a full
// resynchronisation drops (the cluster deleted them and has since
// forgotten the delete) come as tombstones carrying the dropped record's
// version.
func (w *Watch) Next() []Record {
	w.mu.Lock()
	defer w.mu.Unlock()
	p := w.pending
	w.pending = nil
	return p
}

// Close stops the watch and closes C, so that a reader ranging over C
// ends. Changes still queued are discarded. It is safe to call twice.
func (w *Watch) Close() {
	w.w.remove(w)
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.closed = true
		w.pending = nil
		close(w.c)
	}
}

func (w *Watch) push(recs []Record) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return
	}
	n := len(w.pending)
	for _, r := range recs {
		if w.buckets == nil || w.buckets[r.Bucket] {
			w.pending = append(w.pending, r)
		}
	}
	// Signalled under mu, so that Close cannot close C in between.
	if len(w.pending) > n {
		select {
		case w.c <- struct{}{}:
		default:
		}
	}
}

type watchers struct {
	mu  sync.Mutex
	set map[*Watch]struct{}
}

func (ws *watchers) add(buckets []string) *Watch {
	w := &Watch{c: make(chan struct{}, 1), w: ws}
	if len(buckets) > 0 {
		w.buckets = make(map[string]bool, len(buckets))
		for _, b := range buckets {
			w.buckets[b] = true
		}
	}
	ws.mu.Lock()
	if ws.set == nil {
		ws.set = make(map[*Watch]struct{})
	}
	ws.set[w] = struct{}{}
	ws.mu.Unlock()
	return w
}

func (ws *watchers) remove(w *Watch) {
	ws.mu.Lock()
	delete(ws.set, w)
	ws.mu.Unlock()
}

func (ws *watchers) notify(recs []Record) {
	if len(recs) == 0 {
		return
	}
	ws.mu.Lock()
	list := make([]*Watch, 0, len(ws.set))
	for w := range ws.set {
		list = append(list, w)
	}
	ws.mu.Unlock()
	for _, w := range list {
		w.push(recs)
	}
}
