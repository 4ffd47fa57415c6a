package backup

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"time"

	"github.com/bee2d/bee2d/pkg/config"
)

// archiveName matches the final name of an archive: Bee2's <unix-seconds>-volumes.tar, or bee2d's compressed
// forms. Nothing else in a storage directory is ever taken for an archive.
var archiveName = regexp.MustCompile(`^([0-9]{1,19})-volumes\.tar(\.gz|\.zst)?$`)

// tempName matches the files a run writes before they get their final name (archive, manifest).
var tempName = regexp.MustCompile(`^\.[0-9]{1,19}-volumes\.tar(\.gz|\.zst)?(\.json)?\.tmp$`)

// probeName matches the files that tell whether the engine sees the storage directory.
var probeName = regexp.MustCompile(`^\.bee2d-probe-[0-9a-f]{16}$`)

// lockName is the file whose lock makes runs on one server's storage directory take turns.
const lockName = ".bee2d.lock"

// manifestSuffix follows the archive's name for its manifest.
const manifestSuffix = ".json"

// Ext returns the file name ending of an archive with compression c.
func Ext(c config.Compression) string {
	switch c {
	case config.CompressionGzip:
		return ".tar.gz"
	case config.CompressionZstd:
		return ".tar.zst"
	}
	return ".tar"
}

// ArchiveName is the final name of the archive taken at ts with compression c.
func ArchiveName(ts int64, c config.Compression) string {
	return strconv.FormatInt(ts, 10) + "-volumes" + Ext(c)
}

// compressionOf tells the compression from an archive's name.
func compressionOf(name string) config.Compression {
	m := archiveName.FindStringSubmatch(name)
	switch {
	case m == nil:
		return ""
	case m[2] == ".gz":
		return config.CompressionGzip
	case m[2] == ".zst":
		return config.CompressionZstd
	}
	return config.CompressionNone
}

// Dir is the directory one server's archives live in: <storage_dir>/<server>, storage_dir taken relative to
// the settings file.
func Dir(s *config.Settings, server string) (string, error) {
	b := s.Docker.Backup[server]
	if b == nil {
		return "", fmt.Errorf("server %s has no backup settings (docker.backup.%s)", server, server)
	}
	return filepath.Join(s.ResolvePath(b.StorageDir), server), nil
}

// Archive is one archive file of a storage directory, as its name and manifest tell.
type Archive struct {
	// Path of the archive; Name its base name.
	Path, Name string
	// Time is the timestamp in its name (unix seconds).
	Time        time.Time
	Compression config.Compression
	Size        int64
	// Manifest is nil for an archive without one (Bee2's); ManifestErr says why a manifest could not be read.
	Manifest    *Manifest
	ManifestErr error
}

// blockIndex is the manifest's index of a compressed archive's blocks, when it has one that adds up to the
// archive's size.
func (a Archive) blockIndex() []int64 {
	if !indexable(a.Compression) || a.Manifest == nil || !validBlocks(a.Manifest.Blocks, a.Size) {
		return nil
	}
	return a.Manifest.Blocks
}

// Stamp is the archive's timestamp, as in its name.
func (a Archive) Stamp() int64 { return a.Time.Unix() }

// Bee2d tells whether bee2d wrote this archive: its manifest is there, readable, and names it.
func (a Archive) Bee2d() bool {
	return a.Manifest != nil && a.ManifestErr == nil && a.Manifest.Archive == a.Name
}

// List returns the archives in dir, oldest first. A missing directory has none.
func List(dir string) ([]Archive, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Archive
	for _, e := range entries {
		m := archiveName.FindStringSubmatch(e.Name())
		if m == nil || !e.Type().IsRegular() {
			continue
		}
		ts, err := strconv.ParseInt(m[1], 10, 64)
		if err != nil {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue // removed meanwhile
		}
		a := Archive{
			Path:        filepath.Join(dir, e.Name()),
			Name:        e.Name(),
			Time:        time.Unix(ts, 0),
			Compression: compressionOf(e.Name()),
			Size:        info.Size(),
		}
		a.Manifest, a.ManifestErr = ReadManifest(a.Path + manifestSuffix)
		if errors.Is(a.ManifestErr, fs.ErrNotExist) {
			a.ManifestErr = nil
		}
		out = append(out, a)
	}
	slices.SortStableFunc(out, func(a, b Archive) int {
		if c := a.Time.Compare(b.Time); c != 0 {
			return c
		}
		return compareName(a.Name, b.Name)
	})
	return out, nil
}

func compareName(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Find returns the archive taken at ts, or the newest when ts is 0.
func Find(dir string, ts int64) (Archive, error) {
	list, err := List(dir)
	if err != nil {
		return Archive{}, err
	}
	if len(list) == 0 {
		return Archive{}, fmt.Errorf("no archives in %s", dir)
	}
	if ts == 0 {
		return list[len(list)-1], nil
	}
	var have []string
	for i := len(list) - 1; i >= 0; i-- {
		if list[i].Stamp() == ts {
			return list[i], nil
		}
		if len(have) < 5 {
			have = append(have, strconv.FormatInt(list[i].Stamp(), 10))
		}
	}
	return Archive{}, fmt.Errorf("no archive taken at %d in %s (newest: %v)", ts, dir, have)
}
