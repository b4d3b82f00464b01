package integration

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"gearbox/broker/client"
	"gearbox/internal/testutil"
	"gearbox/node"
)

// TestAliasReachesNodeFront adds an alias through the API and asks the
// node's front listener for it: the node routes it to the app's gear.
func TestAliasReachesNodeFront(t *testing.T) {
	c := newCluster(t, []nodeSpec{{name: "n1", zone: "z1"}})
	n := c.node(t, "n1")
	cfg := node.FastConfig(n.Store, n.Config.DataDir, n.Config.BindAddr, "example.com")
	cfg.Isolation = node.IsolateNone
	sup, err := node.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := sup.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sup.Close() })
	ctx := context.Background()
	newApp(t, c.admin, "ns", "web", client.AppOptions{})
	if _, _, err := c.admin.AddAlias(ctx, "ns", "web", "www.example.org"); err != nil {
		t.Fatal(err)
	}

	get := func(host string) (int, string) {
		req, _ := http.NewRequest("GET", "http://"+sup.FrontAddr()+"/", nil)
		req.Host = host
		resp, err := c.http.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	testutil.WaitFor(t, 10*time.Second, "the alias served by the node's front", func() bool {
		code, _ := get("WWW.example.org")
		return code == http.StatusOK
	})
	if _, err := c.admin.RemoveAlias(ctx, "ns", "web", "www.example.org"); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "the removed alias unknown to the node's front", func() bool {
		code, _ := get("www.example.org")
		return code == http.StatusNotFound
	})
	if code, body := get("web-ns.example.com"); code != http.StatusOK {
		t.Errorf("app host: %d %s", code, body)
	}
}
