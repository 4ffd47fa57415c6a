package backup

import (
	"crypto/rand"
	"encoding/binary"
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

// benchProbe is the probe file the helper checks beside an archive it writes or reads, with its token.
const benchProbe = ".bee2d-probe-0123456789abcdef"

// helperStore makes dir a storage directory the helper accepts (the probe is there) and returns it.
func helperStore(b testing.TB, dir string) string {
	if err := os.WriteFile(filepath.Join(dir, benchProbe), []byte("t"), 0o600); err != nil {
		b.Fatal(err)
	}
	return dir
}

// helperBackupFile runs the helper's backup of the volume "data" into archive, in a helperStore, and
// returns its result.
func helperBackupFile(b testing.TB, comp, archive string) *helperResult {
	b.Helper()
	code, res, msg := runHelperMain(b, []string{"backup", "--compression", comp, "--out", archive,
		"--probe", benchProbe + ":t", "data"}, nil, nil)
	if code != 0 || res == nil {
		b.Fatalf("backup: exit %d: %s", code, msg)
	}
	return res
}

// benchBackups times the helper's backups of the volume "data", of size bytes, into out, in each compression.
func benchBackups(b *testing.B, out string, size int64, comps ...string) {
	for _, comp := range comps {
		b.Run(comp, func(b *testing.B) {
			b.SetBytes(size)
			for i := range b.N {
				archive := filepath.Join(out, fmt.Sprintf(".%d-volumes.tar.tmp", i))
				helperBackupFile(b, comp, archive)
				os.Remove(archive)
			}
		})
	}
}

// BenchmarkHelperBackup runs the helper's backup in place, without Docker, on 256 MiB of text and random
// data, writing the archive into a file as the bind-mount path does: what the data path costs in CPU.
func BenchmarkHelperBackup(b *testing.B) {
	vols := b.TempDir()
	inPlace(b, vols)
	size := largeFiles(filepath.Join(vols, "data"))
	benchBackups(b, helperStore(b, memDir(b)), size, "none", "zstd", "gzip")
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
	archive := filepath.Join(helperStore(b, b.TempDir()), "1-volumes.tar")
	helperBackupFile(b, "none", archive)
	b.SetBytes(size)
	b.ResetTimer()
	for i := range b.N {
		benchRestore(b, []string{"--in", archive, "--probe", benchProbe + ":t", "--stamp", fmt.Sprint(i + 1)})
	}
}

// benchRestore runs the helper's restore of the volume "data" with args.
func benchRestore(b *testing.B, args []string) {
	if code, _, msg := runHelperMain(b, append(append([]string{"restore"}, args...), "data"), nil, nil); code != 0 {
		b.Fatalf("restore: exit %d: %s", code, msg)
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
	benchBackups(b, helperStore(b, memDir(b)), size, "none", "zstd")
}

// BenchmarkHelperRestore restores the same 256 MiB in place, without Docker, from an archive of each
// compression, volume and archive both in memory: the restore's data path in CPU (decompress, hash, check,
// write), without this machine's disk.
func BenchmarkHelperRestore(b *testing.B) {
	vols := memDir(b)
	inPlace(b, vols)
	size := largeFiles(filepath.Join(vols, "data"))
	out := helperStore(b, memDir(b))
	for _, run := range []struct {
		name, comp string
		index      bool
	}{{"none", "none", false}, {"zstd", "zstd", false}, {"zstd-indexed", "zstd", true}, {"gzip", "gzip", false}, {"gzip-indexed", "gzip", true}} {
		b.Run(run.name, func(b *testing.B) {
			archive := filepath.Join(out, ArchiveName(1, config.Compression(run.comp)))
			res := helperBackupFile(b, run.comp, archive)
			defer os.Remove(archive)
			sum, err := fileSHA256(archive)
			if err != nil {
				b.Fatal(err)
			}
			args := []string{"--compression", run.comp, "--sha256", sum, "--in", archive, "--probe", benchProbe + ":t"}
			if run.index {
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
				benchRestore(b, append(args, "--stamp", fmt.Sprint(i+1)))
			}
		})
	}
}
