package store

import (
	"strings"
	"testing"
	"time"
)

func TestConfigMaxClockSkew(t *testing.T) {
	tests := []struct {
		name    string
		skew    time.Duration
		want    time.Duration
		wantErr string
	}{
		{"unset takes the default", 0, time.Minute, ""},
		{"set", 5 * time.Second, 5 * time.Second, ""},
		{"negative", -time.Second, 0, "MaxClockSkew -1s is negative"},
		{"as long as the tombstone ttl", 24 * time.Hour, 0, "MaxClockSkew 24h0m0s must be shorter than TombstoneTTL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := LocalConfig("m", t.TempDir(), "127.0.0.1")
			cfg.MaxClockSkew = tt.skew
			st, err := New(cfg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("New: %v, want an error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			if st.cfg.MaxClockSkew != tt.want {
				t.Fatalf("MaxClockSkew = %s, want %s", st.cfg.MaxClockSkew, tt.want)
			}
		})
	}
	if got := DefaultConfig("m", "d").MaxClockSkew; got != time.Minute {
		t.Fatalf("DefaultConfig().MaxClockSkew = %s, want 1m", got)
	}
}
