package broker

import (
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"gearbox/internal/testutil"
	"gearbox/store"
	"gearbox/store/state"
)

func TestConfigValidation(t *testing.T) {
	m := startMember(t, "cfg", []string{store.RoleBroker}, "", "")
	tests := []struct {
		name string
		edit func(*Config)
		want string // "" for valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"no store", func(c *Config) { c.Store = nil }, "Store is required"},
		{"no data dir", func(c *Config) { c.DataDir = "" }, "DataDir is required"},
		{"cert without key", func(c *Config) { c.TLSCert = "cert.pem" }, "TLSCert and TLSKey"},
		{"admin without password", func(c *Config) { c.BootstrapAdmin = "admin" }, "BootstrapAdmin"},
		{"admin upper case", func(c *Config) { c.BootstrapAdmin = "Admin:longenough" }, "BootstrapAdmin"},
		{"admin short password", func(c *Config) { c.BootstrapAdmin = "admin:short" }, "BootstrapAdmin"},
		{"negative max gears", func(c *Config) { c.DefaultMaxGears = -1 }, "DefaultMaxGears"},
		{"unknown gear size", func(c *Config) { c.DefaultGearSizes = []string{"huge"} }, "DefaultGearSizes"},
		{"negative multiplier", func(c *Config) { c.DefaultHAMultiplier = -1 }, "DefaultHAMultiplier"},
		{"ratio 0", func(c *Config) { c.GearRatio = 0 }, "GearRatio"},
		{"ratio -2", func(c *Config) { c.GearRatio = -2 }, "GearRatio"},
		{"ratio disabled", func(c *Config) { c.GearRatio = -1 }, ""},
		{"bcrypt cost too high", func(c *Config) { c.BcryptCost = 40 }, "BcryptCost"},
		{"bcrypt cost too low", func(c *Config) { c.BcryptCost = 2 }, "BcryptCost"},
		{"negative gap wait", func(c *Config) { c.FeedGapWait = -1 }, "FeedGapWait"},
		{"negative keep-alive", func(c *Config) { c.FeedKeepAlive = -1 }, "FeedKeepAlive"},
		{"negative webhook timeout", func(c *Config) { c.WebhookTimeout = -1 }, "WebhookTimeout"},
		{"backoff above its maximum", func(c *Config) { c.WebhookBackoff, c.WebhookMaxBackoff = time.Minute, time.Second }, "WebhookMaxBackoff"},
		{"no ha prefix nor suffix", func(c *Config) { c.HAPrefix, c.HASuffix = "", "" }, ""},
		{"negative body timeout", func(c *Config) { c.APIBodyTimeout = -1 }, "APIBodyTimeout"},
		{"negative write timeout", func(c *Config) { c.APIWriteTimeout = -1 }, "APIWriteTimeout"},
		{"body rate below -1", func(c *Config) { c.APIMinBodyRate = -2 }, "APIMinBodyRate"},
		{"no body rate", func(c *Config) { c.APIMinBodyRate = -1 }, ""},
		{"negative connection cap", func(c *Config) { c.APIMaxConns = -1 }, "APIMaxConns"},
		{"negative per-client cap", func(c *Config) { c.APIMaxConnsPerClient = -1 }, "APIMaxConnsPerClient"},
		{"small total cap, per-client default", func(c *Config) { c.APIMaxConns = 10 }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig(m.st, t.TempDir())
			tt.edit(&cfg)
			b, err := New(cfg)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("New: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("New: %v, want an error about %s", err, tt.want)
			}
			if b != nil {
				if err := b.Close(); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

func TestStartAndClose(t *testing.T) {
	testutil.CheckNoLeaks(t, leakPatterns...)
	m := startMember(t, "b1", []string{store.RoleBroker}, "", "")
	cfg := DefaultConfig(m.st, t.TempDir())
	cfg.APIAddr = m.ip + ":0"
	cfg.TLSCert, cfg.TLSKey = filepath.Join(t.TempDir(), "missing.pem"), filepath.Join(t.TempDir(), "missing.key")
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(t.Context()); err == nil || !strings.Contains(err.Error(), "TLS certificate") {
		t.Fatalf("Start with a missing certificate: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	// The address is free again, and a broker that started closes twice.
	cfg.TLSCert, cfg.TLSKey = "", ""
	cfg.APIAddr = b.ln.Addr().String()
	b, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	var reg state.Broker
	if _, err := m.st.Get(state.BucketBrokers, "b1", &reg); err != nil || reg.API != "http://"+cfg.APIAddr {
		t.Fatalf("registration %+v, %v; want API http://%s", reg, err, cfg.APIAddr)
	}
	for range 2 {
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := http.Get(reg.API + "/broker/rest/api"); err == nil {
		t.Fatal("API still served after Close")
	}
}

// TestConcurrentMutations: mutations are serialised on the leader, so
// concurrent calls neither lose gears nor share ordinals, ports or
// routing sequence numbers.
func TestConcurrentMutations(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	demo := c.user(t, "demo", nil)
	c.domain(t, demo, "demo")
	c.createApp(t, demo, "demo", "web", url.Values{"scale": {"true"}})
	const n = 12
	var wg sync.WaitGroup
	codes := make([]int, 2*n)
	for i := range n {
		wg.Add(2)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("POST", c.url+appPath("demo", "web", "/events"), strings.NewReader("event=scale-up"))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth(demo.user, demo.pass)
			if resp, err := c.client.Do(req); err == nil {
				codes[i] = resp.StatusCode
				resp.Body.Close()
			}
		}()
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("POST", c.url+"/broker/rest/domains/demo/applications", strings.NewReader(fmt.Sprintf("name=app%d", i)))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth(demo.user, demo.pass)
			if resp, err := c.client.Do(req); err == nil {
				codes[n+i] = resp.StatusCode
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
	for i, code := range codes {
		if code/100 != 2 {
			t.Fatalf("request %d: %d", i, code)
		}
	}
	gs := c.gears(t, "demo", "web")
	if len(gs) != n+1 {
		t.Fatalf("%d gears, want %d", len(gs), n+1)
	}
	for i, g := range gs {
		if g.Ordinal != i+1 {
			t.Fatalf("ordinals %d at %d", g.Ordinal, i)
		}
	}
	all, err := list[state.Gear](c.st, state.BucketGears)
	if err != nil {
		t.Fatal(err)
	}
	ports := map[string]bool{}
	for _, g := range all {
		for _, p := range []int{g.Port, g.LBPort} {
			if p == 0 {
				continue
			}
			k := fmt.Sprintf("%s:%d", g.Node, p)
			if ports[k] {
				t.Fatalf("port %s given twice", k)
			}
			ports[k] = true
		}
	}
	for i, e := range c.events(t) {
		if e.Seq != uint64(i+1) {
			t.Fatalf("event %d has seq %d", i, e.Seq)
		}
	}
}
