package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/serf"
	"github.com/rs/zerolog"
)

// Store is one member's replica of the cluster state, and its membership.
// Create it with New, then Start it; Leave announces departure, Close stops
// everything. All methods are safe for concurrent use.
type Store struct {
	cfg    Config
	log    zerolog.Logger
	db     *db
	clock  *Clock
	seal   *sealer
	client *peerClient
	watch  watchers

	serf   *serf.Serf
	events chan serf.Event

	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	syncNow chan struct{}
	pullSem chan struct{}

	mu        sync.Mutex
	started   bool
	startedAt time.Time // by cfg.Now; set once by Start
	closed    bool
	closeErr  error
	memberCh  []chan struct{}
	syncMu    sync.Mutex // one anti-entropy round at a time
	stats     Stats
	badSealAt time.Time
	refusedAt map[string]time.Time // last warning by reason
}

// Stats counts what the store has done since it was created.
type Stats struct {
	// Writes counts the records this member wrote (Batch, Put, Delete).
	Writes         uint64 `json:"writes"`
	EventsSent     uint64 `json:"events_sent"`
	EventsReceived uint64 `json:"events_received"`
	Announced      uint64 `json:"announced"`
	Pulled         uint64 `json:"pulled"`
	SyncRounds     uint64 `json:"sync_rounds"`
	SyncPulled     uint64 `json:"sync_pulled"`
	SyncPushed     uint64 `json:"sync_pushed"`
	Collected      uint64 `json:"collected"`
	Rejected       uint64 `json:"rejected"`
	// Refused counts records received and not merged: from too far in
	// the future, gossip older than the tombstone TTL, or older than a
	// delete this member has forgotten (see Merge).
	Refused uint64 `json:"refused"`
}

// New validates cfg and opens the member's state file. It does not touch
// the network: Start does.
func New(cfg Config) (*Store, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir %s: %w", cfg.DataDir, err)
	}
	d, err := openDB(filepath.Join(cfg.DataDir, "state.db"), cfg.NoSync)
	if err != nil {
		return nil, err
	}
	seal, err := newSealer(cfg.ClusterSecret)
	if err != nil {
		d.close()
		return nil, fmt.Errorf("store config: ClusterSecret: %w", err)
	}
	s := &Store{
		cfg:     cfg,
		log:     cfg.Logger.With().Str("component", "store").Logger(),
		db:      d,
		clock:   NewClock(cfg.Name, cfg.Now),
		seal:    seal,
		client:  &peerClient{http: cfg.HTTPClient},
		syncNow: make(chan struct{}, 1),
		pullSem: make(chan struct{}, 4),
	}
	// The clock must issue versions newer than anything already held, also
	// after a restart with a wall clock that went back.
	d.mu.RLock()
	for i := range d.tree.index {
		for _, sm := range d.tree.index[i] {
			s.clock.Observe(sm.Version)
		}
	}
	d.mu.RUnlock()
	s.clock.Observe(d.forgotten)
	// Watchers hear of changes from the db, in commit order.
	d.notify = s.watch.notify
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// Start creates the serf member (listening on the gossip port), and starts
// event handling, anti-entropy, tombstone collection and, if configured,
// joining.
func (s *Store) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if s.started {
		return ErrStarted
	}
	sc := serf.DefaultConfig()
	sc.NodeName = s.cfg.Name
	sc.MemberlistConfig = s.cfg.memberlist()
	sc.MemberlistConfig.Logger = serfLogger(s.cfg.Logger)
	sc.Logger = serfLogger(s.cfg.Logger)
	sc.LogOutput = nil
	sc.UserEventSizeLimit = s.cfg.UserEventSizeLimit
	snap, err := snapshotPath(s.cfg.DataDir)
	if err != nil {
		return err
	}
	sc.SnapshotPath = snap
	sc.RejoinAfterLeave = true
	sc.EnableNameConflictResolution = false
	if len(s.cfg.EncryptKey) > 0 {
		kr, err := memberlist.NewKeyring(nil, s.cfg.EncryptKey)
		if err != nil {
			return fmt.Errorf("gossip keyring: %w", err)
		}
		sc.MemberlistConfig.Keyring = kr
	}
	advertise := s.cfg.AdvertiseAddr
	if advertise == "" {
		advertise = s.cfg.BindAddr
	}
	sc.Tags = tagsFor(&s.cfg, advertise)
	s.events = make(chan serf.Event, 4096)
	sc.EventCh = s.events
	sf, err := serf.Create(sc)
	if err != nil {
		return fmt.Errorf("start gossip on %s:%d: %w", s.cfg.BindAddr, s.cfg.BindPort, err)
	}
	// With a wildcard bind, the internal address tag must carry the address
	// serf actually advertises.
	if s.cfg.AdvertiseAddr == "" && (s.cfg.BindAddr == "0.0.0.0" || s.cfg.BindAddr == "::") {
		local := sf.LocalMember()
		if err := sf.SetTags(tagsFor(&s.cfg, local.Addr.String())); err != nil {
			sf.Shutdown()
			return fmt.Errorf("set member tags: %w", err)
		}
	}
	s.serf = sf
	s.started = true
	s.startedAt = s.cfg.Now().Truncate(time.Millisecond) // as lastSync keeps it
	lm := sf.LocalMember()
	s.log.Info().Str("member", s.cfg.Name).Str("gossip", net.JoinHostPort(lm.Addr.String(), strconv.Itoa(int(lm.Port)))).
		Strs("roles", s.cfg.Roles).Bool("gossip_encrypted", len(s.cfg.EncryptKey) > 0).
		Int("records", s.db.count()).Msg("store started")

	s.wg.Go(s.eventLoop)
	s.wg.Go(s.syncLoop)
	s.wg.Go(s.gcLoop)
	if len(s.cfg.Join) > 0 {
		s.wg.Go(func() { s.joinLoop(s.cfg.Join) })
	}
	return nil
}

