package backup

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// archiver writes volumes into one tar, rooted at volumes/<volume>/ as Bee2's archives were. It runs inside
// the helper, next to the data. A file that changes or vanishes while it is read is written as it was read
// and reported, never a reason to give up; only a failing output is.
type archiver struct {
	w io.Writer
	// fw is w itself when w can read file content straight into its own buffers (the chunks of an
	// uncompressed archive, the blocks to compress of a compressed one): data then crosses user space once.
	fw  filler
	buf []byte
	// hbuf holds the encoding of one header.
	hbuf bytes.Buffer
	// links maps a multiply-linked file to the entry name it was first written under.
	links map[fileID]string

	stats    []*VolumeStats
	problems []Problem
	total    int // problems, also those past maxProblems

	// Progress, read by another goroutine.
	bytes, files atomic.Int64
}

type fileID struct{ dev, ino uint64 }

// volumeStats returns the counts of the volumes written.
func (a *archiver) volumeStats() []VolumeStats {
	out := make([]VolumeStats, len(a.stats))
	for i, st := range a.stats {
		out[i] = *st
	}
	return out
}

func newArchiver(w io.Writer) *archiver {
	a := &archiver{w: w, links: map[fileID]string{}}
	a.fw, _ = w.(filler)
	if a.fw == nil {
		a.buf = make([]byte, 1<<20)
	}
	return a
}

// filler reads up to n bytes of r into its output, and tells the read error (the input's problem) apart
// from the write error (the output's).
type filler interface {
	fill(r io.Reader, n int64) (read int64, rerr, werr error)
}

func (a *archiver) problem(vol, rel, format string, args ...any) {
	a.total++
	if len(a.problems) < maxProblems {
		a.problems = append(a.problems, Problem{Volume: vol, Path: rel, What: fmt.Sprintf(format, args...)})
	}
}

// outputError marks a failure to write the archive: it ends the backup.
type outputError struct{ err error }

func (e outputError) Error() string { return e.err.Error() }
func (e outputError) Unwrap() error { return e.err }

// header writes an entry's header, as archive/tar encodes it (USTAR, or PAX where a name or number needs
// it); the content that follows is written by the archiver itself, so that it can go straight from the file
// into the output's buffers.
func (a *archiver) header(h *tar.Header) error {
	a.hbuf.Reset()
	if err := tar.NewWriter(&a.hbuf).WriteHeader(h); err != nil {
		return fmt.Errorf("entry %s: %w", h.Name, err)
	}
	return a.write(a.hbuf.Bytes())
}

func (a *archiver) write(p []byte) error {
	if _, err := a.w.Write(p); err != nil {
		return outputError{err}
	}
	return nil
}

// zeroes is only ever read.
var zeroes = make([]byte, 64<<10)

// zeros pads the archive with n zero bytes.
func (a *archiver) zeros(n int64) error {
	for n > 0 {
		m := min(int64(len(zeroes)), n)
		if err := a.write(zeroes[:m]); err != nil {
			return err
		}
		n -= m
	}
	return nil
}

// blockPad is what fills an entry of size bytes up to tar's 512-byte blocks.
func blockPad(size int64) int64 {
	return -size & 511
}

// start writes the archive's own volumes/ directory.
func (a *archiver) start(at time.Time) error {
	return a.header(&tar.Header{Typeflag: tar.TypeDir, Name: "volumes/", Mode: 0o755, ModTime: at.Truncate(time.Second)})
}

// finish writes the tar's end: two zero blocks.
func (a *archiver) finish() error {
	return a.zeros(1024)
}

// volume archives the directory dir as the volume vol.
func (a *archiver) volume(vol, dir string) error {
	st := &VolumeStats{Name: vol}
	a.stats = append(a.stats, st)
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("volume %s: %w", vol, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("volume %s: %s is not a directory", vol, dir)
	}
	if err := a.header(dirHeader("volumes/"+vol+"/", fi)); err != nil {
		return err
	}
	st.Dirs++
	return a.dir(st, vol, dir, "")
}

