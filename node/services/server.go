package services

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"gearbox/store"
	"gearbox/store/internalapi"
	"gearbox/store/state"
)

// clusterName names the NATS cluster of every gearbox cluster: servers
// of different gearbox clusters cannot route to each other anyway, as
// their routes' TLS keys differ.
const clusterName = "gearbox"

// nodeTagPrefix prefixes the tag that names a server's node. JetStream
// places a stream's replicas on servers with distinct such tags, and on
// no server without one: the witness has none, so it never holds data.
const nodeTagPrefix = "node:"

// resyncInterval is how often the services check routes, accounts and
// the witness without a change to wake them.
const resyncInterval = 5 * time.Second

// raiseInterval is how often the metadata leader looks for streams with
// fewer replicas than the cluster has nodes (three at most).
const raiseInterval = 30 * time.Second

// Server runs a node's cluster services: its embedded NATS server (and
// the witness while it needs one), kept in step with the store's node
// and app records. Create it with New, then Start; Leave or Close stop
// it.
type Server struct {
	cfg  Config
	st   *store.Store
	name string
	log  zerolog.Logger
	tls  *tls.Config

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	started bool
	closed  bool
	srv     *server.Server // the node's NATS server, once running
	wit     *witness       // the witness, while this node runs one
	ready   chan struct{}  // closed once srv runs
	// Owned by the run goroutine.
	routes   []string // route URLs srv was last given, sorted
	accounts string   // accounts file srv was last given
	apps     map[string]bool
	joined   bool      // this node's record says NATSJoined
	raisedTo int       // the replicas raiseReplicas last raised streams to
	raisedAt time.Time // and when
}

// New validates cfg and returns a Server that does nothing until Start.
func New(cfg Config) (*Server, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	s := &Server{
		cfg:   cfg,
		st:    cfg.Store,
		name:  cfg.Store.Name(),
		log:   cfg.Logger.With().Str("component", "services").Logger(),
		tls:   internalapi.PeerTLS(cfg.Secret),
		ready: make(chan struct{}),
		apps:  map[string]bool{},
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// Start creates the data folder and starts the services in the
// background: a node with no JetStream state yet first looks for other
// nodes for Config.Settle, then the NATS server starts. Ready is closed
// once it runs.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return ErrClosed
	case s.started:
		return ErrStarted
	}
	if err := os.MkdirAll(s.cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", s.cfg.DataDir, err)
	}
	s.started = true
	s.wg.Go(s.run)
	return nil
}

// Ready is closed once the node's NATS server runs.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// ClientURL returns the URL of this node's NATS server, for its gears.
func (s *Server) ClientURL() string { return s.cfg.ClientURL() }

// ClusterAddr returns host:port of this node's NATS cluster listener, as
// its node record announces it.
func (s *Server) ClusterAddr() string { return s.cfg.ClusterAddr() }

// NATS returns the node's NATS server, or nil while it does not run.
func (s *Server) NATS() *server.Server {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.srv
}

// Leave stops the services as a member that leaves does. JetStream keeps
// this server as a peer: a node that leaves for good is removed from it
// by the cluster (see the node removal), one that restarts comes back.
func (s *Server) Leave(ctx context.Context) error { return s.Close() }

// Close stops the services and the NATS servers. It is safe to call more
// than once.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
	s.mu.Lock()
	srv, wit := s.srv, s.wit
	s.mu.Unlock()
	if srv != nil {
		srv.Shutdown()
		srv.WaitForShutdown()
	}
	if wit != nil {
		wit.shutdown()
	}
	return nil
}

func (s *Server) jsDir() string        { return filepath.Join(s.cfg.DataDir, "jetstream") }
func (s *Server) accountsPath() string { return filepath.Join(s.cfg.DataDir, "accounts.conf") }

// hasState reports whether this node's JetStream has been part of a
// cluster before: its metadata group's files exist.
func (s *Server) hasState() bool {
	_, err := os.Stat(filepath.Join(s.jsDir(), sysAccount, "_js_", "_meta_"))
	return err == nil
}

