package node

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gearbox/internal/testutil"
	"gearbox/node/services"
	"gearbox/store/state"
)

// withServices starts cluster services for node n (a one-node NATS
// cluster on n's address) and gives them to its Supervisor.
func withServices(t *testing.T, n *testNode) func(*Config) {
	t.Helper()
	n.put(state.BucketNodes, n.st.Name(), state.Node{Name: n.st.Name(), Addr: n.ip, NATS: n.ip + ":6222"})
	svc, err := services.New(services.FastConfig(n.st, filepath.Join(n.dir, "nats"), n.ip, "singleton test secret"))
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	select {
	case <-svc.Ready():
	case <-time.After(20 * time.Second):
		t.Fatal("services not ready within 20 s")
	}
	return func(c *Config) { c.Services = svc }
}

// readLines returns the lines of a gear's data file, none if it is missing.
func readLines(n *testNode, gear, file string) []string {
	b, err := os.ReadFile(filepath.Join(n.gearDir(gear), "data", file))
	if err != nil {
		return nil
	}
	return strings.Fields(strings.TrimSpace(string(b)))
}

// An app's daemon runs on one of its gears; when that gear stops it moves
// to the other within about a second, with a higher fencing token; its
// job's ticks run once each, across the move, none skipped.
func TestDaemonAndJobRunOnOneGearAndMove(t *testing.T) {
	if !inGearPath("python3") || !inGearPath("sh") {
		t.Skip("python3 and sh must be in the gear PATH")
	}
	n := newTestStore(t)
	svc := withServices(t, n)
	n.s = n.startSupervisor(svc)
	b := serveBlobs(t, n)
	manifest := "web: exec python3 -m http.server \"$PORT\" --bind \"$GEARBOX_IP\"\n" +
		"daemons:\n  counter: echo \"$GEARBOX_FENCING_TOKEN\" >> \"$GEARBOX_DATA_DIR/daemon\"; exec sleep 600\n" +
		"jobs:\n  tick:\n    every: 1s\n    command: echo \"$GEARBOX_JOB_TICK\" >> \"$GEARBOX_DATA_DIR/ticks\"\n"
	app := state.AppKey("ns", "ha")
	id := n.deploy(b, app, tarGz(t, tarFile(ManifestFile, manifest), tarFile("index.html", "ok")), nil)
	n.setDeployment("ns", "ha", id)
	g1, g2 := n.gear("h1", "ha", "ns", 1), n.gear("h2", "ha", "ns", 2)
	n.put(state.BucketGears, g1.ID, g1)
	n.put(state.BucketGears, g2.ID, g2)

	var holder, other string
	testutil.WaitFor(t, 30*time.Second, "the daemon to start on one gear", func() bool {
		a, b := readLines(n, g1.ID, "daemon"), readLines(n, g2.ID, "daemon")
		switch {
		case len(a) > 0 && len(b) > 0:
			t.Fatalf("the daemon started on both gears: tokens %v and %v", a, b)
		case len(a) > 0:
			holder, other = g1.ID, g2.ID
		case len(b) > 0:
			holder, other = g2.ID, g1.ID
		}
		return holder != ""
	})
	// The gear's key file is its own, and no one else's to read.
	for _, gid := range []string{g1.ID, g2.ID} {
		fi, err := os.Stat(filepath.Join(n.gearDir(gid), natsKeyFile))
		if err != nil {
			t.Fatalf("gear %s key file: %v", gid, err)
		}
		st, _ := statOf(fi)
		if fi.Mode().Perm() != 0o600 || (n.s.iso.on() && st.uid == 0) {
			t.Errorf("gear %s key file: mode %v uid %d; want 0600, the gear's uid", gid, fi.Mode().Perm(), st.uid)
		}
	}
	token, _ := strconv.ParseUint(readLines(n, holder, "daemon")[0], 10, 64)
	if token == 0 {
		t.Fatalf("daemon on %s got fencing token %v", holder, readLines(n, holder, "daemon"))
	}
	// Let a few ticks run on the holder.
	testutil.WaitFor(t, 10*time.Second, "three ticks on "+holder, func() bool { return len(readLines(n, holder, "ticks")) >= 3 })

	var g state.Gear
	n.st.Get(state.BucketGears, holder, &g)
	g.State = state.GearStopped
	stopped := time.Now()
	n.put(state.BucketGears, holder, g)
	var moved time.Duration
	testutil.WaitFor(t, 10*time.Second, "the daemon to move to "+other, func() bool {
		moved = time.Since(stopped)
		return len(readLines(n, other, "daemon")) > 0
	})
	t.Logf("daemon moved %s after the gear stop", moved)
	if next, _ := strconv.ParseUint(readLines(n, other, "daemon")[0], 10, 64); next <= token {
		t.Errorf("fencing token went from %d to %d; want it higher", token, next)
	}
	testutil.WaitFor(t, 10*time.Second, "three ticks on "+other, func() bool { return len(readLines(n, other, "ticks")) >= 3 })
	// Every tick ran once, on one gear or the other, one second apart;
	// one tick may have run on both: a run that the stop cut before its
	// completion was recorded runs again, once, on the new holder.
	ran := map[int64][]string{}
	var ticks []int64
	for _, gid := range []string{holder, other} {
		for _, s := range readLines(n, gid, "ticks") {
			v, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				t.Fatalf("tick %q on %s: %v", s, gid, err)
			}
			if len(ran[v]) == 0 {
				ticks = append(ticks, v)
			}
			ran[v] = append(ran[v], gid)
		}
	}
	slices.Sort(ticks)
	again := 0
	for i, v := range ticks {
		if i > 0 && v-ticks[i-1] != 1000 {
			t.Errorf("ticks %d and %d are %d ms apart, want 1000 (skipped): %v", ticks[i-1], v, v-ticks[i-1], ticks)
		}
		if g := ran[v]; len(g) > 1 {
			again++
			if len(g) != 2 || g[0] != holder || g[1] != other {
				t.Errorf("tick %d ran on %v, want once, or once on each gear when cut by the stop", v, g)
			}
		}
	}
	if again > 1 {
		t.Errorf("%d ticks ran twice, want at most the one the stop cut: %v", again, ran)
	}
}
