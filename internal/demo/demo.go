// Package demo is the cluster-demo app that `gearbox dev` deploys: a
// queue, a replicated cache, an HA daemon, an HA job and a web session
// counter, on the NATS JetStream that every gear gets (see README,
// "Cluster services"). It runs as `gearbox cluster-demo web|daemon|job`
// from a deployment that holds a copy of the gearbox binary (Archive).
//
// What it shows, in its gears' logs (`gearbox app logs demo -f`):
//
//	send  the daemon counter queued the cache's counter value, then
//	      incremented it (one gear at a time: an HA singleton)
//	recv  a gear took a message off the queue msg (each message goes to
//	      one gear), with the cache's values as that gear reads them
//	job   the job ajob incremented the cache's job counter
//	web   a request for a path, with the two counters in the answer
//
// and /count counts the requests of a web session, kept in a bucket that
// every gear reads, so that the count survives the gear that served it.
//
// demo imports nats.go and the command line library only: it is what an
// app of any language would do with a NATS client.
package demo

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Names of the demo's queue, buckets and cookie.
const (
	queue        = "msg"
	countersName = "counters"
	sessionsName = "sessions"
	sessionTTL   = 30 * time.Minute
	cookieName   = "GEARBOX_DEMO_SESSION"
)

// env is what a gear's process is given (README, "Cluster services").
type env struct {
	app, gear        string // GEARBOX_APP, GEARBOX_GEAR_ID
	natsURL, keyFile string
	replicas         int
	token            string // daemons: GEARBOX_FENCING_TOKEN
	tick             string // jobs: GEARBOX_JOB_TICK
	addr             string // web: GEARBOX_IP:PORT
	out              io.Writer
}

func readEnv() (env, error) {
	e := env{app: os.Getenv("GEARBOX_APP"), gear: os.Getenv("GEARBOX_GEAR_ID"), natsURL: os.Getenv("GEARBOX_NATS_URL"), keyFile: os.Getenv("GEARBOX_NATS_NKEY_FILE"), replicas: 1,
		token: os.Getenv("GEARBOX_FENCING_TOKEN"), tick: os.Getenv("GEARBOX_JOB_TICK"),
		addr: net.JoinHostPort(os.Getenv("GEARBOX_IP"), os.Getenv("PORT")), out: os.Stdout}
	if e.natsURL == "" || e.keyFile == "" {
		return e, errors.New("GEARBOX_NATS_URL and GEARBOX_NATS_NKEY_FILE are not set: run the demo in a gear of a node with cluster services")
	}
	if e.gear == "" || os.Getenv("PORT") == "" {
		return e, errors.New("GEARBOX_GEAR_ID and PORT are not set: run the demo in a gear")
	}
	if r, err := strconv.Atoi(os.Getenv("GEARBOX_NATS_REPLICAS")); err == nil && r >= 1 && r <= 5 {
		e.replicas = r
	}
	return e, nil
}

// app is a connected demo process: its queue and buckets.
type app struct {
	env      env
	nc       *nats.Conn
	js       jetstream.JetStream
	counters jetstream.KeyValue
	sessions jetstream.KeyValue
}

// open connects to the gear's NATS server, retrying while it starts, and
// makes the queue and buckets unless another gear already did. Streams
// are created, never updated: the platform raises their replicas as the
// cluster grows, and a gear that sees fewer nodes must not lower them.
func open(ctx context.Context, e env) (*app, error) {
	key, err := nats.NkeyOptionFromSeed(e.keyFile)
	if err != nil {
		return nil, err
	}
	nc, err := nats.Connect(e.natsURL, key, nats.Name("cluster-demo "+e.gear), nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true), nats.ReconnectWait(250*time.Millisecond))
	if err != nil {
		return nil, err
	}
	a := &app{env: e, nc: nc}
	if a.js, err = jetstream.New(nc); err != nil {
		nc.Close()
		return nil, err
	}
	// JetStream may still be electing its leaders: try for a minute.
	deadline := time.Now().Add(time.Minute)
	for {
		if err = a.setup(ctx); err == nil || ctx.Err() != nil || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
	}
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("set up the queue and buckets: %w", err)
	}
	return a, nil
}

func (a *app) setup(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	r := a.env.replicas
	// Each is looked up before it is created: a lookup is answered by
	// the stream's own leader, a creation by JetStream's metadata leader,
	// which may be on the node that just died.
	_, err := a.js.Stream(ctx, queue)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		_, err = a.js.CreateStream(ctx, jetstream.StreamConfig{Name: queue, Subjects: []string{queue},
			Retention: jetstream.WorkQueuePolicy, Storage: jetstream.FileStorage, Replicas: r})
	}
	if err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return err
	}
	if a.counters, err = bucket(ctx, a.js, jetstream.KeyValueConfig{Bucket: countersName, Replicas: r}); err != nil {
		return err
	}
	a.sessions, err = bucket(ctx, a.js, jetstream.KeyValueConfig{Bucket: sessionsName, TTL: sessionTTL, Replicas: r})
	return err
}

