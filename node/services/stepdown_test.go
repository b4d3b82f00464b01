package services

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"gearbox/internal/testutil"
	"gearbox/store/state"
)

func TestSuccessor(t *testing.T) {
	s := &Server{name: "n1"}
	peer := func(name string, current, offline bool, active time.Duration) *jetstream.PeerInfo {
		return &jetstream.PeerInfo{Name: name, Current: current, Offline: offline, Active: active}
	}
	for _, tc := range []struct {
		name string
		ci   *jetstream.ClusterInfo
		want string
	}{
		{"no cluster info", nil, ""},
		{"led elsewhere", &jetstream.ClusterInfo{Leader: "n2", Replicas: []*jetstream.PeerInfo{peer("n1", true, false, 0)}}, ""},
		{"the most recently heard", &jetstream.ClusterInfo{Leader: "n1", Replicas: []*jetstream.PeerInfo{
			peer("n2", true, false, 800*time.Millisecond), peer("n3", true, false, 200*time.Millisecond)}}, "n3"},
		{"not one that fell behind", &jetstream.ClusterInfo{Leader: "n1", Replicas: []*jetstream.PeerInfo{
			peer("n2", true, false, 900*time.Millisecond), peer("n3", false, false, 100*time.Millisecond)}}, "n2"},
		{"not one that died a moment ago", &jetstream.ClusterInfo{Leader: "n1", Replicas: []*jetstream.PeerInfo{
			peer("n2", true, false, 2*time.Second), peer("n3", true, false, 300*time.Millisecond)}}, "n3"},
		{"not one offline", &jetstream.ClusterInfo{Leader: "n1", Replicas: []*jetstream.PeerInfo{
			peer("n2", true, true, 0), peer("n3", true, false, 300*time.Millisecond)}}, "n3"},
		{"none fit: stay", &jetstream.ClusterInfo{Leader: "n1", Replicas: []*jetstream.PeerInfo{
			peer("n2", true, false, 3*time.Second), peer("n3", false, false, 0)}}, ""},
	} {
		if got := s.successor(tc.ci); got != tc.want {
			t.Errorf("%s: successor %q, want %q", tc.name, got, tc.want)
		}
	}
}

// The holder's node moves the leadership of the app's streams off itself
// at once, and again as soon as JetStream elects it once more: told by
// the election's advisory, well before its periodic check.
func TestKeepLeadersAway(t *testing.T) {
	n1 := startNode(t, "n1")
	n2 := startNode(t, "n2", n1)
	n3 := startNode(t, "n3", n1, n2)
	waitThreeVoters(t, n1, n3)
	nodes := map[string]*node{"n1": n1, "n2": n2, "n3": n3}
	putApp(t, n1, "app1", state.SizeSmall)
	nc, js := waitConnectApp(t, n1, "app1")
	retry(t, "create a bucket on three replicas", func(ctx context.Context) error {
		_, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "counters", Replicas: 3})
		return err
	})
	leader := func() (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		st, err := js.Stream(ctx, "KV_counters")
		if err != nil {
			return "", err
		}
		ci := st.CachedInfo().Cluster
		if ci == nil || ci.Leader == "" || len(ci.Replicas) != 2 {
			return "", fmt.Errorf("cluster %+v", ci)
		}
		for _, r := range ci.Replicas {
			if !r.Current {
				return "", fmt.Errorf("replica %s not current", r.Name)
			}
		}
		return ci.Leader, nil
	}
	var holder string
	var last error
	testutil.WaitFor(t, 30*time.Second, "the bucket led, its replicas current", func() bool {
		holder, last = leader()
		return last == nil
	}, func() string { return fmt.Sprint(last) })

	moves := make(chan int, 100)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		// A minute between checks: within this test, only the
		// advisories can bring the second move.
		nodes[holder].svc.KeepLeadersAway(ctx, "app1", time.Minute, func(n int, err error) {
			if n > 0 {
				moves <- n
			}
		})
	}()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-moves:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not move the bucket's leadership off itself within 30 s", holder)
	}
	var now string
	testutil.WaitFor(t, 30*time.Second, "the bucket led from another node", func() bool {
		now, last = leader()
		return last == nil && now != holder
	}, func() string { return fmt.Sprintf("leader %s, %v", now, last) })

	// The leadership is handed back to the holder's node: it moves it
	// off again.
	body, _ := json.Marshal(map[string]any{"placement": map[string]string{"preferred": holder}})
	retry(t, "hand the leadership back to "+holder, func(ctx context.Context) error {
		return request(ctx, nc, "$JS.API.STREAM.LEADER.STEPDOWN.KV_counters", body)
	})
	select {
	case <-moves:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not move the leadership that came back to it within 30 s", holder)
	}
	testutil.WaitFor(t, 30*time.Second, "the bucket led from another node again", func() bool {
		now, last = leader()
		return last == nil && now != holder
	}, func() string { return fmt.Sprintf("leader %s, %v", now, last) })
}