// dir archives what the directory dir (rel inside the volume) holds, in name order.
func (a *archiver) dir(st *VolumeStats, vol, dir, rel string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		a.unreadable(vol, rel, err)
		if len(entries) == 0 {
			return nil
		}
	}
	// Runs of regular files are read ahead; anything else (a directory, whose entries come next in the
	// archive) ends a run.
	for i := 0; i < len(entries); {
		e := entries[i]
		r := path.Join(rel, e.Name())
		if rel == "" && reservedName(e.Name()) {
			a.problem(vol, r, "left over from an interrupted restore: left out")
			i++
			continue
		}
		if !e.Type().IsRegular() {
			if err := a.entry(st, vol, filepath.Join(dir, e.Name()), r); err != nil {
				return err
			}
			i++
			continue
		}
		j := i
		for j < len(entries) && entries[j].Type().IsRegular() && !(rel == "" && reservedName(entries[j].Name())) {
			j++
		}
		if err := a.regularRun(st, vol, dir, rel, entries[i:j]); err != nil {
			return err
		}
		i = j
	}
	return nil
}

// regularRun archives a run of entries the directory says are regular files, read ahead.
func (a *archiver) regularRun(st *VolumeStats, vol, dir, rel string, run []fs.DirEntry) error {
	paths := make([]string, len(run))
	for i, e := range run {
		paths[i] = filepath.Join(dir, e.Name())
	}
	ra := newReadAhead(paths)
	defer ra.stop()
	for _, e := range run {
		r := path.Join(rel, e.Name())
		o := ra.next()
		err := a.openedFile(st, vol, r, "volumes/"+vol+"/"+r, o)
		o.release()
		if err != nil {
			return err
		}
	}
	return nil
}

func (a *archiver) unreadable(vol, rel string, err error) {
	if errors.Is(err, fs.ErrNotExist) {
		a.problem(vol, rel, "vanished during the backup")
		return
	}
	a.problem(vol, rel, "unreadable: %v", unwrapPath(err))
}

// unwrapPath drops the path from an *fs.PathError: problems name the file already.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func (a *archiver) entry(st *VolumeStats, vol, p, rel string) error {
	fi, err := os.Lstat(p)
	if err != nil {
		a.unreadable(vol, rel, err)
		return nil
	}
	name := "volumes/" + vol + "/" + rel
	switch mode := fi.Mode(); {
	case mode.IsDir():
		if err := a.header(dirHeader(name+"/", fi)); err != nil {
			return err
		}
		st.Dirs++
		return a.dir(st, vol, p, rel)
	case mode.IsRegular():
		return a.file(st, vol, p, rel, name)
	case mode&fs.ModeSymlink != 0:
		target, err := os.Readlink(p)
		if err != nil {
			a.unreadable(vol, rel, err)
			return nil
		}
		if why := linkEscapes(rel, target); why != "" {
			a.problem(vol, rel, "symlink to %q %s: left out, as restore refuses such links", target, why)
			return nil
		}
		h := baseHeader(name, fi)
		h.Typeflag, h.Linkname = tar.TypeSymlink, target
		if err := a.header(h); err != nil {
			return err
		}
		st.Symlinks++
	case mode&fs.ModeSocket != 0:
		a.problem(vol, rel, "socket: left out")
	case mode&fs.ModeNamedPipe != 0:
		a.problem(vol, rel, "named pipe: left out")
	case mode&fs.ModeDevice != 0:
		a.problem(vol, rel, "device file: left out")
	default:
		a.problem(vol, rel, "unknown file type %v: left out", mode.Type())
	}
	return nil
}

// file archives one regular file as it is read: the size and times of the open file, its content up to that
// size. A file that shrinks is padded with zeros; any change while it is read is reported.
func (a *archiver) file(st *VolumeStats, vol, p, rel, name string) error {
	o := openFile(p, false)
	defer o.release()
	return a.openedFile(st, vol, rel, name, &o)
}

