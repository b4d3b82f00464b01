package lb

import (
	"strings"
	"testing"
	"time"
)

func TestNewValidates(t *testing.T) {
	tests := []struct {
		name string
		set  func(c *Config)
		want string // in the error; "" for no error
	}{
		{"zero config", func(c *Config) {}, ""},
		{"balance", func(c *Config) { c.Balance = "random" }, "Balance"},
		{"health path", func(c *Config) { c.HealthPath = "health" }, "HealthPath"},
		{"expect", func(c *Config) { c.HealthExpect = []string{"2x"} }, "HealthExpect"},
		{"expect code", func(c *Config) { c.HealthExpect = []string{"600"} }, "HealthExpect"},
		{"negative timeout", func(c *Config) { c.ConnectTimeout = -time.Second }, "ConnectTimeout"},
		{"negative rise", func(c *Config) { c.Rise = -1 }, "Rise"},
		{"cookie name", func(c *Config) { c.CookieName = "GE AR" }, "CookieName"},
		{"status path", func(c *Config) { c.StatusPath = "status" }, "StatusPath"},
		{"max conns", func(c *Config) { c.MaxConns = -1 }, "MaxConns"},
		{"backend id", func(c *Config) { c.Backends = []Backend{{Addr: "127.0.0.1:1"}} }, "no ID"},
		{"duplicate id", func(c *Config) {
			c.Backends = []Backend{{ID: "a", Addr: "127.0.0.1:1"}, {ID: "a", Addr: "127.0.0.1:2"}}
		}, "twice"},
		{"address", func(c *Config) { c.Backends = []Backend{{ID: "a", Addr: "127.0.0.1"}} }, "address"},
		{"port", func(c *Config) { c.Backends = []Backend{{ID: "a", Addr: "127.0.0.1:http"}} }, "host:port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var cfg Config
			tt.set(&cfg)
			p, err := New(cfg)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				p.Close()
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New: %v, want an error about %s", err, tt.want)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	p, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c := p.cfg
	if c.Balance != LeastConn || c.HealthPath != "/" || c.HealthInterval != 2*time.Second ||
		c.HealthTimeout != 2*time.Second || c.Rise != 3 || c.Fall != 2 || c.Retries != 3 ||
		c.CookieName != "GEAR" || c.ConnectTimeout != 10*time.Second || c.ServerTimeout != time.Minute ||
		c.ClientTimeout != time.Minute || c.RotationTimeout != 30*time.Second || c.StatusPath != "/lb-status" {
		t.Errorf("defaults differ from the haproxy cartridge's: %+v", c)
	}
	for code, want := range map[int]bool{200: true, 302: true, 401: true, 403: false, 500: false} {
		if p.expect(code) != want {
			t.Errorf("default expect(%d) = %v", code, !want)
		}
	}
}

func TestFastConfigIsValid(t *testing.T) {
	p, err := New(FastConfig())
	if err != nil {
		t.Fatal(err)
	}
	p.Close()
}
