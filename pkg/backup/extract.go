package backup

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// A restore replaces a volume's contents in three steps, all inside the volume (one file system, so every
// move is a rename):
//
//  1. extract the archive into .bee2d-restore-<ts>/ (the stage); the volume's own entries are untouched;
//  2. move the volume's entries into .bee2d-old-<ts>/, create the marker .bee2d-restore-<ts>.commit;
//  3. move the staged entries up, then delete the old entries, the stage and the marker.
//
// A failure before the marker leaves the volume as it was (the moved entries go back); after the marker the
// restore is finished. A restore interrupted by a crash is completed or undone the same way at the start of
// the next restore of that volume, as the marker says. These names at a volume's root are reserved: a backup
// leaves them out.
var reserved = regexp.MustCompile(`^\.bee2d-(restore|old)-([0-9]{1,19})(\.commit)?$`)

func reservedName(name string) bool { return reserved.MatchString(name) }

func stageName(ts int64) string  { return ".bee2d-restore-" + strconv.FormatInt(ts, 10) }
func oldName(ts int64) string    { return ".bee2d-old-" + strconv.FormatInt(ts, 10) }
func markerName(ts int64) string { return stageName(ts) + ".commit" }

// volumeRestore is the restore of one volume mounted at Dir.
type volumeRestore struct {
	Name string
	Dir  string
	ts   int64

	root *os.Root // the stage
	// dirs to give their mode, owner and times once their content is in, deepest last.
	dirs []*tar.Header
	// rootHdr is the archive's entry for the volume's own directory.
	rootHdr *tar.Header
	seen    bool
	// made holds the directories known to exist in the stage.
	made map[string]bool
}

func (v *volumeRestore) stage() string { return filepath.Join(v.Dir, stageName(v.ts)) }
func (v *volumeRestore) old() string   { return filepath.Join(v.Dir, oldName(v.ts)) }
func (v *volumeRestore) marker() string {
	return filepath.Join(v.Dir, markerName(v.ts))
}

// recoverInterrupted completes or undoes the restores of dir that a crash interrupted.
func recoverInterrupted(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	committed := map[int64]bool{}
	var stamps []int64
	for _, e := range entries {
		m := reserved.FindStringSubmatch(e.Name())
		if m == nil {
			continue
		}
		ts, _ := strconv.ParseInt(m[2], 10, 64)
		if m[3] != "" {
			committed[ts] = true
		}
		if !slices.Contains(stamps, ts) {
			stamps = append(stamps, ts)
		}
	}
	for _, ts := range stamps {
		v := &volumeRestore{Dir: dir, ts: ts}
		if committed[ts] {
			if err := v.moveAll(v.stage(), v.Dir); err != nil {
				return fmt.Errorf("complete the interrupted restore %d: %w", ts, err)
			}
			if err := v.cleanup(); err != nil {
				return err
			}
			continue
		}
		if err := v.moveAll(v.old(), v.Dir); err != nil {
			return fmt.Errorf("undo the interrupted restore %d: %w", ts, err)
		}
		if err := v.cleanup(); err != nil {
			return err
		}
	}
	return nil
}