// run starts the NATS server and keeps it in step with the store.
func (s *Server) run() {
	watch := s.st.Watch(state.BucketNodes, state.BucketApps)
	defer watch.Close()
	for wait := 2 * time.Second; ; wait = min(2*wait, time.Minute) {
		err := s.startNATS(watch)
		if err == nil {
			break
		}
		if s.ctx.Err() != nil || errors.Is(err, ErrClosed) {
			return
		}
		s.log.Error().Err(err).Str("fix", "check that the NATS ports are free on this address, and the data folder").
			Dur("retry_in", wait).Msg("cluster services did not start")
		select {
		case <-s.ctx.Done():
			return
		case <-time.After(wait):
		}
	}
	t := time.NewTimer(time.Second)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-watch.C():
			watch.Next()
		case <-s.st.MemberChanges():
		case <-t.C:
		}
		s.syncOnce()
		s.raiseReplicas()
		// Until it has joined, the node checks every second, so that
		// nodes waiting for it to join do not wait long.
		next := time.Second
		if s.joined {
			next = resyncInterval + rand.N(resyncInterval/5)
		}
		if !t.Stop() {
			select {
			case <-t.C:
			default:
			}
		}
		t.Reset(next)
	}
}

// startNATS decides whether this node founds the cluster (with a
// witness), bootstraps it with the other new nodes, or joins it, and
// starts its NATS server.
//
// Joining is serialised: a new server's JetStream votes for any
// candidate while its log is empty, so two new servers joining at once
// could elect one of them with an empty log over the existing members
// and wipe the cluster's metadata. So a new node waits until every new
// node before it (by name) is current in the metadata group; a lone new
// node cannot win an election against members with data.
func (s *Server) startNATS(watch *store.Watch) (err error) {
	if err := s.writeAccounts(); err != nil {
		return err
	}
	found := false
	if s.hasState() {
		found = witnessWanted(s.cfg.DataDir)
		// A restart: the member list fills as gossip rejoins, and a
		// clustered JetStream server with no route refuses to start.
		if !found {
			if err := s.waitFor(watch, 4*s.cfg.Settle, func() bool { return len(s.peerRoutes()) > 0 }); err != nil && !errors.Is(err, errSettled) {
				return err
			}
		}
	} else {
		// A first start: look for other nodes for a while, so that nodes
		// started together see each other.
		if err := s.waitFor(watch, s.cfg.Settle, func() bool { return false }); err != nil && !errors.Is(err, errSettled) {
			return err
		}
		nodes := s.nodes()
		joined := false
		for _, n := range nodes {
			joined = joined || n.joined
		}
		switch {
		case joined:
			s.log.Info().Msg("joining the services cluster: waiting for new nodes before this one to join")
			err := s.waitFor(watch, 0, func() bool { return s.myTurn() })
			if err != nil {
				return err
			}
		case len(nodes) == 0:
			found = true
		}
	}
	// The accounts are written from a store that has caught up with a
	// peer: a route passes on the subscriptions of every account when it
	// connects, and NATS drops those of an account it does not know yet
	// (until the route reconnects).
	if len(s.st.Members()) > 1 {
		synced := func() bool { return !s.st.LastSync().IsZero() }
		if err := s.waitFor(watch, 4*s.cfg.Settle, synced); err != nil && !errors.Is(err, errSettled) {
			return err
		}
	}
	if err := s.writeAccounts(); err != nil {
		return err
	}
	var witURL string
	if found {
		w, err := startWitness(s, s.clusterURL())
		if err != nil {
			return err
		}
		s.mu.Lock()
		s.wit = w
		s.mu.Unlock()
		defer func() {
			if err != nil { // started again on the next try
				w.shutdown()
				s.mu.Lock()
				s.wit = nil
				s.mu.Unlock()
			}
		}()
		witURL = w.clusterURL
		s.log.Info().Msg("founding a services cluster alone: a witness votes beside this node until three nodes have joined")
	}
	routes := s.withWitness(s.wantedRoutes(), witURL)
	opts, err := s.options(routes)
	if err != nil {
		return err
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return fmt.Errorf("create nats server: %w", err)
	}
	srv.SetLoggerV2(natsLogger{s.log.With().Str("nats", s.name).Logger()}, false, false, false)
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return fmt.Errorf("nats server on %s did not start listening within 10 s", s.cfg.ClientURL())
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		srv.Shutdown()
		return ErrClosed
	}
	s.srv = srv
	s.routes = routes
	s.mu.Unlock()
	close(s.ready)
	s.log.Info().Str("client", s.cfg.ClientURL()).Str("cluster", s.cfg.ClusterAddr()).Int("routes", len(routes)).Msg("cluster services started")
	return nil
}

