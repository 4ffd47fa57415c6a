package backup

import (
	"bytes"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bee2d/bee2d/pkg/config"
)

// indexedArchive backs up a volume of about 11 MiB of text (three blocks) with the helper and returns the
// archive, its block sizes and the volumes' directory.
func indexedArchive(t *testing.T, comp config.Compression) (archive []byte, blocks []int64, vols string) {
	t.Helper()
	root := dataVolume(t)
	vols = filepath.Dir(root)
	os.MkdirAll(filepath.Join(root, "logs"), 0o755)
	rng := mrand.New(mrand.NewPCG(5, 6))
	for i := range 11 {
		var b []byte
		for len(b) < 1<<20 {
			b = fmt.Appendf(b, "line %d of file %d: %x\n", len(b), i, rng.Uint64())
		}
		os.WriteFile(filepath.Join(root, "logs", fmt.Sprintf("f%02d.log", i)), b, 0o644)
	}
	var out bytes.Buffer
	code, res, msg := runHelperMain(t, []string{"backup", "--compression", string(comp), "data"}, nil, &out)
	if code != 0 {
		t.Fatalf("backup: exit %d: %s", code, msg)
	}
	if len(res.Blocks) < 3 || !validBlocks(res.Blocks, int64(out.Len())) {
		t.Fatalf("the helper's block sizes %v do not index its %d-byte archive", res.Blocks, out.Len())
	}
	return out.Bytes(), res.Blocks, vols
}

