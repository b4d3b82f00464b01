package broker

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"gearbox/broker/api"
	"gearbox/internal/testutil"
	"gearbox/store/state"
)

// addAliases adds n aliases to app ns/name as admin: each appends one
// routing event.
func (c *testCluster) addAliases(t testing.TB, ns, name string, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		c.ok(t, "POST", appPath(ns, name, "/aliases"), admin, url.Values{"id": {fmt.Sprintf("a%d.example.org", i)}}, nil)
	}
}

// churn adds and removes an alias of app ns/name until n routing events
// were appended.
func (c *testCluster) churn(t testing.TB, ns, name string, n int) {
	t.Helper()
	path := appPath(ns, name, "/aliases")
	for range n {
		var a state.App
		if _, err := c.st.Get(state.BucketApps, state.AppKey(ns, name), &a); err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(a.Aliases, "churn.example.org") {
			c.ok(t, "POST", path, admin, url.Values{"id": {"churn.example.org"}}, nil)
		} else {
			c.ok(t, "DELETE", path+"/churn.example.org", admin, nil, nil)
		}
	}
}

// feedPage reads GET /broker/rest/routing/events with query q.
func (c *testCluster) feedPage(t testing.TB, q string) []api.RoutingEvent {
	t.Helper()
	var evs []api.RoutingEvent
	c.ok(t, "GET", "/broker/rest/routing/events"+q, admin, nil, &evs)
	return evs
}

// seqs lists the sequences of evs.
func seqs(evs []api.RoutingEvent) []uint64 {
	out := make([]uint64, 0, len(evs))
	for _, e := range evs {
		out = append(out, e.Seq)
	}
	return out
}

// wantSeqs checks that evs are exactly the sequences from..to.
func wantSeqs(t testing.TB, what string, evs []api.RoutingEvent, from, to uint64) {
	t.Helper()
	var want []uint64
	for s := from; s <= to; s++ {
		want = append(want, s)
	}
	if got := seqs(evs); fmt.Sprint(got) != fmt.Sprint(want) && !(len(got) == 0 && len(want) == 0) {
		t.Fatalf("%s: sequences %v, want %v", what, got, want)
	}
}

func TestRoutingFeed(t *testing.T) {
	c := newCluster(t, clusterOpts{nodes: []nodeSpec{}})
	demo := c.user(t, "demo", nil)
	c.domain(t, admin, "ns")
	c.createAppRecord(t, "ns", "web", adminLogin)
	base := c.lastSeq(t)
	c.addAliases(t, "ns", "web", 0, 5)
	last := base + 5

	all := c.feedPage(t, "")
	wantSeqs(t, "all", all, 1, last)
	if e := all[len(all)-1]; e.Action != state.ActionAddAlias || e.Alias != "a4.example.org" || e.AppName != "web" || e.Time.IsZero() {
		t.Errorf("last event: %+v", e)
	}
	wantSeqs(t, "after base", c.feedPage(t, fmt.Sprintf("?after=%d", base)), base+1, last)
	wantSeqs(t, "after base, limit 2", c.feedPage(t, fmt.Sprintf("?after=%d&limit=2", base)), base+1, base+2)
	wantSeqs(t, "after the last", c.feedPage(t, fmt.Sprintf("?after=%d", last)), 1, 0)
	wantSeqs(t, "after beyond the last", c.feedPage(t, "?after=999999"), 1, 0)

	for _, tt := range []struct {
		name, query string
		who         creds
		code        int
		want        string
	}{
		{"not an admin", "", demo, http.StatusForbidden, "needs an administrator"},
		{"nobody", "", nobody, http.StatusUnauthorized, "Authentication required"},
		{"negative after", "?after=-1", admin, http.StatusUnprocessableEntity, "Invalid value for after"},
		{"limit 0", "?limit=0", admin, http.StatusUnprocessableEntity, "Invalid limit 0"},
		{"limit too high", fmt.Sprintf("?limit=%d", MaxFeedLimit+1), admin, http.StatusUnprocessableEntity, "Invalid limit"},
		{"bad follow", "?follow=maybe", admin, http.StatusUnprocessableEntity, "Invalid value for follow"},
		{"not an admin, follow", "?follow=1", demo, http.StatusForbidden, "needs an administrator"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			wantErr(t, c.do(t, "GET", "/broker/rest/routing/events"+tt.query, tt.who, nil), tt.code, tt.want)
		})
	}

	var idx api.Index
	c.ok(t, "GET", "/broker/rest/api", nobody, nil, &idx)
	for name, href := range map[string]string{
		"LIST_ROUTING_EVENTS (admin)": "/broker/rest/routing/events",
		"ADD_WEBHOOK (admin)":         "/broker/rest/routing/webhooks",
		"LIST_ROUTES (admin)":         "/broker/rest/routing/routes",
		"ADD_ALIAS":                   "/broker/rest/domains/:name/applications/:app/aliases",
	} {
		if idx.Links[name].Href != href {
			t.Errorf("api link %s = %+v, want %s", name, idx.Links[name], href)
		}
	}
}

