package services

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
	"github.com/rs/zerolog"

	"gearbox/internal/testutil"
	"gearbox/store"
	"gearbox/store/state"
	"gearbox/store/storetest"
)

// Block 8 of 127.0.x.y is this package's (see testutil.IPs).
var ips = testutil.NewIPs(8, 1)

const testSecret = "services test secret"

// node is one in-process node member: a store member and its services.
type node struct {
	m   *storetest.Member
	svc *Server
}

// startNode starts a store member on a fresh address, joins it to peers,
// registers its node record and starts its services.
func startNode(t *testing.T, name string, peers ...*node) *node {
	t.Helper()
	addr := ips.Next()
	cfg := store.LocalConfig(name, filepath.Join(t.TempDir(), "data"), addr)
	cfg.ClusterSecret = testSecret
	m := storetest.Start(t, cfg)
	if len(peers) > 0 {
		var ms []*storetest.Member
		for _, p := range peers {
			ms = append(ms, p.m)
		}
		m.Join(t, ms...)
	}
	scfg := FastConfig(m.Store, filepath.Join(t.TempDir(), "nats"), addr, testSecret)
	if testing.Verbose() {
		scfg.Logger = zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.DebugLevel)
	}
	svc, err := New(scfg)
	if err != nil {
		t.Fatalf("new services %s: %v", name, err)
	}
	if _, err := m.Store.Put(context.Background(), state.BucketNodes, name, state.Node{Name: name, Addr: addr, NATS: svc.ClusterAddr()}); err != nil {
		t.Fatalf("register %s: %v", name, err)
	}
	if err := svc.Start(context.Background()); err != nil {
		t.Fatalf("start services %s: %v", name, err)
	}
	t.Cleanup(func() { svc.Close() })
	n := &node{m: m, svc: svc}
	select {
	case <-svc.Ready():
	case <-time.After(20 * time.Second):
		t.Fatalf("services of %s not ready within 20 s", name)
	}
	return n
}

// startServices creates and starts services with cfg, closed at the
// test's end.
func startServices(t *testing.T, cfg Config) *Server {
	t.Helper()
	svc, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	return svc
}

// putApp writes an app record through n's store.
func putApp(t *testing.T, n *node, id, size string) {
	t.Helper()
	a := state.App{ID: id, Name: id, Domain: "d", Owner: "o", GearSize: size, State: state.GearStarted}
	if _, err := n.m.Store.Put(context.Background(), state.BucketApps, state.AppKey("d", id), a); err != nil {
		t.Fatalf("put app %s: %v", id, err)
	}
}

// connectApp connects to n's NATS server as app id's user, as a gear
// would, with the seed AppSeed derives.
func connectApp(t *testing.T, n *node, id string) (*nats.Conn, error) {
	t.Helper()
	seed, err := AppSeed(testSecret, id)
	if err != nil {
		t.Fatal(err)
	}
	kp, err := nkeys.FromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	return nats.Connect(n.svc.ClientURL(), nats.Nkey(pub, kp.Sign), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
}

// waitConnectApp waits until app id's user can connect to n (its account
// reached n's server) and use JetStream (a metadata leader exists).
func waitConnectApp(t *testing.T, n *node, id string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	var nc *nats.Conn
	var js jetstream.JetStream
	var last error
	testutil.WaitFor(t, 30*time.Second, "app "+id+" uses jetstream on "+n.m.Config.Name, func() bool {
		if nc == nil {
			c, err := connectApp(t, n, id)
			if err != nil {
				last = err
				return false
			}
			nc = c
			js, _ = jetstream.New(nc)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := js.AccountInfo(ctx)
		last = err
		return err == nil
	}, func() string { return fmt.Sprint(last) })
	t.Cleanup(nc.Close)
	return nc, js
}

// retry runs f until it succeeds or 20 s pass: JetStream's first
// requests after a leader change may time out.
func retry(t *testing.T, what string, f func(ctx context.Context) error) {
	t.Helper()
	retryFor(t, 20*time.Second, what, f)
}

// retryFor is retry for up to d.
func retryFor(t *testing.T, d time.Duration, what string, f func(ctx context.Context) error) {
	t.Helper()
	var last error
	testutil.WaitFor(t, d, what, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		last = f(ctx)
		return last == nil
	}, func() string { return fmt.Sprint(last) })
}

func TestOneNodeRunsJetStream(t *testing.T) {
	testutil.CheckNoLeaks(t, "nats-server", "gearbox/node/services.")
	n := startNode(t, "n1")
	if !witnessWanted(n.svc.cfg.DataDir) {
		t.Fatal("a node alone did not found with a witness")
	}
	putApp(t, n, "a1", state.SizeSmall)
	_, js := waitConnectApp(t, n, "a1")
	var kv jetstream.KeyValue
	retry(t, "create bucket", func(ctx context.Context) (err error) {
		kv, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "counters"})
		return err
	})
	ctx := context.Background()
	rev, err := kv.Create(ctx, "lease", []byte("n1"))
	if err != nil {
		t.Fatalf("create key: %v", err)
	}
	if _, err := kv.Update(ctx, "lease", []byte("n1"), rev+10); err == nil {
		t.Fatal("an update with a stale revision was accepted")
	}
	if _, err := kv.Update(ctx, "lease", []byte("n1 again"), rev); err != nil {
		t.Fatalf("update with the right revision: %v", err)
	}
}

