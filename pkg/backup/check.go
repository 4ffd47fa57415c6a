package backup

import (
	"archive/tar"
	"fmt"
	"path"
	"strings"

	"github.com/bee2d/bee2d/pkg/config"
)

// EntryError is an archive entry that bee2d refuses to restore.
type EntryError struct {
	Archive string
	Entry   string
	Reason  string
}

func (e *EntryError) Error() string {
	return fmt.Sprintf("archive %s: entry %q: %s", e.Archive, e.Entry, e.Reason)
}

// entry is an accepted archive entry: the volume it belongs to and its path inside it ("" for the volume's
// root directory; the archive's own volumes/ directory has no volume).
type entry struct {
	Volume string
	Rel    string
	Hdr    *tar.Header
	// LinkRel is a hard link's target inside the same volume.
	LinkRel string
}

// checker holds what the entries seen so far say, to judge the next one. Every archive is read through it,
// when verified, listed and again while it is extracted, so that what is restored is what was checked.
type checker struct {
	archive string
	// kinds of the paths seen, by volume/rel: a regular file, directory, symlink or hard link.
	kinds    map[string]byte
	volumes  []*VolumeStats
	byVolume map[string]*VolumeStats
}

func newChecker(archive string) *checker {
	return &checker{archive: archive, kinds: map[string]byte{}, byVolume: map[string]*VolumeStats{}}
}

func (c *checker) refuse(h *tar.Header, format string, args ...any) error {
	return &EntryError{Archive: c.archive, Entry: h.Name, Reason: fmt.Sprintf(format, args...)}
}

// split turns an entry name into volume and path inside it. Names are volumes/<volume>/<path>, slash-separated
// and clean; a leading ./ and a trailing / are accepted.
func split(name string) (vol, rel string, ok bool, why string) {
	n := strings.TrimPrefix(name, "./")
	n = strings.TrimSuffix(n, "/")
	switch {
	case n == "" || n == ".":
		return "", "", true, ""
	case path.IsAbs(n):
		return "", "", false, "absolute path: escapes its volume"
	case n == ".." || strings.HasPrefix(n, "../") || strings.HasSuffix(n, "/..") || strings.Contains(n, "/../"):
		return "", "", false, "path with ..: escapes its volume"
	case path.Clean(n) != n:
		return "", "", false, "path is not clean (empty or . elements)"
	}
	first, rest, _ := strings.Cut(n, "/")
	if first != "volumes" {
		return "", "", false, "outside volumes/: not a volume archive"
	}
	if rest == "" {
		return "", "", true, ""
	}
	vol, rel, _ = strings.Cut(rest, "/")
	if !config.ValidName(vol) {
		return "", "", false, fmt.Sprintf("invalid volume name %q", vol)
	}
	return vol, rel, true, ""
}

// check judges one header and returns the entry to restore; ok false means the header carries nothing to
// restore (the archive's volumes/ directory, PAX global headers).
func (c *checker) check(h *tar.Header) (e entry, ok bool, err error) {
	if h.Typeflag == tar.TypeXGlobalHeader {
		return entry{}, false, nil
	}
	vol, rel, valid, why := split(h.Name)
	if !valid {
		return entry{}, false, c.refuse(h, "%s", why)
	}
	switch h.Typeflag {
	case tar.TypeReg, tar.TypeDir, tar.TypeSymlink, tar.TypeLink:
	case tar.TypeChar, tar.TypeBlock:
		return entry{}, false, c.refuse(h, "device file: refused")
	case tar.TypeFifo:
		return entry{}, false, c.refuse(h, "named pipe: refused")
	default:
		return entry{}, false, c.refuse(h, "unsupported entry type %q", h.Typeflag)
	}
	if vol == "" {
		if h.Typeflag != tar.TypeDir {
			return entry{}, false, c.refuse(h, "the archive's volumes/ entry must be a directory")
		}
		return entry{}, false, nil
	}
	if h.Size < 0 {
		return entry{}, false, c.refuse(h, "negative size")
	}
	st := c.byVolume[vol]
	if st == nil {
		st = &VolumeStats{Name: vol}
		c.byVolume[vol] = st
		c.volumes = append(c.volumes, st)
	}
	e = entry{Volume: vol, Rel: rel, Hdr: h}
	key := vol + "/" + rel
	if rel == "" {
		if h.Typeflag != tar.TypeDir {
			return entry{}, false, c.refuse(h, "a volume's root must be a directory")
		}
	}
	// A path that goes through a symlink of the archive would be written wherever the link points.
	for dir := path.Dir(rel); rel != "" && dir != "."; dir = path.Dir(dir) {
		switch c.kinds[vol+"/"+dir] {
		case tar.TypeSymlink:
			return entry{}, false, c.refuse(h, "goes through the symlink %s", dir)
		case tar.TypeReg, tar.TypeLink:
			return entry{}, false, c.refuse(h, "its parent %s is a file", dir)
		}
	}
	if prev, seen := c.kinds[key]; seen && (prev != tar.TypeDir || h.Typeflag != tar.TypeDir) {
		return entry{}, false, c.refuse(h, "appears twice in the archive")
	}
	switch h.Typeflag {
	case tar.TypeDir:
		if _, seen := c.kinds[key]; !seen {
			st.Dirs++
		}
	case tar.TypeReg:
		st.Files++
		st.Bytes += h.Size
	case tar.TypeSymlink:
		if why := linkEscapes(rel, h.Linkname); why != "" {
			return entry{}, false, c.refuse(h, "symlink to %q %s", h.Linkname, why)
		}
		st.Symlinks++
	case tar.TypeLink:
		lvol, lrel, valid, _ := split(h.Linkname)
		if !valid || lvol != vol || lrel == "" {
			return entry{}, false, c.refuse(h, "hard link to %q, outside its volume", h.Linkname)
		}
		if c.kinds[lvol+"/"+lrel] != tar.TypeReg {
			return entry{}, false, c.refuse(h, "hard link to %q, which is not an earlier file of the archive", h.Linkname)
		}
		e.LinkRel = lrel
		st.Links++
	}
	c.kinds[key] = h.Typeflag
	return e, true, nil
}

// linkEscapes tells why a symlink at rel (inside its volume) with target would point outside the volume, or
// "" when it stays inside. The test is on the names alone; extraction itself can never be led outside a
// volume by links, whatever they say.
func linkEscapes(rel, target string) string {
	switch {
	case target == "":
		return "is empty"
	case path.IsAbs(target):
		return "points outside its volume (absolute)"
	}
	j := path.Join(path.Dir(rel), target)
	if j == ".." || strings.HasPrefix(j, "../") {
		return "points outside its volume"
	}
	return ""
}
