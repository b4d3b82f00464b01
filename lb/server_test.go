package lb

import (
	"net/http"
	"testing"
	"time"
)

func TestServer(t *testing.T) {
	tests := []struct {
		cfg  Config
		want time.Duration
	}{
		{Config{}, time.Minute},
		{Config{ClientTimeout: 5 * time.Second}, 5 * time.Second},
	}
	for _, tt := range tests {
		h := http.NotFoundHandler()
		s := Server(tt.cfg, ":8080", h)
		if s.Addr != ":8080" || s.ReadHeaderTimeout != tt.want || s.IdleTimeout != tt.want ||
			s.ReadTimeout != 0 || s.WriteTimeout != 0 || s.ErrorLog == nil {
			t.Errorf("Server(%v) = %+v", tt.cfg.ClientTimeout, s)
		}
	}
}
