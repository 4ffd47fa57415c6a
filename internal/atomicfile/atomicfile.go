// Package atomicfile writes small files that readers in other processes must never see half written: a
// temporary file in the same directory, synced, then renamed over the old one.
package atomicfile

import (
	"os"
	"path/filepath"
)

// Write replaces path with data, with mode perm, atomically. The directory is made (0750) when missing.
func Write(path string, data []byte, perm os.FileMode) error { return write(path, data, perm, true) }

// Create is Write that never replaces: when path exists it is left alone and the error is fs.ErrExist. The
// file appears by a hard link, which, unlike a rename, fails on an existing name.
func Create(path string, data []byte, perm os.FileMode) error { return write(path, data, perm, false) }

func write(path string, data []byte, perm os.FileMode, replace bool) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if replace {
		err = os.Rename(tmp.Name(), path)
	} else {
		err = os.Link(tmp.Name(), path)
	}
	if err != nil {
		return err
	}
	// The rename is durable once the directory is synced.
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
