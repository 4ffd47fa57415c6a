package passstore

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/bee2d/bee2d/internal/testgpg"
)

var hex32 = regexp.MustCompile(`^[0-9a-f]{32}$`)

func TestStoreDir(t *testing.T) {
	for _, tc := range []struct{ store, folder, want string }{
		{"", "", "/home/u/.password-store/bee2"},
		{"", "work", "/home/u/.password-store/work"},
		{"/srv/pass", "work", "/srv/pass"},
		{"~/pass/x", "", "/home/u/pass/x"},
		{"~", "", "/home/u"},
	} {
		if got := StoreDir(tc.store, tc.folder, "/home/u"); got != tc.want {
			t.Errorf("StoreDir(%q, %q) = %q, want %q", tc.store, tc.folder, got, tc.want)
		}
	}
}

func TestEntryPathStaysInside(t *testing.T) {
	for _, tc := range []struct{ folder, name string }{
		{"database/postgres", ""},
		{"database/postgres", ".."},
		{"database/postgres", "a/b"},
		{"../x", "a"},
		{"/etc", "a"},
		{"database/../..", "a"},
		{"", "a"},
		{"./database", "a"},
		{"database", "a\x00"},
	} {
		if p, err := entryPath("/store", tc.folder, tc.name, ".gpg"); err == nil {
			t.Errorf("entryPath(%q, %q) = %q, want an error", tc.folder, tc.name, p)
		}
	}
	if p, err := entryPath("/store", "database/postgres", "mastodon", ".gpg"); err != nil || p != "/store/database/postgres/mastodon.gpg" {
		t.Errorf("entryPath: %q %v", p, err)
	}
}

func TestFileStore(t *testing.T) {
	dir := t.TempDir()
	s := FileStore{Dir: filepath.Join(dir, "secrets")}
	v, created, err := s.Get("database/postgres", "mastodon")
	if err != nil || !created || !hex32.MatchString(v) {
		t.Fatalf("first Get: %q created=%v %v", v, created, err)
	}
	path := filepath.Join(dir, "secrets", "database", "postgres", "mastodon")
	mode(t, path, 0o600)
	mode(t, filepath.Join(dir, "secrets", "database", "postgres"), 0o700)
	mode(t, filepath.Join(dir, "secrets", "database"), 0o700)
	again, created, err := s.Get("database/postgres", "mastodon")
	if err != nil || created || again != v {
		t.Fatalf("second Get: %q created=%v %v, want %q", again, created, err, v)
	}
	other, _, err := s.Get("database/postgres", "admin")
	if err != nil || other == v {
		t.Fatalf("another name: %q %v", other, err)
	}
	noTemp(t, filepath.Dir(path))

	// A file written by hand is read as it is, without its line end.
	os.MkdirAll(filepath.Join(dir, "secrets", "database", "mysql"), 0o700)
	os.WriteFile(filepath.Join(dir, "secrets", "database", "mysql", "wiki"), []byte("s3cret pass\n"), 0o600)
	if v, created, err := s.Get("database/mysql", "wiki"); err != nil || created || v != "s3cret pass" {
		t.Errorf("hand-written: %q created=%v %v", v, created, err)
	}
	os.WriteFile(filepath.Join(dir, "secrets", "database", "mysql", "empty"), []byte("\n"), 0o600)
	if _, _, err := s.Get("database/mysql", "empty"); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("empty file: %v", err)
	}
}

