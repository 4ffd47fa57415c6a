package backup

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/bee2d/bee2d/pkg/config"
)

// rawHeader is a ustar header block written by hand, so that it can claim what no tar writer would: any size
// (base-256 past 8 GiB), any type, the GNU long-name and PAX headers among them.
func rawHeader(name string, typ byte, size int64) []byte {
	b := make([]byte, 512)
	copy(b[0:100], name)
	copy(b[100:108], "0000644\x00")
	copy(b[108:116], "0000000\x00")
	copy(b[116:124], "0000000\x00")
	if size < 1<<33 {
		copy(b[124:136], fmt.Sprintf("%011o\x00", size))
	} else {
		b[124] = 0x80
		binary.BigEndian.PutUint64(b[128:136], uint64(size))
	}
	copy(b[136:148], "00000000000\x00")
	b[156] = typ
	copy(b[257:265], "ustar\x0000")
	copy(b[148:156], "        ")
	sum := 0
	for _, c := range b {
		sum += int(c)
	}
	copy(b[148:156], fmt.Sprintf("%06o\x00 ", sum))
	return b
}

// zstdFrame is a zstd frame of one raw block of n zero bytes whose header declares a window of 2^windowLog
// bytes.
func zstdFrame(windowLog byte, n int) []byte {
	frame := []byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, (windowLog - 10) << 3, byte(n<<3 | 1), byte(n >> 5), byte(n >> 13)}
	return append(frame, make([]byte, n)...)
}

// claims are archives whose headers claim sizes they do not have: the reader must refuse them without
// allocating what they claim.
func claims(t testing.TB) map[string][]byte {
	end := make([]byte, 1024)
	return map[string][]byte{
		"file of 2^62 bytes":       append(append(rawHeader("volumes/", tar.TypeDir, 0), rawHeader("volumes/a/f", tar.TypeReg, 1<<62)...), end...),
		"GNU long name of 1 TiB":   append(rawHeader("././@LongLink", 'L', 1<<40), end...),
		"PAX header of 1 TiB":      append(rawHeader("volumes/a/pax", tar.TypeXHeader, 1<<40), end...),
		"GNU sparse file of 1 TiB": append(rawHeader("volumes/a/s", tar.TypeGNUSparse, 1<<40), end...),
		"PAX size of 2^40": func() []byte {
			var b bytes.Buffer
			tw := tar.NewWriter(&b)
			tw.WriteHeader(&tar.Header{Name: "volumes/a/f", Typeflag: tar.TypeReg, Size: 1 << 40, Format: tar.FormatPAX})
			tw.Flush() // the content never comes
			return append(b.Bytes(), end...)
		}(),
	}
}

// maxScanAlloc bounds what reading an archive of n bytes may allocate in all: a fixed part for the buffers
// and the decoders, the zstd window an archive may ask for, and a share of the input itself (headers are
// read whole, up to archive/tar's own 1 MiB limit per header, and a compressed header may be small).
func maxScanAlloc(n int, comp config.Compression) uint64 {
	limit := uint64(64<<20) + 1024*uint64(n)
	if comp == config.CompressionZstd {
		limit += maxZstdWindow
	}
	return limit
}

func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// scanSeeds are the archives both fuzz targets start from, each in every compression: the table tests'
// archives, and the archives whose headers claim what they do not hold.
func scanSeeds(f *testing.F) (tars [][]byte) {
	tars = append(tars, bee2Archive(f))
	for _, tt := range hostile {
		tars = append(tars, tarOf(f, tt.entries...))
	}
	c := claims(f)
	for _, name := range slices.Sorted(maps.Keys(c)) {
		tars = append(tars, c[name])
	}
	return tars
}

// acceptedEntries checks what restore relies on for each entry scan lets through to the extraction: a volume
// of a valid name, a clean relative path in it, a directory, file or link only, no symlink pointing out of
// the volume, no hard link but to an earlier file of the same volume, nothing written through a symlink.
type acceptedEntries struct {
	kinds map[string]byte // volume/rel of the entries accepted so far
	files int64
	bytes int64
	vols  []string
}

