package dockerx

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

const (
	defaultDockerfile = "Dockerfile"
	dockerignoreFile  = ".dockerignore"
	// digestScheme starts every context digest, so a change in what the digest covers changes every digest
	// instead of silently matching old image tags.
	digestScheme = "bee2d-context-v1\n"
	// modeBits are the parts of a file mode that reach the image.
	modeBits = fs.ModeType | fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky
)

// contextEntry is one directory, regular file or symlink of a build context.
type contextEntry struct {
	rel     string // slash-separated, relative to the context root
	abs     string
	mode    fs.FileMode
	size    int64  // regular files only
	link    string // symlink target, as written
	modTime time.Time
}

// contextEntries enumerates what a build of dir sends to the engine, sorted by path: everything not excluded by
// dir/.dockerignore, plus the Dockerfile and .dockerignore themselves, which the engine always needs. Both the
// build tar and ContextDigest read this list, so the digest covers exactly what the image is built from.
func contextEntries(dir, dockerfile string) ([]contextEntry, error) {
	root, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if fi, err := os.Stat(root); err != nil {
		return nil, err
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("build context %s is not a directory", root)
	}
	pm, err := ignoreMatcher(root, dockerfile)
	if err != nil {
		return nil, err
	}

	var entries []contextEntry
	// Match results of each visited directory, so a child is matched against its parent's result the way
	// the docker CLI does it.
	dirInfo := map[string]patternmatcher.MatchInfo{}
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		relOS, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		rel := filepath.ToSlash(relOS)
		if pm != nil {
			excluded, info, err := pm.MatchesUsingParentResults(rel, dirInfo[path.Dir(rel)])
			if err != nil {
				return fmt.Errorf("%s: %w", dockerignoreFile, err)
			}
			if d.IsDir() {
				dirInfo[rel] = info
			}
			if excluded {
				if d.IsDir() && !exceptionBelow(pm, rel) {
					return filepath.SkipDir
				}
				return nil
			}
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		e := contextEntry{rel: rel, abs: p, mode: fi.Mode() & modeBits, modTime: fi.ModTime()}
		switch {
		case fi.Mode().IsRegular():
			e.size = fi.Size()
		case fi.IsDir():
		case fi.Mode()&fs.ModeSymlink != 0:
			if e.link, err = os.Readlink(p); err != nil {
				return err
			}
		default:
			// Sockets, pipes and devices have no content to send; the docker CLI leaves them out too.
			return nil
		}
		entries = append(entries, e)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read build context %s: %w", root, err)
	}
	slices.SortFunc(entries, func(a, b contextEntry) int { return strings.Compare(a.rel, b.rel) })
	return entries, nil
}

// ignoreMatcher reads root/.dockerignore; nil means nothing is excluded.
func ignoreMatcher(root, dockerfile string) (*patternmatcher.PatternMatcher, error) {
	f, err := os.Open(filepath.Join(root, dockerignoreFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	patterns, err := ignorefile.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", f.Name(), err)
	}
	if len(patterns) == 0 {
		return nil, nil
	}
	patterns = append(patterns, "!"+dockerfile, "!"+dockerignoreFile)
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.Name(), err)
	}
	return pm, nil
}

// exceptionBelow tells whether an exception ("!pattern") may re-include something under the excluded
// directory dir, in which case the walk must still enter it.
func exceptionBelow(pm *patternmatcher.PatternMatcher, dir string) bool {
	if !pm.Exclusions() {
		return false
	}
	for _, p := range pm.Patterns() {
		if p.Exclusion() && strings.HasPrefix(p.String()+"/", dir+"/") {
			return true
		}
	}
	return false
}

// ContextDigest is a sha256 (hex) over what building dir sends to the engine: each file's relative path,
// mode, size, content and symlink target, in path order, honouring .dockerignore. Modification times are left
// out, so a fresh checkout or a touched file gives the same digest as long as nothing that reaches the image
// changed. It needs no Docker; bee2d tags images with its first 12 characters.
func ContextDigest(dir string) (string, error) {
	entries, err := contextEntries(dir, defaultDockerfile)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	io.WriteString(h, digestScheme)
	for _, e := range entries {
		// The size in the header frames the content that follows, so no two file sets hash alike.
		fmt.Fprintf(h, "%s\x00%o\x00%d\x00%s\x00", e.rel, uint32(e.mode), e.size, e.link)
		if e.mode.IsRegular() {
			if err := copyFile(h, e); err != nil {
				return "", err
			}
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// writeContextTar writes entries as the tar stream the engine builds from. Owners are root and times are kept,
// as the docker CLI sends them.
func writeContextTar(w io.Writer, entries []contextEntry) error {
	tw := tar.NewWriter(w)
	for _, e := range entries {
		hdr := &tar.Header{
			Name:    e.rel,
			Mode:    tarMode(e.mode),
			ModTime: e.modTime.Truncate(time.Second),
		}
		switch {
		case e.mode.IsDir():
			hdr.Typeflag = tar.TypeDir
			hdr.Name += "/"
		case e.mode&fs.ModeSymlink != 0:
			hdr.Typeflag = tar.TypeSymlink
			hdr.Linkname = e.link
		default:
			hdr.Typeflag = tar.TypeReg
			hdr.Size = e.size
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if hdr.Typeflag == tar.TypeReg {
			if err := copyFile(tw, e); err != nil {
				return err
			}
		}
	}
	return tw.Close()
}

func tarMode(m fs.FileMode) int64 {
	mode := int64(m.Perm())
	if m&fs.ModeSetuid != 0 {
		mode |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		mode |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		mode |= 0o1000
	}
	return mode
}

// copyFile copies exactly the size that was listed, so a file that changes size mid-way is an error rather
// than a corrupt tar or a digest of something else.
func copyFile(w io.Writer, e contextEntry) error {
	f, err := os.Open(e.abs)
	if err != nil {
		return err
	}
	defer f.Close()
	n, err := io.Copy(w, io.LimitReader(f, e.size+1))
	if err != nil {
		return fmt.Errorf("read %s: %w", e.abs, err)
	}
	if n != e.size {
		return fmt.Errorf("read %s: file changed while reading", e.abs)
	}
	return nil
}