func TestGPGStore(t *testing.T) {
	gpg, fpr := testgpg.Home(t)
	dir := filepath.Join(t.TempDir(), "pass", "bee2")
	s := GPGStore{Dir: dir, Recipient: fpr}
	v, created, err := s.Get("database/postgres", "mastodon")
	if err != nil || !created || !hex32.MatchString(v) {
		t.Fatalf("first Get: %q created=%v %v", v, created, err)
	}
	path := filepath.Join(dir, "database", "postgres", "mastodon.gpg")
	mode(t, path, 0o600)
	mode(t, filepath.Dir(path), 0o700)
	noTemp(t, filepath.Dir(path))

	again, created, err := s.Get("database/postgres", "mastodon")
	if err != nil || created || again != v {
		t.Fatalf("second Get: %q created=%v %v, want %q", again, created, err, v)
	}
	// The file is what pass keeps: binary OpenPGP that gpg itself decrypts to the same password.
	raw, _ := os.ReadFile(path)
	if strings.HasPrefix(string(raw), "-----BEGIN") {
		t.Error("the file is ASCII-armoured; pass writes binary")
	}
	plain, err := exec.Command(gpg, "--batch", "--quiet", "--decrypt", path).Output()
	if err != nil || strings.TrimSpace(string(plain)) != v {
		t.Errorf("gpg --decrypt: %q %v, want %q", plain, err, v)
	}

	// An entry that the user's pass wrote (with its line end) is read as it is.
	own := filepath.Join(dir, "database", "mysql", "wiki.gpg")
	os.MkdirAll(filepath.Dir(own), 0o700)
	enc := exec.Command(gpg, "--batch", "--yes", "--encrypt", "--recipient", fpr, "--output", own)
	enc.Stdin = strings.NewReader("pass's own\n")
	if out, err := enc.CombinedOutput(); err != nil {
		t.Fatalf("encrypt: %v\n%s", err, out)
	}
	if v, created, err := s.Get("database/mysql", "wiki"); err != nil || created || v != "pass's own" {
		t.Errorf("an entry written by gpg: %q created=%v %v", v, created, err)
	}

	t.Run("a corrupt file is an error naming it", func(t *testing.T) {
		bad := filepath.Join(dir, "database", "postgres", "broken.gpg")
		os.WriteFile(bad, []byte("not OpenPGP at all"), 0o600)
		_, _, err := s.Get("database/postgres", "broken")
		if err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "gpg:") {
			t.Errorf("corrupt: %v", err)
		}
		b, _ := os.ReadFile(bad)
		if string(b) != "not OpenPGP at all" {
			t.Error("the corrupt file was replaced")
		}
	})
	t.Run("an unknown recipient is an error naming the key", func(t *testing.T) {
		s := GPGStore{Dir: dir, Recipient: "nobody@example.org"}
		_, _, err := s.Get("database/postgres", "other")
		if err == nil || !strings.Contains(err.Error(), "nobody@example.org") {
			t.Fatalf("unknown recipient: %v", err)
		}
		if !strings.Contains(err.Error(), "gpg:") {
			t.Errorf("gpg's own reason is missing: %v", err)
		}
		if _, err := os.Stat(filepath.Join(dir, "database", "postgres", "other.gpg")); err == nil {
			t.Error("a password file was left behind")
		}
		noTemp(t, filepath.Join(dir, "database", "postgres"))
	})
	t.Run("no recipient, no new password", func(t *testing.T) {
		_, _, err := GPGStore{Dir: dir}.Get("database/postgres", "third")
		if err == nil || !strings.Contains(err.Error(), "pgp_id") {
			t.Errorf("no recipient: %v", err)
		}
		// An existing entry needs no recipient.
		if got, _, err := (GPGStore{Dir: dir}).Get("database/postgres", "mastodon"); err != nil || got != v {
			t.Errorf("read without a recipient: %q %v", got, err)
		}
	})
	t.Run("a missing gpg is named", func(t *testing.T) {
		_, _, err := GPGStore{Dir: dir, GPG: "/nonexistent/gpg"}.Get("database/postgres", "mastodon")
		if err == nil || !strings.Contains(err.Error(), "/nonexistent/gpg") {
			t.Errorf("missing gpg: %v", err)
		}
	})
}

func mode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != want {
		t.Errorf("%s: mode %v, want %v", path, fi.Mode().Perm(), want)
	}
}

func noTemp(t *testing.T, dir string) {
	t.Helper()
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temporary file left: %s", filepath.Join(dir, e.Name()))
		}
	}
}

// Runs that ask for the same new password at once all get the one that was kept.
func TestFileStoreConcurrentGet(t *testing.T) {
	s := FileStore{Dir: t.TempDir()}
	const n = 8
	values, created := make([]string, n), make([]bool, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			var err error
			values[i], created[i], err = s.Get("database/postgres", "shared")
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	made := 0
	for i := range n {
		if values[i] != values[0] {
			t.Errorf("Get %d: %q, Get 0: %q", i, values[i], values[0])
		}
		if created[i] {
			made++
		}
	}
	if made != 1 {
		t.Errorf("%d calls say they created the password, want 1", made)
	}
}
