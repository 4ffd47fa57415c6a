package backup

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bee2d/bee2d/pkg/config"
)

// largeFiles writes 64 files of 4 MiB into dir, like the mixed data of bench/backup: log-like text, binary
// records and random bytes (4, 3 and 3 out of 10), and returns their bytes.
func largeFiles(dir string) int64 {
	os.MkdirAll(dir, 0o755)
	rng := mrand.New(mrand.NewPCG(1, 2))
	words := strings.Fields("the quick brown fox jumps over a lazy dog while bee2d keeps every volume safe GET POST /index.html 200 404")
	const n = 4 << 20
	var size int64
	for i := range 64 {
		data := make([]byte, 0, n+256)
		switch i % 10 * 10 / 34 {
		case 0:
			for len(data) < n {
				data = fmt.Appendf(data, "2024-05-%02d 12:%02d:%02d 10.0.%d.%d ", rng.IntN(28)+1, rng.IntN(60), rng.IntN(60), rng.IntN(255), rng.IntN(255))
				for range 8 + rng.IntN(8) {
					data = append(append(data, words[rng.IntN(len(words))]...), ' ')
				}
				data = append(data, '\n')
			}
		case 1:
			for rec := uint64(0); len(data) < n; rec++ {
				var r [32]byte
				binary.LittleEndian.PutUint64(r[:], rec)
				r[8], r[9] = byte(rng.IntN(4)), byte(rng.IntN(256))
				copy(r[16:], "record-payload!!")
				data = append(data, r[:]...)
			}
		default:
			data = data[:n]
			rand.Read(data)
		}
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%02d", i)), data[:n], 0o644)
		size += n
	}
	return size
}

// memDir is a new directory in memory (/dev/shm) when there is one, else in the test's temporary directory:
// the benchmarks below time the CPU, not this machine's disk.
func memDir(b *testing.B) string {
	if d, err := os.MkdirTemp("/dev/shm", "bee2d-bench-"); err == nil {
		b.Cleanup(func() { os.RemoveAll(d) })
		return d
	}
	return b.TempDir()
}

// BenchmarkHelperBackup runs the helper's backup in place, without Docker, on 256 MiB of text and random
// data, writing the archive into a file as the bind-mount path does: what the data path costs in CPU.
func BenchmarkHelperBackup(b *testing.B) {
	vols := b.TempDir()
	inPlace(b, vols)
	size := largeFiles(filepath.Join(vols, "data"))
	out := memDir(b)
	os.WriteFile(filepath.Join(out, ".bee2d-probe-0123456789abcdef"), []byte("t"), 0o600)
	for _, comp := range []string{"none", "zstd", "gzip"} {
		b.Run(comp, func(b *testing.B) {
			b.SetBytes(size)
			for i := range b.N {
				archive := filepath.Join(out, fmt.Sprintf(".%d-volumes.tar.tmp", i))
				var stderr bytes.Buffer
				if code := HelperMain([]string{"backup", "--compression", comp, "--out", archive,
					"--probe", ".bee2d-probe-0123456789abcdef:t", "data"}, nil, nil, &stderr); code != 0 {
					b.Fatal(stderr.String())
				}
				os.Remove(archive)
			}
		})
	}
}

// BenchmarkHelperRestoreSmallFiles restores 20,000 small files in place, without Docker, over a volume that
// holds them already (as a restore usually finds it): what the helper's restore costs per file. On an ext4
// without a journal every iteration after the first creates its files among the 20,000 inodes the one
// before deleted, which the kernel will not reuse for a minute and costs about a millisecond a file; use
// -benchtime 1x there, or a file system with a journal.
func BenchmarkHelperRestoreSmallFiles(b *testing.B) {
	vols := b.TempDir()
	inPlace(b, vols)
	size := smallFiles(filepath.Join(vols, "data"))
	out := b.TempDir()
	os.WriteFile(filepath.Join(out, ".bee2d-probe-0123456789abcdef"), []byte("t"), 0o600)
	archive := filepath.Join(out, "1-volumes.tar")
	var stderr bytes.Buffer
	if code := HelperMain([]string{"backup", "--compression", "none", "--out", archive,
		"--probe", ".bee2d-probe-0123456789abcdef:t", "data"}, nil, nil, &stderr); code != 0 {
		b.Fatal(stderr.String())
	}
	b.SetBytes(size)
	b.ResetTimer()
	for i := range b.N {
		if code := HelperMain([]string{"restore", "--in", archive, "--probe", ".bee2d-probe-0123456789abcdef:t",
			"--stamp", fmt.Sprint(i + 1), "data"}, nil, nil, &stderr); code != 0 {
			b.Fatal(stderr.String())
		}
	}
}

