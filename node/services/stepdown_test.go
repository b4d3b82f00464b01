package services

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
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