func (a *acceptedEntries) check(t *testing.T, e entry) {
	t.Helper()
	h := e.Hdr
	fail := func(why string) {
		t.Helper()
		t.Fatalf("accepted %q (type %q, link %q) as %s:/%s: %s", h.Name, h.Typeflag, h.Linkname, e.Volume, e.Rel, why)
	}
	if !config.ValidName(e.Volume) {
		fail("invalid volume name")
	}
	if !slices.Contains(a.vols, e.Volume) {
		a.vols = append(a.vols, e.Volume)
	}
	switch h.Typeflag {
	case tar.TypeReg, tar.TypeDir, tar.TypeSymlink, tar.TypeLink:
	default:
		fail("neither a directory, a file nor a link")
	}
	if h.Size < 0 {
		fail("negative size")
	}
	if e.Rel == "" {
		if h.Typeflag != tar.TypeDir {
			fail("a volume's root that is not a directory")
		}
		return
	}
	if path.IsAbs(e.Rel) || path.Clean(e.Rel) != e.Rel || slices.Contains(strings.Split(e.Rel, "/"), "..") {
		fail("a path that is not clean and relative")
	}
	for dir := path.Dir(e.Rel); dir != "."; dir = path.Dir(dir) {
		if k, ok := a.kinds[e.Volume+"/"+dir]; ok && k != tar.TypeDir {
			fail("written through " + dir + ", which is not a directory")
		}
	}
	switch h.Typeflag {
	case tar.TypeSymlink:
		// Resolved from the volume's root, the target must stay under it.
		if h.Linkname == "" || path.IsAbs(h.Linkname) {
			fail("symlink with an empty or absolute target")
		}
		if j := path.Join("/v", path.Dir(e.Rel), h.Linkname); j != "/v" && !strings.HasPrefix(j, "/v/") {
			fail("symlink pointing out of its volume")
		}
	case tar.TypeLink:
		if a.kinds[e.Volume+"/"+e.LinkRel] != tar.TypeReg {
			fail("hard link to " + e.LinkRel + ", not an earlier file of the volume")
		}
	case tar.TypeReg:
		a.files++
		a.bytes += h.Size
	}
	if k, seen := a.kinds[e.Volume+"/"+e.Rel]; seen && (k != tar.TypeDir || h.Typeflag != tar.TypeDir) {
		fail("a path that came before")
	}
	a.kinds[e.Volume+"/"+e.Rel] = h.Typeflag
}

// checkRefusal: scan refuses with an error naming the archive: a damaged or cut archive, or an entry it will
// not restore.
func checkRefusal(t *testing.T, err error, archive string) {
	t.Helper()
	var te *TruncatedError
	var ee *EntryError
	if !errors.As(err, &te) && !errors.As(err, &ee) {
		t.Fatalf("refused with %T, neither TruncatedError nor EntryError: %v", err, err)
	}
	if !strings.Contains(err.Error(), "archive "+archive) {
		t.Fatalf("refusal does not name the archive %s: %v", archive, err)
	}
}

// FuzzScan reads any bytes, as any compression, the way a restore's helper reads the archive it extracts:
// scan never panics, never allocates what headers claim, and every entry it hands to the extraction stays in
// its volume; what it accepts whole, it counts and hashes exactly.
func FuzzScan(f *testing.F) {
	for _, tr := range scanSeeds(f) {
		for i, c := range config.Compressions {
			f.Add(compress(f, tr, c), uint8(i))
		}
	}
	f.Add(zstdFrame(29, 1024), uint8(2)) // a frame asking for a 512 MiB window
	f.Add(zstdFrame(22, 1024), uint8(2))
	f.Fuzz(func(t *testing.T, data []byte, c uint8) {
		comp := config.Compressions[int(c)%len(config.Compressions)]
		acc := &acceptedEntries{kinds: map[string]byte{}}
		var sum Summary
		var err error
		n := allocated(func() {
			sum, err = scan(bytes.NewReader(data), "fuzz", comp, func(e entry, _ io.Reader) error {
				acc.check(t, e)
				return nil
			})
		})
		if limit := maxScanAlloc(len(data), comp); n > limit {
			t.Fatalf("reading %d bytes (%s) allocated %d MiB, more than %d MiB", len(data), comp, n>>20, limit>>20)
		}
		if err != nil {
			checkRefusal(t, err, "fuzz")
			return
		}
		h := sha256.Sum256(data)
		var vols []string
		for _, v := range sum.Volumes {
			vols = append(vols, v.Name)
		}
		if sum.SHA256 != hex.EncodeToString(h[:]) || sum.Size != int64(len(data)) || sum.Files != acc.files ||
			sum.Bytes != acc.bytes || !slices.Equal(vols, acc.vols) {
			t.Fatalf("summary %+v; the entries accepted: %d files, %d bytes, volumes %v", sum, acc.files, acc.bytes, acc.vols)
		}
	})
}

// manifestFor is the manifest bee2d would write for data stored as name, with a compressed archive's block
// index.
func manifestFor(name string, comp config.Compression, data []byte, blocks ...int64) []byte {
	h := sha256.Sum256(data)
	m, err := json.Marshal(&Manifest{Format: ManifestFormat, Archive: name, Server: "web1", Compression: comp,
		Size: int64(len(data)), SHA256: hex.EncodeToString(h[:]), Method: "helper-stream", Blocks: blocks})
	if err != nil {
		panic(err)
	}
	return m
}

// compressPieces compresses data in n pieces, each a gzip member or zstd frame of its own as bee2d writes
// them, and returns the stream and its block sizes.
func compressPieces(t testing.TB, data []byte, comp config.Compression, n int) ([]byte, []int64) {
	var out []byte
	var sizes []int64
	for i := range n {
		piece := compress(t, data[len(data)*i/n:len(data)*(i+1)/n], comp)
		out = append(out, piece...)
		sizes = append(sizes, int64(len(piece)))
	}
	return out, sizes
}

