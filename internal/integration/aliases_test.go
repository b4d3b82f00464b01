package integration

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"

	"gearbox/internal/testutil"
	"gearbox/node"
)

// TestAliasReachesNodeFront adds an alias through the API and asks the
// node's front listener for it: the node routes it to the app's gear.
func TestAliasReachesNodeFront(t *testing.T) {
	c := newCluster(t, []nodeSpec{{name: "n1", zone: "z1"}})
	n := c.node(t, "n1")
	cfg := node.FastConfig(n.st, n.dataDir, n.ip, "example.com")
	cfg.Isolation = node.IsolateNone
	sup, err := node.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := sup.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sup.Close() })
	c.domain(t, admin, "ns")
	c.createApp(t, admin, "ns", "web", nil)
	c.ok(t, "POST", appPath("ns", "web", "/aliases"), admin, url.Values{"id": {"www.example.org"}}, nil)

	get := func(host string) (int, string) {
		req, _ := http.NewRequest("GET", "http://"+sup.FrontAddr()+"/", nil)
		req.Host = host
		resp, err := c.client.Do(req)
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
	c.ok(t, "DELETE", appPath("ns", "web", "/aliases/www.example.org"), admin, nil, nil)
	testutil.WaitFor(t, 10*time.Second, "the removed alias unknown to the node's front", func() bool {
		code, _ := get("www.example.org")
		return code == http.StatusNotFound
	})
	if code, body := get("web-ns.example.com"); code != http.StatusOK {
		t.Errorf("app host: %d %s", code, body)
	}
}
