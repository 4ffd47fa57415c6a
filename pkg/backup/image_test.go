package backup

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The helper runs only as a static binary; the test binary (cgo, for the race detector) is not one, and
// neither is a file that is no executable.
func TestBinaryPlatform(t *testing.T) {
	arch, static, err := binaryPlatform("/proc/self/exe")
	if err != nil || arch == "" {
		t.Fatalf("%s %v", arch, err)
	}
	out, _ := exec.Command("file", "-L", "/proc/self/exe").Output()
	if want := strings.Contains(string(out), "statically linked"); len(out) > 0 && static != want {
		t.Errorf("static = %v, file says %s", static, out)
	}
	p := filepath.Join(t.TempDir(), "text")
	os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755)
	if _, _, err := binaryPlatform(p); err == nil {
		t.Error("a script taken for an executable")
	}
}
