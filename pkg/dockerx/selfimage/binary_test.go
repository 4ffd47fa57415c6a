package selfimage

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/bee2d/bee2d/pkg/dockerx"
)

// Only a static binary runs alone in an image; the test binary (cgo, for the race detector) is not one, and
// neither is a file that is no executable.
func TestInspect(t *testing.T) {
	b, err := Inspect(ProcSelf)
	if err != nil || b.Arch == "" {
		t.Fatalf("%+v %v", b, err)
	}
	if b.Arch != runtime.GOARCH {
		t.Errorf("arch %q, want %q", b.Arch, runtime.GOARCH)
	}
	out, _ := exec.Command("file", "-L", ProcSelf).Output()
	if want := strings.Contains(string(out), "statically linked"); len(out) > 0 && b.Static != want {
		t.Errorf("static = %v, file says %s", b.Static, out)
	}
	p := filepath.Join(t.TempDir(), "text")
	os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755)
	if _, err := Inspect(p); err == nil {
		t.Error("a script taken for an executable")
	}
}

func TestFit(t *testing.T) {
	linux := dockerx.Platform{OS: "linux", Arch: "amd64"}
	for _, c := range []struct {
		name string
		bin  Binary
		plat dockerx.Platform
		want Misfit
	}{
		{"static, same platform", Binary{Arch: "amd64", Static: true}, linux, Fits},
		{"dynamic", Binary{Arch: "amd64"}, linux, Dynamic},
		{"other arch", Binary{Arch: "arm64", Static: true}, linux, OtherArch},
		{"other arch and dynamic", Binary{Arch: "arm64"}, linux, OtherArch},
		{"windows engine", Binary{Arch: "amd64", Static: true}, dockerx.Platform{OS: "windows", Arch: "amd64"}, OtherOS},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := c.bin.Fit(c.plat); got != c.want {
				t.Errorf("Fit = %d, want %d", got, c.want)
			}
		})
	}
}

func TestFind(t *testing.T) {
	if got, err := Find("/usr/local/bin/bee2d"); err != nil || got != "/usr/local/bin/bee2d" {
		t.Errorf("Find(given) = %q, %v", got, err)
	}
	if got, err := Find(""); err != nil || got != ProcSelf {
		t.Errorf("Find(\"\") = %q, %v; want %s", got, err, ProcSelf)
	}
}

func TestDigest(t *testing.T) {
	p := filepath.Join(t.TempDir(), "bin")
	if err := os.WriteFile(p, []byte("one"), 0o755); err != nil {
		t.Fatal(err)
	}
	// sha256("one")
	const one = "7692c3ad3540bb803c020b3aee66cd8887123234ea0c6e7143c0add73ff431ed"
	for range 2 {
		if d, err := Digest(p); err != nil || d != one {
			t.Fatalf("Digest = %q, %v", d, err)
		}
	}
	if err := os.WriteFile(p, []byte("three"), 0o755); err != nil {
		t.Fatal(err)
	}
	if d, err := Digest(p); err != nil || d == one {
		t.Errorf("Digest after a change = %q, %v: the cached digest of the old file", d, err)
	}
}
