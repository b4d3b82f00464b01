package services

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

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
	leads := func(c *jetstream.ClusterInfo) bool {
		return c != nil && c.Leader == s.name && len(c.Replicas) > 0
	}
	var subjects []string
	lister := js.ListStreams(ctx)
	for info := range lister.Info() {
		name := info.Config.Name
		if !want(name) || info.Config.Replicas < 2 {
			continue
		}
		if leads(info.Cluster) {
			subjects = append(subjects, "$JS.API.STREAM.LEADER.STEPDOWN."+name)
		}
		st, err := js.Stream(ctx, name)
		if err != nil {
			continue
		}
		consumers := st.ListConsumers(ctx)
		for ci := range consumers.Info() {
			if leads(ci.Cluster) {
				subjects = append(subjects, "$JS.API.CONSUMER.LEADER.STEPDOWN."+name+"."+ci.Name)
			}
		}
	}
	if err := lister.Err(); err != nil {
		return 0, fmt.Errorf("list streams of %s: %w", label, err)
	}
	moved := 0
	var errs []error
	for _, subj := range subjects {
		if err := request(ctx, nc, subj); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", subj, err))
			continue
		}
		moved++
	}
	return moved, errors.Join(errs...)
}

// request sends a JetStream API request with no body and returns its
// error reply, if any.
func request(ctx context.Context, nc *nats.Conn, subj string) error {
	msg, err := nc.RequestWithContext(ctx, subj, nil)
	if err != nil {
		return err
	}
	var r errorReply
	if err := json.Unmarshal(msg.Data, &r); err != nil {
		return fmt.Errorf("bad reply: %w", err)
	}
	return r.err()
}