// errSettled ends a waitFor whose time ran out.
var errSettled = errors.New("settled")

// waitFor waits until done holds, checking it on every change of the
// nodes and members; with max > 0 it gives up after max (errSettled).
func (s *Server) waitFor(watch *store.Watch, max time.Duration, done func() bool) error {
	var timeout <-chan time.Time
	if max > 0 {
		t := time.NewTimer(max)
		defer t.Stop()
		timeout = t.C
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	members := s.st.MemberChanges()
	for !done() {
		select {
		case <-s.ctx.Done():
			return s.ctx.Err()
		case <-watch.C():
			watch.Next()
		case <-members:
		case <-tick.C:
		case <-timeout:
			return errSettled
		}
	}
	return nil
}

// peerNode is what the services know of another node.
type peerNode struct {
	name, nats string
	joined     bool
}

// nodes returns the other alive nodes that run cluster services.
func (s *Server) nodes() []peerNode {
	alive := map[string]bool{}
	for _, m := range s.st.Members() {
		alive[m.Name] = m.Status == store.StatusAlive
	}
	recs, err := s.st.List(state.BucketNodes)
	if err != nil {
		return nil
	}
	var out []peerNode
	for _, r := range recs {
		var n state.Node
		if r.Deleted || r.Decode(&n) != nil || n.Name == s.name || n.NATS == "" || !alive[n.Name] {
			continue
		}
		out = append(out, peerNode{name: n.Name, nats: n.NATS, joined: n.NATSJoined})
	}
	return out
}

// myTurn reports whether this new node may join: no new node with a
// lower name is still waiting to.
func (s *Server) myTurn() bool {
	for _, n := range s.nodes() {
		if !n.joined && n.name < s.name {
			return false
		}
	}
	return true
}

// markJoined sets NATSJoined in this node's record once its server is
// current in the metadata group.
func (s *Server) markJoined(srv *server.Server) {
	var n state.Node
	if _, err := s.st.Get(state.BucketNodes, s.name, &n); err != nil || n.NATS != s.cfg.ClusterAddr() {
		return
	}
	if s.joined = n.NATSJoined; s.joined {
		return
	}
	if leader, _ := metaPeers(srv); leader == "" || !srv.JetStreamIsCurrent() {
		return
	}
	n.NATSJoined = true
	if _, err := s.st.Put(s.ctx, state.BucketNodes, s.name, n); err != nil {
		s.log.Warn().Err(err).Msg("node record not updated")
		return
	}
	s.joined = true
	s.log.Info().Msg("joined the services cluster")
}

// clusterURL is this server's route URL.
func (s *Server) clusterURL() string { return "nats-route://" + s.cfg.ClusterAddr() }

// withWitness returns peers plus the witness's route, sorted.
func (s *Server) withWitness(peers []string, witURL string) []string {
	r := slices.Clone(peers)
	if witURL != "" {
		r = append(r, witURL)
	}
	sort.Strings(r)
	return r
}

// wantedRoutes returns the routes the NATS server should have: those of
// peerRoutes, or while gossip knows no other node's member (all members
// restarting at once), those of every node that has not left, which NATS
// keeps trying until they answer.
func (s *Server) wantedRoutes() []string {
	if r := s.peerRoutes(); len(r) > 0 {
		return r
	}
	return s.knownRoutes()
}

// peerRoutes returns the route URLs of the other nodes' NATS servers:
// those of node records whose members are alive or failed (NATS keeps
// trying those), sorted.
func (s *Server) peerRoutes() []string {
	return s.routesOf(func(status string) bool { return status == store.StatusAlive || status == store.StatusFailed })
}

// knownRoutes returns the route URLs of every other node whose member has
// not left the cluster, known to gossip or not, sorted.
func (s *Server) knownRoutes() []string {
	return s.routesOf(func(status string) bool { return status != store.StatusLeft && status != store.StatusLeaving })
}

// routesOf returns the route URLs of the other nodes' NATS servers whose
// member status (empty if gossip does not know the member) passes keep,
// sorted.
func (s *Server) routesOf(keep func(status string) bool) []string {
	status := map[string]string{}
	for _, m := range s.st.Members() {
		status[m.Name] = m.Status
	}
	recs, err := s.st.List(state.BucketNodes)
	if err != nil {
		return nil
	}
	var routes []string
	for _, r := range recs {
		var n state.Node
		if r.Deleted || r.Decode(&n) != nil || n.Name == s.name || n.NATS == "" {
			continue
		}
		if !keep(status[n.Name]) {
			continue
		}
		routes = append(routes, "nats-route://"+n.NATS)
	}
	sort.Strings(routes)
	return routes
}

// How the NATS routes between nodes find a dead peer: a route that
// answers none of routeMaxPingsOut pings sent routePingInterval apart is
// closed (and dialled again).
const (
	routePingInterval = time.Second
	routeMaxPingsOut  = 3
)

// options builds the NATS server's options: the accounts file, then
// what is not in it.
func (s *Server) options(routes []string) (*server.Options, error) {
	opts, err := server.ProcessConfigFile(s.accountsPath())
	if err != nil {
		return nil, fmt.Errorf("read nats accounts %s: %w", s.accountsPath(), err)
	}
	opts.ServerName = s.name
	opts.Host = s.cfg.Host
	opts.Port = s.cfg.ClientPort
	opts.NoSigs = true
	opts.MaxConn = 4096
	opts.Cluster.Name = clusterName
	opts.Cluster.Host = s.cfg.Host
	opts.Cluster.Port = s.cfg.ClusterPort
	// Advertised explicitly: on loopback a route's connections come from
	// 127.0.0.1, which NATS would otherwise gossip as the address.
	opts.Cluster.Advertise = s.cfg.ClusterAddr()
	opts.ClientAdvertise = netJoin(s.cfg.Host, s.cfg.ClientPort)
	opts.Cluster.TLSConfig = s.tls
	opts.Cluster.TLSTimeout = 5
	// A route to a node that the network cut off is found dead within
	// seconds (NATS's default pings every 30 s and takes minutes): until
	// then requests that the cut-off node could answer, such as a
	// bucket's direct reads, are routed to it and wait for nothing.
	opts.Cluster.PingInterval = routePingInterval
	opts.Cluster.MaxPingsOut = routeMaxPingsOut
	opts.Routes, err = parseRoutes(routes)
	if err != nil {
		return nil, err
	}
	opts.JetStream = true
	opts.StoreDir = s.cfg.DataDir
	opts.JetStreamMaxMemory = s.cfg.MaxMemory
	opts.JetStreamMaxStore = s.cfg.MaxStore
	opts.Tags = []string{nodeTagPrefix + s.name}
	opts.JetStreamUniqueTag = nodeTagPrefix
	return opts, nil
}

func netJoin(host string, port int) string { return net.JoinHostPort(host, strconv.Itoa(port)) }

func parseRoutes(routes []string) ([]*url.URL, error) {
	out := make([]*url.URL, 0, len(routes))
	for _, r := range routes {
		u, err := url.Parse(r)
		if err != nil {
			return nil, fmt.Errorf("nats route %q: %w", r, err)
		}
		out = append(out, u)
	}
	return out, nil
}

// writeAccounts writes the accounts file from the app records and
// reports whether it changed.
func (s *Server) writeAccounts() error {
	recs, err := s.st.List(state.BucketApps)
	if err != nil {
		return fmt.Errorf("list apps: %w", err)
	}
	var apps []accountApp
	seen := map[string]bool{}
	for _, r := range recs {
		var a state.App
		if r.Deleted || r.Decode(&a) != nil || a.ID == "" || seen[a.ID] {
			continue
		}
		seen[a.ID] = true
		apps = append(apps, accountApp{ID: a.ID, Limits: LimitsFor(a.GearSize)})
	}
	conf, err := renderAccounts(s.cfg.Secret, apps)
	if err != nil {
		return err
	}
	if conf == s.accounts {
		return nil
	}
	// The data of apps that are gone goes before their accounts do,
	// while their users can still reach it.
	for id := range s.apps {
		if !seen[id] {
			s.purgeApp(id)
		}
	}
	if err := writeFileAtomic(s.accountsPath(), []byte(conf)); err != nil {
		return fmt.Errorf("write nats accounts: %w", err)
	}
	s.accounts = conf
	s.apps = seen
	return nil
}

// purgeApp deletes what JetStream keeps for the app appID, which is
// being deleted: its streams and buckets, its lease bucket and its jobs'
// states in the platform's account. Every node does it when it sees the
// app go (what is already gone is not an error); what it could not
// delete is logged.
func (s *Server) purgeApp(appID string) {
	log := s.log.With().Str("app_id", appID).Logger()
	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	defer cancel()
	deleted := 0
	if nc, err := s.connect("app " + appID); err != nil {
		log.Warn().Err(err).Msg("cannot reach a deleted app's streams to delete them")
	} else {
		if js, err := jetstream.New(nc); err == nil {
			names := js.StreamNames(ctx)
			for name := range names.Name() {
				if err := js.DeleteStream(ctx, name); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
					log.Warn().Err(err).Str("stream", name).Msg("deleted app's stream not deleted")
					continue
				}
				deleted++
			}
			if err := names.Err(); err != nil {
				log.Warn().Err(err).Msg("cannot list a deleted app's streams")
			}
		}
		nc.Close()
	}
	if nc, err := s.connect("platform"); err == nil {
		if js, err := jetstream.New(nc); err == nil {
			if err := js.DeleteKeyValue(ctx, LeaseBucket(appID)); err != nil && !errors.Is(err, jetstream.ErrBucketNotFound) && !errors.Is(err, jetstream.ErrStreamNotFound) {
				log.Warn().Err(err).Msg("deleted app's lease bucket not deleted")
			}
			if st, err := js.Stream(ctx, "KV_"+JobsBucket); err == nil {
				if err := st.Purge(ctx, jetstream.WithPurgeSubject("$KV."+JobsBucket+"."+appID+".>")); err != nil {
					log.Warn().Err(err).Msg("deleted app's job states not purged")
				}
			}
		}
		nc.Close()
	}
	log.Info().Int("streams", deleted).Msg("deleted app's nats data removed")
}