// smallFiles writes 20,000 files of 1 to 8 KiB, 100 to a directory, into dir and returns their bytes.
func smallFiles(dir string) int64 {
	rng := mrand.New(mrand.NewPCG(3, 4))
	var size int64
	for i := range 20000 {
		sub := filepath.Join(dir, fmt.Sprintf("d%03d", i/100))
		os.MkdirAll(sub, 0o755)
		n := 1024 + rng.IntN(7*1024)
		data := make([]byte, 0, n)
		for len(data) < n {
			data = fmt.Appendf(data, "line %d of file %d: %x\n", len(data), i, rng.Uint32())
		}
		os.WriteFile(filepath.Join(sub, fmt.Sprintf("f%05d", i)), data[:n], 0o644)
		size += int64(n)
	}
	return size
}

// BenchmarkHelperBackupSmallFiles backs up 20,000 small files in place, without Docker, into a file in
// memory when /dev/shm is there: what the helper costs per file.
func BenchmarkHelperBackupSmallFiles(b *testing.B) {
	vols := b.TempDir()
	inPlace(b, vols)
	size := smallFiles(filepath.Join(vols, "data"))
	out := b.TempDir()
	if d, err := os.MkdirTemp("/dev/shm", "bee2d-bench-"); err == nil {
		out = d
		b.Cleanup(func() { os.RemoveAll(d) })
	}
	os.WriteFile(filepath.Join(out, ".bee2d-probe-0123456789abcdef"), []byte("t"), 0o600)
	for _, comp := range []string{"none", "zstd"} {
		b.Run(comp, func(b *testing.B) {
			b.SetBytes(size)
			for i := range b.N {
				archive := filepath.Join(out, fmt.Sprintf(".%d-volumes.tar.tmp", i))
				var stderr bytes.Buffer
				if code := HelperMain([]string{"backup", "--compression", comp, "--out", archive,
					"--probe", ".bee2d-probe-0123456789abcdef:t", "data"}, nil, nil, &stderr); code != 0 {
					b.Fatal(stderr.String())
				}
				os.Remove(archive)
			}
		})
	}
}

// BenchmarkHelperRestore restores the same 256 MiB in place, without Docker, from an archive of each
// compression, volume and archive both in memory: the restore's data path in CPU (decompress, hash, check,
// write), without this machine's disk.
func BenchmarkHelperRestore(b *testing.B) {
	vols := memDir(b)
	inPlace(b, vols)
	size := largeFiles(filepath.Join(vols, "data"))
	out := memDir(b)
	os.WriteFile(filepath.Join(out, ".bee2d-probe-0123456789abcdef"), []byte("t"), 0o600)
	for _, run := range []struct {
		name, comp string
		index      bool
	}{{"none", "none", false}, {"zstd", "zstd", false}, {"zstd-indexed", "zstd", true}, {"gzip", "gzip", false}, {"gzip-indexed", "gzip", true}} {
		b.Run(run.name, func(b *testing.B) {
			archive := filepath.Join(out, ArchiveName(1, config.Compression(run.comp)))
			var stderr bytes.Buffer
			if code := HelperMain([]string{"backup", "--compression", run.comp, "--out", archive,
				"--probe", ".bee2d-probe-0123456789abcdef:t", "data"}, nil, nil, &stderr); code != 0 {
				b.Fatal(stderr.String())
			}
			defer os.Remove(archive)
			sum, err := fileSHA256(archive)
			if err != nil {
				b.Fatal(err)
			}
			args := []string{"restore", "--compression", run.comp, "--sha256", sum, "--in", archive,
				"--probe", ".bee2d-probe-0123456789abcdef:t"}
			if run.index {
				var res helperResult
				for _, line := range strings.Split(stderr.String(), "\n") {
					var ev event
					if json.Unmarshal([]byte(line), &ev) == nil && ev.Result != nil {
						res = *ev.Result
					}
				}
				fi, _ := os.Stat(archive)
				if !validBlocks(res.Blocks, fi.Size()) {
					b.Fatalf("no block index: %v", res.Blocks)
				}
				m := &Manifest{Format: ManifestFormat, Archive: filepath.Base(archive), Compression: config.Compression(run.comp),
					Size: fi.Size(), SHA256: sum, Blocks: res.Blocks}
				if err := writeManifest(out, m); err != nil {
					b.Fatal(err)
				}
				defer os.Remove(archive + manifestSuffix)
				args = append(args, "--index", archive+manifestSuffix)
			}
			b.SetBytes(size)
			b.ResetTimer()
			for i := range b.N {
				if code := HelperMain(append(args, "--stamp", fmt.Sprint(i+1), "data"), nil, nil, &stderr); code != 0 {
					b.Fatal(stderr.String())
				}
			}
		})
	}
}
