// Package lease keeps an exclusive, expiring lease in a JetStream
// key-value bucket: what makes an app's daemons and job scheduler run on
// exactly one of its gears.
//
// A lease is one key of a bucket whose entries expire (the bucket's TTL,
// JetStream's MaxAge): a candidate takes it by creating the key (a
// compare-and-set on "no entry"), the holder renews it by updating the key
// on the revision it last wrote, well inside the TTL, and gives it up by
// deleting it on that revision. A holder that dies stops renewing and the
// entry expires; one that is cut off from the cluster cannot renew, and
// stops what it runs (it fences itself) before the entry can expire: its
// Fence time, counted from the start of its last successful renewal, is
// shorter than the TTL, counted from when the stream stored that renewal.
// The clocks of the holders never matter, only durations each measures
// on its own.
//
// The revision at which a holder took the lease is its fencing token: it
// grows with every change of holder (the stream's sequence numbers only
// grow), so that what the holder's processes write can be told apart from
// what an earlier holder wrote.
//
// The bucket is JetStream's: its Raft group orders the creates and
// updates, so two candidates never both succeed. lease imports nats.go's
// jetstream package and zerolog only.
package lease

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

// DefaultTTL is how long a lease lasts unless renewed: a holder that dies
// is replaced this long after its last renewal, at most.
const DefaultTTL = 2 * time.Second

// Config configures a candidate for a lease.
type Config struct {
	// KV is the bucket of the lease, whose TTL is TTL. Required.
	KV jetstream.KeyValue
	// Key is the lease's key in KV. Required.
	Key string
	// Holder names this candidate in the lease's value, for logs and
	// status. Required.
	Holder string
	// TTL is the bucket's TTL. Default DefaultTTL.
	TTL time.Duration
	// Renew is how often the holder renews. Default TTL/5.
	Renew time.Duration
	// Fence is how long after the start of its last successful renewal
	// the holder gives up: it ends hold and stops renewing. It must leave
	// hold time to stop what it runs before TTL. Default 3/5 of TTL.
	Fence time.Duration
	// Poll is how often a candidate looks at a lease someone else holds
	// (a deleted lease wakes it at once; an expired one is seen at the
	// next poll). Default TTL/10.
	Poll time.Duration
	// Logger receives the lease's changes. Default: disabled.
	Logger zerolog.Logger
}

func (c *Config) validate() error {
	switch {
	case c.KV == nil:
		return errors.New("lease config: KV is required")
	case c.Key == "":
		return errors.New("lease config: Key is required")
	case c.Holder == "":
		return errors.New("lease config: Holder is required")
	}
	if c.TTL <= 0 {
		c.TTL = DefaultTTL
	}
	if c.Renew <= 0 {
		c.Renew = c.TTL / 5
	}
	if c.Fence <= 0 {
		c.Fence = c.TTL * 3 / 5
	}
	if c.Poll <= 0 {
		c.Poll = c.TTL / 10
	}
	if c.Fence >= c.TTL || c.Renew >= c.Fence {
		return fmt.Errorf("lease config: want Renew (%s) < Fence (%s) < TTL (%s)", c.Renew, c.Fence, c.TTL)
	}
	return nil
}

// ErrFenced is the cause of a hold's context that ended because the
// holder could not renew the lease in time, or found it taken: what it
// runs must stop at once, since another holder may start soon.
var ErrFenced = errors.New("lease lost")

// ErrReleased is the cause of a hold's context that ended because Run's
// context did: what it runs may stop gracefully; the lease is released
// once hold returns.
var ErrReleased = errors.New("lease released")

// Run campaigns for the lease until ctx ends. Each time it takes the
// lease it calls hold with the fencing token, in this goroutine, with a
// context that ends (cause ErrFenced or ErrReleased, see
// context.Cause) when the lease is lost or ctx ends; Run renews the lease
// meanwhile, and releases it once hold has returned, unless it was lost.
// A hold that returns on its own gives the lease up too: Run campaigns
// again after Poll.
func Run(ctx context.Context, cfg Config, hold func(ctx context.Context, token uint64)) error {
	if err := cfg.validate(); err != nil {
		return err
	}
	c := &candidate{cfg: cfg, log: cfg.Logger.With().Str("lease", cfg.Key).Str("holder", cfg.Holder).Logger()}
	for ctx.Err() == nil {
		token, ok := c.take(ctx)
		if !ok {
			c.waitFree(ctx)
			continue
		}
		c.hold(ctx, token, hold)
		if ctx.Err() == nil {
			sleep(ctx, cfg.Poll)
		}
	}
	return nil
}

type candidate struct {
	cfg Config
	log zerolog.Logger
	n   uint64 // takes so far: makes each take's value unique
}