// FuzzVerify stores any bytes as an archive of any compression, with any manifest beside it (or none), and
// checks it as a restore does before it touches a volume: Find, then Verify. Verify accepts only what scan
// accepts, and with a manifest only the very bytes it names; every refusal names the archive.
func FuzzVerify(f *testing.F) {
	const stamp = 1700000000
	for _, tr := range scanSeeds(f) {
		for i, c := range config.Compressions {
			data := compress(f, tr, c)
			name := ArchiveName(stamp, c)
			f.Add(data, uint8(i), manifestFor(name, c, data))
			f.Add(data, uint8(i), []byte{})
		}
	}
	good := bee2Archive(f)
	// Compressed archives indexed by their manifest: the index that fits, and ones that do not.
	for _, c := range []config.Compression{config.CompressionGzip, config.CompressionZstd} {
		data, blocks := compressPieces(f, good, c, 3)
		i, name := uint8(slices.Index(config.Compressions, c)), ArchiveName(stamp, c)
		f.Add(data, i, manifestFor(name, c, data, blocks...))
		f.Add(data, i, manifestFor(name, c, data, blocks[0]+blocks[1], blocks[2]))
		f.Add(data, i, manifestFor(name, c, data, blocks[0]+1, blocks[1]-1, blocks[2]))
	}
	name := ArchiveName(stamp, config.CompressionNone)
	f.Add(good, uint8(0), manifestFor(name, config.CompressionNone, append(slices.Clone(good), 0)))
	f.Add(good, uint8(0), []byte(`{"format":"bee2d-backup/2","sha256":"`+strings.Repeat("0", 64)+`"}`))
	f.Add(good, uint8(0), []byte(`{"format":`))
	f.Fuzz(func(t *testing.T, data []byte, c uint8, manifest []byte) {
		comp := config.Compressions[int(c)%len(config.Compressions)]
		dir := t.TempDir()
		name := ArchiveName(stamp, comp)
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
		if len(manifest) > 0 {
			if err := os.WriteFile(filepath.Join(dir, name+manifestSuffix), manifest, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		a, err := Find(dir, 0)
		if err != nil || a.Name != name || a.Compression != comp || a.Size != int64(len(data)) {
			t.Fatalf("Find: %+v, %v", a, err)
		}
		sum, err := Verify(a, nil)
		want, scanErr := scan(bytes.NewReader(data), name, comp, nil)
		h := sha256.Sum256(data)
		sha := hex.EncodeToString(h[:])
		if err != nil {
			if !strings.Contains(err.Error(), "archive "+name) {
				t.Fatalf("refusal does not name the archive %s: %v", name, err)
			}
			var ce *ChecksumError
			switch {
			case a.ManifestErr != nil:
				if !strings.Contains(err.Error(), "manifest cannot be read") {
					t.Fatalf("unreadable manifest (%v) refused as %v", a.ManifestErr, err)
				}
			case errors.As(err, &ce):
				if a.Manifest == nil || ce.Got != sha || ce.Want != a.Manifest.SHA256 || ce.Got == ce.Want {
					t.Fatalf("checksum error %+v for an archive of sha256 %s, manifest %+v", ce, sha, a.Manifest)
				}
			case scanErr == nil:
				t.Fatalf("Verify refuses what scan accepts: %v", err)
			}
			return
		}
		if a.ManifestErr != nil || scanErr != nil {
			t.Fatalf("Verify accepts an archive whose manifest (%v) or content (%v) is refused", a.ManifestErr, scanErr)
		}
		if a.Manifest != nil && (a.Manifest.SHA256 != sha || sum.SHA256 != sha) {
			t.Fatalf("accepted an archive of sha256 %s against a manifest of %s", sha, a.Manifest.SHA256)
		}
		if sum.SHA256 != want.SHA256 || sum.Size != want.Size || !slices.Equal(sum.Volumes, want.Volumes) {
			t.Fatalf("Verify %+v, scan %+v", sum, want)
		}
	})
}

// TestScanBoundsClaimedSizes: archives whose headers claim huge sizes, or a zstd window past the zstd tool's
// own limit, are refused, naming the archive, having allocated no more than a fixed amount.
func TestScanBoundsClaimedSizes(t *testing.T) {
	cases := claims(t)
	cases["zstd window of 512 MiB"] = zstdFrame(29, 1024)
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			comp := config.CompressionNone
			if strings.HasPrefix(name, "zstd") {
				comp = config.CompressionZstd
			}
			var err error
			n := allocated(func() { _, err = scan(bytes.NewReader(data), "claims.tar", comp, nil) })
			checkRefusal(t, err, "claims.tar")
			if n > 64<<20 {
				t.Errorf("allocated %d MiB", n>>20)
			}
		})
	}
	// Within the limit, a window is allowed: what the zstd tool decompresses, bee2d restores.
	if _, err := scan(bytes.NewReader(zstdFrame(22, 1024)), "ok.tar.zst", config.CompressionZstd, nil); err != nil {
		t.Errorf("4 MiB window: %v", err)
	}
}