// moveAll renames every entry of from (if it exists) into to, except reserved names.
func (v *volumeRestore) moveAll(from, to string) error {
	entries, err := os.ReadDir(from)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		if reservedName(e.Name()) {
			continue
		}
		if err := os.Rename(filepath.Join(from, e.Name()), filepath.Join(to, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// cleanup removes the stage, the old entries and the marker, in an order that a crash cannot turn into a
// rollback of a committed restore: the marker goes last.
func (v *volumeRestore) cleanup() error {
	for _, p := range []string{v.old(), v.stage()} {
		if err := os.RemoveAll(p); err != nil {
			return err
		}
	}
	if err := syncPath(v.Dir); err != nil {
		return err
	}
	if err := os.Remove(v.marker()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return syncPath(v.Dir)
}

// begin prepares the stage.
func (v *volumeRestore) begin() error {
	if err := recoverInterrupted(v.Dir); err != nil {
		return fmt.Errorf("volume %s: %w", v.Name, err)
	}
	if err := os.Mkdir(v.stage(), 0o700); err != nil {
		return fmt.Errorf("volume %s: %w", v.Name, err)
	}
	r, err := os.OpenRoot(v.stage())
	if err != nil {
		return fmt.Errorf("volume %s: %w", v.Name, err)
	}
	v.root, v.made = r, map[string]bool{}
	return nil
}

// abort removes the stage; the volume is as it was.
func (v *volumeRestore) abort() {
	if v.root != nil {
		v.root.Close()
	}
	os.RemoveAll(v.stage())
}

// extract writes one checked entry into the stage. Every path is resolved inside the stage by os.Root, so
// no name or link in the archive can make it write elsewhere.
func (v *volumeRestore) extract(e entry, r io.Reader, buf []byte) error {
	v.seen = true
	h := e.Hdr
	if e.Rel == "" {
		v.rootHdr = h
		return nil
	}
	if reservedName(e.Rel) {
		return nil // a name a restore uses for itself; a backup never holds one
	}
	if dir := path.Dir(e.Rel); dir != "." && !v.made[dir] {
		// An archive may leave out directory entries: such directories get 0755, root.
		if err := v.root.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		v.made[dir] = true
	}
	switch h.Typeflag {
	case tar.TypeDir:
		if err := v.root.Mkdir(e.Rel, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		v.made[e.Rel] = true
		v.dirs = append(v.dirs, h)
		return nil
	case tar.TypeReg:
		f, err := v.root.OpenFile(e.Rel, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		err = writeFile(f, io.LimitReader(r, h.Size), buf, h)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		return err
	case tar.TypeSymlink:
		if err := v.root.Symlink(h.Linkname, e.Rel); err != nil {
			return err
		}
		if err := v.root.Lchown(e.Rel, h.Uid, h.Gid); err != nil {
			return err
		}
		return v.lchtimes(e.Rel, h.ModTime)
	case tar.TypeLink:
		return v.root.Link(e.LinkRel, e.Rel)
	}
	return fmt.Errorf("unexpected entry type %q", h.Typeflag)
}

// writeFile fills a new file and gives it its owner, mode and time through its descriptor, with no further
// lookup of its name; the mode after the owner, since a change of owner clears setuid and setgid.
func writeFile(f *os.File, r io.Reader, buf []byte, h *tar.Header) error {
	if _, err := io.CopyBuffer(onlyWriter{f}, r, buf); err != nil {
		return err
	}
	if err := f.Chown(h.Uid, h.Gid); err != nil {
		return err
	}
	if err := f.Chmod(modeOf(h)); err != nil {
		return err
	}
	tv := unix.NsecToTimeval(h.ModTime.UnixNano())
	return unix.Futimes(int(f.Fd()), []unix.Timeval{tv, tv})
}

// onlyWriter hides ReadFrom, so that io.CopyBuffer uses the buffer given.
type onlyWriter struct{ io.Writer }

// setMeta gives a file or directory its owner, mode and modification time; the mode after the owner, since
// a change of owner clears setuid and setgid.
func (v *volumeRestore) setMeta(rel string, h *tar.Header) error {
	if err := v.root.Lchown(rel, h.Uid, h.Gid); err != nil {
		return err
	}
	if err := v.root.Chmod(rel, modeOf(h)); err != nil {
		return err
	}
	return v.root.Chtimes(rel, h.ModTime, h.ModTime)
}

// lchtimes sets a symlink's own modification time: through its directory, opened inside the root, so that
// the link itself is never followed.
func (v *volumeRestore) lchtimes(rel string, t time.Time) error {
	d, err := v.root.Open(path.Dir(rel))
	if err != nil {
		return err
	}
	defer d.Close()
	ts := unix.NsecToTimespec(t.UnixNano())
	return unix.UtimesNanoAt(int(d.Fd()), path.Base(rel), []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW)
}

// finishDirs gives the directories their metadata, deepest first, now that nothing more is written in them.
func (v *volumeRestore) finishDirs() error {
	for i := len(v.dirs) - 1; i >= 0; i-- {
		h := v.dirs[i]
		_, rel, _, _ := split(h.Name)
		if err := v.setMeta(rel, h); err != nil {
			return err
		}
	}
	return nil
}

// swap puts the staged entries in place of the volume's (steps 2 and 3). On an error before the marker,
// what was moved goes back and committed is false; after it, the stage must stay for recovery to finish.
func (v *volumeRestore) swap() (committed bool, err error) {
	v.root.Close()
	if err := os.Mkdir(v.old(), 0o700); err != nil {
		return false, err
	}
	entries, err := os.ReadDir(v.Dir)
	if err != nil {
		os.Remove(v.old())
		return false, err
	}
	var moved []string
	undo := func() {
		for _, name := range moved {
			os.Rename(filepath.Join(v.old(), name), filepath.Join(v.Dir, name))
		}
		os.Remove(v.old())
	}
	for _, e := range entries {
		if reservedName(e.Name()) {
			continue
		}
		if err := os.Rename(filepath.Join(v.Dir, e.Name()), filepath.Join(v.old(), e.Name())); err != nil {
			undo()
			return false, err
		}
		moved = append(moved, e.Name())
	}
	if err := syncPath(v.Dir); err != nil {
		undo()
		return false, err
	}
	m, err := os.OpenFile(v.marker(), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err == nil {
		err = m.Close()
	}
	if err == nil {
		err = syncPath(v.Dir)
	}
	if err != nil {
		os.Remove(v.marker())
		undo()
		return false, err
	}
	// Committed: from here a crash, or the next restore after an error, completes the restore.
	if err := v.moveAll(v.stage(), v.Dir); err != nil {
		return true, err
	}
	if err := v.cleanup(); err != nil {
		return true, err
	}
	// The volume's own directory last: removing the stage changed its time.
	if h := v.rootHdr; h != nil {
		if err := os.Lchown(v.Dir, h.Uid, h.Gid); err != nil {
			return true, err
		}
		if err := os.Chmod(v.Dir, modeOf(h)); err != nil {
			return true, err
		}
		if err := os.Chtimes(v.Dir, h.ModTime, h.ModTime); err != nil {
			return true, err
		}
	}
	return true, nil
}

// modeOf turns a tar mode (Unix permission bits with setuid 04000, setgid 02000, sticky 01000) into Go's.
func modeOf(h *tar.Header) fs.FileMode {
	m := fs.FileMode(h.Mode & 0o777)
	if h.Mode&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if h.Mode&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if h.Mode&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	return m
}

// syncPath flushes a directory's entries (renames, creations) to disk.
func syncPath(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// syncFS flushes the whole file system dir is on: the extracted files, before they replace the volume's.
func syncFS(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return unix.Syncfs(int(d.Fd()))
}