// Name returns this member's name.
func (s *Store) Name() string { return s.cfg.Name }

// snapshotPath returns where serf keeps its snapshot: in DATA_DIR/serf,
// a directory only the member can enter. Serf creates the file, and the
// compacted copies it renames over it, readable by all, and a node opens
// DATA_DIR to its gears' uids so that they reach their own directories:
// a gear could read a snapshot kept in DATA_DIR itself. A snapshot that
// an earlier version kept there is moved in.
func snapshotPath(dataDir string) (string, error) {
	dir := filepath.Join(dataDir, "serf")
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return "", fmt.Errorf("create %s: %w", dir, err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return "", err
	}
	path := filepath.Join(dir, "serf.snapshot")
	old := filepath.Join(dataDir, "serf.snapshot")
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		if err := os.Rename(old, path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("move the gossip snapshot into %s: %w", dir, err)
		}
	}
	os.Remove(old) // one left beside a newer one
	if err := os.Chmod(path, 0o600); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	return path, nil
}

// Reachable is where other members reach a listener bound to bound
// (host:port): bound, with advertised in place of a wildcard or missing
// IP.
func Reachable(bound, advertised string) string {
	host, port, err := net.SplitHostPort(bound)
	if err != nil {
		return bound
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = advertised
	}
	return net.JoinHostPort(host, port)
}

// AdvertiseAddr returns the IP address other members reach this one at:
// Config.AdvertiseAddr when set, else the address gossip chose at Start
// (empty before Start). Roles that publish an address of their own (a
// node's gears, a router, a broker's API) use it.
func (s *Store) AdvertiseAddr() string {
	if s.cfg.AdvertiseAddr != "" {
		return s.cfg.AdvertiseAddr
	}
	s.mu.Lock()
	sf := s.serf
	s.mu.Unlock()
	if sf == nil {
		return ""
	}
	return sf.LocalMember().Addr.String()
}

// Op is one write of a Batch: a put of Value, or a delete.
type Op struct {
	Bucket string
	Key    string
	Value  any
	Delete bool
}

// Put stores value (encoded as JSON) at bucket/key and returns its version.
func (s *Store) Put(ctx context.Context, bucket, key string, value any) (Version, error) {
	vs, err := s.Batch(ctx, []Op{{Bucket: bucket, Key: key, Value: value}})
	if err != nil {
		return Version{}, err
	}
	return vs[0], nil
}

