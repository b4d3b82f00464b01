package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"gearbox/store/internalapi"
)

// SyncResult says what one anti-entropy round did.
type SyncResult struct {
	Peer    string
	InSync  bool // digests matched at the first level
	Full    bool // a full resynchronisation (last sync older than the TTL)
	Leaves  int  // differing leaves examined
	Pulled  int  // records taken from the peer
	Pushed  int  // records sent to the peer
	Dropped int  // local records the cluster had forgotten (full resync)
}

func (s *Store) triggerSync() {
	select {
	case s.syncNow <- struct{}{}:
	default:
	}
}

func (s *Store) syncLoop() {
	var lastWarn time.Time
	s.triggerSync()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.syncNow:
		case <-time.After(jitter(s.cfg.AntiEntropyInterval)):
		}
		res, err := s.SyncOnce(s.ctx)
		switch {
		case errors.Is(err, ErrNoPeer), errors.Is(err, context.Canceled), errors.Is(err, ErrClosed):
		case err != nil:
			// A peer that just died stays "alive" for a few rounds:
			// warn once a minute, the rest at debug level.
			ev := s.log.Debug()
			if now := time.Now(); now.Sub(lastWarn) >= time.Minute {
				ev, lastWarn = s.log.Warn(), now
			}
			ev.Err(err).Str("peer", res.Peer).Msg("anti-entropy round failed")
		case res.Pulled+res.Pushed+res.Dropped > 0 || res.Full:
			s.log.Info().Str("peer", res.Peer).Bool("full", res.Full).Int("leaves", res.Leaves).
				Int("pulled", res.Pulled).Int("pushed", res.Pushed).Int("dropped", res.Dropped).Msg("anti-entropy repaired state")
		}
	}
}

// SyncOnce runs one anti-entropy round with a random alive peer. It returns
// ErrNoPeer when this member is alone.
func (s *Store) SyncOnce(ctx context.Context) (SyncResult, error) {
	var peers []Member
	for _, m := range s.Members() {
		if m.Name != s.cfg.Name && m.Status == StatusAlive && m.InternalAddr != "" {
			peers = append(peers, m)
		}
	}
	if len(peers) == 0 {
		return SyncResult{}, ErrNoPeer
	}
	return s.SyncWith(ctx, peers[rand.N(len(peers))].InternalAddr)
}

