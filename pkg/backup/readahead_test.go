package backup

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bee2d/bee2d/pkg/config"
)

// Files read ahead of the archiver land in the archive as if read one after the other: every file once, in
// the walk's order (a directory's entries by name, a subdirectory's contents right after its entry), with its
// exact content, also for more files than are read ahead at once, files too large to be read ahead, and
// runs of files broken by subdirectories; in every compression (the compressed ones read file content
// straight into the blocks they compress).
func TestReadAheadKeepsOrderAndContent(t *testing.T) {
	vols := t.TempDir()
	inPlace(t, vols)
	root := filepath.Join(vols, "data")
	rng := rand.New(rand.NewPCG(5, 6))
	want := map[string][]byte{}
	var order []string // as the archive must list the files
	for d := range 3 {
		dir := fmt.Sprintf("d%d", d)
		for i := range readAheadFiles*2 + 7 {
			name := fmt.Sprintf("%s/f%03d", dir, i)
			size := rng.IntN(9000)
			switch {
			case i%50 == 3:
				size = readAheadSmall + 1 + rng.IntN(3<<20) // streamed, not read ahead
			case i%61 == 5:
				size = 0
			}
			// Each file's own content: its name, repeated from a random offset.
			b := bytes.Repeat([]byte(name+" "), size/(len(name)+1)+2)
			off := rng.IntN(len(name))
			b = b[off : off+size]
			want[name] = b
			if i == readAheadFiles {
				// A subdirectory in the middle of a run of files: its contents come between them.
				sub := fmt.Sprintf("%s/f%03d-sub/inner", dir, i)
				want[sub] = []byte("inner " + sub)
				order = append(order, name, sub)
				continue
			}
			order = append(order, name)
		}
	}
	for name, b := range want {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, comp := range config.Compressions {
		t.Run(string(comp), func(t *testing.T) {
			var archive bytes.Buffer
			code, res, msg := runHelperMain(t, []string{"backup", "--compression", string(comp), "data"}, nil, &archive)
			if code != 0 {
				t.Fatalf("backup: exit %d: %s", code, msg)
			}
			if len(res.Problems) != 0 || res.Volumes[0].Files != int64(len(want)) {
				t.Fatalf("result: %+v", res)
			}
			dec, err := decompressor(bytes.NewReader(archive.Bytes()), comp)
			if err != nil {
				t.Fatal(err)
			}
			tr := tar.NewReader(dec)
			var got []string
			for {
				h, err := tr.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if h.Typeflag != tar.TypeReg {
					continue
				}
				name := strings.TrimPrefix(h.Name, "volumes/data/")
				b, err := io.ReadAll(tr)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(b, want[name]) {
					t.Errorf("%s: %d bytes differ from the file's %d", name, len(b), len(want[name]))
				}
				got = append(got, name)
			}
			if strings.Join(got, " ") != strings.Join(order, " ") {
				t.Errorf("order:\n got %v\nwant %v", got, order)
			}
		})
	}
}

// A file that vanishes between its directory's listing and its open, among others read ahead, is reported
// and left out; the others are archived.
func TestReadAheadReportsUnreadableFiles(t *testing.T) {
	vols := t.TempDir()
	inPlace(t, vols)
	root := filepath.Join(vols, "data")
	os.MkdirAll(root, 0o755)
	for i := range 10 {
		os.WriteFile(filepath.Join(root, fmt.Sprintf("f%d", i)), []byte(strings.Repeat("x", i)), 0o644)
	}
	entries, _ := os.ReadDir(root)
	// The listing is taken; one file goes before it is opened.
	os.Remove(filepath.Join(root, "f4"))
	a := newArchiver(io.Discard)
	st := &VolumeStats{Name: "data"}
	if err := a.regularRun(st, "data", root, "", entries); err != nil {
		t.Fatal(err)
	}
	if st.Files != 9 || a.total != 1 || a.problems[0].Path != "f4" || a.problems[0].What != "vanished during the backup" {
		t.Errorf("files %d, problems %+v", st.Files, a.problems)
	}
}
