package integration

import (
	"bufio"
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"gearbox/internal/testutil"
)

// The logs tests run the broker's logs API against node supervisors that
// serve their gears' logs on the internal API.

func TestAppLogs(t *testing.T) {
	c := newCluster(t, nil)
	c.serveGearLogs(t)
	demo := c.user(t, "demo")
	c.domain(t, demo, "demo")
	c.createApp(t, demo, "demo", "web", url.Values{"scale": {"true"}})
	c.event(t, demo, "demo", "web", "scale-up")
	gs := c.gears(t, "demo", "web")
	if len(gs) != 2 || gs[0].Node == gs[1].Node {
		t.Fatalf("gears %+v: want two on two nodes", gs)
	}
	g1, g2 := gs[0], gs[1]
	c.waitGears(t, gs)
	c.appendLog(t, g1, stamp(1)+" one", stamp(3)+" three", stamp(5)+" five")
	c.appendLog(t, g2, stamp(2)+" two", stamp(4)+" four")

	logs := appPath("demo", "web", "/logs")
	r := c.do(t, "GET", logs, demo, nil)
	if r.code != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET logs: %d %s %s", r.code, r.header.Get("Content-Type"), r.raw)
	}
	want := strings.Join([]string{
		stamp(1) + " " + g1.ID + " one",
		stamp(2) + " " + g2.ID + " two",
		stamp(3) + " " + g1.ID + " three",
		stamp(4) + " " + g2.ID + " four",
		stamp(5) + " " + g1.ID + " five",
	}, "\n") + "\n"
	if r.raw != want {
		t.Errorf("logs:\n%s\nwant\n%s", r.raw, want)
	}
	// tail counts per gear.
	r = c.do(t, "GET", logs+"?tail=1", demo, nil)
	if want := stamp(4) + " " + g2.ID + " four\n" + stamp(5) + " " + g1.ID + " five\n"; r.raw != want {
		t.Errorf("logs?tail=1:\n%s\nwant\n%s", r.raw, want)
	}
	if r := c.do(t, "GET", logs+"?tail=0", admin, nil); r.code != 200 || r.raw != "" {
		t.Errorf("logs?tail=0 as admin: %d %q", r.code, r.raw)
	}

	mallory := c.user(t, "mallory")
	for _, tt := range []struct {
		name string
		path string
		who  creds
		code int
		text string
	}{
		{"no auth", logs, nobody, http.StatusUnauthorized, ""},
		{"someone else's app", logs, mallory, http.StatusForbidden, "belongs to another user"},
		{"unknown app", appPath("demo", "nope", "/logs"), demo, http.StatusNotFound, "Application 'nope' not found"},
		{"negative tail", logs + "?tail=-1", demo, http.StatusUnprocessableEntity, "Invalid tail"},
		{"bad tail", logs + "?tail=x", demo, http.StatusUnprocessableEntity, "Invalid value for tail"},
		{"bad follow", logs + "?follow=maybe", demo, http.StatusUnprocessableEntity, "Invalid value for follow"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			wantErr(t, c.do(t, "GET", tt.path, tt.who, nil), tt.code, tt.text)
		})
	}

	// A node that cannot be reached gives one line; the other gears'
	// lines still come.
	c.node(t, g2.Node).API.Close()
	r = c.do(t, "GET", logs+"?tail=1", demo, nil)
	lines := strings.Split(strings.TrimSuffix(r.raw, "\n"), "\n")
	if r.code != 200 || len(lines) != 2 || lines[0] != stamp(5)+" "+g1.ID+" five" ||
		!strings.Contains(lines[1], " "+g2.ID+" gearbox: cannot read this gear's log from node "+g2.Node+": ") {
		t.Errorf("logs with %s unreachable: %d\n%s", g2.Node, r.code, r.raw)
	}
	// A node that left is not asked.
	gone := c.node(t, g1.Node)
	if err := gone.st.Leave(t.Context()); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 20*time.Second, "node gone", func() bool {
		for _, m := range c.st.Members() {
			if m.Name == gone.name {
				return m.Status != "alive"
			}
		}
		return false
	})
	r = c.do(t, "GET", logs+"?tail=1", demo, nil)
	if !strings.Contains(r.raw, " "+g1.ID+" gearbox: cannot read this gear's log: its node "+g1.Node+" is not alive (left)\n") {
		t.Errorf("logs with %s gone: %d\n%s", g1.Node, r.code, r.raw)
	}
}