func TestScanByBlockIndex(t *testing.T) {
	for _, comp := range []config.Compression{config.CompressionGzip, config.CompressionZstd} {
		t.Run(string(comp), func(t *testing.T) {
			archive, blocks, _ := indexedArchive(t, comp)
			plain, err := scan(bytes.NewReader(archive), "a", comp, nil)
			if err != nil {
				t.Fatal(err)
			}
			indexed, err := scanIndexed(bytes.NewReader(archive), "a", comp, blocks, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !indexed.Indexed || plain.Indexed {
				t.Errorf("Indexed: %v by the index, %v without", indexed.Indexed, plain.Indexed)
			}
			indexed.Indexed = false
			if fmt.Sprint(indexed) != fmt.Sprint(plain) {
				t.Errorf("by the index %+v, without %+v", indexed, plain)
			}

			shifted := append([]int64(nil), blocks...)
			shifted[0]++
			shifted[1]--
			merged := append([]int64{blocks[0] + blocks[1]}, blocks[2:]...)
			for _, tc := range []struct {
				name   string
				data   []byte
				blocks []int64
				fails  bool
				index  bool // an *IndexError
			}{
				{"a block one byte too long", archive, shifted, true, comp == config.CompressionGzip},
				// Two zstd frames decompress whole together; two gzip members are not one member.
				{"two blocks as one", archive, merged, comp == config.CompressionGzip, comp == config.CompressionGzip},
				{"data after the last block", append(bytes.Clone(archive), 0x1f, 0x8b), blocks, true, true},
				{"cut in the last block", archive[:len(archive)-100], blocks, true, false},
				{"cut at a block's end", archive[:blocks[0]], blocks, true, false},
			} {
				t.Run(tc.name, func(t *testing.T) {
					_, err := scanIndexed(bytes.NewReader(tc.data), "a", comp, tc.blocks, nil)
					var ie *IndexError
					if (err != nil) != tc.fails || errors.As(err, &ie) != tc.index {
						t.Errorf("error %v; want a failure %v, an index error %v", err, tc.fails, tc.index)
					}
				})
			}

			// A damaged block is damage, whatever the index.
			damaged := bytes.Clone(archive)
			damaged[blocks[0]+blocks[1]/2] ^= 0xff
			if _, err := scanIndexed(bytes.NewReader(damaged), "a", comp, blocks, nil); err == nil {
				t.Error("a damaged block read without error")
			}
		})
	}

	// An index whose blocks could hold more than a reader keeps in memory is not used.
	if validBlocks([]int64{maxBlockSize + 1}, maxBlockSize+1) || validBlocks(nil, 0) || validBlocks([]int64{5, 0, 5}, 10) ||
		validBlocks([]int64{5, 5}, 11) {
		t.Error("validBlocks takes an index it must not")
	}
}

// writeIndexedManifest stores, in place of any manifest of name in dir, one with blocks as its index.
func writeIndexedManifest(t *testing.T, dir, name string, comp config.Compression, archive []byte, sha string, blocks []int64) {
	t.Helper()
	os.Remove(filepath.Join(dir, name+manifestSuffix))
	if err := writeManifest(dir, &Manifest{Format: ManifestFormat, Archive: name, Compression: comp,
		Size: int64(len(archive)), SHA256: sha, Blocks: blocks}); err != nil {
		t.Fatal(err)
	}
}

// Verify uses the manifest's index, and reads the archive as one stream when anything fails by the index.
func TestVerifyByBlockIndex(t *testing.T) {
	for _, comp := range []config.Compression{config.CompressionGzip, config.CompressionZstd} {
		t.Run(string(comp), func(t *testing.T) {
			archive, blocks, _ := indexedArchive(t, comp)
			dir := t.TempDir()
			name := ArchiveName(1700000000, comp)
			os.WriteFile(filepath.Join(dir, name), archive, 0o600)
			plain, err := scan(bytes.NewReader(archive), name, comp, nil)
			if err != nil {
				t.Fatal(err)
			}
			shifted := append([]int64(nil), blocks...)
			shifted[0]++
			shifted[1]--
			for _, tc := range []struct {
				blocks  []int64
				indexed bool
			}{{blocks, true}, {shifted, false}, {nil, false}} {
				writeIndexedManifest(t, dir, name, comp, archive, plain.SHA256, tc.blocks)
				a, err := Find(dir, 0)
				if err != nil {
					t.Fatal(err)
				}
				sum, err := Verify(a, nil)
				if err != nil {
					t.Fatalf("index %v: %v", tc.blocks, err)
				}
				if sum.Indexed != tc.indexed || sum.SHA256 != plain.SHA256 {
					t.Errorf("index %v: indexed %v, sha256 %s", tc.blocks, sum.Indexed, sum.SHA256)
				}
			}
		})
	}
}

// The helper restores by the index of the manifest beside the archive (--index), and a restore whose index
// does not fit changes nothing.
func TestHelperRestoreByBlockIndex(t *testing.T) {
	requireRoot(t)
	for _, comp := range []config.Compression{config.CompressionGzip, config.CompressionZstd} {
		t.Run(string(comp), func(t *testing.T) {
			archive, blocks, vols := indexedArchive(t, comp)
			root := filepath.Join(vols, "data")
			before := snapshot(t, root)
			store := t.TempDir()
			name := ArchiveName(1700000000, comp)
			os.WriteFile(filepath.Join(store, name), archive, 0o600)
			os.WriteFile(filepath.Join(store, ".bee2d-probe-0123456789abcdef"), []byte("t"), 0o600)
			sum, err := scan(bytes.NewReader(archive), name, comp, nil)
			if err != nil {
				t.Fatal(err)
			}
			restore := func(index []int64, stamp string) (int, string) {
				writeIndexedManifest(t, store, name, comp, archive, sum.SHA256, index)
				code, _, msg := runHelperMain(t, []string{"restore", "--compression", string(comp), "--sha256", sum.SHA256,
					"--in", filepath.Join(store, name), "--probe", ".bee2d-probe-0123456789abcdef:t",
					"--index", filepath.Join(store, name+manifestSuffix), "--stamp", stamp, "data"}, nil, nil)
				return code, msg
			}

			os.WriteFile(filepath.Join(root, "logs", "f00.log"), []byte("changed"), 0o644)
			os.WriteFile(filepath.Join(root, "new"), []byte("new"), 0o644)
			changed := snapshot(t, root)
			shifted := append([]int64(nil), blocks...)
			shifted[0]++
			shifted[1]--
			if code, msg := restore(shifted, "1"); code == 0 || !strings.Contains(msg, "block") {
				t.Errorf("restore by an index that does not fit: exit %d: %s", code, msg)
			}
			sameTree(t, "after a refused restore", withRootTimes(snapshot(t, root), changed, ""), changed)

			if code, msg := restore(blocks, "2"); code != 0 {
				t.Fatalf("restore: exit %d: %s", code, msg)
			}
			sameTree(t, "restored", snapshot(t, root), before)
		})
	}
}
