package main

import "testing"

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"512MiB", 512 << 20, true},
		{"1GiB", 1 << 30, true},
		{"100MB", 100e6, true},
		{"4096", 4096, true},
		{" 2 kib ", 2048, true},
		{"10B", 10, true},
		{"0", 0, false},
		{"-1MiB", 0, false},
		{"MiB", 0, false},
		{"12XB", 0, false},
		{"1.5GiB", 0, false},
		{"", 0, false},
		{"99999999999GiB", 0, false},
	}
	for _, tt := range tests {
		got, err := parseSize(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestParsePortRange(t *testing.T) {
	if lo, hi, err := parsePortRange("35531-65535"); err != nil || lo != 35531 || hi != 65535 {
		t.Errorf("default range: %d-%d, %v", lo, hi, err)
	}
	for _, bad := range []string{"", "80", "0-10", "10-5", "1-70000", "a-b"} {
		if _, _, err := parsePortRange(bad); err == nil {
			t.Errorf("parsePortRange(%q) accepted", bad)
		}
	}
}
