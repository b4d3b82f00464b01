package store

import (
	"encoding/json"
	"time"

	"github.com/hashicorp/serf/serf"
)

// Gossip payloads: one byte of kind, then JSON, then sealed with the
// cluster secret. A record that does not fit serf's event limit is
// announced (bucket, key, version, origin) and pulled from its origin.
const (
	eventName      = "gearbox-store"
	kindRecord     = 'r'
	kindAnnounce   = 'a'
	serfEnvelope   = 48 // bytes serf adds around name and payload (msgpack)
	maxEventsBatch = 256
)

type announce struct {
	Ref
	Version Version `json:"ver"`
	From    string  `json:"from"`
}

// broadcast sends r to the cluster as a user event, or announces it when it
// is too large. Failures are logged; anti-entropy repairs what gossip lost.
func (s *Store) broadcast(r Record) {
	s.mu.Lock()
	sf := s.serf
	s.mu.Unlock()
	if sf == nil {
		return
	}
	payload, err := s.encode(kindRecord, r)
	if err == nil && len(eventName)+len(payload)+serfEnvelope > s.cfg.UserEventSizeLimit {
		payload, err = s.encode(kindAnnounce, announce{Ref: Ref{r.Bucket, r.Key}, Version: r.Version, From: s.cfg.Name})
		s.count(func(st *Stats) { st.Announced++ })
	}
	if err == nil {
		err = sf.UserEvent(eventName, payload, false)
	}
	if err != nil {
		s.log.Warn().Err(err).Str("bucket", r.Bucket).Str("key", r.Key).Msg("broadcast failed; anti-entropy will carry it")
		return
	}
	s.count(func(st *Stats) { st.EventsSent++ })
}

func (s *Store) encode(kind byte, v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return s.seal.seal(append([]byte{kind}, b...))
}

// eventLoop consumes serf's events. User events are merged in batches:
// everything already queued is applied in one transaction.
func (s *Store) eventLoop() {
	for {
		var first serf.Event
		select {
		case <-s.ctx.Done():
			return
		case first = <-s.events:
		}
		batch := []serf.Event{first}
	drain:
		for len(batch) < maxEventsBatch {
			select {
			case e := <-s.events:
				batch = append(batch, e)
			default:
				break drain
			}
		}
		s.handleEvents(batch)
	}
}

func (s *Store) handleEvents(batch []serf.Event) {
	var recs []Record
	var anns []announce
	membersChanged := false
	for _, e := range batch {
		switch e := e.(type) {
		case serf.UserEvent:
			if e.Name != eventName {
				continue
			}
			rec, ann, ok := s.decodeEvent(e.Payload)
			if !ok {
				continue
			}
			if ann != nil {
				if ann.From != s.cfg.Name {
					anns = append(anns, *ann)
				}
				continue
			}
			recs = append(recs, rec)
		case serf.MemberEvent:
			membersChanged = true
			for _, m := range e.Members {
				if m.Name == s.cfg.Name {
					continue
				}
				s.log.Info().Str("member", m.Name).Str("addr", m.Addr.String()).Str("event", e.EventType().String()).Msg("membership changed")
			}
			if e.EventType() == serf.EventMemberJoin && s.db.lastSync().IsZero() {
				s.triggerSync()
			}
		}
	}
	if len(recs) > 0 {
		s.count(func(st *Stats) { st.EventsReceived += uint64(len(recs)) })
		if _, err := s.merge(recs, fromGossip); err != nil {
			s.log.Error().Err(err).Int("records", len(recs)).Msg("merge gossiped records failed")
		}
	}
	for _, a := range anns {
		s.pullAnnounced(a)
	}
	if membersChanged {
		s.mu.Lock()
		for _, ch := range s.memberCh {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
		s.mu.Unlock()
	}
}

func (s *Store) decodeEvent(payload []byte) (Record, *announce, bool) {
	plain, err := s.seal.open(payload)
	if err != nil || len(plain) < 2 {
		s.rejected("gossip payload not sealed with this cluster's secret")
		return Record{}, nil, false
	}
	switch plain[0] {
	case kindRecord:
		var r Record
		if err := json.Unmarshal(plain[1:], &r); err != nil || validRef(r.Bucket, r.Key) != nil {
			s.rejected("malformed gossiped record")
			return Record{}, nil, false
		}
		return r, nil, true
	case kindAnnounce:
		var a announce
		if err := json.Unmarshal(plain[1:], &a); err != nil || validRef(a.Bucket, a.Key) != nil {
			s.rejected("malformed announce")
			return Record{}, nil, false
		}
		return Record{}, &a, true
	}
	s.rejected("unknown gossip payload kind")
	return Record{}, nil, false
}

// rejected counts a refused payload and logs at most one warning a minute.
func (s *Store) rejected(why string) {
	s.mu.Lock()
	s.stats.Rejected++
	now := time.Now()
	quiet := now.Sub(s.badSealAt) < time.Minute
	if !quiet {
		s.badSealAt = now
	}
	n := s.stats.Rejected
	s.mu.Unlock()
	if !quiet {
		s.log.Warn().Str("reason", why).Uint64("rejected_total", n).Msg("rejected gossip payload")
	}
}

// pullAnnounced fetches an announced record from its origin if it is newer
// than what is held. Pulls run in the background, a few at a time; a
// failed pull is left to anti-entropy.
func (s *Store) pullAnnounced(a announce) {
	// An announce is refused for the same reasons as a gossiped record;
	// the record pulled is then checked again, as any record merged.
	ref := []Record{{Bucket: a.Bucket, Key: a.Key, Version: a.Version}}
	now := s.cfg.Now()
	if a.Version.Wall < now.Add(-s.cfg.TombstoneTTL).UnixMilli() {
		s.refused(fromGossip, refusedReplay, ref)
		return
	}
	if a.Version.Wall > now.Add(s.cfg.MaxClockSkew).UnixMilli() {
		s.refused(fromGossip, refusedAhead, ref)
		return
	}
	if cur, ok := s.db.summary(a.Bucket, a.Key); ok && !a.Version.Newer(cur.Version) {
		return
	}
	var origin *Member
	for _, m := range s.Members() {
		if m.Name == a.From && m.Status == StatusAlive {
			origin = &m
			break
		}
	}
	if origin == nil {
		return
	}
	s.wg.Go(func() {
		select {
		case s.pullSem <- struct{}{}:
		case <-s.ctx.Done():
			return
		}
		defer func() { <-s.pullSem }()
		recs, err := s.client.get(s.ctx, origin.InternalAddr, []Ref{a.Ref})
		if err != nil {
			s.log.Debug().Err(err).Str("from", a.From).Str("key", a.Key).Msg("pull announced record failed")
			return
		}
		if _, err := s.merge(recs, fromAnnounce); err != nil {
			s.log.Error().Err(err).Msg("merge pulled record failed")
			return
		}
		s.count(func(st *Stats) { st.Pulled += uint64(len(recs)) })
	})
}
