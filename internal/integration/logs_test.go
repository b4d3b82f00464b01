package integration

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"gearbox/broker"
	"gearbox/broker/client"
	"gearbox/internal/testutil"
)

// The logs tests run the broker's logs API against node supervisors that
// serve their gears' logs on the internal API.

func TestAppLogs(t *testing.T) {
	c := newCluster(t, nil)
	c.serveGearLogs(t)
	ctx := context.Background()
	demo := c.user(t, "demo", nil)
	newApp(t, demo, "demo", "web", client.AppOptions{Scale: true})
	if _, _, err := demo.AppEvent(ctx, "demo", "web", "scale-up"); err != nil {
		t.Fatal(err)
	}
	gs := gears(t, demo, "demo", "web")
	if len(gs) != 2 || gs[0].Node == gs[1].Node {
		t.Fatalf("gears %+v: want two on two nodes", gs)
	}
	g1, g2 := gs[0], gs[1]
	c.waitGears(t, gs)
	c.appendLog(t, g1, stamp(1)+" one", stamp(3)+" three", stamp(5)+" five")
	c.appendLog(t, g2, stamp(2)+" two", stamp(4)+" four")

	// The client hides the status and the content type: this one request
	// is sent by hand.
	logs := "/broker/rest/domains/demo/applications/web/logs"
	req, _ := http.NewRequest("GET", c.url+logs, nil)
	req.SetBasicAuth(demo.User, demo.Password)
	resp, err := c.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got := readAll(t, resp.Body)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET logs: %d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), got)
	}
	want := strings.Join([]string{
		stamp(1) + " " + g1.ID + " one",
		stamp(2) + " " + g2.ID + " two",
		stamp(3) + " " + g1.ID + " three",
		stamp(4) + " " + g2.ID + " four",
		stamp(5) + " " + g1.ID + " five",
	}, "\n") + "\n"
	if got != want {
		t.Errorf("logs:\n%s\nwant\n%s", got, want)
	}
	// tail counts per gear.
	readLogs := func(who *client.Client, tail int) string {
		t.Helper()
		body, err := who.Logs(ctx, "demo", "web", tail, false)
		if err != nil {
			t.Fatalf("logs, tail %d: %v", tail, err)
		}
		return readAll(t, body)
	}
	if got, want := readLogs(demo, 1), stamp(4)+" "+g2.ID+" four\n"+stamp(5)+" "+g1.ID+" five\n"; got != want {
		t.Errorf("logs?tail=1:\n%s\nwant\n%s", got, want)
	}
	if got := readLogs(c.admin, 0); got != "" {
		t.Errorf("logs?tail=0 as admin: %q", got)
	}

	mallory := c.user(t, "mallory", nil)
	for _, tt := range []struct {
		name  string
		app   string
		query url.Values
		who   *client.Client
		code  int
		text  string
	}{
		{"no auth", "web", nil, c.as("", ""), http.StatusUnauthorized, ""},
		{"someone else's app", "web", nil, mallory, http.StatusForbidden, "belongs to another user"},
		{"unknown app", "nope", nil, demo, http.StatusNotFound, "Application 'nope' not found"},
		{"negative tail", "web", url.Values{"tail": {"-1"}}, demo, http.StatusUnprocessableEntity, "Invalid tail"},
		{"bad tail", "web", url.Values{"tail": {"x"}}, demo, http.StatusUnprocessableEntity, "Invalid value for tail"},
		{"bad follow", "web", url.Values{"follow": {"maybe"}}, demo, http.StatusUnprocessableEntity, "Invalid value for follow"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			body, err := tt.who.Stream(ctx, "/broker/rest/domains/demo/applications/"+tt.app+"/logs", tt.query)
			if err == nil {
				body.Close()
			}
			wantErr(t, err, tt.code, tt.text)
		})
	}

	// A node that cannot be reached gives one line; the other gears'
	// lines still come.
	c.node(t, g2.Node).API.Close()
	got = readLogs(demo, 1)
	lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
	if len(lines) != 2 || lines[0] != stamp(5)+" "+g1.ID+" five" ||
		!strings.Contains(lines[1], " "+g2.ID+" gearbox: cannot read this gear's log from node "+g2.Node+": ") {
		t.Errorf("logs with %s unreachable:\n%s", g2.Node, got)
	}
	// A node that left is not asked.
	gone := c.node(t, g1.Node)
	if err := gone.Store.Leave(t.Context()); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 20*time.Second, "node gone", func() bool {
		for _, m := range c.st.Members() {
			if m.Name == gone.Config.Name {
				return m.Status != "alive"
			}
		}
		return false
	})
	// Left, or failed if the leave did not reach the broker before its
	// failure detector did: either way it is not asked.
	if got := readLogs(demo, 1); !strings.Contains(got, " "+g1.ID+" gearbox: cannot read this gear's log: its node "+g1.Node+" is not alive (left)\n") &&
		!strings.Contains(got, " "+g1.ID+" gearbox: cannot read this gear's log: its node "+g1.Node+" is not alive (failed)\n") {
		t.Errorf("logs with %s gone:\n%s", g1.Node, got)
	}
}

