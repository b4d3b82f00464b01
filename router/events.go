package router

import (
	"gearbox/store"
	"gearbox/store/state"
)

// newestEvent returns the sequence of the newest routing event in the
// store, 0 if none: where a starting router begins to follow, since its
// table is built from the records the earlier events announced.
func (r *Router) newestEvent() uint64 {
	recs, err := r.st.List(state.BucketRoutingEvents)
	if err != nil {
		r.log.Warn().Err(err).Msg("list routing events failed")
		return 0
	}
	var newest uint64
	for _, rec := range recs {
		var e state.RoutingEvent
		if rec.Decode(&e) == nil && e.Seq > newest {
			newest = e.Seq
		}
	}
	return newest
}

// follow notes the routing events among watched records: each is logged
// (debug) and the newest sequence kept. The rebuild that follows acts on
// the records they announce.
func (r *Router) follow(recs []store.Record) {
	for _, rec := range recs {
		if rec.Bucket != state.BucketRoutingEvents || rec.Deleted {
			continue
		}
		var e state.RoutingEvent
		if err := rec.Decode(&e); err != nil {
			r.log.Warn().Err(err).Str("key", rec.Key).Msg("skip undecodable routing event")
			continue
		}
		if e.Seq > r.lastSeq.Load() {
			r.lastSeq.Store(e.Seq)
		}
		ev := r.log.Debug().Uint64("seq", e.Seq).Str("action", e.Action).Str("app", state.AppKey(e.Namespace, e.AppName))
		if e.GearID != "" {
			ev = ev.Str("gear", e.GearID)
		}
		if e.Alias != "" {
			ev = ev.Str("alias", e.Alias)
		}
		if e.PublicAddress != "" {
			ev = ev.Str("endpoint", e.PublicAddress).Int("port", e.PublicPort)
		}
		ev.Msg("routing event")
	}
}
