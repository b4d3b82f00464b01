package services

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// The witness. JetStream's Raft will not elect a metadata leader with
// fewer than two voters, so JetStream cannot run on one clustered
// server, and a server that ran standalone cannot become clustered
// later without its streams being dropped as orphans. So a node that
// founds a cluster alone runs two servers in its process: its own, and a
// witness that votes in the metadata group and holds no data (it has no
// node tag, and JetStream places replicas only on servers with one; see
// nodeTagPrefix). On one node that changes nothing to availability: both
// voters live and die with the node. Once three nodes' servers are
// current in the metadata group, the founder shuts the witness down and
// removes it from the group (JetStream's own peer removal), so that the
// group is the three (or more) nodes, and losing any one leaves a
// quorum. The marker file keeps the decision across restarts: a founder
// that restarts before the witness was retired starts it again, with
// its state, so that the group still has its two voters.

// witnessMarker is the file, in the services' data folder, whose
// presence says the witness still votes.
const witnessMarker = "witness"

// witnessWanted reports whether the node in dataDir still runs a witness.
func witnessWanted(dataDir string) bool {
	_, err := os.Stat(filepath.Join(dataDir, witnessMarker, "active"))
	return err == nil
}

// witness is the second voter of a founding node.
type witness struct {
	s          *Server
	srv        *server.Server
	name       string
	clusterURL string
	mainURL    string
}

func (w *witness) dir() string { return filepath.Join(w.s.cfg.DataDir, witnessMarker) }

// startWitness starts the witness of s, routed to s's cluster URL.
func startWitness(s *Server, mainURL string) (*witness, error) {
	w := &witness{s: s, name: s.name + "-witness", mainURL: mainURL}
	if err := os.MkdirAll(w.dir(), 0o700); err != nil {
		return nil, fmt.Errorf("create witness folder: %w", err)
	}
	if err := os.WriteFile(filepath.Join(w.dir(), "active"), []byte("this node's witness votes in the services cluster\n"), 0o600); err != nil {
		return nil, fmt.Errorf("mark witness: %w", err)
	}
	opts, err := w.options([]string{mainURL})
	if err != nil {
		return nil, err
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("create witness: %w", err)
	}
	srv.SetLoggerV2(natsLogger{s.log.With().Str("nats", w.name).Logger()}, false, false, false)
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, errors.New("witness did not start listening within 10 s")
	}
	w.srv = srv
	addr := srv.ClusterAddr()
	if addr == nil {
		srv.Shutdown()
		return nil, errors.New("witness has no cluster listener")
	}
	w.clusterURL = fmt.Sprintf("nats-route://%s:%d", s.cfg.Host, addr.Port)
	return w, nil
}

// options are the witness's: the node's accounts, random ports on the
// node's host, JetStream on with no node tag.
func (w *witness) options(routes []string) (*server.Options, error) {
	s := w.s
	opts, err := server.ProcessConfigFile(s.accountsPath())
	if err != nil {
		return nil, fmt.Errorf("read nats accounts %s: %w", s.accountsPath(), err)
	}
	opts.ServerName = w.name
	opts.Host = s.cfg.Host
	opts.Port = server.RANDOM_PORT
	opts.NoSigs = true
	opts.Cluster.Name = clusterName
	opts.Cluster.Host = s.cfg.Host
	opts.Cluster.Port = server.RANDOM_PORT
	opts.Cluster.TLSConfig = s.tls
	opts.Cluster.TLSTimeout = 5
	if opts.Routes, err = parseRoutes(routes); err != nil {
		return nil, err
	}
	opts.JetStream = true
	opts.StoreDir = w.dir()
	// The rule is the metadata leader's, and the witness may lead: it
	// must exclude itself too.
	opts.JetStreamUniqueTag = nodeTagPrefix
	return opts, nil
}

// reload gives the witness the node's current accounts. Random ports
// are kept by a reload.
func (w *witness) reload() error {
	opts, err := w.options([]string{w.mainURL})
	if err != nil {
		return err
	}
	return w.srv.ReloadOptions(opts)
}

