package node

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"gearbox/store/internalapi"
	"gearbox/store/state"
)

func TestTailStart(t *testing.T) {
	tests := []struct {
		content string
		n       int
		off     int64
		lines   int
	}{
		{"", 5, 0, 0},
		{"a\nb\nc\n", 0, 6, 0},
		{"a\nb\nc\n", 1, 4, 1},
		{"a\nb\nc\n", 2, 2, 2},
		{"a\nb\nc\n", 3, 0, 3},
		{"a\nb\nc\n", 10, 0, 3},
		{"a\nb\nc", 1, 4, 1}, // the last line is not ended yet
		{"a\nb\nc", 3, 0, 3},
		{"\n", 1, 0, 1},
	}
	for _, tt := range tests {
		off, lines, err := tailStart(strings.NewReader(tt.content), int64(len(tt.content)), tt.n)
		if err != nil || off != tt.off || lines != tt.lines {
			t.Errorf("tailStart(%q, %d) = %d, %d, %v; want %d, %d", tt.content, tt.n, off, lines, err, tt.off, tt.lines)
		}
	}
	// Across read chunks.
	var sb strings.Builder
	for i := range 10000 {
		fmt.Fprintf(&sb, "line %05d\n", i)
	}
	s := sb.String()
	off, lines, err := tailStart(strings.NewReader(s), int64(len(s)), 7000)
	if err != nil || lines != 7000 || s[off:off+11] != "line 03000\n" {
		t.Errorf("tailStart of 10000 lines, 7000: offset %d (%q), %d lines, %v", off, s[off:min(len(s), int(off)+11)], lines, err)
	}
}

func TestLogStreamLines(t *testing.T) {
	rec := httptest.NewRecorder()
	ls := newLogStream(rec)
	long := strings.Repeat("x", MaxLogLine+100)
	for _, p := range []string{"one\ntw", "o\n\n", long[:10], long[10:] + "\nthree\n", "four"} {
		ls.Write([]byte(p))
	}
	ls.flush()
	want := "one\ntwo\n" + long[:MaxLogLine] + " [...]\nthree\n"
	if got := rec.Body.String(); got != want {
		t.Errorf("stream wrote %q..., want %q...", got[:min(len(got), 40)], want[:40])
	}
	ls.endPartial()
	ls.flush()
	if !strings.HasSuffix(rec.Body.String(), "three\nfour\n") {
		t.Errorf("a last line without newline is not written once ended: %q", rec.Body.String()[len(want)-6:])
	}
}

// logNode is a test node with a stopped gear (which writes nothing to its
// log) whose log the test writes, and a server for the node's LogHandler.
type logNode struct {
	*testNode
	g   state.Gear
	srv *httptest.Server
}

func newLogNode(t *testing.T) *logNode {
	t.Helper()
	n := &logNode{testNode: newTestNode(t)}
	n.put(state.BucketApps, "ns/shop", state.App{ID: "a1", Name: "shop", Domain: "ns", Cartridge: state.CartStatic, State: state.GearStarted})
	n.g = n.gear("cccc00000000000000000001", "shop", "ns", 1)
	n.g.State = state.GearStopped
	n.put(state.BucketGears, n.g.ID, n.g)
	n.waitState(n.g.ID, state.GearStopped)
	n.srv = httptest.NewServer(n.s.LogHandler())
	t.Cleanup(n.srv.Close)
	return n
}

// writer opens the gear's log as the gear's output does, rotating at
// maxBytes, with the node's number of files.
func (n *logNode) writer(maxBytes int64) *logFile {
	n.t.Helper()
	l, err := openLogFile(filepath.Join(n.gearDir(n.g.ID), "logs", "gear.log"), maxBytes, DefaultLogFiles, time.Now)
	if err != nil {
		n.t.Fatal(err)
	}
	n.t.Cleanup(func() { l.Close() })
	return l
}

// get requests the gear's log with query q and returns status and body.
func (n *logNode) get(q string) (int, string) {
	n.t.Helper()
	return get(n.t, n.srv.URL+internalapi.GearLogsPath(n.g.ID)+q, "")
}

// lineText strips the time stamp off a served line, checking it is there.
func lineText(t testing.TB, line string) string {
	t.Helper()
	if !stampRE.MatchString(line) {
		t.Fatalf("line %q is not stamped", line)
	}
	return line[len("2006-01-02T15:04:05.000Z "):]
}

func texts(t testing.TB, body string) []string {
	t.Helper()
	var out []string
	for _, l := range strings.Split(strings.TrimSuffix(body, "\n"), "\n") {
		if l != "" {
			out = append(out, lineText(t, l))
		}
	}
	return out
}

