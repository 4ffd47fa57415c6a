package gitx

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func mirror(t *testing.T) *Mirror {
	t.Helper()
	m, err := OpenMirror(filepath.Join(t.TempDir(), "mirror"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestMirrorFetch(t *testing.T) {
	src, first := repo(t)
	m := mirror(t)
	url := "file://" + src
	got, err := m.Fetch(t.Context(), url, "main")
	if err != nil || got != first {
		t.Fatalf("Fetch = %s, %v; want %s", got, err, first)
	}

	second := commit(t, src, "second", map[string]string{"a": "a\n"})
	if got, err := m.Fetch(t.Context(), src, "main"); err != nil || got != second {
		t.Fatalf("Fetch from the local path = %s, %v; want %s", got, err, second)
	}

	// A rewritten branch is fetched as it now is.
	run(t, src, "reset", "--quiet", "--hard", first)
	rewritten := commit(t, src, "rewritten", nil)
	if got, err := m.Fetch(t.Context(), url, "main"); err != nil || got != rewritten {
		t.Fatalf("Fetch after a force push = %s, %v; want %s", got, err, rewritten)
	}
	// The whole history is there, not only the head.
	if c, err := m.Describe(t.Context(), first); err != nil || c.Subject != "first" {
		t.Errorf("Describe(first) = %+v, %v", c, err)
	}

	// Reopening finds the same repository.
	m2, err := OpenMirror(m.Dir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m2.Describe(t.Context(), rewritten); err != nil {
		t.Errorf("reopened mirror: %v", err)
	}

	_, err = m.Fetch(t.Context(), url, "nope")
	if err == nil || !strings.Contains(err.Error(), `no branch "nope"`) || !strings.Contains(err.Error(), url) {
		t.Errorf("missing branch: %v", err)
	}
	if _, err := m.Fetch(t.Context(), "ext::sh -c true", "main"); err == nil {
		t.Error("fetched over ext::")
	}
	if _, err := m.Fetch(t.Context(), url, "--upload-pack=true"); err == nil {
		t.Error("fetched an option as a branch")
	}

	// The URL, which may hold a token, is never written into the mirror.
	cfg, err := os.ReadFile(filepath.Join(m.Dir(), "config"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(cfg), src) {
		t.Errorf("the mirror's config holds the URL:\n%s", cfg)
	}
}

func TestMirrorFetchHidesCredentials(t *testing.T) {
	isolate(t)
	m := mirror(t)
	_, err := m.Fetch(t.Context(), "https://user:s3cret@127.0.0.1:1/x.git", "main")
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("error %v", err)
	}
}

func TestIsAncestorDescribe(t *testing.T) {
	src, first := repo(t)
	second := commit(t, src, "second line\n\nbody", nil)
	run(t, src, "checkout", "--quiet", "-b", "side", first)
	side := commit(t, src, "side", nil)
	m := mirror(t)
	for _, b := range []string{"main", "side"} {
		if _, err := m.Fetch(t.Context(), src, b); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		older, newer string
		want         bool
	}{{first, second, true}, {second, second, true}, {second, first, false}, {second, side, false}, {first, side, true}} {
		got, err := m.IsAncestor(t.Context(), tc.older, tc.newer)
		if err != nil || got != tc.want {
			t.Errorf("IsAncestor(%s, %s) = %v, %v; want %v", Short(tc.older), Short(tc.newer), got, err, tc.want)
		}
	}
	if _, err := m.IsAncestor(t.Context(), strings.Repeat("ab", 20), second); err == nil {
		t.Error("IsAncestor of an unknown commit: no error")
	}
	if _, err := m.IsAncestor(t.Context(), "--help", second); err == nil {
		t.Error("IsAncestor of an option: no error")
	}

	c, err := m.Describe(t.Context(), second)
	if err != nil {
		t.Fatal(err)
	}
	if c.Hash != second || c.Subject != "second line" || c.Author != os.Getenv("GIT_AUTHOR_NAME")+" <"+os.Getenv("GIT_AUTHOR_EMAIL")+">" || c.Time.IsZero() {
		t.Errorf("Describe = %+v", c)
	}
	if c.Short() != second[:7] {
		t.Errorf("Short = %s", c.Short())
	}
}

func TestCheckout(t *testing.T) {
	src, _ := repo(t)
	if err := os.WriteFile(filepath.Join(src, "run.sh"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("Dockerfile", filepath.Join(src, "link")); err != nil {
		t.Fatal(err)
	}
	run(t, src, "add", "run.sh", "link")
	head := commit(t, src, "modes", nil)

	m := mirror(t)
	if _, err := m.Fetch(t.Context(), src, "main"); err != nil {
		t.Fatal(err)
	}
	// A hook in the mirror must not run.
	hooked := filepath.Join(t.TempDir(), "hooked")
	hook := "#!/bin/sh\ntouch " + hooked + "\n"
	if err := os.WriteFile(filepath.Join(m.Dir(), "hooks", "post-checkout"), []byte(hook), 0o755); err != nil {
		t.Fatal(err)
	}

	dir := filepath.Join(t.TempDir(), "trees", head)
	if err := m.Checkout(t.Context(), head, dir); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "run.sh")); err != nil || fi.Mode().Perm()&0o100 == 0 {
		t.Errorf("run.sh lost its executable bit: %v, %v", fi.Mode(), err)
	}
	if fi, err := os.Lstat(filepath.Join(dir, "link")); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Errorf("link is no longer a symbolic link: %v", err)
	}
	if got := run(t, dir, "rev-parse", "HEAD"); got != head {
		t.Errorf("work tree at %s, want %s", got, head)
	}
	if _, err := os.Stat(hooked); !errors.Is(err, fs.ErrNotExist) {
		t.Error("the mirror's post-checkout hook ran")
	}
	if err := m.Checkout(t.Context(), head, dir); err == nil {
		t.Error("checked out over an existing directory")
	}

	// A second tree of the same commit, and one removed behind git's back, do not get in the way.
	other := filepath.Join(filepath.Dir(dir), "other")
	if err := m.Checkout(t.Context(), head, other); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(other)
	if err := m.Checkout(t.Context(), head, other); err != nil {
		t.Fatalf("checkout where a tree was removed by hand: %v", err)
	}

	for _, d := range []string{dir, other} {
		if err := m.RemoveTree(d); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(d); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s left behind", d)
		}
	}
	if list := run(t, m.Dir(), "worktree", "list"); strings.Count(list, "\n") != 0 {
		t.Errorf("work trees still registered:\n%s", list)
	}
	if err := m.Checkout(t.Context(), strings.Repeat("ab", 20), filepath.Join(t.TempDir(), "x")); err == nil {
		t.Error("checked out an unknown commit")
	}
}