// syncOnce brings the running server in step with the store: accounts
// and routes reloaded when they changed; the witness removed once the
// cluster no longer needs it.
func (s *Server) syncOnce() {
	s.mu.Lock()
	srv, wit := s.srv, s.wit
	s.mu.Unlock()
	if srv == nil {
		return
	}
	s.markJoined(srv)
	s.reapRemoved(srv)
	before := s.accounts
	if err := s.writeAccounts(); err != nil {
		s.log.Error().Err(err).Msg("nats accounts not updated")
		return
	}
	witURL := ""
	if wit != nil {
		witURL = wit.clusterURL
	}
	routes := s.withWitness(s.wantedRoutes(), witURL)
	if before == s.accounts && slices.Equal(routes, s.routes) {
		if wit != nil {
			s.retireWitness(wit)
		}
		return
	}
	opts, err := s.options(routes)
	if err == nil {
		err = srv.ReloadOptions(opts)
	}
	if err != nil {
		s.log.Error().Err(err).Msg("nats server not reloaded")
		return
	}
	if wit != nil && before != s.accounts {
		if err := wit.reload(); err != nil {
			s.log.Error().Err(err).Msg("witness not reloaded")
		}
	}
	s.log.Debug().Int("routes", len(routes)).Int("apps", len(s.apps)).Msg("nats server reloaded")
	s.routes = routes
}