func TestLogHandlerTailAcrossRotation(t *testing.T) {
	n := newLogNode(t)
	if code, body := n.get(""); code != 200 || body != "" {
		t.Fatalf("log of a gear that logged nothing: %d %q", code, body)
	}
	l := n.writer(300)
	for i := range 60 {
		fmt.Fprintf(l, "line %03d\n", i)
	}
	ents, _ := os.ReadDir(filepath.Join(n.gearDir(n.g.ID), "logs"))
	if len(ents) != 3 {
		t.Fatalf("log files %v, want gear.log and two rotated ones", ents)
	}
	b, _ := os.ReadFile(filepath.Join(n.gearDir(n.g.ID), "logs", "gear.log.2"))
	first := 0
	fmt.Sscanf(lineText(t, strings.SplitN(string(b), "\n", 2)[0]), "line %d", &first)
	if first == 0 {
		t.Fatalf("gear.log.2 starts with %q; want a rotated-away start", strings.SplitN(string(b), "\n", 2)[0])
	}
	want := func(from, to int) string {
		var out []string
		for i := from; i < to; i++ {
			out = append(out, fmt.Sprintf("line %03d", i))
		}
		return strings.Join(out, ",")
	}
	for _, tt := range []struct {
		q    string
		want string
	}{
		{"?tail=3", want(57, 60)},
		{"?tail=20", want(40, 60)}, // reaches into gear.log.1 and .2
		{"?tail=" + fmt.Sprint(60-first), want(first, 60)},
		{"", want(first, 60)}, // default 100: all that is kept
		{"?tail=100000", want(first, 60)},
		{"?tail=0", ""},
	} {
		code, body := n.get(tt.q)
		if got := strings.Join(texts(t, body), ","); code != 200 || got != tt.want {
			t.Errorf("GET %s: %d\n%s\nwant %s", tt.q, code, got, tt.want)
		}
	}
	// A line not ended yet is served.
	fmt.Fprint(l, "partial")
	if _, body := n.get("?tail=2"); strings.Join(texts(t, body), ",") != "line 059,partial" {
		t.Errorf("tail with a partial last line:\n%s", body)
	}
}

func TestLogHandlerRefuses(t *testing.T) {
	n := newLogNode(t)
	other := n.gear("cccc00000000000000000002", "shop", "ns", 2)
	other.Node = "another-node"
	n.put(state.BucketGears, other.ID, other)
	for _, tt := range []struct {
		method, path string
		code         int
	}{
		{"GET", internalapi.GearLogsPath("dddd00000000000000000001"), 404}, // no such gear
		{"GET", internalapi.GearLogsPath(other.ID), 404},                   // on another node
		{"GET", internalapi.PrefixGears + "..%2f..%2fetc/logs", 404},
		{"GET", internalapi.PrefixGears + "UPPER/logs", 404},
		{"GET", internalapi.PrefixGears + n.g.ID + "/other", 404},
		{"GET", internalapi.GearLogsPath(n.g.ID) + "?tail=-1", 400},
		{"GET", internalapi.GearLogsPath(n.g.ID) + "?tail=x", 400},
		{"GET", internalapi.GearLogsPath(n.g.ID) + "?follow=maybe", 400},
		{"POST", internalapi.GearLogsPath(n.g.ID), 405},
	} {
		req, _ := http.NewRequest(tt.method, n.srv.URL+tt.path, nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.code {
			t.Errorf("%s %s: %d, want %d", tt.method, tt.path, resp.StatusCode, tt.code)
		}
	}
}

// streamClient is client without a timeout, for streams.
var streamClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

// follower reads a followed log line by line.
type follower struct {
	t     testing.TB
	resp  *http.Response
	lines chan string
}

func (n *logNode) follow(q string) *follower {
	n.t.Helper()
	resp, err := streamClient.Get(n.srv.URL + internalapi.GearLogsPath(n.g.ID) + "?follow=1" + q)
	if err != nil {
		n.t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		n.t.Fatalf("follow: %s", resp.Status)
	}
	f := &follower{t: n.t, resp: resp, lines: make(chan string, 1000)}
	go func() {
		defer close(f.lines)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			f.lines <- sc.Text()
		}
	}()
	n.t.Cleanup(func() { resp.Body.Close() })
	return f
}

// next returns the next line, or fails the test after 10 s; ok is false
// when the stream ended.
func (f *follower) next() (line string, ok bool) {
	f.t.Helper()
	select {
	case l, ok := <-f.lines:
		return l, ok
	case <-time.After(10 * time.Second):
		f.t.Fatal("no log line within 10s")
		return "", false
	}
}

