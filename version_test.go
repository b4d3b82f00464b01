package main

import (
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestVersionInfo(t *testing.T) {
	none := func() (*debug.BuildInfo, bool) { return nil, false }
	got := versionInfo(none)
	want := "gearbox dev\nbuilt with " + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH + "\n"
	if got != want {
		t.Errorf("without build info: %q, want %q", got, want)
	}

	withVCS := func() (*debug.BuildInfo, bool) {
		return &debug.BuildInfo{Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "0123abcd"},
			{Key: "vcs.time", Value: "2026-01-02T03:04:05Z"},
			{Key: "vcs.modified", Value: "true"},
		}}, true
	}
	got = versionInfo(withVCS)
	if !strings.HasSuffix(got, "revision 0123abcd (modified) 2026-01-02T03:04:05Z\n") {
		t.Errorf("with vcs info: %q", got)
	}
}
