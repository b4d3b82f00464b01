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

// StepDownFrom moves off this node the leadership of the app's
// replicated streams and consumers (its queues and buckets) and of its
// lease stream in the platform's account. The node that holds an app's
// singletons calls it: when that node dies, the survivors then hold
// every leader the singletons' new holder needs, and the fail-over costs
// the lease's TTL rather than JetStream elections (several seconds
// each). It returns how many leaders it moved.
func (s *Server) StepDownFrom(ctx context.Context, appID string) (int, error) {
	if s.Replicas() < 2 {
		return 0, nil
	}
	moved, err := s.stepDownIn(ctx, "platform", func(stream string) bool { return stream == "KV_"+LeaseBucket(appID) })
	n, err2 := s.stepDownIn(ctx, "app "+appID, func(string) bool { return true })
	return moved + n, errors.Join(err, err2)
}

// stepDownIn steps down this node's leaderships of the streams of
// label's account that want selects, and of their consumers.
func (s *Server) stepDownIn(ctx context.Context, label string, want func(stream string) bool) (int, error) {
	nc, err := s.connect(label)
	if err != nil {
		return 0, err
	}
	defer nc.Close()
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