func TestAppsCannotReachEachOther(t *testing.T) {
	n := startNode(t, "n1")
	putApp(t, n, "aaa", state.SizeSmall)
	putApp(t, n, "bbb", state.SizeSmall)
	ncA, jsA := waitConnectApp(t, n, "aaa")
	ncB, jsB := waitConnectApp(t, n, "bbb")
	retry(t, "create B's bucket", func(ctx context.Context) error {
		kv, err := jsB.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "secrets"})
		if err == nil {
			_, err = kv.Put(ctx, "k", []byte("B's value"))
		}
		return err
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	// A sees no bucket of B's, and cannot make one with B's name reach
	// B's data.
	if _, err := jsA.KeyValue(ctx, "secrets"); !errors.Is(err, jetstream.ErrBucketNotFound) {
		t.Fatalf("A looking up B's bucket: %v, want bucket not found", err)
	}
	// Core NATS subjects are per account too.
	sub, err := ncB.SubscribeSync("orders")
	if err != nil {
		t.Fatal(err)
	}
	ncB.Flush()
	if err := ncA.Publish("orders", []byte("from A")); err != nil {
		t.Fatal(err)
	}
	ncA.Flush()
	if m, err := sub.NextMsg(300 * time.Millisecond); err == nil {
		t.Fatalf("B received A's message %q", m.Data)
	}
	// A user with a key not derived from the secret gets nothing.
	kp, _ := nkeys.CreateUser()
	pub, _ := kp.PublicKey()
	if nc, err := nats.Connect(n.svc.ClientURL(), nats.Nkey(pub, kp.Sign)); err == nil {
		nc.Close()
		t.Fatal("a key of no app was let in")
	} else if !strings.Contains(strings.ToLower(err.Error()), "authorization") {
		t.Fatalf("unknown key: %v, want an authorization error", err)
	}
	if nc, err := nats.Connect(n.svc.ClientURL()); err == nil {
		nc.Close()
		t.Fatal("a client with no credentials was let in")
	}
}

// waitThreeVoters waits until founder n1 has retired its witness and
// the metadata group, seen from n3, is the three nodes.
func waitThreeVoters(t *testing.T, n1, n3 *node) {
	t.Helper()
	testutil.WaitFor(t, 60*time.Second, "witness retired", func() bool {
		n1.svc.mu.Lock()
		defer n1.svc.mu.Unlock()
		return n1.svc.wit == nil
	}, func() string {
		jsz, _ := n1.svc.NATS().Jsz(nil)
		if jsz == nil || jsz.Meta == nil {
			return "no meta info"
		}
		var ps []string
		for _, p := range jsz.Meta.Replicas {
			ps = append(ps, fmt.Sprintf("%+v", *p))
		}
		return fmt.Sprintf("meta leader %s size %d replicas %v", jsz.Meta.Leader, jsz.Meta.Size, ps)
	})
	if witnessWanted(n1.svc.cfg.DataDir) {
		t.Fatal("witness marker left behind")
	}
	testutil.WaitFor(t, 30*time.Second, "three nodes in the meta group", func() bool {
		_, cur, err := n3.svc.leaderView()
		return err == nil && len(cur) == 3 && !strings.Contains(strings.Join(cur, ","), "witness")
	})
}