// feedStream is a followed routing feed, read line by line.
type feedStream struct {
	resp   *http.Response
	cancel context.CancelFunc
	lines  chan string // closed at the end of the stream
	blanks int
}

// follow opens GET /broker/rest/routing/events?follow=1&after=after as
// admin. It is closed in t.Cleanup, or by close.
func (c *testCluster) follow(t testing.TB, after uint64) *feedStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("%s/broker/rest/routing/events?follow=1&after=%d", c.url, after), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(admin.user, admin.pass)
	resp, err := (&http.Client{Transport: c.client.Transport}).Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/x-ndjson" {
		resp.Body.Close()
		cancel()
		t.Fatalf("follow: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	s := &feedStream{resp: resp, cancel: cancel, lines: make(chan string, 1000)}
	go func() {
		defer close(s.lines)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			s.lines <- sc.Text()
		}
	}()
	t.Cleanup(s.close)
	return s
}

func (s *feedStream) close() {
	s.cancel()
	s.resp.Body.Close()
}

// next returns the next event, skipping (and counting) blank lines.
func (s *feedStream) next(t testing.TB) api.RoutingEvent {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case l, ok := <-s.lines:
			if !ok {
				t.Fatal("the feed ended")
			}
			if strings.TrimSpace(l) == "" {
				s.blanks++
				continue
			}
			var e api.RoutingEvent
			if err := json.Unmarshal([]byte(l), &e); err != nil {
				t.Fatalf("feed line %q: %v", l, err)
			}
			return e
		case <-timeout:
			t.Fatal("no event on the feed within 10s")
		}
	}
}

// nextN returns the next n events.
func (s *feedStream) nextN(t testing.TB, n int) []api.RoutingEvent {
	t.Helper()
	var out []api.RoutingEvent
	for range n {
		out = append(out, s.next(t))
	}
	return out
}

// quiet checks that no event comes within d: what a held event looks
// like from outside.
func (s *feedStream) quiet(t testing.TB, d time.Duration) {
	t.Helper()
	timeout := time.After(d)
	for {
		select {
		case l, ok := <-s.lines:
			if !ok {
				t.Fatal("the feed ended")
			}
			if strings.TrimSpace(l) != "" {
				t.Fatalf("got %s, want nothing yet", l)
			}
			s.blanks++
		case <-timeout:
			return
		}
	}
}

func TestRoutingFeedFollow(t *testing.T) {
	c := newCluster(t, clusterOpts{nodes: []nodeSpec{}, cfg: func(cfg *Config) { cfg.FeedKeepAlive = 50 * time.Millisecond }})
	c.domain(t, admin, "ns")
	c.createAppRecord(t, "ns", "web", adminLogin)
	c.addAliases(t, "ns", "web", 0, 3)
	first := c.lastSeq(t) - 2

	s := c.follow(t, first-1)
	wantSeqs(t, "backlog", s.nextN(t, 3), first, first+2)
	c.addAliases(t, "ns", "web", 3, 2)
	got := s.nextN(t, 2)
	wantSeqs(t, "live", got, first+3, first+4)
	if got[1].Alias != "a4.example.org" {
		t.Errorf("live event: %+v", got[1])
	}
	testutil.WaitFor(t, 5*time.Second, "keep-alive lines", func() bool {
		s.quiet(t, 60*time.Millisecond)
		return s.blanks >= 2
	})

	// Resumption: the client goes, events are written meanwhile, and it
	// comes back with the last sequence it saw.
	s.close()
	seen := got[1].Seq
	c.addAliases(t, "ns", "web", 5, 3)
	s = c.follow(t, seen)
	wantSeqs(t, "resumed", s.nextN(t, 3), seen+1, seen+3)
	s.quiet(t, 100*time.Millisecond)

	// A large backlog comes in batches, still in order.
	c.churn(t, "ns", "web", feedBatch)
	all := c.lastSeq(t)
	s2 := c.follow(t, 0)
	wantSeqs(t, "whole feed", s2.nextN(t, int(all)), 1, all)

	// Closing the broker ends the streams.
	done := make(chan error, 1)
	go func() { done <- c.b.Close() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("broker Close did not return with a followed feed open")
	}
	testutil.WaitFor(t, 5*time.Second, "the stream to end", func() bool {
		_, open := <-s2.lines
		return !open
	})
}

