package backup

import (
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/bee2d/bee2d/pkg/config"
)

// ManifestFormat names the manifest's schema; a reader refuses others.
const ManifestFormat = "bee2d-backup/1"

// Manifest describes one archive. It sits beside it as <archive>.json.
type Manifest struct {
	Format string `json:"format"`
	// Archive is the archive's file name; Server the server it was taken from.
	Archive     string             `json:"archive"`
	Server      string             `json:"server"`
	Time        int64              `json:"time"`
	Created     time.Time          `json:"created"`
	Compression config.Compression `json:"compression"`
	// Size and SHA256 are those of the archive file.
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	// Volumes in archive order, with what each holds.
	Volumes []VolumeStats `json:"volumes"`
	// Files and Bytes total the volumes' regular files and their content.
	Files int64 `json:"files"`
	Bytes int64 `json:"bytes"`
	// Problems are the files that changed, vanished or were left out while the archive was written; the
	// archive is complete otherwise. ProblemsTotal counts them all when the list was cut.
	Problems      []Problem `json:"problems,omitempty"`
	ProblemsTotal int       `json:"problems_total,omitempty"`
	// Blocks are the compressed sizes of a compressed archive's blocks (gzip members, zstd frames), in
	// order, so that a restore or a verify can decompress several at once (see blocks.go).
	Blocks []int64 `json:"blocks,omitempty"`
	// Method is how the data left the server: helper-bind, helper-stream or archive-endpoint.
	Method string `json:"method"`
	// Seconds the backup took; Stopped the applications stopped during it.
	Seconds float64  `json:"seconds"`
	Stopped []string `json:"stopped,omitempty"`
	Version string   `json:"bee2d_version"`
}

// VolumeStats counts one volume's entries in an archive.
type VolumeStats struct {
	Name     string `json:"name"`
	Files    int64  `json:"files"`
	Dirs     int64  `json:"dirs"`
	Symlinks int64  `json:"symlinks"`
	Links    int64  `json:"hardlinks,omitempty"`
	Bytes    int64  `json:"bytes"`
}

// Problem is one file that could not be archived as it was.
type Problem struct {
	Volume string `json:"volume"`
	Path   string `json:"path"`
	What   string `json:"problem"`
}

func (p Problem) String() string {
	return p.Volume + ":/" + p.Path + ": " + p.What
}

// maxProblems bounds the problems kept in a manifest; the rest are only counted.
const maxProblems = 1000

// ReadManifest reads and checks a manifest file.
func ReadManifest(path string) (*Manifest, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("manifest %s: %w", path, err)
	}
	if m.Format != ManifestFormat {
		return nil, fmt.Errorf("manifest %s: format %q is not %q", path, m.Format, ManifestFormat)
	}
	if len(m.SHA256) != 64 {
		return nil, fmt.Errorf("manifest %s: no sha256", path)
	}
	return &m, nil
}

// writeManifest stores m beside its archive in dir, durably.
func writeManifest(dir string, m *Manifest) error {
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	data = append(data, '\n')
	return writeFileAtomic(dir, m.Archive+manifestSuffix, data, 0o644)
}