func bucket(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, cfg.Bucket)
	if !errors.Is(err, jetstream.ErrBucketNotFound) {
		return kv, err
	}
	kv, err = js.CreateKeyValue(ctx, cfg)
	if errors.Is(err, jetstream.ErrBucketExists) {
		return js.KeyValue(ctx, cfg.Bucket)
	}
	return kv, err
}

// jobValue is the job counter in the cache, with the last tick counted,
// so that a tick run again after a failure does not count twice.
type jobValue struct {
	Count int64 `json:"count"`
	Tick  int64 `json:"tick"`
}

// counter reads the daemon's counter: its value and revision (0, 0: none).
func (a *app) counter(ctx context.Context) (int64, uint64, error) {
	e, err := a.counters.Get(ctx, "counter")
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, err
	}
	v, err := strconv.ParseInt(string(e.Value()), 10, 64)
	return v, e.Revision(), err
}

// readJob reads the job's counter.
func (a *app) readJob(ctx context.Context) (jobValue, uint64, error) {
	var v jobValue
	e, err := a.counters.Get(ctx, "job")
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return v, 0, nil
	}
	if err != nil {
		return v, 0, err
	}
	return v, e.Revision(), json.Unmarshal(e.Value(), &v)
}

// counts returns the cache's two counters as the demo shows them.
func (a *app) counts(ctx context.Context) string {
	c, _, err1 := a.counter(ctx)
	j, _, err2 := a.readJob(ctx)
	if err := errors.Join(err1, err2); err != nil {
		return "counters unavailable: " + err.Error()
	}
	return fmt.Sprintf("counter=%d job=%d", c, j.Count)
}

// put writes key by compare-and-set on rev (0: the key must not exist).
func put(ctx context.Context, kv jetstream.KeyValue, key string, value []byte, rev uint64) error {
	var err error
	if rev == 0 {
		_, err = kv.Create(ctx, key, value)
	} else {
		_, err = kv.Update(ctx, key, value, rev)
	}
	return err
}

// Web serves the app on $GEARBOX_IP:$PORT and takes the queue's messages
// until ctx ends.
func Web(ctx context.Context) error {
	e, err := readEnv()
	if err != nil {
		return err
	}
	return web(ctx, e, nil)
}

// web is Web with the environment e; ready, if set, is called once it
// listens.
func web(ctx context.Context, e env, ready func()) error {
	a, err := open(ctx, e)
	if err != nil {
		return err
	}
	defer a.nc.Close()
	cons, err := a.js.CreateOrUpdateConsumer(ctx, queue, jetstream.ConsumerConfig{Durable: queue,
		AckPolicy: jetstream.AckExplicitPolicy, AckWait: 5 * time.Second})
	if err != nil {
		return fmt.Errorf("queue consumer: %w", err)
	}
	// Each message goes to one of the gears: they share the consumer.
	// Each gear asks for one message at a time, so that the server,
	// which serves waiting requests in turn, spreads a slow stream of
	// messages evenly (with larger batches, one gear's request would
	// take them all). A request expires after 2 s: one that the server
	// dropped (its consumer's leader moved) is replaced within that,
	// rather than after the 30 s default, while the other gears take
	// every message.
	cc, err := cons.Consume(func(m jetstream.Msg) {
		fmt.Fprintf(e.out, "recv gear=%s msg=%q %s\n", e.gear, m.Data(), a.counts(ctx))
		m.Ack()
	}, jetstream.PullMaxMessages(1), jetstream.PullExpiry(2*time.Second))
	if err != nil {
		return fmt.Errorf("consume the queue: %w", err)
	}
	defer cc.Stop()
	mux := http.NewServeMux()
	mux.HandleFunc("/count", a.count)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		// The load balancers' health checks ask for it too: their lines
		// show which gears are in rotation, as in the seed.
		fmt.Fprintf(e.out, "web gear=%s path=%s\n", e.gear, r.URL.Path)
		fmt.Fprintf(w, "%s gear=%s %s\n", e.app, e.gear, a.counts(r.Context()))
	})
	ln, err := net.Listen("tcp", e.addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	if ready != nil {
		ready()
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	}
}

