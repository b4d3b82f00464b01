package node

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

var stampRE = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z `)

func TestLogFileStampsLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gear.log")
	now := time.Date(2026, 1, 2, 3, 4, 5, 6e6, time.FixedZone("X", 3600))
	l, err := openLogFile(path, 1<<20, 3, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"one\ntw", "o\n", "three\nfour\n", "five"} {
		if _, err := l.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	if _, err := l.Write([]byte("late\n")); err == nil {
		t.Error("write after Close succeeded")
	}
	b, _ := os.ReadFile(path)
	want := "2026-01-02T02:04:05.006Z one\n2026-01-02T02:04:05.006Z two\n2026-01-02T02:04:05.006Z three\n" +
		"2026-01-02T02:04:05.006Z four\n2026-01-02T02:04:05.006Z five"
	if string(b) != want {
		t.Errorf("log holds\n%s\nwant\n%s", b, want)
	}
}

func TestLogFileRotates(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "gear.log")
	l, err := openLogFile(path, 200, 3, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for i := range 100 {
		fmt.Fprintf(l, "line %03d\n", i)
	}
	ents, _ := os.ReadDir(dir)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if fmt.Sprint(names) != "[gear.log gear.log.1 gear.log.2]" {
		t.Fatalf("files %v, want gear.log and two rotated ones", names)
	}
	// The newest lines are in gear.log, older ones in .1, then .2; each
	// file holds whole stamped lines and stays near its limit.
	last := -1
	for _, name := range []string{"gear.log.2", "gear.log.1", "gear.log"} {
		b, _ := os.ReadFile(filepath.Join(dir, name))
		if len(b) > 200+40 {
			t.Errorf("%s holds %d bytes, limit 200", name, len(b))
		}
		for _, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
			if !stampRE.MatchString(line) {
				t.Fatalf("%s: line %q is not stamped", name, line)
			}
			var n int
			fmt.Sscanf(line[len("2006-01-02T15:04:05.000Z "):], "line %d", &n)
			if n != last+1 && last != -1 {
				t.Errorf("%s: line %d follows %d", name, n, last)
			}
			last = n
		}
	}
	if last != 99 {
		t.Errorf("last line %d, want 99", last)
	}
}
