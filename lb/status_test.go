package lb

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// statusPool is a pool whose backends show every state: up and serving,
// down after a check, draining, local and rotated out.
func statusPool(t *testing.T) (*Pool, string, *http.Client) {
	t.Helper()
	a, down, drain, local := newTestBackend(t, "a"), newTestBackend(t, "down"), newTestBackend(t, "drain"), newTestBackend(t, "local<b>")
	down.health.Store(http.StatusInternalServerError)
	clk := newFakeClock()
	cfg := testConfig(clk)
	lb := local.backend()
	lb.Local = true
	cfg.Backends = []Backend{a.backend(), down.backend(), drain.backend(), lb}
	p := newTestPool(t, cfg)
	url, c := front(t, p)
	get(t, c, url+"/", gearCookie("", "a"))
	get(t, c, url+"/", gearCookie("", "a"))
	p.checkOnce(ctx)
	clk.Advance(time.Second)
	p.checkOnce(ctx)
	p.Drain("drain")
	p.SetRotation(true)
	return p, url, c
}

func TestStatusJSON(t *testing.T) {
	p, url, c := statusPool(t)
	r := get(t, c, url+"/lb-status?format=json", "")
	if r.code != http.StatusOK || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("status %d, Content-Type %q", r.code, r.header.Get("Content-Type"))
	}
	var st Status
	if err := json.Unmarshal([]byte(r.body), &st); err != nil {
		t.Fatalf("%v in %s", err, r.body)
	}
	if st.Balance != LeastConn || st.Rotation != RotationOut || st.Requests != 2 || len(st.Backends) != 4 {
		t.Errorf("pool: %+v", st)
	}
	tests := []struct {
		id                      string
		state                   string
		serving, drain, rotated bool
		total                   uint64
		checkStatus             int
		checkOK                 bool
	}{
		{"a", "up", true, false, false, 2, 200, true},
		{"down", "down", false, false, false, 0, 500, false},
		{"drain", "up", false, true, false, 0, 200, true},
		{"local<b>", "up", false, false, true, 0, 200, true},
	}
	for i, tt := range tests {
		b := st.Backends[i]
		if b.ID != tt.id || b.State != tt.state || b.Serving != tt.serving || b.Draining != tt.drain ||
			b.RotatedOut != tt.rotated || b.SessionsTotal != tt.total || b.Checks != 2 ||
			b.LastCheck.Status != tt.checkStatus || b.LastCheck.OK != tt.checkOK || b.LastCheck.Time.IsZero() {
			t.Errorf("backend %d: %+v, want %+v", i, b, tt)
		}
	}
	if !st.Backends[3].Local || st.Backends[0].Local {
		t.Error("local marks are wrong")
	}
	if st.Backends[1].Why != "check failed" || !st.Backends[1].Since.Equal(epoch.Add(time.Second)) {
		t.Errorf("down since %s (%s), want since the second check", st.Backends[1].Since, st.Backends[1].Why)
	}
	if st.Backends[0].Addr == "" {
		t.Error("no address")
	}
	// The status page is not proxied.
	if n := p.Status().Requests; n != 2 {
		t.Errorf("status requests were counted as proxied: %d", n)
	}
}

func TestStatusHTML(t *testing.T) {
	p, url, c := statusPool(t)
	p.markDown(backendByID(t, p, "a"), nil)
	p.checkOnce(ctx) // a: going up 1/3
	r := get(t, c, url+"/lb-status", "")
	if r.code != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") {
		t.Fatalf("status %d, Content-Type %q", r.code, r.header.Get("Content-Type"))
	}
	for _, want := range []string{
		"<table>", "<th>sessions cur</th>", "<th>errors</th>",
		"<td>a</td><td>" + backendByID(t, p, "a").Addr + "</td>",
		"down (going up 1/3)",
		"failed: 500",
		"passed: 200",
		"draining",
		"local rotated-out",
		"local&lt;b&gt;", // escaped
		"local gear rotation out",
	} {
		if !strings.Contains(r.body, want) {
			t.Errorf("page lacks %q:\n%s", want, r.body)
		}
	}
	if strings.Contains(r.body, "local<b>") {
		t.Error("backend id not escaped")
	}
}

func TestStatusPathOptions(t *testing.T) {
	tests := []struct {
		name    string
		set     func(*Config)
		path    string
		proxied bool
	}{
		{"default path", func(*Config) {}, "/lb-status", false},
		{"other path", func(c *Config) { c.StatusPath = "/haproxy-status" }, "/haproxy-status", false},
		{"moved away", func(c *Config) { c.StatusPath = "/haproxy-status" }, "/lb-status", true},
		{"off", func(c *Config) { c.NoStatus = true }, "/lb-status", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			be := newTestBackend(t, "a")
			cfg := testConfig(newFakeClock())
			cfg.Backends = []Backend{be.backend()}
			tt.set(&cfg)
			p := newTestPool(t, cfg)
			url, c := front(t, p)
			r := get(t, c, url+tt.path, "")
			if proxied := r.backend == "a"; proxied != tt.proxied {
				t.Errorf("%s proxied: %v, want %v", tt.path, proxied, tt.proxied)
			}
		})
	}
}