// Delete removes bucket/key, leaving a tombstone, and returns its version.
// Deleting a missing key still records the delete.
func (s *Store) Delete(ctx context.Context, bucket, key string) (Version, error) {
	vs, err := s.Batch(ctx, []Op{{Bucket: bucket, Key: key, Delete: true}})
	if err != nil {
		return Version{}, err
	}
	return vs[0], nil
}

// Batch applies ops in one transaction (one fsync), then broadcasts each.
// It returns the versions given to the ops, in order.
func (s *Store) Batch(ctx context.Context, ops []Op) ([]Version, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if s.isClosed() {
		return nil, ErrClosed
	}
	recs := make([]Record, len(ops))
	for i, op := range ops {
		if err := validRef(op.Bucket, op.Key); err != nil {
			return nil, err
		}
		r := Record{Bucket: op.Bucket, Key: op.Key, Deleted: op.Delete}
		if !op.Delete {
			v, err := json.Marshal(op.Value)
			if err != nil {
				return nil, fmt.Errorf("encode %s/%s: %w", op.Bucket, op.Key, err)
			}
			r.Value = v
		}
		recs[i] = r
	}
	// Two concurrent writers to one key both succeed; the one with the
	// newer version wins, here and everywhere, as with writes from peers.
	for i := range recs {
		recs[i].Version = s.clock.Now()
	}
	// Local versions are newer than every version held or forgotten, so
	// none is refused.
	applied, _, err := s.db.merge(recs)
	if err != nil {
		return nil, fmt.Errorf("write state: %w", err)
	}
	s.count(func(st *Stats) { st.Writes += uint64(len(applied)) })
	for _, r := range applied {
		s.broadcast(r)
	}
	out := make([]Version, len(recs))
	for i, r := range recs {
		out[i] = r.Version
	}
	return out, nil
}

// Get decodes the live record at bucket/key into v and returns its version.
// It returns ErrNotFound for a missing or deleted key.
func (s *Store) Get(bucket, key string, v any) (Version, error) {
	r, err := s.GetRecord(bucket, key)
	if err != nil {
		return Version{}, err
	}
	if v != nil {
		if err := r.Decode(v); err != nil {
			return Version{}, err
		}
	}
	return r.Version, nil
}

// GetRecord returns the live record at bucket/key, or ErrNotFound.
func (s *Store) GetRecord(bucket, key string) (Record, error) {
	r, ok, err := s.db.get(bucket, key)
	if err != nil {
		return Record{}, err
	}
	if !ok || r.Deleted {
		return Record{}, fmt.Errorf("%s/%s: %w", bucket, key, ErrNotFound)
	}
	return r, nil
}

// List returns the live records of bucket, sorted by key.
func (s *Store) List(bucket string) ([]Record, error) { return s.db.list(bucket) }

// Dump returns every record held, tombstones included, sorted by bucket
// and key. It is meant for tests and diagnostics.
func (s *Store) Dump() ([]Record, error) {
	rs, err := s.db.dump()
	sortRecords(rs)
	return rs, err
}

// Digest returns the hash of the whole state: two members that hold the
// same records have the same digest.
func (s *Store) Digest() string { return s.db.rootDigest() }

// Len returns the number of records held, tombstones included.
func (s *Store) Len() int { return s.db.count() }

// LastSync returns when anti-entropy last completed (zero: never).
func (s *Store) LastSync() time.Time { return s.db.lastSync() }

// SyncedSinceStart reports whether an anti-entropy round with a peer has
// completed since Start: from then on the local records are at least as
// new as that peer's were, and not only what this member kept from an
// earlier run.
func (s *Store) SyncedSinceStart() bool {
	s.mu.Lock()
	at := s.startedAt
	s.mu.Unlock()
	return !at.IsZero() && !s.db.lastSync().Before(at)
}

// Stats returns counters of the store's activity.
func (s *Store) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// Watch returns a watch on the given buckets (all buckets if none).
func (s *Store) Watch(buckets ...string) *Watch { return s.watch.add(buckets) }

