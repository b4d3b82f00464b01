package demo

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	"gearbox/internal/testutil"
	"gearbox/node"
)

// natsServer runs a JetStream server whose one user authenticates with
// an nkey, and returns its URL and a seed file for that user, as a gear
// gets them.
func natsServer(t *testing.T) (url, keyFile string) {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	seed, _ := kp.Seed()
	keyFile = filepath.Join(t.TempDir(), "nats.nk")
	if err := os.WriteFile(keyFile, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(),
		Nkeys: []*server.NkeyUser{{Nkey: pub}}, NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	t.Cleanup(srv.Shutdown)
	return srv.ClientURL(), keyFile
}

// gear returns the environment of a demo process of gear id.
func gear(t *testing.T, url, keyFile, id string, out io.Writer) env {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return env{app: "demo", gear: id, natsURL: url, keyFile: keyFile, replicas: 1, addr: addr, out: out}
}

// startWeb runs the web process of e until the test ends.
func startWeb(t *testing.T, e env) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready, done := make(chan struct{}), make(chan error, 1)
	go func() { done <- web(ctx, e, func() { close(ready) }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("web %s: %v", e.gear, err)
		}
	})
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("web %s: %v", e.gear, err)
	case <-time.After(30 * time.Second):
		t.Fatalf("web %s not listening", e.gear)
	}
}

var recvRE = regexp.MustCompile(`recv gear=(\S+) msg="counter=(\d+) token=7 gear=d1" counter=\d+ job=\d+`)

// The daemon's messages are spread over the gears' listeners, its values
// go up by one, none repeated; the job counts a tick once; /count counts
// a session's requests whichever gear answers.
func TestDemo(t *testing.T) {
	url, keyFile := natsServer(t)
	var out1, out2, outD, outJ testutil.Buffer
	g1, g2 := gear(t, url, keyFile, "g1", &out1), gear(t, url, keyFile, "g2", &out2)
	startWeb(t, g1)
	startWeb(t, g2)

	d := gear(t, url, keyFile, "d1", &outD)
	d.token = "7"
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- daemon(ctx, d, 20*time.Millisecond) }()
	received := func() map[string][]int {
		got := map[string][]int{}
		for _, out := range []*testutil.Buffer{&out1, &out2} {
			for _, m := range recvRE.FindAllStringSubmatch(out.String(), -1) {
				v, _ := strconv.Atoi(m[2])
				got[m[1]] = append(got[m[1]], v)
			}
		}
		return got
	}
	testutil.WaitFor(t, 30*time.Second, "40 messages received", func() bool {
		got := received()
		return len(got["g1"])+len(got["g2"]) >= 40
	}, func() string { return out1.String() + out2.String() + outD.String() })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("daemon: %v", err)
	}
	got := received()
	if len(got["g1"]) == 0 || len(got["g2"]) == 0 {
		t.Errorf("messages by gear: g1 %d, g2 %d; want both to get some", len(got["g1"]), len(got["g2"]))
	}
	seen := map[int]bool{}
	for _, vs := range got {
		for _, v := range vs {
			if seen[v] {
				t.Errorf("value %d received twice", v)
			}
			seen[v] = true
		}
	}
	for v := 0; v < len(seen); v++ {
		if !seen[v] {
			t.Errorf("value %d never received (received %d values)", v, len(seen))
		}
	}

	// A tick run twice counts once.
	j := gear(t, url, keyFile, "j1", &outJ)
	for _, tick := range []string{"1000", "1000", "2000"} {
		j.tick = tick
		if err := job(context.Background(), j); err != nil {
			t.Fatalf("job tick %s: %v", tick, err)
		}
	}
	if !strings.Contains(outJ.String(), "tick=1000 already counted: job=1") || !strings.Contains(outJ.String(), "tick=2000 job=2") {
		t.Errorf("job output:\n%s", outJ.String())
	}

	// /count through one gear then the other, with the same cookies.
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	for i, g := range []env{g1, g2, g1, g2} {
		u := "http://" + g.addr + "/count"
		// The jar keeps cookies by host, and the gears are on one.
		resp, err := c.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := fmt.Sprintf("%d\n", i+1); string(body) != want {
			t.Errorf("GET %s = %d %q, want %q", u, resp.StatusCode, body, want)
		}
	}
	resp, err := c.Get("http://" + g2.addr + "/some/path")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !regexp.MustCompile(`^demo gear=g2 counter=\d+ job=2\n$`).Match(body) || !strings.Contains(out2.String(), "web gear=g2 path=/some/path") {
		t.Errorf("GET /some/path: %q; g2's log:\n%s", body, out2.String())
	}
}

// The archive holds the manifest, which the node reads, and the binary.
func TestArchive(t *testing.T) {
	exe := filepath.Join(t.TempDir(), "gearbox")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := Archive(exe, 2*time.Second, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	files := map[string]string{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(tr)
		files[h.Name] = fmt.Sprintf("%o %s", h.Mode, body)
	}
	if files["bin/gearbox"] != "755 #!/bin/sh\n" {
		t.Errorf("bin/gearbox: %q", files["bin/gearbox"])
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, node.ManifestFile), []byte(Manifest(2*time.Second, 3*time.Second)), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := node.ReadManifest(dir)
	if err != nil {
		t.Fatalf("the node refuses the demo's manifest: %v", err)
	}
	if m.Daemons["counter"] != "./bin/gearbox cluster-demo daemon --every 2s" || m.Jobs["ajob"].Schedule.Interval() != 3*time.Second {
		t.Errorf("manifest read as %+v", m)
	}
	if _, err := Archive(filepath.Join(dir, "missing"), time.Second, time.Second); err == nil {
		t.Error("an archive of a missing executable: no error")
	}
}