func TestClusterGrowsFromOneToThree(t *testing.T) {
	n1 := startNode(t, "n1")
	putApp(t, n1, "app1", state.SizeSmall)
	_, js := waitConnectApp(t, n1, "app1")
	var kv jetstream.KeyValue
	retry(t, "create bucket", func(ctx context.Context) (err error) {
		kv, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "counters"})
		return err
	})
	ctx := context.Background()
	for i := range 10 {
		if _, err := kv.Put(ctx, fmt.Sprintf("k%d", i), []byte(fmt.Sprint(i))); err != nil {
			t.Fatalf("put: %v", err)
		}
	}
	n2 := startNode(t, "n2", n1)
	n3 := startNode(t, "n3", n1, n2)
	waitThreeVoters(t, n1, n3)
	if e, err := kv.Get(ctx, "k0"); err != nil {
		si, serr := js.Stream(ctx, "KV_counters")
		t.Logf("k0 through n1 after growth: %v %v; stream %v %v", e, err, si, serr)
	}
	// The data written on one node is there, read through another.
	_, js3 := waitConnectApp(t, n3, "app1")
	var kv3 jetstream.KeyValue
	retry(t, "open bucket on n3", func(ctx context.Context) (err error) {
		kv3, err = js3.KeyValue(ctx, "counters")
		return err
	})
	for i := range 10 {
		retry(t, fmt.Sprintf("read k%d through n3", i), func(ctx context.Context) error {
			e, err := kv3.Get(ctx, fmt.Sprintf("k%d", i))
			if err != nil {
				return err
			}
			if string(e.Value()) != fmt.Sprint(i) {
				return fmt.Errorf("k%d = %q", i, e.Value())
			}
			return nil
		})
	}
	// The bucket made on one node gets three replicas, all current.
	var last string
	testutil.WaitFor(t, 60*time.Second, "the bucket on three replicas", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		st, err := js3.Stream(ctx, "KV_counters")
		if err != nil {
			last = err.Error()
			return false
		}
		info := st.CachedInfo()
		last = fmt.Sprintf("replicas %d, cluster %+v", info.Config.Replicas, info.Cluster)
		if info.Config.Replicas != 3 || info.Cluster == nil || len(info.Cluster.Replicas) != 2 {
			return false
		}
		for _, r := range info.Cluster.Replicas {
			if !r.Current {
				return false
			}
		}
		return true
	}, func() string { return last })

	// The whole cluster stops and starts again, each node's services
	// right after its store, before gossip finds the others: the services
	// form again from the node records, and the data is there.
	nodes := []*node{n1, n2, n3}
	for _, n := range nodes {
		n.svc.Close()
		n.m.Close()
	}
	for _, n := range nodes {
		n.m = storetest.Start(t, n.m.Config)
		cfg := n.svc.cfg
		cfg.Store = n.m.Store
		n.svc = startServices(t, cfg)
	}
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, n := range nodes {
			if srv := n.svc.NATS(); srv != nil {
				for _, acc := range []string{"", AccountName("app1")} {
					b, _ := json.Marshal(srv.Raftz(&server.RaftzOptions{AccountFilter: acc}))
					t.Logf("raft groups on %s: %s", n.svc.name, b)
				}
			}
		}
	})
	for _, n := range nodes {
		select {
		case <-n.svc.Ready():
		case <-time.After(30 * time.Second):
			t.Fatalf("services of %s not started again within 30 s", n.svc.name)
		}
	}
	// After a cold start of every replica, JetStream elects the
	// metadata leader, then each stream's (several seconds each, longer
	// on a loaded machine); until a replica is current, reads find no
	// responder.
	_, js2 := waitConnectApp(t, n2, "app1")
	restarted := time.Now()
	for i := range 10 {
		retryFor(t, time.Minute, fmt.Sprintf("read k%d through n2 after the restart", i), func(ctx context.Context) error {
			kv, err := js2.KeyValue(ctx, "counters")
			if err != nil {
				return err
			}
			e, err := kv.Get(ctx, fmt.Sprintf("k%d", i))
			if err != nil {
				return err
			}
			if string(e.Value()) != fmt.Sprint(i) {
				return fmt.Errorf("k%d = %q", i, e.Value())
			}
			return nil
		})
	}
	t.Logf("bucket readable %v after the restart", time.Since(restarted))
}