// openedFile archives a file that openFile opened, and maybe read ahead.
func (a *archiver) openedFile(st *VolumeStats, vol, rel, name string, o *opened) error {
	if o.err != nil {
		if errors.Is(o.err, unix.ELOOP) {
			a.problem(vol, rel, "replaced by a symlink during the backup: left out")
			return nil
		}
		a.unreadable(vol, rel, o.err)
		return nil
	}
	fi := o.fi
	if !fi.Mode().IsRegular() {
		a.problem(vol, rel, "replaced during the backup: left out")
		return nil
	}
	sys := fi.Sys().(*syscall.Stat_t)
	if sys.Nlink > 1 {
		id := fileID{uint64(sys.Dev), sys.Ino}
		if first, ok := a.links[id]; ok {
			h := baseHeader(name, fi)
			h.Typeflag, h.Linkname = tar.TypeLink, first
			if err := a.header(h); err != nil {
				return err
			}
			st.Links++
			return nil
		}
		a.links[id] = name
	}
	h := baseHeader(name, fi)
	h.Typeflag, h.Size = tar.TypeReg, fi.Size()
	if err := a.header(h); err != nil {
		return err
	}
	var n int64
	after := o.after
	if o.ahead {
		if err := a.write(o.data); err != nil {
			return err
		}
		n = int64(len(o.data))
		a.bytes.Add(n)
	} else {
		var err error
		if n, err = a.content(o.f, h.Size); err != nil {
			return err
		}
		after, _ = o.f.Stat()
	}
	st.Files++
	st.Bytes += h.Size
	a.files.Add(1)
	if n < h.Size {
		if err := a.zeros(h.Size - n); err != nil {
			return err
		}
		a.problem(vol, rel, "shrank from %d to %d bytes during the backup: padded with zeros", h.Size, n)
	} else if after != nil && (after.Size() != fi.Size() || !after.ModTime().Equal(fi.ModTime())) {
		a.problem(vol, rel, "changed during the backup: archived as read")
	}
	return a.zeros(blockPad(h.Size))
}

// content copies up to size bytes of r into the archive and returns how many it could read. A read error
// ends the copy like an early end of file (the caller reports it); a write error ends the backup.
func (a *archiver) content(r io.Reader, size int64) (int64, error) {
	if a.fw != nil {
		n, _, werr := a.fw.fill(r, size)
		a.bytes.Add(n)
		if werr != nil {
			return n, outputError{werr}
		}
		return n, nil
	}
	var n int64
	for n < size {
		chunk := a.buf[:min(int64(len(a.buf)), size-n)]
		m, rerr := r.Read(chunk)
		if m > 0 {
			if err := a.write(chunk[:m]); err != nil {
				return n, err
			}
			n += int64(m)
			a.bytes.Add(int64(m))
		}
		if rerr != nil || m == 0 {
			break
		}
	}
	return n, nil
}

// openNoFollow opens a regular file for reading without following a symlink put in its place, and without
// updating its access time where the helper may do so.
func openNoFollow(p string) (*os.File, error) {
	f, err := os.OpenFile(p, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NOATIME, 0)
	if errors.Is(err, unix.EPERM) {
		f, err = os.OpenFile(p, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	}
	return f, err
}

// baseHeader carries what every entry keeps: numeric owner, mode bits (with setuid, setgid and sticky) and
// the modification time to the second, as tar has always kept it.
func baseHeader(name string, fi fs.FileInfo) *tar.Header {
	sys := fi.Sys().(*syscall.Stat_t)
	return &tar.Header{
		Name:    name,
		Mode:    int64(sys.Mode & 0o7777),
		Uid:     int(sys.Uid),
		Gid:     int(sys.Gid),
		ModTime: time.Unix(int64(sys.Mtim.Sec), 0),
	}
}

func dirHeader(name string, fi fs.FileInfo) *tar.Header {
	h := baseHeader(name, fi)
	h.Typeflag = tar.TypeDir
	return h
}