// take tries to create the lease; it reports the revision it took it at.
func (c *candidate) take(ctx context.Context) (uint64, bool) {
	c.n++
	value := []byte(c.cfg.Holder + " " + strconv.FormatUint(c.n, 10))
	tctx, cancel := context.WithTimeout(ctx, c.cfg.Fence)
	defer cancel()
	rev, err := c.cfg.KV.Create(tctx, c.cfg.Key, value)
	if err == nil {
		return rev, true
	}
	// A create whose answer was lost and that was sent again finds its
	// own entry.
	if e, gerr := c.cfg.KV.Get(tctx, c.cfg.Key); gerr == nil && string(e.Value()) == string(value) {
		return e.Revision(), true
	}
	if !errors.Is(err, jetstream.ErrKeyExists) && ctx.Err() == nil {
		c.log.Debug().Err(err).Msg("lease not taken")
	}
	return 0, false
}

// waitFree returns once the lease may be free: its key was deleted or
// purged (a holder released it), or Poll passed (it may have expired).
func (c *candidate) waitFree(ctx context.Context) {
	wctx, cancel := context.WithTimeout(ctx, c.cfg.Poll)
	defer cancel()
	w, err := c.cfg.KV.Watch(wctx, c.cfg.Key, jetstream.UpdatesOnly())
	if err != nil {
		<-wctx.Done()
		return
	}
	defer w.Stop()
	for {
		select {
		case <-wctx.Done():
			return
		case e, ok := <-w.Updates():
			if !ok {
				<-wctx.Done()
				return
			}
			if e != nil && e.Operation() != jetstream.KeyValuePut {
				return
			}
		}
	}
}

// hold runs fn while it keeps the lease taken at token, renewing it.
func (c *candidate) hold(ctx context.Context, token uint64, fn func(context.Context, uint64)) {
	cfg := c.cfg
	value := []byte(cfg.Holder + " " + strconv.FormatUint(c.n, 10))
	lastOK := time.Now() // the start of the create: the entry is no older
	rev := token
	// hold's context ends only by stop, with its cause, not with ctx's.
	hctx, stop := context.WithCancelCause(context.WithoutCancel(ctx))
	defer stop(nil)
	done := make(chan struct{})
	c.log.Info().Uint64("token", token).Msg("lease taken")
	go func() {
		defer close(done)
		fn(hctx, token)
	}()
	renew := time.NewTicker(cfg.Renew)
	defer renew.Stop()
	fence := time.NewTimer(cfg.Fence)
	defer fence.Stop()
	lost := func(why string, err error) {
		c.log.Warn().Err(err).Uint64("token", token).Msg("lease lost: " + why)
		stop(ErrFenced)
		<-done
	}
	for {
		select {
		case <-ctx.Done():
			stop(ErrReleased)
			<-done
			c.release(rev, value)
			return
		case <-done:
			c.release(rev, value)
			return
		case <-fence.C:
			lost("no renewal within the fence time", nil)
			return
		case <-renew.C:
			start := time.Now()
			rctx, cancel := context.WithDeadline(ctx, lastOK.Add(cfg.Fence))
			next, err := cfg.KV.Update(rctx, cfg.Key, value, rev)
			if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
				// An update whose answer was lost and that was sent
				// again finds its own entry.
				if e, gerr := cfg.KV.Get(rctx, cfg.Key); gerr == nil && string(e.Value()) == string(value) {
					next, err = e.Revision(), nil
				}
			}
			cancel()
			switch {
			case err == nil:
				rev, lastOK = next, start
				fence.Reset(time.Until(lastOK.Add(cfg.Fence)))
			case errors.Is(err, jetstream.ErrKeyRevisionMismatch):
				lost("another holder has it", err)
				return
			case ctx.Err() == nil:
				c.log.Debug().Err(err).Msg("lease renewal failed")
			}
		}
	}
}

// release deletes the lease on rev, so that another candidate takes it at
// once rather than after the TTL. A renewal whose answer came too late
// may have moved the entry past rev: an entry that is still this
// holder's (value) is deleted at its own revision.
func (c *candidate) release(rev uint64, value []byte) {
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.Fence)
	defer cancel()
	err := c.cfg.KV.Delete(ctx, c.cfg.Key, jetstream.LastRevision(rev))
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		if e, gerr := c.cfg.KV.Get(ctx, c.cfg.Key); gerr == nil && string(e.Value()) == string(value) {
			err = c.cfg.KV.Delete(ctx, c.cfg.Key, jetstream.LastRevision(e.Revision()))
		}
	}
	if err != nil {
		c.log.Warn().Err(err).Msg("lease release failed; it expires after its TTL")
		return
	}
	c.log.Info().Msg("lease released")
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
