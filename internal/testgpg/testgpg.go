// Package testgpg gives tests a real gpg key in a throw-away GNUPGHOME.
package testgpg

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bee2d/bee2d/internal/testdocker"
)

// Home makes a throw-away GNUPGHOME with one key without a passphrase, for this test only, and returns
// the gpg binary and the key's fingerprint. Without gpg the test is skipped, or fails under CI=true.
func Home(t *testing.T) (gpg, fingerprint string) {
	t.Helper()
	gpg, err := exec.LookPath("gpg")
	if err != nil {
		testdocker.Need(t, "gpg not found (apt-get install gnupg)")
	}
	home := t.TempDir()
	if err := os.Chmod(home, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Setenv("GNUPGHOME", home)
	// A recipient missing from the keyring must not send gpg looking on the network (WKD, key servers).
	if err := os.WriteFile(filepath.Join(home, "gpg.conf"), []byte("auto-key-locate local\nno-auto-key-retrieve\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// The agent gpg started for this home would outlive the test.
		exec.Command("gpgconf", "--kill", "gpg-agent").Run()
	})
	out, err := exec.Command(gpg, "--batch", "--passphrase", "", "--quick-gen-key", "bee2d test <t@example.org>",
		"future-default", "default", "never").CombinedOutput()
	if err != nil {
		t.Fatalf("make a key: %v\n%s", err, out)
	}
	out, err = exec.Command(gpg, "--batch", "--with-colons", "--list-keys", "t@example.org").Output()
	if err != nil {
		t.Fatalf("list keys: %v", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Split(line, ":"); f[0] == "fpr" && len(f) > 9 {
			return gpg, f[9]
		}
	}
	t.Fatalf("no fingerprint in\n%s", out)
	return "", ""
}
