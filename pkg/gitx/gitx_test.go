package gitx

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// repo makes a repository with one commit on branch main and returns its directory and that commit.
func repo(t *testing.T) (string, string) {
	t.Helper()
	dir := t.TempDir()
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(t.Context(), "git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.net",
			"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.net", "GIT_CONFIG_GLOBAL=/dev/null")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	run("init", "--quiet", "--initial-branch=main")
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	run("add", "Dockerfile")
	run("commit", "--quiet", "-m", "first")
	return dir, run("rev-parse", "HEAD")
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