// logStream is a followed logs request, read line by line.
type logStream struct {
	t      *testing.T
	cancel context.CancelFunc
	lines  chan string
}

// followLogs follows the logs of app web in namespace demo as who, with
// query (follow and tail).
func followLogs(t *testing.T, who *client.Client, query url.Values) *logStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	body, err := who.Stream(ctx, "/broker/rest/domains/demo/applications/web/logs", query)
	if err != nil {
		t.Fatalf("follow logs: %v", err)
	}
	s := &logStream{t: t, cancel: cancel, lines: make(chan string, 100)}
	go func(body io.ReadCloser) {
		defer close(s.lines)
		defer body.Close()
		sc := bufio.NewScanner(body)
		for sc.Scan() {
			s.lines <- sc.Text()
		}
	}(body)
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
	demo := c.user(t, "demo", nil)
	newApp(t, demo, "demo", "web", client.AppOptions{Scale: true})
	if _, _, err := demo.AppEvent(context.Background(), "demo", "web", "scale-up"); err != nil {
		t.Fatal(err)
	}
	gs := gears(t, demo, "demo", "web")
	g1, g2 := gs[0], gs[1]
	c.waitGears(t, gs)
	c.appendLog(t, g1, stamp(1)+" one", stamp(3)+" three")
	c.appendLog(t, g2, stamp(2)+" two")

	s := followLogs(t, demo, url.Values{"follow": {"true"}, "tail": {"1"}})
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
	s = followLogs(t, demo, url.Values{"follow": {"1"}, "tail": {"1"}})
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

// TestAppLogsFollowOutlastsWriteTimeout follows an app's logs through a
// broker whose API write and body time-outs are far shorter than the
// quiet spells of the log: the time-outs bound a write the client does
// not take and a body that stops coming, not a stream, so the lines
// written after each quiet spell still come.
func TestAppLogsFollowOutlastsWriteTimeout(t *testing.T) {
	const timeout = 200 * time.Millisecond
	c := newCluster(t, nil, func(cfg *broker.Config) { cfg.APIWriteTimeout, cfg.APIBodyTimeout = timeout, timeout })
	c.serveGearLogs(t)
	demo := c.user(t, "demo", nil)
	newApp(t, demo, "demo", "web", client.AppOptions{})
	gs := gears(t, demo, "demo", "web")
	g := gs[0]
	c.waitGears(t, gs)
	c.appendLog(t, g, stamp(1)+" one")

	s := followLogs(t, demo, url.Values{"follow": {"1"}, "tail": {"1"}})
	s.want(stamp(1) + " " + g.ID + " one")
	for i := 2; i <= 3; i++ {
		// The quiet spell is what is tested: nothing to wait for.
		time.Sleep(3 * timeout)
		line := fmt.Sprintf("line %d", i)
		c.appendLog(t, g, stamp(i)+" "+line)
		s.want(stamp(i) + " " + g.ID + " " + line)
	}
	s.cancel()
	for _, ok := s.next(); ok; _, ok = s.next() {
	}
}