func TestFounderRestartKeepsData(t *testing.T) {
	n := startNode(t, "n1")
	putApp(t, n, "app1", state.SizeSmall)
	nc, js := waitConnectApp(t, n, "app1")
	var kv jetstream.KeyValue
	retry(t, "create bucket", func(ctx context.Context) (err error) {
		kv, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "counters"})
		return err
	})
	if _, err := kv.Put(context.Background(), "k", []byte("kept")); err != nil {
		t.Fatal(err)
	}
	nc.Close()
	cfg := n.svc.cfg
	if err := n.svc.Close(); err != nil {
		t.Fatal(err)
	}
	svc := startServices(t, cfg)
	<-svc.Ready()
	if svc.wit == nil {
		t.Fatal("the founder came back without its witness")
	}
	n.svc = svc
	_, js = waitConnectApp(t, n, "app1")
	retry(t, "read after restart", func(ctx context.Context) error {
		kv, err := js.KeyValue(ctx, "counters")
		if err != nil {
			return err
		}
		e, err := kv.Get(ctx, "k")
		if err != nil {
			return err
		}
		if string(e.Value()) != "kept" {
			return fmt.Errorf("k = %q", e.Value())
		}
		return nil
	})
}

// Deleting an app deletes its streams and buckets, and its data in the
// platform's account.
func TestAppDeletionRemovesItsData(t *testing.T) {
	n := startNode(t, "n1")
	putApp(t, n, "gone", state.SizeSmall)
	putApp(t, n, "kept", state.SizeSmall)
	_, jsGone := waitConnectApp(t, n, "gone")
	_, jsKept := waitConnectApp(t, n, "kept")
	for _, js := range []jetstream.JetStream{jsGone, jsKept} {
		retry(t, "create a queue and a bucket", func(ctx context.Context) error {
			if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: "msg", Subjects: []string{"msg"}, Retention: jetstream.WorkQueuePolicy}); err != nil {
				return err
			}
			_, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "counters"})
			return err
		})
	}
	streams := func() int {
		jsz, err := n.svc.NATS().Jsz(&server.JSzOptions{Accounts: true})
		if err != nil {
			return -1
		}
		return jsz.Streams
	}
	if got := streams(); got != 4 {
		t.Fatalf("%d streams, want 4", got)
	}
	if _, err := n.m.Store.Delete(context.Background(), state.BucketApps, state.AppKey("d", "gone")); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 20*time.Second, "the deleted app's streams to go", func() bool { return streams() == 2 },
		func() string { return fmt.Sprintf("%d streams", streams()) })
	// The other app keeps its data. (Its JetStream requests may find no
	// responder for a moment while the server reloads its accounts.)
	var last error
	start := time.Now()
	testutil.WaitFor(t, 5*time.Second, "the other app's bucket", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, last = jsKept.KeyValue(ctx, "counters")
		return last == nil
	}, func() string { return fmt.Sprint(last) })
	t.Logf("the other app's bucket answered after %s", time.Since(start))
}

// A node an admin removed (its node record deleted, its admin record
// marked removed) leaves the metadata group once it is offline: the
// metadata leader removes its server.
func TestRemovedNodeLeavesTheMetaGroup(t *testing.T) {
	n1 := startNode(t, "n1")
	n2 := startNode(t, "n2", n1)
	n3 := startNode(t, "n3", n1, n2)
	waitThreeVoters(t, n1, n3)
	n3.svc.Close()
	n3.m.Close()
	peers := func() string {
		for _, n := range []*node{n1, n2} {
			jsz, err := n.svc.NATS().Jsz(nil)
			if err != nil || jsz.Meta == nil || jsz.Meta.Leader != n.svc.name {
				continue
			}
			ps := []string{jsz.Meta.Leader}
			for _, p := range jsz.Meta.Replicas {
				ps = append(ps, fmt.Sprintf("%s(offline=%v)", p.Name, p.Offline))
			}
			return strings.Join(ps, " ")
		}
		return "no leader"
	}
	// Offline but not removed: it stays a peer.
	testutil.WaitFor(t, 30*time.Second, "n3 offline in the meta group", func() bool { return strings.Contains(peers(), "n3(offline=true)") }, peers)
	ctx := context.Background()
	if _, err := n1.m.Store.Batch(ctx, []store.Op{{Bucket: state.BucketNodes, Key: "n3", Delete: true},
		{Bucket: state.BucketNodeAdmin, Key: "n3", Value: state.NodeAdmin{Name: "n3", Removed: true}}}); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 60*time.Second, "n3 gone from the meta group", func() bool {
		p := peers()
		return p != "no leader" && !strings.Contains(p, "n3")
	}, peers)
}
