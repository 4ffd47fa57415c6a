package gitx

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFetchRef(t *testing.T) {
	src, first := repo(t)
	second := commit(t, src, "second", map[string]string{"settings.yml": "main\n"})
	run(t, src, "tag", "-a", "-m", "v1", "v1", first)
	run(t, src, "checkout", "--quiet", "-b", "feature", first)
	feature := commit(t, src, "feature", map[string]string{"settings.yml": "feature\n"})
	run(t, src, "checkout", "--quiet", "main")
	run(t, src, "update-ref", "refs/pull/12/head", feature)

	for _, tc := range []struct{ ref, want string }{
		{"main", second},
		{"feature", feature},
		{"refs/heads/feature", feature},
		{"refs/pull/12/head", feature},
		{"v1", first},
		{"refs/tags/v1", first},
		{second, second},
		{first[:10], first},
	} {
		t.Run(tc.ref, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "tree")
			got, err := FetchRef(t.Context(), "file://"+src, tc.ref, dir)
			if err != nil || got != tc.want {
				t.Fatalf("FetchRef = %s, %v; want %s", got, err, tc.want)
			}
			if head := run(t, dir, "rev-parse", "HEAD"); head != tc.want {
				t.Errorf("work tree at %s, want %s", head, tc.want)
			}
		})
	}

	for _, ref := range []string{"nope", "refs/pull/13/head", strings.Repeat("0", 40), "abcdef12", "-x", "a:b"} {
		t.Run("missing "+ref, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "tree")
			if _, err := FetchRef(t.Context(), src, ref, dir); err == nil {
				t.Fatal("no error")
			}
			if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("a failed fetch left %s", dir)
			}
		})
	}
}