// putEvent writes routing event seq straight to the broker's store, at
// commit time at, as gossip may bring it.
func (c *testCluster) putEvent(t testing.TB, seq uint64, at time.Time) {
	t.Helper()
	e := state.RoutingEvent{Seq: seq, Action: state.ActionAddAlias, AppName: "web", Namespace: "ns", Alias: fmt.Sprintf("e%d.example.org", seq), Time: at}
	if _, err := c.st.Put(context.Background(), state.BucketRoutingEvents, state.EventKey(seq), e); err != nil {
		t.Fatal(err)
	}
}

// TestRoutingFeedGap writes events out of order, as a follower broker
// may receive them: the feed holds back an event until its predecessor
// arrives, for FeedGapWait at most, then skips the missing one.
func TestRoutingFeedGap(t *testing.T) {
	const gapWait = time.Hour
	c := newCluster(t, clusterOpts{nodes: []nodeSpec{}, cfg: func(cfg *Config) { cfg.FeedGapWait = gapWait }})
	top := c.lastSeq(t)
	s := c.follow(t, top)
	now := c.clock.Now()

	c.putEvent(t, top+2, now)
	testutil.WaitFor(t, 5*time.Second, "the broker to see the event", func() bool { return c.b.feed.top.Load() == top+2 })
	wantSeqs(t, "held", c.feedPage(t, fmt.Sprintf("?after=%d", top)), 1, 0)
	s.quiet(t, 200*time.Millisecond)

	c.putEvent(t, top+1, now)
	wantSeqs(t, "filled, followed", s.nextN(t, 2), top+1, top+2)
	wantSeqs(t, "filled", c.feedPage(t, fmt.Sprintf("?after=%d", top)), top+1, top+2)

	// A gap whose next event is older than FeedGapWait is skipped.
	c.putEvent(t, top+4, now.Add(-2*gapWait))
	wantSeqs(t, "old gap skipped", c.feedPage(t, fmt.Sprintf("?after=%d", top+2)), top+4, top+4)
	if e := s.next(t); e.Seq != top+4 {
		t.Fatalf("followed: got %d after the old gap, want %d", e.Seq, top+4)
	}
	// A young gap is skipped once it is FeedGapWait old, without any
	// new event to wake the stream.
	c.putEvent(t, top+6, c.clock.Now().Add(-gapWait+300*time.Millisecond))
	start := time.Now()
	if e := s.next(t); e.Seq != top+6 {
		t.Fatalf("followed: got %d after the young gap, want %d", e.Seq, top+6)
	}
	if waited := time.Since(start); waited < 150*time.Millisecond {
		t.Errorf("the young gap was skipped after %s, want it held about 300ms", waited)
	}
	// A missing event that arrives after it was skipped is not sent.
	c.putEvent(t, top+5, now)
	c.putEvent(t, top+7, now)
	if e := s.next(t); e.Seq != top+7 {
		t.Fatalf("followed: got %d, want %d", e.Seq, top+7)
	}
}

// TestRoutingFeedFollowerLimit: a broker serves Config.MaxFeedFollowers
// followed feeds at once; one more is refused with 503 until one ends.
func TestRoutingFeedFollowerLimit(t *testing.T) {
	c := newCluster(t, clusterOpts{nodes: []nodeSpec{}, cfg: func(cfg *Config) { cfg.MaxFeedFollowers = 2 }})
	c.domain(t, admin, "demo")
	first := c.follow(t, 0)
	c.follow(t, 0)
	r := c.do(t, "GET", "/broker/rest/routing/events?follow=1", admin, nil)
	wantErr(t, r, http.StatusServiceUnavailable, "already serves 2 followed feeds")
	// Reads without follow are not limited.
	c.ok(t, "GET", "/broker/rest/routing/events", admin, nil, nil)

	first.close()
	testutil.WaitFor(t, 10*time.Second, "the first follower gone", func() bool { return c.b.followers.Load() == 1 })
	c.follow(t, 0)
}