// want reads the next line and checks its text.
func (f *follower) want(text string) {
	f.t.Helper()
	l, ok := f.next()
	if !ok {
		f.t.Fatalf("stream ended, want %q", text)
	}
	if text == "" {
		if l != "" {
			f.t.Fatalf("got %q, want the end-of-tail marker", l)
		}
		return
	}
	if got := lineText(f.t, l); got != text {
		f.t.Fatalf("got %q, want %q", got, text)
	}
}

// ended waits for the stream to end.
func (f *follower) ended() {
	f.t.Helper()
	for {
		l, ok := f.next()
		if !ok {
			return
		}
		f.t.Errorf("unexpected line %q", l)
	}
}

// Following goes on across rotations, line by line, without losing or
// repeating any, and completes a line written in pieces.
func TestLogHandlerFollows(t *testing.T) {
	n := newLogNode(t)
	l := n.writer(200)
	for i := range 5 {
		fmt.Fprintf(l, "old %d\n", i)
	}
	fmt.Fprint(l, "half")
	// The line not ended yet counts in the tail, and comes once ended.
	f := n.follow("&tail=2")
	f.want("old 4")
	f.want("") // end of the tail
	fmt.Fprint(l, " and half\n")
	f.want("half and half")
	for i := range 40 { // about eight rotations
		fmt.Fprintf(l, "new %02d\n", i)
		f.want(fmt.Sprintf("new %02d", i))
	}
	ents, _ := os.ReadDir(filepath.Join(n.gearDir(n.g.ID), "logs"))
	if len(ents) != 3 {
		t.Errorf("log files %v: the log did not rotate", ents)
	}
	// A burst within one poll arrives whole.
	for i := range 3 {
		fmt.Fprintf(l, "burst %d\n", i)
	}
	for i := range 3 {
		f.want(fmt.Sprintf("burst %d", i))
	}

	// The stream ends when the gear leaves the node.
	g := n.g
	g.Node = "another-node"
	n.put(state.BucketGears, g.ID, g)
	f.ended()
}

// A followed log waits for a gear's first line, and the stream ends when
// the node closes.
func TestLogHandlerFollowEndsOnClose(t *testing.T) {
	n := newLogNode(t)
	f := n.follow("")
	f.want("")
	l := n.writer(1 << 20)
	fmt.Fprintln(l, "first")
	f.want("first")
	done := make(chan struct{})
	go func() {
		n.s.Close()
		close(done)
	}()
	f.ended()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return while a log was followed")
	}
	if code, _ := n.get(""); code != http.StatusServiceUnavailable {
		t.Errorf("log request to a closed node: %d, want 503", code)
	}
}

// A running gear's output and the node's notes reach its log as the gear
// writes them.
func TestLogHandlerRunningGear(t *testing.T) {
	n := newTestStore(t)
	n.setup = helperPrograms
	n.s = n.startSupervisor()
	srv := httptest.NewServer(n.s.LogHandler())
	t.Cleanup(srv.Close)
	n.put(state.BucketApps, "ns/api", state.App{ID: "a1", Name: "api", Domain: "ns", State: state.GearStarted,
		Env: map[string]string{"GEARBOX_NODE_TEST_HELPER": "serve"}})
	g := n.gear("eeee00000000000000000001", "api", "ns", 1)
	n.put(state.BucketGears, g.ID, g)
	n.waitState(g.ID, state.GearStarted)

	code, body := get(t, srv.URL+internalapi.GearLogsPath(g.ID), "")
	for _, re := range []string{
		`(?m)^\S+Z gearbox: starting the gear on port ` + fmt.Sprint(g.Port) + ` with the welcome page$`,
		`(?m)^\S+Z gearbox: started pid \d+$`,
		`(?m)^\S+Z helper listening on ` + regexp.QuoteMeta(n.addr(g)) + `$`,
	} {
		if code != 200 || !regexp.MustCompile(re).MatchString(body) {
			t.Errorf("gear log: %d, lacks %s:\n%s", code, re, body)
		}
	}

	ln := &logNode{testNode: n, g: g, srv: srv}
	f := ln.follow("&tail=0")
	f.want("")
	tryGet("http://"+n.addr(g)+"/exit", "")
	want := []string{"helper exiting on request", "gearbox: exited after", "helper listening on"}
	for len(want) > 0 {
		l, ok := f.next()
		if !ok {
			t.Fatalf("stream ended; still want %q", want)
		}
		if strings.HasPrefix(lineText(t, l), want[0]) {
			want = want[1:]
		}
	}
	resp := f.resp
	resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
}
