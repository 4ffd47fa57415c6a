package gitx

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bee2d/bee2d/internal/testgit"
)

// isolate keeps the user's and the system's git configuration out of the test, and names the author.
func isolate(t *testing.T) { testgit.Isolate(t) }

// run runs git in dir for the test and returns its output, trimmed.
func run(t *testing.T, dir string, args ...string) string {
	t.Helper()
	return strings.TrimSpace(testgit.Git(t, dir, args...))
}

// commit writes files (name to content) into the repository at dir and commits them with subject, with
// any extra arguments for git commit; it returns the commit.
func commit(t *testing.T, dir, subject string, files map[string]string, extra ...string) string {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		run(t, dir, "add", name)
	}
	run(t, dir, append([]string{"commit", "--quiet", "--allow-empty", "-m", subject}, extra...)...)
	return run(t, dir, "rev-parse", "HEAD")
}

// repo makes a repository with one commit on branch main and returns its directory and that commit.
func repo(t *testing.T) (string, string) {
	t.Helper()
	isolate(t)
	dir := t.TempDir()
	run(t, dir, "init", "--quiet", "--initial-branch=main")
	return dir, commit(t, dir, "first", map[string]string{"Dockerfile": "FROM scratch\n"})
}

func TestCloneTemp(t *testing.T) {
	src, head := repo(t)
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)

	dir, commit, cleanup, err := CloneTemp(t.Context(), src, "main")
	if err != nil {
		t.Fatal(err)
	}
	if commit != head {
		t.Errorf("commit %s, want %s", commit, head)
	}
	if _, err := os.Stat(filepath.Join(dir, "Dockerfile")); err != nil {
		t.Errorf("the clone lacks the repository's file: %v", err)
	}
	if !strings.HasPrefix(dir, tmp+string(filepath.Separator)) {
		t.Errorf("clone at %s, not under TMPDIR %s", dir, tmp)
	}
	cleanup()
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("cleanup left %d entries in TMPDIR", len(left))
	}

	if _, _, _, err := CloneTemp(t.Context(), src, "no-such-branch"); err == nil {
		t.Fatal("a missing branch cloned")
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("a failed clone left %d entries in TMPDIR", len(left))
	}
}

func TestHead(t *testing.T) {
	src, head := repo(t)
	for _, branch := range []string{"", "main"} {
		got, err := Head(t.Context(), "file://"+src, branch)
		if err != nil || got != head {
			t.Errorf("Head(%q) = %s, %v; want %s", branch, got, err, head)
		}
	}
	if _, err := Head(t.Context(), src, "nope"); err == nil || !strings.Contains(err.Error(), `no branch "nope"`) {
		t.Errorf("missing branch: %v", err)
	}
}

func TestErrorsHideCredentials(t *testing.T) {
	isolate(t)
	_, err := Head(t.Context(), "https://user:s3cret@127.0.0.1:1/x.git", "main")
	if err == nil {
		t.Fatal("no error from a closed port")
	}
	if strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "user:***@127.0.0.1") {
		t.Errorf("error %q shows the password or hides the host", err)
	}
}