func (w *witness) shutdown() {
	if w.srv != nil {
		w.srv.Shutdown()
		w.srv.WaitForShutdown()
	}
}

// retireWitness removes the witness once three nodes' servers are
// current in the metadata group: it shuts the witness down, asks the
// group to remove it, and forgets it once the group has.
func (s *Server) retireWitness(w *witness) {
	_, current, err := s.leaderView()
	if err != nil {
		return
	}
	nodes := 0
	for _, p := range current {
		if p != w.name && !strings.HasSuffix(p, "-witness") {
			nodes++
		}
	}
	if nodes < 3 {
		return
	}
	s.log.Info().Int("nodes", nodes).Msg("three nodes in the services cluster: retiring the witness")
	w.shutdown()
	if err := s.removePeer(w.name); err != nil {
		s.log.Warn().Err(err).Msg("witness not removed from the services cluster yet; will retry")
		return
	}
	if err := os.RemoveAll(w.dir()); err != nil {
		s.log.Warn().Err(err).Msg("witness folder not removed")
	}
	s.mu.Lock()
	s.wit = nil
	s.mu.Unlock()
	s.log.Info().Msg("witness retired")
}

// leaderView asks the JetStream metadata leader, as the system account,
// for its view of the metadata group: its name and the peers that are
// current (itself included). Only the leader knows which are.
func (s *Server) leaderView() (leader string, current []string, err error) {
	nc, err := s.connect("system")
	if err != nil {
		return "", nil, err
	}
	defer nc.Close()
	msg, err := nc.Request("$SYS.REQ.SERVER.PING.JSZ", []byte(`{"leader_only":true}`), 2*time.Second)
	if err != nil {
		return "", nil, fmt.Errorf("ask the metadata leader: %w", err)
	}
	var r struct {
		Data *server.JSInfo `json:"data"`
	}
	if err := json.Unmarshal(msg.Data, &r); err != nil {
		return "", nil, fmt.Errorf("ask the metadata leader: %w", err)
	}
	if r.Data == nil || r.Data.Meta == nil || r.Data.Meta.Leader == "" {
		return "", nil, errors.New("no metadata leader")
	}
	current = append(current, r.Data.Meta.Leader)
	for _, p := range r.Data.Meta.Replicas {
		if p.Current && !p.Offline {
			current = append(current, p.Name)
		}
	}
	return r.Data.Meta.Leader, current, nil
}

// removePeer asks JetStream's metadata leader, as the system account, to
// remove the server named peer from the cluster.
func (s *Server) removePeer(peer string) error {
	nc, err := s.connect("system")
	if err != nil {
		return err
	}
	defer nc.Close()
	req, _ := json.Marshal(server.JSApiMetaServerRemoveRequest{Server: peer})
	msg, err := nc.Request(server.JSApiRemoveServer, req, 5*time.Second)
	if err != nil {
		return fmt.Errorf("remove %s: %w", peer, err)
	}
	var r errorReply
	if err := json.Unmarshal(msg.Data, &r); err != nil {
		return fmt.Errorf("remove %s: %w", peer, err)
	}
	if err := r.err(); err != nil {
		// Already gone counts as done.
		if slices.Contains([]int{10044}, r.Error.Code) {
			return nil
		}
		return fmt.Errorf("remove %s: %w", peer, err)
	}
	return nil
}

// connect opens a client connection to this node's server as the user
// derived for label ("system", "platform" or "app ID").
func (s *Server) connect(label string) (*nats.Conn, error) {
	kp, err := userKey(s.cfg.Secret, label)
	if err != nil {
		return nil, err
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return nil, err
	}
	nc, err := nats.Connect(s.cfg.ClientURL(), nats.Nkey(pub, kp.Sign), nats.Name("gearbox "+s.name), nats.Timeout(5*time.Second))
	if err != nil {
		return nil, fmt.Errorf("connect to %s as %s: %w", s.cfg.ClientURL(), label, err)
	}
	return nc, nil
}