// Merge applies records received from elsewhere by last writer wins and
// notifies watchers of those that changed the state. It refuses, counts
// and logs (see Stats.Refused) two kinds of record, which are left out of
// the result without an error:
//
//   - a record whose version is more than Config.MaxClockSkew ahead of
//     this member's clock; it does not advance the clock either;
//   - a record for a key held here in no form, whose version is not newer
//     than the newest delete this member has forgotten (a tombstone it
//     collected after the TTL, or a record a full resync dropped): it may
//     be an old copy of a deleted record, and taking it would undo the
//     delete.
//
// Gossiped records are also refused when older than the tombstone TTL:
// gossip carries writes as they happen, so such an event is a replay.
func (s *Store) Merge(recs []Record) ([]Record, error) { return s.merge(recs, fromMerge) }

// Where merged records come from, as logged when some are refused.
const (
	fromGossip   = "gossip"
	fromAnnounce = "announced record pull"
	fromPull     = "anti-entropy pull"
	fromPush     = "anti-entropy push"
	fromMerge    = "merge"
)

// Why records are refused: the fixed reasons logged.
const (
	refusedAhead     = "version ahead of the local clock by more than max_clock_skew"
	refusedReplay    = "gossiped version older than the tombstone ttl"
	refusedForgotten = "version older than a delete this member forgot"
)

func (s *Store) merge(recs []Record, from string) ([]Record, error) {
	for _, r := range recs {
		if err := validRef(r.Bucket, r.Key); err != nil {
			return nil, err
		}
	}
	horizon := s.cfg.Now().Add(-s.cfg.TombstoneTTL).UnixMilli()
	ok := make([]Record, 0, len(recs))
	var replayed, ahead []Record
	for _, r := range recs {
		if from == fromGossip && r.Version.Wall < horizon {
			replayed = append(replayed, r)
			continue
		}
		if err := s.clock.Admit(r.Version, s.cfg.MaxClockSkew); err != nil {
			ahead = append(ahead, r)
			continue
		}
		ok = append(ok, r)
	}
	s.refused(from, refusedReplay, replayed)
	s.refused(from, refusedAhead, ahead)
	applied, forgotten, err := s.db.merge(ok)
	if err != nil {
		return nil, fmt.Errorf("merge state: %w", err)
	}
	s.refused(from, refusedForgotten, forgotten)
	return applied, nil
}

// refused counts records refused for reason and logs a warning for each
// reason at most once a minute, with the first record as an example.
func (s *Store) refused(from, reason string, recs []Record) {
	if len(recs) == 0 {
		return
	}
	now := s.cfg.Now()
	s.mu.Lock()
	s.stats.Refused += uint64(len(recs))
	total := s.stats.Refused
	quiet := now.Sub(s.refusedAt[reason]) < time.Minute && !s.refusedAt[reason].IsZero()
	if !quiet {
		if s.refusedAt == nil {
			s.refusedAt = make(map[string]time.Time)
		}
		s.refusedAt[reason] = now
	}
	s.mu.Unlock()
	ev := s.log.Debug()
	if !quiet {
		ev = s.log.Warn()
	}
	r := recs[0]
	ev = ev.Str("reason", reason).Str("source", from).Int("records", len(recs)).
		Str("bucket", r.Bucket).Str("key", r.Key).Stringer("version", r.Version).Uint64("refused_total", total)
	if reason == refusedAhead {
		ev = ev.Dur("max_clock_skew", s.cfg.MaxClockSkew).
			Str("fix", "check the clock (NTP) of the member named in the version; members' clocks must agree within max_clock_skew")
	}
	ev.Msg("refused records")
}

// Members returns every member serf knows, sorted by name, with the broker
// leader marked. Before Start it returns nil.
func (s *Store) Members() []Member {
	s.mu.Lock()
	sf := s.serf
	s.mu.Unlock()
	if sf == nil {
		return nil
	}
	sms := sf.Members()
	out := make([]Member, 0, len(sms))
	for _, sm := range sms {
		out = append(out, memberFromSerf(sm))
	}
	return markLeader(out)
}

// Leader returns the broker leader: the alive member with the broker role
// and the lowest name. ok is false when no broker is alive.
func (s *Store) Leader() (Member, bool) {
	for _, m := range s.Members() {
		if m.Leader {
			return m, true
		}
	}
	return Member{}, false
}

// MemberChanges returns a channel signalled (coalesced) whenever membership
// changes: a member joins, leaves, fails, or changes tags.
func (s *Store) MemberChanges() <-chan struct{} {
	ch := make(chan struct{}, 1)
	s.mu.Lock()
	s.memberCh = append(s.memberCh, ch)
	s.mu.Unlock()
	return ch
}

