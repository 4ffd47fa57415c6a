package dockerx

import (
	"archive/tar"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// writeTree creates files under dir; a value starting with "->" makes a symlink, a key ending in "/" a directory.
func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if name[len(name)-1] == '/' {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if len(content) > 2 && content[:2] == "->" {
			if err := os.Symlink(content[2:], p); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

var sampleContext = map[string]string{
	"Dockerfile":      "FROM scratch\nCOPY . /\n",
	".dockerignore":   "# build junk\n**/*.log\nsecret\n!secret/keep.txt\nDockerfile\n.dockerignore\n",
	"app.txt":         "hello",
	"debug.log":       "noise",
	"sub/x.log":       "noise",
	"sub/y.txt":       "y",
	"secret/key":      "private",
	"secret/keep.txt": "public",
	"link":            "->app.txt",
	"empty/":          "",
}

func entryNames(entries []contextEntry) []string {
	var names []string
	for _, e := range entries {
		names = append(names, e.rel)
	}
	return names
}

func TestContextEntriesHonourDockerignore(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, sampleContext)
	entries, err := contextEntries(dir, defaultDockerfile)
	if err != nil {
		t.Fatal(err)
	}
	// The Dockerfile and .dockerignore are listed in .dockerignore but still sent; secret/ is entered only for
	// its exception, so the directory itself is not an entry.
	want := []string{".dockerignore", "Dockerfile", "app.txt", "empty", "link", "secret/keep.txt", "sub", "sub/y.txt"}
	if got := entryNames(entries); !slices.Equal(got, want) {
		t.Errorf("entries\n got %q\nwant %q", got, want)
	}
}

func TestContextEntriesWithoutDockerignore(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"Dockerfile": "FROM scratch\n", "a/b.log": "x"})
	entries, err := contextEntries(dir, defaultDockerfile)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := entryNames(entries), []string{"Dockerfile", "a", "a/b.log"}; !slices.Equal(got, want) {
		t.Errorf("entries %q, want %q", got, want)
	}
}

func TestContextTarHoldsTheEntries(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, sampleContext)
	entries, err := contextEntries(dir, defaultDockerfile)
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(writeContextTar(pw, entries)) }()
	tr := tar.NewReader(pr)
	got := map[string]string{}
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Uid != 0 || hdr.Gid != 0 {
			t.Errorf("%s: owner %d:%d, want root", hdr.Name, hdr.Uid, hdr.Gid)
		}
		switch hdr.Typeflag {
		case tar.TypeReg:
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			got[hdr.Name] = string(b)
		case tar.TypeSymlink:
			got[hdr.Name] = "->" + hdr.Linkname
		case tar.TypeDir:
			got[hdr.Name] = ""
		default:
			t.Errorf("%s: unexpected type %c", hdr.Name, hdr.Typeflag)
		}
	}
	want := map[string]string{
		"Dockerfile":      sampleContext["Dockerfile"],
		".dockerignore":   sampleContext[".dockerignore"],
		"app.txt":         "hello",
		"empty/":          "",
		"link":            "->app.txt",
		"secret/keep.txt": "public",
		"sub/":            "",
		"sub/y.txt":       "y",
	}
	if len(got) != len(want) {
		t.Errorf("tar has %d entries, want %d: %q", len(got), len(want), got)
	}
	for name, content := range want {
		if got[name] != content {
			t.Errorf("tar %s = %q, want %q", name, got[name], content)
		}
	}
}