// reapRemoved removes from JetStream's metadata group the servers of
// nodes an admin removed (gearbox node remove: the node record is gone,
// its admin record says removed) that are offline, so that JetStream
// places their replicas elsewhere and no longer counts them. Only the
// metadata leader does it.
func (s *Server) reapRemoved(srv *server.Server) {
	jsz, err := srv.Jsz(nil)
	if err != nil || jsz.Meta == nil || jsz.Meta.Leader != s.name {
		return
	}
	for _, p := range jsz.Meta.Replicas {
		if !p.Offline || !s.removedNode(p.Name) {
			continue
		}
		if err := s.removePeer(p.Name); err != nil {
			s.log.Warn().Err(err).Str("peer", p.Name).Msg("removed node's server not removed from the services cluster yet; will retry")
			continue
		}
		s.log.Info().Str("peer", p.Name).Msg("removed node's server removed from the services cluster")
	}
}

// removedNode reports whether an admin removed node name and it has not
// registered again since.
func (s *Server) removedNode(name string) bool {
	if _, err := s.st.GetRecord(state.BucketNodes, name); !errors.Is(err, store.ErrNotFound) {
		return false
	}
	var a state.NodeAdmin
	_, err := s.st.Get(state.BucketNodeAdmin, name, &a)
	return err == nil && a.Removed
}