// logStream is a followed logs request, read line by line.
type logStream struct {
	t      *testing.T
	cancel context.CancelFunc
	lines  chan string
}

func (c *cluster) followLogs(t *testing.T, path string, who creds) *logStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", c.url+path, nil)
	req.SetBasicAuth(who.user, who.pass)
	tr := &http.Transport{DisableKeepAlives: true}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s", path, resp.Status)
	}
	s := &logStream{t: t, cancel: cancel, lines: make(chan string, 100)}
	go func() {
		defer close(s.lines)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			s.lines <- sc.Text()
		}
	}()
	t.Cleanup(cancel)
	return s
}

// next returns the next line; ok is false once the stream ended.
func (s *logStream) next() (string, bool) {
	s.t.Helper()
	select {
	case l, ok := <-s.lines:
		return l, ok
	case <-time.After(10 * time.Second):
		s.t.Fatal("no line within 10s")
		return "", false
	}
}

func (s *logStream) want(line string) {
	s.t.Helper()
	if got, ok := s.next(); !ok || got != line {
		s.t.Fatalf("got %q (open %v), want %q", got, ok, line)
	}
}

func TestAppLogsFollow(t *testing.T) {
	c := newCluster(t, nil)
	sups := c.serveGearLogs(t)
	demo := c.user(t, "demo")
	c.domain(t, demo, "demo")
	c.createApp(t, demo, "demo", "web", url.Values{"scale": {"true"}})
	c.event(t, demo, "demo", "web", "scale-up")
	gs := c.gears(t, "demo", "web")
	g1, g2 := gs[0], gs[1]
	c.waitGears(t, gs)
	c.appendLog(t, g1, stamp(1)+" one", stamp(3)+" three")
	c.appendLog(t, g2, stamp(2)+" two")

	s := c.followLogs(t, appPath("demo", "web", "/logs?follow=true&tail=1"), demo)
	s.want(stamp(2) + " " + g2.ID + " two")
	s.want(stamp(3) + " " + g1.ID + " three")
	// New lines come as they are written.
	c.appendLog(t, g2, stamp(10)+" ten")
	s.want(stamp(10) + " " + g2.ID + " ten")
	c.appendLog(t, g1, stamp(11)+" eleven")
	s.want(stamp(11) + " " + g1.ID + " eleven")

	// A client that goes ends the request: the leak check sees the
	// readers go.
	s.cancel()
	for _, ok := s.next(); ok; _, ok = s.next() {
	}

	// When every gear's node ends its stream, the response ends, with a
	// line for each.
	// (The line may be written before the node opens the log: it is then
	// the tail.)
	s = c.followLogs(t, appPath("demo", "web", "/logs?follow=1&tail=1"), demo)
	c.appendLog(t, g1, stamp(12)+" twelve")
	for seen := map[string]bool{}; !seen[stamp(12)+" "+g1.ID+" twelve"]; {
		l, ok := s.next()
		if !ok || seen[l] || l != stamp(10)+" "+g2.ID+" ten" && l != stamp(11)+" "+g1.ID+" eleven" && l != stamp(12)+" "+g1.ID+" twelve" {
			t.Fatalf("got %q (open %v), want the tail then the new line", l, ok)
		}
		seen[l] = true
	}
	for _, sup := range sups {
		sup.Close()
	}
	ended := map[string]bool{}
	for l, ok := s.next(); ok; l, ok = s.next() {
		for _, g := range gs {
			if strings.Contains(l, " "+g.ID+" gearbox: node "+g.Node+" ended this gear's log stream") {
				ended[g.ID] = true
			}
		}
	}
	if len(ended) != 2 {
		t.Errorf("streams of gears %v said they ended, want both", ended)
	}
}
