package passstore

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Generate returns a new password: 32 lowercase hex characters from crypto/rand, as Ruby's SecureRandom.hex,
// which Bee2 uses.
func Generate() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate a password: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// FileStore keeps passwords in plain files, <Dir>/<folder>/<name>, for settings without a pgp_id: Dir is the
// secrets directory, so postgres/mastodon is <secrets_dir>/database/postgres/mastodon.
type FileStore struct {
	Dir string
}

// Get reads the password of folder/name, without its trailing newline, or generates and keeps one (file
// 0600, directories 0700).
func (s FileStore) Get(folder, name string) (string, bool, error) {
	path, err := entryPath(s.Dir, folder, name, "")
	if err != nil {
		return "", false, err
	}
	if v, err := readPlain(path); !errors.Is(err, fs.ErrNotExist) {
		return v, false, err
	}
	v, err := Generate()
	if err != nil {
		return "", false, err
	}
	existed, err := writeNew(path, []byte(v+"\n"))
	if err != nil {
		return "", false, err
	}
	if existed {
		// Another run made it first: its password is the one kept.
		v, err := readPlain(path)
		return v, false, err
	}
	return v, true, nil
}

func readPlain(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	v := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	if v == "" {
		return "", fmt.Errorf("password file %s is empty", path)
	}
	return v, nil
}

// writeNew writes data to path unless path exists, through a temporary file in the same directory that is
// synced and then linked to its final name, so that no reader sees a partial file and two writers cannot
// replace each other's password: existed says the other one won. Directories made are 0700, the file 0600.
func writeNew(path string, data []byte) (existed bool, err error) {
	return writeNewWith(path, func(f *os.File) error {
		if _, err := f.Write(data); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
		return nil
	})
}

func writeNewWith(path string, write func(*os.File) error) (existed bool, err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return false, err
	}
	// CreateTemp makes the file 0600.
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return false, err
	}
	defer os.Remove(tmp.Name())
	if err := write(tmp); err != nil {
		tmp.Close()
		return false, err
	}
	err = tmp.Sync()
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return false, fmt.Errorf("write %s: %w", path, err)
	}
	// A hard link never replaces an existing file, unlike rename; a file system without hard links gets
	// the rename, after one more look.
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return true, nil
		}
		if _, serr := os.Lstat(path); serr == nil {
			return true, nil
		}
		if err := os.Rename(tmp.Name(), path); err != nil {
			return false, fmt.Errorf("write %s: %w", path, err)
		}
	}
	syncDir(dir)
	return false, nil
}

// syncDir makes a new name in dir durable; a directory that cannot be synced (some file systems) is not an
// error, as the file itself is.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}
