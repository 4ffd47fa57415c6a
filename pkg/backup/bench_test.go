package backup

import (
	"bytes"
	"crypto/rand"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// BenchmarkHelperBackup runs the helper's backup in place, without Docker, on 256 MiB of text and random
// data, writing the archive into a file as the bind-mount path does: what the data path costs in CPU.
func BenchmarkHelperBackup(b *testing.B) {
	vols := b.TempDir()
	inPlace(b, vols)
	dir := filepath.Join(vols, "data")
	os.MkdirAll(dir, 0o755)
	text := []byte(strings.Repeat("2024-05-01 12:00:00 GET /index.html 200 the quick brown fox\n", 1<<16/60))
	random := make([]byte, 4<<20)
	rand.Read(random)
	var size int64
	for i := range 64 {
		data := random
		if i%2 == 0 {
			data = bytes.Repeat(text, len(random)/len(text))
		}
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%02d", i)), data, 0o644)
		size += int64(len(data))
	}
	out := b.TempDir()
	if d, err := os.MkdirTemp("/dev/shm", "bee2d-bench-"); err == nil {
		out = d
		b.Cleanup(func() { os.RemoveAll(d) })
	}
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