// Join joins the cluster through any of addrs (host[:port]) once, and
// returns how many it reached.
func (s *Store) Join(addrs []string) (int, error) {
	s.mu.Lock()
	sf := s.serf
	s.mu.Unlock()
	if sf == nil {
		return 0, errors.New("join: store not started")
	}
	n, err := sf.Join(addrs, true)
	if n > 0 {
		s.triggerSync()
	}
	return n, err
}

func (s *Store) joinLoop(addrs []string) {
	backoff := time.Second
	for attempt := 1; ; attempt++ {
		n, err := s.Join(addrs)
		if n > 0 {
			s.log.Info().Strs("addrs", addrs).Int("reached", n).Int("attempt", attempt).Msg("joined cluster")
			return
		}
		s.log.Warn().Err(err).Strs("addrs", addrs).Int("attempt", attempt).Dur("retry_in", backoff).Msg("join failed")
		select {
		case <-s.ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff *= 2
		if backoff > 30*time.Second {
			backoff = 30 * time.Second
		}
	}
}

// Leave announces this member's departure to the cluster and waits, up to
// ctx's deadline, for it to spread. The store keeps its data; Close it next.
func (s *Store) Leave(ctx context.Context) error {
	s.mu.Lock()
	sf := s.serf
	s.mu.Unlock()
	if sf == nil {
		return nil
	}
	done := make(chan error, 1)
	go func() { done <- sf.Leave() }()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("leave cluster: %w", err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("leave cluster: %w", ctx.Err())
	}
}

// RemoveMember forces member name out of the cluster: a member that has
// failed or left is marked left and erased from every member's list, so
// that it is not probed or reconnected to any more. It is for a member
// that will not return; an alive member is not removed (gossip would
// refute it) and an error says so. A name gossip does not know is not an
// error.
func (s *Store) RemoveMember(name string) error {
	s.mu.Lock()
	sf := s.serf
	s.mu.Unlock()
	if sf == nil {
		return errors.New("remove member: store not started")
	}
	for _, m := range sf.Members() {
		if m.Name == name && m.Status == serf.StatusAlive {
			return fmt.Errorf("remove member %s: it is alive", name)
		}
	}
	if err := sf.RemoveFailedNodePrune(name); err != nil {
		return fmt.Errorf("remove member %s: %w", name, err)
	}
	return nil
}

// Close stops gossip and every goroutine, and closes the state file. It is
// safe to call twice; it returns the first error.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		err := s.closeErr
		s.mu.Unlock()
		return err
	}
	s.closed = true
	sf := s.serf
	s.mu.Unlock()

	s.cancel()
	var errs []error
	if sf != nil {
		// Shutdown closes serf's listeners; our loops end on ctx.
		if err := sf.Shutdown(); err != nil {
			errs = append(errs, fmt.Errorf("stop gossip: %w", err))
		}
	}
	s.wg.Wait()
	s.cfg.HTTPClient.CloseIdleConnections()
	if err := s.db.close(); err != nil {
		errs = append(errs, fmt.Errorf("close state db: %w", err))
	}
	err := errors.Join(errs...)
	s.mu.Lock()
	s.closeErr = err
	s.mu.Unlock()
	return err
}

func (s *Store) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

func (s *Store) count(f func(*Stats)) {
	s.mu.Lock()
	f(&s.stats)
	s.mu.Unlock()
}

func (s *Store) gcLoop() {
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-time.After(jitter(s.cfg.GCInterval)):
		}
		s.collectOnce()
	}
}

// collectOnce drops tombstones older than the TTL.
func (s *Store) collectOnce() {
	n, err := s.db.collect(s.cfg.Now().Add(-s.cfg.TombstoneTTL))
	if err != nil {
		s.log.Error().Err(err).Msg("collect tombstones failed")
		return
	}
	if n > 0 {
		s.count(func(st *Stats) { st.Collected += uint64(n) })
		s.log.Debug().Int("collected", n).Msg("collected tombstones")
	}
}

// jitter returns d plus up to a quarter of d at random.
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return d
	}
	return d + rand.N(d/4+1)
}