func TestContextDigest(t *testing.T) {
	tests := []struct {
		name     string
		change   func(t *testing.T, dir string)
		wantSame bool
	}{
		{"nothing", func(t *testing.T, dir string) {}, true},
		{"touched file", func(t *testing.T, dir string) {
			later := time.Now().Add(time.Hour)
			if err := os.Chtimes(filepath.Join(dir, "app.txt"), later, later); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"rewritten with same content", func(t *testing.T, dir string) {
			writeTree(t, dir, map[string]string{"sub/y.txt": "y"})
		}, true},
		{"ignored file changed", func(t *testing.T, dir string) {
			writeTree(t, dir, map[string]string{"debug.log": "other noise", "secret/key": "rotated"})
		}, true},
		{"ignored file added", func(t *testing.T, dir string) {
			writeTree(t, dir, map[string]string{"sub/new.log": "x", "secret/more": "x"})
		}, true},
		{"content changed", func(t *testing.T, dir string) {
			writeTree(t, dir, map[string]string{"sub/y.txt": "z"})
		}, false},
		{"exception file changed", func(t *testing.T, dir string) {
			writeTree(t, dir, map[string]string{"secret/keep.txt": "changed"})
		}, false},
		{"Dockerfile changed", func(t *testing.T, dir string) {
			writeTree(t, dir, map[string]string{"Dockerfile": "FROM scratch\n"})
		}, false},
		{"mode changed", func(t *testing.T, dir string) {
			if err := os.Chmod(filepath.Join(dir, "app.txt"), 0o755); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"file renamed", func(t *testing.T, dir string) {
			if err := os.Rename(filepath.Join(dir, "sub/y.txt"), filepath.Join(dir, "sub/z.txt")); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"symlink retargeted", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, "link"))
			writeTree(t, dir, map[string]string{"link": "->sub/y.txt"})
		}, false},
		{"empty directory added", func(t *testing.T, dir string) {
			writeTree(t, dir, map[string]string{"more/": ""})
		}, false},
		{"content moved between files", func(t *testing.T, dir string) {
			// Same bytes overall, different split: the size framing must tell them apart.
			writeTree(t, dir, map[string]string{"app.txt": "hel", "sub/y.txt": "loy"})
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeTree(t, dir, sampleContext)
			before, err := ContextDigest(dir)
			if err != nil {
				t.Fatal(err)
			}
			tt.change(t, dir)
			after, err := ContextDigest(dir)
			if err != nil {
				t.Fatal(err)
			}
			if same := before == after; same != tt.wantSame {
				t.Errorf("digest same = %v, want %v (%s, %s)", same, tt.wantSame, before, after)
			}
		})
	}
}

func TestContextDigestStableAcrossCopies(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	writeTree(t, a, sampleContext)
	writeTree(t, b, sampleContext)
	// A fresh checkout has other times than the first copy.
	old := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	err := filepath.WalkDir(b, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Type()&fs.ModeSymlink != 0 {
			return err
		}
		return os.Chtimes(p, old, old)
	})
	if err != nil {
		t.Fatal(err)
	}
	da, err := ContextDigest(a)
	if err != nil {
		t.Fatal(err)
	}
	db, err := ContextDigest(b)
	if err != nil {
		t.Fatal(err)
	}
	if da != db {
		t.Errorf("copies differ: %s vs %s", da, db)
	}
	if len(da) != 64 {
		t.Errorf("digest %q is not hex sha256", da)
	}
}

func TestContextDigestMissingDir(t *testing.T) {
	_, err := ContextDigest(filepath.Join(t.TempDir(), "nope"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("err = %v, want not exist", err)
	}
}

// A symbolic link inside a build directory that points out of it is sent as a link, never with what it
// points to: the engine resolves it inside the context, so files beside the dockerfiles stay on this machine.
func TestContextLinksOutAreNotFollowed(t *testing.T) {
	outside := t.TempDir()
	writeTree(t, outside, map[string]string{"key.pem": "TOP-SECRET-KEY", "dir/inner": "TOP-SECRET-INNER"})
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{
		"Dockerfile": "FROM scratch\nCOPY . /\n",
		"key":        "->" + filepath.Join(outside, "key.pem"),
		"up":         "->../../" + filepath.Base(outside) + "/key.pem",
		"dir":        "->" + filepath.Join(outside, "dir"),
	})
	entries, err := contextEntries(dir, defaultDockerfile)
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(writeContextTar(pw, entries)) }()
	raw, err := io.ReadAll(pr)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), "TOP-SECRET") {
		t.Fatal("the build context carries the content of a file outside the build directory")
	}
	tr := tar.NewReader(strings.NewReader(string(raw)))
	links := map[string]bool{}
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(hdr.Name, "dir/") {
			t.Errorf("%s: entries under a linked directory were sent", hdr.Name)
		}
		if hdr.Typeflag == tar.TypeSymlink {
			links[hdr.Name] = true
		}
	}
	for _, l := range []string{"key", "up", "dir"} {
		if !links[l] {
			t.Errorf("%s is not in the context as a link", l)
		}
	}
	if _, err := ContextDigest(dir); err != nil {
		t.Errorf("digest of a context with links out: %v", err)
	}
}