// count increments the count of the request's session, kept in the
// sessions bucket under the session's cookie: any gear answers the next
// request. Each request writes the session, which restarts its TTL.
func (a *app) count(w http.ResponseWriter, r *http.Request) {
	id := ""
	if c, err := r.Cookie(cookieName); err == nil && len(c.Value) == 32 {
		if _, err := hex.DecodeString(c.Value); err == nil {
			id = c.Value
		}
	}
	if id == "" {
		b := make([]byte, 16)
		rand.Read(b)
		id = hex.EncodeToString(b)
	}
	for range 10 {
		n, rev := int64(0), uint64(0)
		if e, err := a.sessions.Get(r.Context(), id); err == nil {
			n, _ = strconv.ParseInt(string(e.Value()), 10, 64)
			rev = e.Revision()
		} else if !errors.Is(err, jetstream.ErrKeyNotFound) {
			http.Error(w, "session store: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		n++
		if err := put(r.Context(), a.sessions, id, []byte(strconv.FormatInt(n, 10)), rev); err != nil {
			continue // another request of the session won: read again
		}
		http.SetCookie(w, &http.Cookie{Name: cookieName, Value: id, Path: "/", HttpOnly: true, MaxAge: int(sessionTTL / time.Second)})
		fmt.Fprintf(a.env.out, "web gear=%s path=/count session=%s... count=%d\n", a.env.gear, id[:6], n)
		fmt.Fprintf(w, "%d\n", n)
		return
	}
	http.Error(w, "session busy, try again", http.StatusConflict)
}

// Daemon is the HA daemon counter: every interval it queues the cache's
// counter value with its fencing token, then increments the counter.
// It runs on one gear at a time; the value is incremented only once its
// message is stored, by compare-and-set, so that a daemon that takes
// over resumes at the next value, none lost or repeated.
func Daemon(ctx context.Context, every time.Duration) error {
	e, err := readEnv()
	if err != nil {
		return err
	}
	return daemon(ctx, e, every)
}

func daemon(ctx context.Context, e env, every time.Duration) error {
	token := e.token
	a, err := open(ctx, e)
	if err != nil {
		return err
	}
	defer a.nc.Close()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		v, rev, err := a.counter(ctx)
		if err != nil {
			fmt.Fprintf(e.out, "send gear=%s failed: read the counter: %v\n", e.gear, err)
			continue
		}
		msg := fmt.Sprintf("counter=%d token=%s gear=%s", v, token, e.gear)
		// The message id makes a resend of the same value (by a daemon
		// that took over before the increment was stored) a no-op.
		if _, err := a.js.Publish(ctx, queue, []byte(msg), jetstream.WithMsgID("counter-"+strconv.FormatInt(v, 10))); err != nil {
			fmt.Fprintf(e.out, "send gear=%s failed: %v\n", e.gear, err)
			continue
		}
		if err := put(ctx, a.counters, "counter", []byte(strconv.FormatInt(v+1, 10)), rev); err != nil {
			fmt.Fprintf(e.out, "send gear=%s counter=%d: increment failed: %v\n", e.gear, v, err)
			continue
		}
		fmt.Fprintf(e.out, "send gear=%s counter=%d token=%s\n", e.gear, v, token)
	}
}

// Job is the HA job ajob: it increments the cache's job counter once per
// tick ($GEARBOX_JOB_TICK), a tick run again after a failure included.
func Job(ctx context.Context) error {
	e, err := readEnv()
	if err != nil {
		return err
	}
	return job(ctx, e)
}

func job(ctx context.Context, e env) error {
	tick, err := strconv.ParseInt(e.tick, 10, 64)
	if err != nil {
		return errors.New("GEARBOX_JOB_TICK is not set: run the job from gearbox.yml's jobs:")
	}
	a, err := open(ctx, e)
	if err != nil {
		return err
	}
	defer a.nc.Close()
	for range 10 {
		v, rev, err := a.readJob(ctx)
		if err != nil {
			return err
		}
		if v.Tick >= tick {
			fmt.Fprintf(e.out, "job gear=%s tick=%d already counted: job=%d\n", e.gear, tick, v.Count)
			return nil
		}
		next := jobValue{Count: v.Count + 1, Tick: tick}
		b, _ := json.Marshal(next)
		if err := put(ctx, a.counters, "job", b, rev); err != nil {
			continue
		}
		fmt.Fprintf(e.out, "job gear=%s tick=%d job=%d\n", e.gear, tick, next.Count)
		return nil
	}
	return errors.New("job counter: too many concurrent updates")
}

// signalContext returns a context that ends on SIGTERM or SIGINT, as
// gearbox stops a gear's processes.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
}
