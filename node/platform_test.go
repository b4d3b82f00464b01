package node

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

func TestUnsupportedOS(t *testing.T) {
	for _, goos := range []string{"darwin", "windows"} {
		err := unsupportedOS(goos)
		if !errors.Is(err, ErrUnsupportedOS) {
			t.Errorf("unsupportedOS(%q) = %v, want it to wrap ErrUnsupportedOS", goos, err)
		}
		want := "the node role runs on Linux only: gears need Linux process isolation (this is " + goos + ")"
		if err.Error() != want {
			t.Errorf("unsupportedOS(%q) = %q, want %q", goos, err, want)
		}
	}
}

func TestCheckPlatform(t *testing.T) {
	err := checkPlatform()
	if runtime.GOOS == "linux" {
		if err != nil {
			t.Fatalf("checkPlatform() = %v on Linux, want nil", err)
		}
		return
	}
	if !errors.Is(err, ErrUnsupportedOS) {
		t.Fatalf("checkPlatform() = %v on %s, want ErrUnsupportedOS", err, runtime.GOOS)
	}
	if _, err := New(Config{}); !errors.Is(err, ErrUnsupportedOS) {
		t.Fatalf("New = %v on %s, want ErrUnsupportedOS", err, runtime.GOOS)
	}
}

func TestStatOf(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, []byte("x"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, 0o640); err != nil { // whatever the umask
		t.Fatal(err)
	}
	if err := os.Link(p, filepath.Join(dir, "g")); err != nil {
		t.Skipf("no hard links here: %v", err)
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	st, ok := statOf(fi)
	if runtime.GOOS != "linux" {
		if ok {
			t.Fatalf("statOf = %+v, true on %s, want false", st, runtime.GOOS)
		}
		return
	}
	want := inode{mode: 0o640, uid: os.Getuid(), gid: os.Getgid(), nlink: 2}
	if !ok || st != want {
		t.Fatalf("statOf = %+v, %v; want %+v, true", st, ok, want)
	}
	if !giveToGear(os.Getuid())(st) || giveToGear(os.Getuid()+1)(st) {
		t.Errorf("giveToGear: a file with two links is taken only by its owner's uid")
	}
}