// SyncWith runs one anti-entropy round with the peer whose internal API is
// at addr: it walks the digest tree down to the differing leaves, then
// pulls the records the peer holds newer and pushes those this member
// holds newer. When this member's last sync is older than the tombstone
// TTL it compares everything, and drops records the peer never heard of
// that are older than the TTL: the cluster deleted and forgot them while
// this member was away. Watchers see the dropped records as deletes.
// Conversely, from a peer that has itself been away that long, it takes
// no record older than the TTL that it lacks: the peer's own full resync
// settles those.
func (s *Store) SyncWith(ctx context.Context, addr string) (SyncResult, error) {
	if s.isClosed() {
		return SyncResult{}, ErrClosed
	}
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	res := SyncResult{Peer: addr}
	now := s.cfg.Now()
	cutoff := now.Add(-s.cfg.TombstoneTTL).UnixMilli()
	last := s.db.lastSync()
	res.Full = !last.IsZero() && now.Sub(last) > s.cfg.TombstoneTTL

	var leaves []string
	var peerSync int64
	if res.Full {
		leaves = []string{""}
	} else {
		level := []string{""}
		for depth := 0; depth < leafDigits; depth++ {
			var resp digestResponse
			if err := s.client.call(ctx, addr, http.MethodPost, internalapi.PathStoreDigest, digestRequest{Prefixes: level}, &resp); err != nil {
				return res, fmt.Errorf("anti-entropy digest: %w", err)
			}
			var diff []string
			for _, p := range level {
				mine, _ := s.db.children(p)
				theirs := resp.Children[p]
				if len(theirs) != 16 {
					return res, fmt.Errorf("anti-entropy digest: peer sent %d children for %q", len(theirs), p)
				}
				for c := 0; c < 16; c++ {
					if mine[c] != theirs[c] {
						diff = append(diff, p+strconv.FormatInt(int64(c), 16))
					}
				}
			}
			if len(diff) == 0 {
				res.InSync = depth == 0
				return res, s.synced(now)
			}
			level = diff
		}
		leaves = level
	}
	res.Leaves = len(leaves)

	var sums summariesResponse
	if err := s.client.call(ctx, addr, http.MethodPost, internalapi.PathStoreSummaries, digestRequest{Prefixes: leaves}, &sums); err != nil {
		return res, fmt.Errorf("anti-entropy summaries: %w", err)
	}
	peerSync = sums.LastSync
	mine, err := s.db.summaries(leaves)
	if err != nil {
		return res, err
	}
	theirs := make(map[string]Summary, len(sums.Summaries))
	for _, t := range sums.Summaries {
		theirs[Ref{t.Bucket, t.Key}.id()] = t
	}
	// Forgetting is trusted only from a peer that is itself in step with
	// the cluster; a fresh or long-gone peer knows nothing of deletes. A
	// peer whose last sync is older than the TTL (stale) may hold records
	// the cluster deleted and has since forgotten.
	peerTrusted := peerSync > 0 && now.UnixMilli()-peerSync <= s.cfg.TombstoneTTL.Milliseconds()
	peerStale := peerSync > 0 && !peerTrusted
	expired := func(sm Summary) bool { return sm.Deleted && sm.Version.Wall < cutoff }

	var pull, push []Ref
	var forget []Summary
	for _, m := range mine {
		id := Ref{m.Bucket, m.Key}.id()
		t, ok := theirs[id]
		delete(theirs, id)
		switch {
		case ok && t.Version.Newer(m.Version):
			// Also an expired tombstone: it still supersedes the older
			// record held here, which would otherwise outlive it and
			// come back once the peer collects it.
			pull = append(pull, Ref{t.Bucket, t.Key})
		case ok && m.Version.Newer(t.Version), !ok:
			if expired(m) {
				continue
			}
			if !ok && res.Full && peerTrusted && m.Version.Wall < cutoff {
				forget = append(forget, m)
				continue
			}
			push = append(push, Ref{m.Bucket, m.Key})
		}
	}
	for _, t := range theirs {
		if expired(t) || (peerStale && t.Version.Wall < cutoff) {
			continue
		}
		pull = append(pull, Ref{t.Bucket, t.Key})
	}

	if len(pull) > 0 {
		recs, err := s.client.get(ctx, addr, pull)
		if err != nil {
			return res, fmt.Errorf("anti-entropy pull: %w", err)
		}
		applied, err := s.merge(recs, fromPull)
		if err != nil {
			return res, fmt.Errorf("anti-entropy pull: %w", err)
		}
		res.Pulled = len(applied)
	}
	if len(push) > 0 {
		recs, err := s.db.getMany(push)
		if err != nil {
			return res, fmt.Errorf("anti-entropy push: %w", err)
		}
		if err := s.client.call(ctx, addr, http.MethodPost, internalapi.PathStorePut, recordsBody{Records: recs}, nil); err != nil {
			return res, fmt.Errorf("anti-entropy push: %w", err)
		}
		res.Pushed = len(recs)
	}
	if len(forget) > 0 {
		n, err := s.db.drop(forget, false, true)
		if err != nil {
			return res, fmt.Errorf("anti-entropy forget: %w", err)
		}
		res.Dropped = n
	}
	s.count(func(st *Stats) {
		st.SyncPulled += uint64(res.Pulled)
		st.SyncPushed += uint64(res.Pushed)
	})
	if peerStale && !res.Full {
		// This member did not get the peer's old records, so the round
		// does not make it a trusted source for the peer's full resync
		// (nor for anyone's): a fresh member that synced only with a
		// stale one would otherwise have it drop everything old.
		s.count(func(st *Stats) { st.SyncRounds++ })
		return res, nil
	}
	return res, s.synced(now)
}

func (s *Store) synced(at time.Time) error {
	s.count(func(st *Stats) { st.SyncRounds++ })
	if err := s.db.setLastSync(at); err != nil {
		return fmt.Errorf("record last sync: %w", err)
	}
	return nil
}
