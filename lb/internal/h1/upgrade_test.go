package h1

import (
	"bufio"
	"net/http"
	"strings"
	"testing"
)

// TestResponseUpgrade checks Head.Upgrade on responses against what
// net/http's client takes for a switch of protocols: a 101 with a
// non-empty Upgrade field and Connection: upgrade.
func TestResponseUpgrade(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want bool
	}{
		{"switch", "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", true},
		{"token among others", "HTTP/1.1 101 Switching Protocols\r\nConnection: keep-alive, upgrade\r\nUpgrade: websocket\r\n\r\n", true},
		{"second Connection field", "HTTP/1.1 101 Switching Protocols\r\nConnection: keep-alive\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n", true},
		{"no Connection", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n", false},
		{"no Upgrade", "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n\r\n", false},
		{"empty Upgrade", "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: \r\n\r\n", false},
		{"bare 101", "HTTP/1.1 101 Switching Protocols\r\n\r\n", false},
		{"not a 101", "HTTP/1.1 200 OK\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: 0\r\n\r\n", false},
		{"426", "HTTP/1.1 426 Upgrade Required\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: 0\r\n\r\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h Head
			if err := h.ReadResponse(bufio.NewReaderSize(strings.NewReader(tt.in), 4096), false); err != nil {
				t.Fatal(err)
			}
			if h.Upgrade != tt.want {
				t.Errorf("Upgrade = %v, want %v", h.Upgrade, tt.want)
			}
			res, err := http.ReadResponse(bufio.NewReader(strings.NewReader(tt.in)), nil)
			if err != nil {
				t.Fatal(err)
			}
			if ref := protocolSwitch(res); h.Upgrade != ref {
				t.Errorf("Upgrade = %v, net/http's rule says %v", h.Upgrade, ref)
			}
		})
	}
}

// protocolSwitch is net/http's isProtocolSwitchResponse, which it does
// not export.
func protocolSwitch(res *http.Response) bool {
	if res.StatusCode != http.StatusSwitchingProtocols || res.Header.Get("Upgrade") == "" {
		return false
	}
	for _, v := range res.Header["Connection"] {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), "upgrade") {
				return true
			}
		}
	}
	return false
}
