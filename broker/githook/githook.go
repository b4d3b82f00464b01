// Package githook is the pre-receive hook of the apps' git repositories
// on the brokers, and the protocol between it and its broker.
//
// A push reaches a broker as git's smart HTTP, which the broker serves
// with git's own http-backend (see broker/git.go). Before git updates any
// ref, it runs the repository's pre-receive hook, `gearbox git-hook`,
// which is Run: it sends the ref updates to the broker over a Unix socket
// (EnvSocket, in the broker's private data folder) with the push's
// one-time token (EnvToken), and prints what the broker streams back:
// the build and roll-out of the deploy branch's new commit. git passes
// the hook's output to the pusher as "remote:" lines, and refuses the
// push when the hook exits non-zero.
//
// It imports the standard library only.
package githook

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
)

// The environment the broker gives the hook.
const (
	// EnvSocket is the path of the broker's hook socket.
	EnvSocket = "GEARBOX_GIT_HOOK_SOCKET"
	// EnvToken authenticates the hook's push on the socket; it is valid
	// while the push's request lasts.
	EnvToken = "GEARBOX_GIT_HOOK_TOKEN"
)

// Path is what the hook POSTs a Request to on the socket.
const Path = "/pre-receive"

// ObjectEnv lists the variables of git's that a hook passes on so that
// the broker sees the pushed objects, which git keeps in a quarantine
// directory until the hook accepts them.
var ObjectEnv = []string{"GIT_OBJECT_DIRECTORY", "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_QUARANTINE_PATH"}

// Update is one ref a push updates: from Old to New, the all-zero id for
// a ref created or deleted.
type Update struct {
	Old string `json:"old"`
	New string `json:"new"`
	Ref string `json:"ref"`
}

// Request is what the hook sends: the updates, one per line of its
// standard input, and the values of ObjectEnv.
type Request struct {
	Updates []Update          `json:"updates"`
	Env     map[string]string `json:"env,omitempty"`
}

// Message is one JSON line of the broker's answer: a line for the pusher,
// or, last, the outcome (Done set): OK accepts the push.
type Message struct {
	Line string `json:"line,omitempty"`
	Done bool   `json:"done,omitempty"`
	OK   bool   `json:"ok,omitempty"`
}

// ParseUpdates reads the lines "OLD NEW REF" that git gives a
// pre-receive hook.
func ParseUpdates(r io.Reader) ([]Update, error) {
	var out []Update
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 3 {
			return nil, fmt.Errorf("unexpected ref update line %q", line)
		}
		out = append(out, Update{Old: f[0], New: f[1], Ref: f[2]})
	}
	return out, sc.Err()
}

// Run is the hook: it reads the updates from stdin, asks the broker
// named by getenv's EnvSocket and EnvToken, copies the broker's lines to
// out, and returns the exit status: 0 when the broker accepts the push.
func Run(ctx context.Context, stdin io.Reader, out io.Writer, getenv func(string) string) int {
	fail := func(format string, args ...any) int {
		fmt.Fprintf(out, "gearbox: "+format+"\n", args...)
		return 1
	}
	sock, token := getenv(EnvSocket), getenv(EnvToken)
	if sock == "" || token == "" {
		return fail("this hook runs only within a push to a gearbox broker (%s and %s are not set)", EnvSocket, EnvToken)
	}
	updates, err := ParseUpdates(stdin)
	if err != nil {
		return fail("%v", err)
	}
	req := Request{Updates: updates, Env: map[string]string{}}
	for _, k := range ObjectEnv {
		if v := getenv(k); v != "" {
			req.Env[k] = v
		}
	}
	body, _ := json.Marshal(req)
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://broker"+Path, bytes.NewReader(body))
	if err != nil {
		return fail("%v", err)
	}
	hreq.Header.Set("Authorization", "Bearer "+token)
	hreq.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(hreq)
	if err != nil {
		return fail("cannot reach the broker: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fail("the broker refused the push: %s %s", resp.Status, strings.TrimSpace(string(msg)))
	}
	dec := json.NewDecoder(resp.Body)
	for {
		var m Message
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return fail("the broker ended the push without an outcome (%v); 'gearbox app deployments' shows where it stands", err)
		}
		if m.Line != "" {
			fmt.Fprintln(out, m.Line)
		}
		if m.Done {
			if m.OK {
				return 0
			}
			return 1
		}
	}
}
