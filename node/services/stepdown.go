package services

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// KeepLeadersAway keeps this node, until ctx ends, from leading the
// app's replicated streams and consumers (its queues and buckets) and its
// lease stream in the platform's account. The node that holds an app's
// singletons runs it: when that node dies, the survivors then hold every
// leader the singletons' new holder needs, and the fail-over costs the
// lease's TTL rather than JetStream elections (several seconds each).
// It moves them at once, whenever JetStream elects this node to lead one
// of them (its leader-elected advisories, in the app's account and the
// platform's), and every `every` for what an advisory may have missed.
// report is called after each round with how many leaders it moved and
// what failed.
func (s *Server) KeepLeadersAway(ctx context.Context, appID string, every time.Duration, report func(moved int, err error)) {
	accounts := []struct {
		label   string
		want    func(stream string) bool
		elected string // the advisories' subject
		nc      *nats.Conn
	}{
		{label: "platform", want: func(stream string) bool { return stream == "KV_"+LeaseBucket(appID) },
			elected: "$JS.EVENT.ADVISORY.STREAM.LEADER_ELECTED.KV_" + LeaseBucket(appID)},
		{label: "app " + appID, want: func(string) bool { return true },
			elected: "$JS.EVENT.ADVISORY.*.LEADER_ELECTED.>"},
	}
	elected := make(chan struct{}, 1)
	onElected := func(m *nats.Msg) {
		var adv struct {
			Leader string `json:"leader"`
		}
		if json.Unmarshal(m.Data, &adv) == nil && adv.Leader == s.name {
			select {
			case elected <- struct{}{}:
			default:
			}
		}
	}
	defer func() {
		for _, a := range accounts {
			if a.nc != nil {
				a.nc.Close()
			}
		}
	}()
	for ctx.Err() == nil {
		if s.Replicas() >= 2 {
			rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			moved := 0
			var errs []error
			for i := range accounts {
				a := &accounts[i]
				if a.nc == nil || a.nc.IsClosed() {
					nc, err := s.connect(a.label)
					if err == nil {
						_, err = nc.Subscribe(a.elected, onElected)
						if err != nil {
							nc.Close()
						}
					}
					if err != nil {
						errs = append(errs, err)
						continue
					}
					a.nc = nc
				}
				n, err := s.stepDownIn(rctx, a.nc, a.label, a.want)
				moved += n
				errs = append(errs, err)
			}
			cancel()
			if err := errors.Join(errs...); moved > 0 || (err != nil && ctx.Err() == nil) {
				report(moved, err)
			}
		}
		t := time.NewTimer(every)
		select {
		case <-ctx.Done():
		case <-elected:
		case <-t.C:
		}
		t.Stop()
	}
}

// stepDownIn steps down this node's leaderships of the streams of
// label's account that want selects, and of their consumers.
func (s *Server) stepDownIn(ctx context.Context, nc *nats.Conn, label string, want func(stream string) bool) (int, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return 0, err
	}
	type stepDown struct{ subject, to string }
	var todo []stepDown
	lister := js.ListStreams(ctx)
	for info := range lister.Info() {
		name := info.Config.Name
		if !want(name) || info.Config.Replicas < 2 {
			continue
		}
		if to := s.successor(info.Cluster); to != "" {
			todo = append(todo, stepDown{"$JS.API.STREAM.LEADER.STEPDOWN." + name, to})
		}
		st, err := js.Stream(ctx, name)
		if err != nil {
			continue
		}
		consumers := st.ListConsumers(ctx)
		for ci := range consumers.Info() {
			if to := s.successor(ci.Cluster); to != "" {
				todo = append(todo, stepDown{"$JS.API.CONSUMER.LEADER.STEPDOWN." + name + "." + ci.Name, to})
			}
		}
	}
	if err := lister.Err(); err != nil {
		return 0, fmt.Errorf("list streams of %s: %w", label, err)
	}
	moved := 0
	var errs []error
	for _, sd := range todo {
		body, _ := json.Marshal(map[string]any{"placement": map[string]string{"preferred": sd.to}})
		if err := request(ctx, nc, sd.subject, body); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", sd.subject, err))
			continue
		}
		moved++
	}
	return moved, errors.Join(errs...)
}

// successorLiveWithin is how recently a replica must have answered its
// leader to be handed the leadership: a leader answers within a second
// (JetStream's Raft heartbeat), a dead or cut-off node's last answer
// grows older.
const successorLiveWithin = 1500 * time.Millisecond

// successor returns the replica that should take over a leadership of
// this node described by ci: current, online, heard from within
// successorLiveWithin, the most recently heard from first. It returns ""
// when this node does not lead or no replica qualifies: JetStream, left
// to choose, may pick a node that died a moment ago and is still within
// its live window, and the group then waits for an election (seconds)
// rather than moving at once; the holder tries again later.
func (s *Server) successor(ci *jetstream.ClusterInfo) string {
	if ci == nil || ci.Leader != s.name {
		return ""
	}
	var best *jetstream.PeerInfo
	for _, r := range ci.Replicas {
		if !r.Current || r.Offline || r.Active > successorLiveWithin {
			continue
		}
		if best == nil || r.Active < best.Active {
			best = r
		}
	}
	if best == nil {
		return ""
	}
	return best.Name
}

// request sends a JetStream API request and returns its error reply, if
// any.
func request(ctx context.Context, nc *nats.Conn, subj string, body []byte) error {
	msg, err := nc.RequestWithContext(ctx, subj, body)
	if err != nil {
		return err
	}
	var r errorReply
	if err := json.Unmarshal(msg.Data, &r); err != nil {
		return fmt.Errorf("bad reply: %w", err)
	}
	return r.err()
}
