package backup

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bee2d/bee2d/pkg/config"
)

func TestNextRunFollowsTheNewestArchive(t *testing.T) {
	dir := t.TempDir()
	yml := "servers:\n  web1: {}\n  web2: {}\ndocker:\n  backup:\n    web1:\n      storage_dir: store\n      volumes: [v]\n      schedule: \"30 3 * * *\"\n    web2:\n      volumes: [v]\n"
	os.WriteFile(filepath.Join(dir, "settings.yml"), []byte(yml), 0o644)
	s, err := config.Load(filepath.Join(dir, "settings.yml"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2024, 5, 10, 12, 0, 0, 0, time.Local)
	if next, ok, err := NextRun(s, "web1", now); err != nil || !ok || !next.Equal(now) {
		t.Errorf("no archive yet: %v %v %v, want now", next, ok, err)
	}
	if _, ok, _ := NextRun(s, "web2", now); ok {
		t.Error("web2 has no schedule")
	}
	store := filepath.Join(dir, "store", "web1")
	os.MkdirAll(store, 0o700)
	last := time.Date(2024, 5, 9, 3, 30, 5, 0, time.Local)
	name := ArchiveName(last.Unix(), config.CompressionNone)
	os.WriteFile(filepath.Join(store, name), []byte("x"), 0o600)
	writeManifest(store, &Manifest{Format: ManifestFormat, Archive: name, SHA256: strings.Repeat("a", 64)})
	// A newer Bee2 archive does not count: bee2d did not write it.
	os.WriteFile(filepath.Join(store, ArchiveName(now.Unix(), config.CompressionNone)), []byte("x"), 0o600)
	next, ok, err := NextRun(s, "web1", now)
	if want := time.Date(2024, 5, 10, 3, 30, 0, 0, time.Local); err != nil || !ok || !next.Equal(want) {
		t.Errorf("next %v (%v), want %v: a missed run is due at once", next, err, want)
	}
}

// ErrBusy comes at once, before the engine is touched, while another run holds the server's directory.
func TestRunBusy(t *testing.T) {
	dir := t.TempDir()
	yml := "servers:\n  web1: {}\ndocker:\n  backup:\n    web1:\n      storage_dir: store\n      volumes: [v]\n"
	os.WriteFile(filepath.Join(dir, "settings.yml"), []byte(yml), 0o644)
	s, err := config.Load(filepath.Join(dir, "settings.yml"))
	if err != nil {
		t.Fatal(err)
	}
	unlock, err := lockDir(filepath.Join(dir, "store", "web1"))
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	if _, err := Run(t.Context(), nil, s, "web1", Options{}); err != ErrBusy {
		t.Errorf("Run: %v, want ErrBusy", err)
	}
	if _, err := Restore(t.Context(), nil, s, "web1", RestoreOptions{}); err != ErrBusy {
		t.Errorf("Restore: %v, want ErrBusy", err)
	}
}
