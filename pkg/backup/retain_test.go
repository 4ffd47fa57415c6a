package backup

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bee2d/bee2d/pkg/config"
)

func bee2dArchive(ts time.Time) Archive {
	name := ArchiveName(ts.Unix(), config.CompressionZstd)
	return Archive{Name: name, Time: ts, Manifest: &Manifest{Archive: name}}
}

func TestSelectPrune(t *testing.T) {
	utc := time.UTC
	day := func(d, h int) time.Time { return time.Date(2024, 1, d, h, 0, 0, 0, utc) }
	// Two archives a day, 1 to 31 January 2024 (a Monday), oldest first.
	var month []Archive
	for d := 1; d <= 31; d++ {
		month = append(month, bee2dArchive(day(d, 3)), bee2dArchive(day(d, 15)))
	}
	kept := func(list []Archive, r config.Retain) []string {
		pruned := selectPrune(list, r, utc)
		var out []string
		for _, a := range list {
			if !slices.ContainsFunc(pruned, func(p Archive) bool { return p.Name == a.Name }) {
				out = append(out, a.Time.Format("02T15"))
			}
		}
		return out
	}
	tests := []struct {
		name string
		list []Archive
		r    config.Retain
		want string
	}{
		{"no policy keeps all", month[:3], config.Retain{}, "01T03 01T15 02T03"},
		{"last 3", month, config.Retain{Last: 3}, "30T15 31T03 31T15"},
		{"daily 3: newest of each day", month, config.Retain{Daily: 3}, "29T15 30T15 31T15"},
		{"weekly 2: newest of each ISO week", month, config.Retain{Weekly: 2}, "28T15 31T15"},
		{"monthly 2 with one month", month, config.Retain{Monthly: 2}, "31T15"},
		{"union", month, config.Retain{Last: 2, Daily: 2, Weekly: 3}, "21T15 28T15 30T15 31T03 31T15"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := strings.Join(kept(tt.list, tt.r), " "); got != tt.want {
				t.Errorf("kept %s, want %s", got, tt.want)
			}
		})
	}
	// Bee2's archives (no manifest) are never pruned, and do not count: the newest bee2d archive stays even
	// when a Bee2 archive is newer.
	mixed := []Archive{bee2dArchive(day(1, 0)), bee2dArchive(day(2, 0)), {Name: "x", Time: day(3, 0)}}
	pruned := selectPrune(mixed, config.Retain{Last: 1}, utc)
	if len(pruned) != 1 || pruned[0].Time != day(1, 0) {
		t.Errorf("pruned %+v", pruned)
	}
}

// prune removes only archives bee2d wrote (name pattern and manifest naming them), keeps the newest, and
// leaves every other file alone.
func TestPruneTouchesOnlyItsOwnFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	manifest := func(archive string) {
		m := &Manifest{Format: ManifestFormat, Archive: archive, SHA256: strings.Repeat("a", 64)}
		if err := writeManifest(dir, m); err != nil {
			t.Fatal(err)
		}
	}
	for _, ts := range []string{"100", "200", "300"} {
		write(ts+"-volumes.tar.zst", "x")
		manifest(ts + "-volumes.tar.zst")
	}
	write("50-volumes.tar", "bee2") // Bee2's: no manifest
	write("150-volumes.tar", "x")   // a manifest that names another archive
	write("150-volumes.tar.json", `{"format":"bee2d-backup/1","archive":"other","sha256":"`+strings.Repeat("b", 64)+`"}`)
	write("160-volumes.tar.gz", "x") // a manifest that is not bee2d's
	write("160-volumes.tar.gz.json", `{"hello":1}`)
	write("notes.txt", "mine")
	write("300-volumes.tar.zst.bak", "mine")
	manifest("90-volumes.tar") // orphaned: its archive is gone

	removed, err := prune(dir, config.Retain{Last: 1}, time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(removed, " ") != "100-volumes.tar.zst 200-volumes.tar.zst" {
		t.Errorf("removed %v", removed)
	}
	entries, _ := os.ReadDir(dir)
	var left []string
	for _, e := range entries {
		left = append(left, e.Name())
	}
	want := "150-volumes.tar 150-volumes.tar.json 160-volumes.tar.gz 160-volumes.tar.gz.json 300-volumes.tar.zst " +
		"300-volumes.tar.zst.bak 300-volumes.tar.zst.json 50-volumes.tar notes.txt"
	if got := strings.Join(left, " "); got != want {
		t.Errorf("left:\n %s\nwant\n %s", got, want)
	}
}

func TestListFindAndLeftovers(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"200-volumes.tar.zst", "100-volumes.tar", ".300-volumes.tar.zst.tmp",
		".300-volumes.tar.zst.json.tmp", ".bee2d-probe-0123456789abcdef", "x-volumes.tar", "notes", ".bee2d.lock"} {
		os.WriteFile(filepath.Join(dir, n), []byte("x"), 0o600)
	}
	list, err := List(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Name != "100-volumes.tar" || list[1].Compression != config.CompressionZstd {
		t.Errorf("list %+v", list)
	}
	if a, err := Find(dir, 0); err != nil || a.Name != "200-volumes.tar.zst" {
		t.Errorf("newest: %v %v", a.Name, err)
	}
	if a, err := Find(dir, 100); err != nil || a.Name != "100-volumes.tar" {
		t.Errorf("at 100: %v %v", a.Name, err)
	}
	if _, err := Find(dir, 150); err == nil || !strings.Contains(err.Error(), "newest: [200 100]") {
		t.Errorf("at 150: %v", err)
	}
	removed, err := removeLeftovers(dir)
	if err != nil || len(removed) != 3 {
		t.Errorf("removed %v, %v", removed, err)
	}
	if got := freeStamp(dir, 200); got != 201 {
		t.Errorf("freeStamp = %d", got)
	}
}

func TestLockMakesRunsTakeTurns(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "web1")
	unlock, err := lockDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lockDir(dir); err != ErrBusy {
		t.Fatalf("second lock: %v, want ErrBusy", err)
	}
	unlock()
	unlock2, err := lockDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	unlock2()
}

func TestCommitNeverReplaces(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "final"), []byte("old"), 0o600)
	os.WriteFile(filepath.Join(dir, "tmp"), []byte("new"), 0o600)
	if err := commit(filepath.Join(dir, "tmp"), filepath.Join(dir, "final")); err == nil {
		t.Fatal("commit replaced an existing file")
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "final")); string(b) != "old" {
		t.Errorf("final holds %q", b)
	}
}