// metaPeers returns the JetStream metadata group's leader and its
// current peers (leader included), as this server sees them.
func metaPeers(srv *server.Server) (leader string, current []string) {
	jsz, err := srv.Jsz(nil)
	if err != nil || jsz.Meta == nil || jsz.Meta.Leader == "" {
		return "", nil
	}
	current = append(current, jsz.Meta.Leader)
	for _, p := range jsz.Meta.Replicas {
		if p.Current && !p.Offline {
			current = append(current, p.Name)
		}
	}
	return jsz.Meta.Leader, current
}

// errorReply is the error part of a JetStream API reply.
type errorReply struct {
	Error *struct {
		Code        int    `json:"code"`
		Description string `json:"description"`
	} `json:"error,omitempty"`
	Success bool `json:"success,omitempty"`
}

func (r errorReply) err() error {
	if r.Error != nil {
		return fmt.Errorf("%s (%d)", r.Error.Description, r.Error.Code)
	}
	return nil
}

// Replicas returns how many replicas a stream or bucket should have now:
// the nodes that run cluster services (this one and the alive others),
// three at most.
func (s *Server) Replicas() int {
	return min(1+len(s.nodes()), 3)
}

// AppSeed returns the nkey seed of the app appID's user: what its gears
// connect with.
func (s *Server) AppSeed(appID string) ([]byte, error) { return AppSeed(s.cfg.Secret, appID) }

// ConnectPlatform opens a connection to this node's NATS server in the
// platform's account, where the node keeps its apps' daemon leases and
// job states. It reconnects on its own, for ever.
func (s *Server) ConnectPlatform() (*nats.Conn, error) {
	kp, err := userKey(s.cfg.Secret, "platform")
	if err != nil {
		return nil, err
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return nil, err
	}
	nc, err := nats.Connect(s.cfg.ClientURL(), nats.Nkey(pub, kp.Sign), nats.Name("gearbox "+s.name+" platform"),
		nats.Timeout(5*time.Second), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond),
		nats.RetryOnFailedConnect(true))
	if err != nil {
		return nil, fmt.Errorf("connect to %s as the platform: %w", s.cfg.ClientURL(), err)
	}
	return nc, nil
}

// raiseReplicas raises the replicas of every stream (and so bucket) of
// the platform's and the apps' accounts to Replicas, when this node's
// server leads JetStream's metadata: a cluster that grows from one node
// to three gets its data on three. Replicas are never lowered: a node
// that is down is expected back.
func (s *Server) raiseReplicas() {
	s.mu.Lock()
	srv := s.srv
	apps := slices.Collect(maps.Keys(s.apps))
	s.mu.Unlock()
	target := s.Replicas()
	if srv == nil || target < 2 || !srv.JetStreamIsLeader() {
		s.raisedTo = 0
		return
	}
	// A full pass when the target changes, else every raiseInterval:
	// streams that apps created since with fewer replicas.
	if target == s.raisedTo && time.Since(s.raisedAt) < raiseInterval {
		return
	}
	s.raisedTo, s.raisedAt = target, time.Now()
	slices.Sort(apps)
	labels := []string{"platform"}
	for _, id := range apps {
		labels = append(labels, "app "+id)
	}
	for _, label := range labels {
		if s.ctx.Err() != nil {
			return
		}
		s.raiseReplicasOf(label, target)
	}
}

// raiseReplicasOf raises the streams of the account of label's user.
func (s *Server) raiseReplicasOf(label string, target int) {
	nc, err := s.connect(label)
	if err != nil {
		return
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	defer cancel()
	streams := js.ListStreams(ctx)
	var low []jetstream.StreamConfig
	for info := range streams.Info() {
		if info.Config.Replicas < target {
			low = append(low, info.Config)
		}
	}
	for _, cfg := range low {
		from := cfg.Replicas
		cfg.Replicas = target
		if _, err := js.UpdateStream(ctx, cfg); err != nil {
			s.log.Warn().Err(err).Str("account", label).Str("stream", cfg.Name).Int("replicas", target).Msg("stream replicas not raised")
			continue
		}
		s.log.Info().Str("account", label).Str("stream", cfg.Name).Int("from", from).Int("replicas", target).Msg("stream replicas raised")
	}
}
