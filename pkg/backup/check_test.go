package backup

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/bee2d/bee2d/pkg/config"
)

// ent is one entry of a test archive.
type ent struct {
	name string
	typ  byte
	body string
	link string
	mode int64
}

func dirEnt(name string) ent        { return ent{name: name, typ: tar.TypeDir} }
func fileEnt(name, body string) ent { return ent{name: name, typ: tar.TypeReg, body: body} }
func symEnt(name, target string) ent {
	return ent{name: name, typ: tar.TypeSymlink, link: target}
}

// tarOf writes entries as a tar, the way any tool might.
func tarOf(t testing.TB, entries ...ent) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range entries {
		mode := e.mode
		if mode == 0 {
			mode = 0o644
		}
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.link, Mode: mode, ModTime: fixedTime,
			Size: int64(len(e.body))}
		if e.typ != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			io.WriteString(tw, e.body)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func compress(t testing.TB, data []byte, c config.Compression) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := compressor(&b, c)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// bee2Archive is an archive as Bee2 wrote them: volumes/ first, then each volume's tree.
func bee2Archive(t testing.TB) []byte {
	return tarOf(t,
		dirEnt("volumes/"),
		dirEnt("volumes/site/"),
		fileEnt("volumes/site/index.html", "<h1>hello</h1>\n"),
		dirEnt("volumes/site/css/"),
		fileEnt("volumes/site/css/site.css", "body{}\n"),
		symEnt("volumes/site/home.html", "index.html"),
		dirEnt("volumes/logs/"),
		fileEnt("volumes/logs/access.log", ""),
	)
}

// hostile lists archives a restore must refuse, with what the error must say.
var hostile = []struct {
	name    string
	entries []ent
	want    string
}{
	{"dot-dot", []ent{dirEnt("volumes/site/"), fileEnt("volumes/site/../../etc/passwd", "x")}, `"volumes/site/../../etc/passwd": path with ..`},
	{"absolute", []ent{fileEnt("/etc/cron.d/evil", "x")}, `"/etc/cron.d/evil": absolute path`},
	{"outside volumes", []ent{fileEnt("etc/passwd", "x")}, "outside volumes/"},
	{"escaping symlink", []ent{dirEnt("volumes/site/"), symEnt("volumes/site/up", "../../../etc")}, `symlink to "../../../etc" points outside its volume`},
	{"absolute symlink", []ent{dirEnt("volumes/site/"), symEnt("volumes/site/passwd", "/etc/passwd")}, "points outside its volume (absolute)"},
	{"write through symlink", []ent{dirEnt("volumes/site/"), symEnt("volumes/site/d", "sub"), fileEnt("volumes/site/d/x", "x")}, "goes through the symlink d"},
	{"device", []ent{dirEnt("volumes/site/"), {name: "volumes/site/sda", typ: tar.TypeBlock}}, "device file"},
	{"fifo", []ent{dirEnt("volumes/site/"), {name: "volumes/site/p", typ: tar.TypeFifo}}, "named pipe"},
	{"hard link out of the volume", []ent{dirEnt("volumes/a/"), fileEnt("volumes/a/f", "x"), dirEnt("volumes/b/"), {name: "volumes/b/l", typ: tar.TypeLink, link: "volumes/a/f"}}, "outside its volume"},
	{"hard link to nothing", []ent{dirEnt("volumes/a/"), {name: "volumes/a/l", typ: tar.TypeLink, link: "volumes/a/later"}}, "not an earlier file"},
	{"hard link outside", []ent{dirEnt("volumes/a/"), {name: "volumes/a/l", typ: tar.TypeLink, link: "/etc/shadow"}}, "outside its volume"},
	{"file twice", []ent{dirEnt("volumes/a/"), fileEnt("volumes/a/f", "1"), fileEnt("volumes/a/f", "2")}, "appears twice"},
	{"bad volume name", []ent{fileEnt("volumes/-x/f", "1")}, "invalid volume name"},
	{"root not a dir", []ent{fileEnt("volumes/a", "1")}, "root must be a directory"},
}

func TestScanRefusesHostileArchives(t *testing.T) {
	for _, tt := range hostile {
		t.Run(tt.name, func(t *testing.T) {
			_, err := scan(bytes.NewReader(tarOf(t, tt.entries...)), "1-volumes.tar", config.CompressionNone, nil)
			var ee *EntryError
			if !errors.As(err, &ee) || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "archive 1-volumes.tar: entry ") {
				t.Fatalf("err = %v, want an EntryError naming the archive and saying %q", err, tt.want)
			}
		})
	}
}

