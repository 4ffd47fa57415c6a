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

// gzipArchive backs up a volume of about 11 MiB of text (three members) with the helper and returns the
// archive, its member sizes and the volumes' directory.
func gzipArchive(t *testing.T) (archive []byte, members []int64, vols string) {
	t.Helper()
	vols = t.TempDir()
	inPlace(t, vols)
	root := filepath.Join(vols, "data")
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
	code, res, msg := runHelperMain(t, []string{"backup", "--compression", "gzip", "data"}, nil, &out)
	if code != 0 {
		t.Fatalf("backup: exit %d: %s", code, msg)
	}
	if len(res.Members) < 3 || !validMembers(res.Members, int64(out.Len())) {
		t.Fatalf("the helper's member sizes %v do not index its %d-byte archive", res.Members, out.Len())
	}
	return out.Bytes(), res.Members, vols
}

func TestScanByGzipMemberIndex(t *testing.T) {
	archive, members, _ := gzipArchive(t)
	plain, err := scan(bytes.NewReader(archive), "a", config.CompressionGzip, nil)
	if err != nil {
		t.Fatal(err)
	}
	indexed, err := scanIndexed(bytes.NewReader(archive), "a", config.CompressionGzip, members, nil)
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

	shifted := append([]int64(nil), members...)
	shifted[0]++
	shifted[1]--
	merged := append([]int64{members[0] + members[1]}, members[2:]...)
	for _, tc := range []struct {
		name    string
		data    []byte
		members []int64
		index   bool // an *IndexError, after which the caller reads without the index
	}{
		{"a member one byte too long", archive, shifted, true},
		{"two members as one", archive, merged, true},
		{"data after the last member", append(bytes.Clone(archive), 0x1f, 0x8b), members, true},
		{"cut in the last member", archive[:len(archive)-100], members, false},
		{"cut at a member's end", archive[:members[0]], members, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := scanIndexed(bytes.NewReader(tc.data), "a", config.CompressionGzip, tc.members, nil)
			var ie *IndexError
			if err == nil || errors.As(err, &ie) != tc.index {
				t.Errorf("error %v; want an index error: %v", err, tc.index)
			}
		})
	}

	// A damaged member is damage, whatever the index.
	damaged := bytes.Clone(archive)
	damaged[members[0]+members[1]/2] ^= 0xff
	if _, err := scanIndexed(bytes.NewReader(damaged), "a", config.CompressionGzip, members, nil); err == nil {
		t.Error("a damaged member read without error")
	}

	// An index whose members could hold more than a reader keeps in memory is not used.
	if validMembers([]int64{maxMemberSize + 1}, maxMemberSize+1) || validMembers(nil, 0) || validMembers([]int64{5, 0, 5}, 10) {
		t.Error("validMembers takes an index it must not")
	}
}

// Verify uses the manifest's index, and reads the archive as any gzip stream when the index does not fit.
func TestVerifyByGzipMemberIndex(t *testing.T) {
	archive, members, _ := gzipArchive(t)
	dir := t.TempDir()
	name := ArchiveName(1700000000, config.CompressionGzip)
	os.WriteFile(filepath.Join(dir, name), archive, 0o600)
	plain, err := scan(bytes.NewReader(archive), name, config.CompressionGzip, nil)
	if err != nil {
		t.Fatal(err)
	}
	bad := append([]int64{members[0] + members[1]}, members[2:]...)
	for _, tc := range []struct {
		members []int64
		indexed bool
	}{{members, true}, {bad, false}, {nil, false}} {
		os.Remove(filepath.Join(dir, name+manifestSuffix))
		if err := writeManifest(dir, &Manifest{Format: ManifestFormat, Archive: name, Compression: config.CompressionGzip,
			Size: int64(len(archive)), SHA256: plain.SHA256, GzipMembers: tc.members}); err != nil {
			t.Fatal(err)
		}
		a, err := Find(dir, 0)
		if err != nil {
			t.Fatal(err)
		}
		sum, err := Verify(a, nil)
		if err != nil {
			t.Fatalf("index %v: %v", tc.members, err)
		}
		if sum.Indexed != tc.indexed || sum.SHA256 != plain.SHA256 {
			t.Errorf("index %v: indexed %v, sha256 %s", tc.members, sum.Indexed, sum.SHA256)
		}
	}
}

// The helper restores by the index of the manifest beside the archive (--index), and a restore whose index
// does not fit changes nothing.
func TestHelperRestoreByGzipMemberIndex(t *testing.T) {
	requireRoot(t)
	archive, members, vols := gzipArchive(t)
	root := filepath.Join(vols, "data")
	before := snapshot(t, root)
	store := t.TempDir()
	name := ArchiveName(1700000000, config.CompressionGzip)
	os.WriteFile(filepath.Join(store, name), archive, 0o600)
	os.WriteFile(filepath.Join(store, ".bee2d-probe-0123456789abcdef"), []byte("t"), 0o600)
	sum, err := scan(bytes.NewReader(archive), name, config.CompressionGzip, nil)
	if err != nil {
		t.Fatal(err)
	}
	restore := func(index []int64, stamp string) (int, string) {
		os.Remove(filepath.Join(store, name+manifestSuffix))
		if err := writeManifest(store, &Manifest{Format: ManifestFormat, Archive: name, Compression: config.CompressionGzip,
			Size: int64(len(archive)), SHA256: sum.SHA256, GzipMembers: index}); err != nil {
			t.Fatal(err)
		}
		code, _, msg := runHelperMain(t, []string{"restore", "--compression", "gzip", "--sha256", sum.SHA256,
			"--in", filepath.Join(store, name), "--probe", ".bee2d-probe-0123456789abcdef:t",
			"--index", filepath.Join(store, name+manifestSuffix), "--stamp", stamp, "data"}, nil, nil)
		return code, msg
	}

	os.WriteFile(filepath.Join(root, "logs", "f00.log"), []byte("changed"), 0o644)
	os.WriteFile(filepath.Join(root, "new"), []byte("new"), 0o644)
	changed := snapshot(t, root)
	bad := append([]int64{members[0] + members[1]}, members[2:]...)
	if code, msg := restore(bad, "1"); code == 0 || !strings.Contains(msg, "index") {
		t.Errorf("restore by an index that does not fit: exit %d: %s", code, msg)
	}
	// The refused restore made and removed its stage in the volume's root: the root's own modification time
	// may move, nothing in it may.
	after := snapshot(t, root)
	if n, ok := after[""]; ok {
		n.MTime = changed[""].MTime
		after[""] = n
	}
	sameTree(t, "after a refused restore", after, changed)

	if code, msg := restore(members, "2"); code != 0 {
		t.Fatalf("restore: exit %d: %s", code, msg)
	}
	sameTree(t, "restored", snapshot(t, root), before)
}
