package cmdline

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestNewLogger(t *testing.T) {
	tests := []struct {
		level, format string
		terminal      bool
		wantJSON      bool
		wantDebug     bool
	}{
		{level: "info", format: "auto", terminal: false, wantJSON: true},
		{level: "info", format: "auto", terminal: true, wantJSON: false},
		{level: "debug", format: "json", terminal: true, wantJSON: true, wantDebug: true},
		{level: "WARN", format: "console", terminal: false, wantJSON: false},
		{level: "error", format: "json", wantJSON: true},
	}
	for _, tt := range tests {
		t.Run(tt.level+"/"+tt.format, func(t *testing.T) {
			var buf bytes.Buffer
			log, err := NewLogger(&buf, tt.level, tt.format, tt.terminal)
			if err != nil {
				t.Fatal(err)
			}
			log.Debug().Msg("debug line")
			log.Error().Str("component", "test").Msg("error line")
			out := buf.String()
			if got := strings.Contains(out, "debug line"); got != tt.wantDebug {
				t.Errorf("debug line written = %v, want %v:\n%s", got, tt.wantDebug, out)
			}
			lines := strings.Split(strings.TrimSpace(out), "\n")
			last := lines[len(lines)-1]
			var ev map[string]any
			isJSON := json.Unmarshal([]byte(last), &ev) == nil
			if isJSON != tt.wantJSON {
				t.Fatalf("JSON output = %v, want %v: %q", isJSON, tt.wantJSON, last)
			}
			if isJSON && (ev["message"] != "error line" || ev["level"] != "error" || ev["component"] != "test" || ev["time"] == nil) {
				t.Errorf("event = %v", ev)
			}
			if !isJSON && !strings.Contains(last, "error line") {
				t.Errorf("console line = %q", last)
			}
		})
	}
}

func TestNewLoggerErrors(t *testing.T) {
	if _, err := NewLogger(&bytes.Buffer{}, "loud", "auto", false); err == nil || !strings.Contains(err.Error(), "--log-level") {
		t.Errorf("bad level: err = %v", err)
	}
	if _, err := NewLogger(&bytes.Buffer{}, "info", "xml", false); err == nil || !strings.Contains(err.Error(), "--log-format") {
		t.Errorf("bad format: err = %v", err)
	}
}