func TestScanDetectsTruncation(t *testing.T) {
	whole := bee2Archive(t)
	for _, comp := range config.Compressions {
		data := compress(t, whole, comp)
		if _, err := scan(bytes.NewReader(data), "x", comp, nil); err != nil {
			t.Fatalf("%s: whole archive: %v", comp, err)
		}
		// Cut at every 512-byte block boundary of the tar (where a bare tar reader sees a clean end) and in
		// the middle of blocks.
		for _, cut := range []int{len(data) - 1, len(data) - 600, len(data) / 2, 700, 1024, 10} {
			if cut <= 0 || cut >= len(data) {
				continue
			}
			_, err := scan(bytes.NewReader(data[:cut]), "x", comp, nil)
			var te *TruncatedError
			if !errors.As(err, &te) {
				t.Errorf("%s cut at %d of %d: err = %v, want TruncatedError", comp, cut, len(data), err)
			}
		}
	}
	// An uncompressed tar cut exactly at an entry's end reads as a clean end to archive/tar.
	for cut := 512; cut < len(whole)-1024; cut += 512 {
		if _, err := scan(bytes.NewReader(whole[:cut]), "x", config.CompressionNone, nil); err == nil {
			t.Errorf("tar cut at block %d accepted", cut/512)
		}
	}
	garbage := append(append([]byte{}, whole...), []byte("trailing")...)
	if _, err := scan(bytes.NewReader(garbage), "x", config.CompressionNone, nil); err == nil || !strings.Contains(err.Error(), "follows the end") {
		t.Errorf("trailing data: err = %v", err)
	}
}

func TestScanCountsAndHashes(t *testing.T) {
	data := bee2Archive(t)
	sum, err := scan(bytes.NewReader(data), "x", config.CompressionNone, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []VolumeStats{{Name: "site", Files: 2, Dirs: 2, Symlinks: 1, Bytes: 22}, {Name: "logs", Files: 1, Dirs: 1}}
	if len(sum.Volumes) != 2 || sum.Volumes[0] != want[0] || sum.Volumes[1] != want[1] || sum.Size != int64(len(data)) {
		t.Errorf("summary %+v", sum)
	}
	if got, _ := fileSHA256Bytes(data); got != sum.SHA256 {
		t.Errorf("sha256 %s, want %s", sum.SHA256, got)
	}
}

func fileSHA256Bytes(b []byte) (string, error) {
	p := filepath.Join(os.TempDir(), "bee2d-sha-test")
	defer os.Remove(p)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		return "", err
	}
	return fileSHA256(p)
}

// Every hostile archive, given to the helper as a restore, leaves the volume exactly as it was.
func TestHelperRefusesHostileArchivesVolumeUnchanged(t *testing.T) {
	requireRoot(t)
	vols := t.TempDir()
	inPlace(t, vols)
	for _, v := range []string{"site", "a", "b"} {
		os.MkdirAll(filepath.Join(vols, v, "keep"), 0o755)
		os.WriteFile(filepath.Join(vols, v, "keep", "file"), []byte("mine"), 0o644)
	}
	before := snapshot(t, vols)
	for _, tt := range hostile {
		t.Run(tt.name, func(t *testing.T) {
			code, _, msg := runHelperMain(t, []string{"restore", "--name", "9-volumes.tar", "site", "a", "b"}, tarOf(t, tt.entries...), nil)
			if code == 0 || !strings.Contains(msg, tt.want) {
				t.Fatalf("exit %d: %s", code, msg)
			}
			sameTree(t, "volumes", withRootTimes(snapshot(t, vols), before, "site", "a", "b"), before)
		})
	}
}

// The compressed forms are what the command-line tools read.
func TestCompressedFormsAreStandard(t *testing.T) {
	data := bee2Archive(t)
	gz, err := gzip.NewReader(bytes.NewReader(compress(t, data, config.CompressionGzip)))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := io.ReadAll(gz); !bytes.Equal(got, data) {
		t.Error("gzip round trip differs")
	}
	zr, _ := zstd.NewReader(bytes.NewReader(compress(t, data, config.CompressionZstd)))
	defer zr.Close()
	if got, _ := io.ReadAll(zr); !bytes.Equal(got, data) {
		t.Error("zstd round trip differs")
	}
}
