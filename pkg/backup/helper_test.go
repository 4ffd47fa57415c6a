package backup

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/bee2d/bee2d/internal/testdocker"
	"github.com/bee2d/bee2d/pkg/config"
)

// requireRoot skips tests that set owners, or fails them under CI=true.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		testdocker.Need(t, "these tests set file owners: needs root")
	}
}

// inPlace points the helper program at dir for the test, as if dir were the container's /volumes.
func inPlace(t testing.TB, dir string) {
	t.Helper()
	old := volumesDir
	volumesDir = dir
	t.Cleanup(func() { volumesDir = old })
}

// dataVolume makes, in a new directory the helper uses as its /volumes (inPlace), an empty volume "data"
// and returns its directory.
func dataVolume(t testing.TB) string {
	t.Helper()
	vols := t.TempDir()
	inPlace(t, vols)
	root := filepath.Join(vols, "data")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	return root
}

// runHelperMain runs the helper program in this process and returns its result event.
func runHelperMain(t testing.TB, args []string, stdin []byte, stdout *bytes.Buffer) (int, *helperResult, string) {
	t.Helper()
	var stderr bytes.Buffer
	if stdout == nil {
		stdout = &bytes.Buffer{}
	}
	code := HelperMain(args, bytes.NewReader(stdin), stdout, &stderr)
	var res *helperResult
	var errMsg string
	for _, line := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
		var ev event
		if json.Unmarshal([]byte(line), &ev) != nil {
			continue
		}
		if ev.Result != nil {
			res = ev.Result
		}
		if ev.Error != "" {
			errMsg = ev.Error
		}
	}
	return code, res, errMsg
}

// The helper program, run in place, round-trips a tree in every compression, including into a volume that
// changed meanwhile, and reports what it leaves out.
func TestHelperRoundTripInPlace(t *testing.T) {
	requireRoot(t)
	for _, comp := range config.Compressions {
		t.Run(string(comp), func(t *testing.T) {
			root := dataVolume(t)
			leftOut := fillTree(t, root)
			other := filepath.Join(filepath.Dir(root), "other")
			os.Mkdir(other, 0o755)
			os.WriteFile(filepath.Join(other, "x"), []byte("x"), 0o644)
			before := without(snapshot(t, root), leftOut)

			var archive bytes.Buffer
			code, res, msg := runHelperMain(t, []string{"backup", "--compression", string(comp), "data", "other"}, nil, &archive)
			if code != 0 {
				t.Fatalf("backup: exit %d: %s", code, msg)
			}
			if len(res.Volumes) != 2 || res.Volumes[0].Name != "data" || res.Volumes[0].Files != 8 || res.Volumes[0].Symlinks != 3 || res.Volumes[0].Links != 1 {
				t.Errorf("volume stats: %+v", res.Volumes)
			}
			var what []string
			for _, p := range res.Problems {
				what = append(what, p.Path)
			}
			if strings.Join(what, " ") != strings.Join(leftOut, " ") || res.ProblemsTotal != 3 {
				t.Errorf("problems: %+v, want %v", res.Problems, leftOut)
			}

			// The archive is valid, and checked the way a restore checks it.
			sum, err := scan(bytes.NewReader(archive.Bytes()), "test", comp, nil)
			if err != nil {
				t.Fatal(err)
			}
			if sum.Files != res.Volumes[0].Files+1 {
				t.Errorf("scan counts %d files", sum.Files)
			}

			mess(t, root)
			os.WriteFile(filepath.Join(other, "x"), []byte("changed"), 0o644)
			code, res, msg = runHelperMain(t, []string{"restore", "--compression", string(comp), "--sha256", sum.SHA256, "--stamp", "42", "data"}, archive.Bytes(), nil)
			if code != 0 {
				t.Fatalf("restore: exit %d: %s", code, msg)
			}
			sameTree(t, "restored", without(snapshot(t, root), leftOut), before)
			if b, _ := os.ReadFile(filepath.Join(other, "x")); string(b) != "changed" {
				t.Errorf("a volume not asked for was restored too")
			}
			if len(res.Volumes) != 1 || res.Volumes[0].Name != "data" {
				t.Errorf("restore result: %+v", res.Volumes)
			}
		})
	}
}

// A restore through the stream gets an uncompressed archive compressed for the way (--wire zstd): the helper
// checks the checksum of the archive itself, and a stream that is not what --wire says changes nothing.
func TestHelperRestoreFromTheWire(t *testing.T) {
	requireRoot(t)
	root := dataVolume(t)
	leftOut := fillTree(t, root)
	before := without(snapshot(t, root), leftOut)
	var archive bytes.Buffer
	if code, _, msg := runHelperMain(t, []string{"backup", "data"}, nil, &archive); code != 0 {
		t.Fatalf("backup: exit %d: %s", code, msg)
	}
	sum, err := scan(bytes.NewReader(archive.Bytes()), "test", config.CompressionNone, nil)
	if err != nil {
		t.Fatal(err)
	}
	var wire bytes.Buffer
	zw, err := zstdBlocksLevel(&wire, zstd.SpeedFastest)
	if err != nil {
		t.Fatal(err)
	}
	zw.Write(archive.Bytes())
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if wire.Len() >= archive.Len() {
		t.Errorf("the wire carries %d bytes for an archive of %d", wire.Len(), archive.Len())
	}

	mess(t, root)
	messed := snapshot(t, root)
	// The plain archive where a compressed one is announced: refused, the volume as it was.
	code, _, msg := runHelperMain(t, []string{"restore", "--wire", "zstd", "--sha256", sum.SHA256, "--stamp", "41", "data"}, archive.Bytes(), nil)
	if code == 0 {
		t.Fatal("a plain stream announced as zstd was restored")
	}
	t.Logf("refused: %s", msg)
	sameTree(t, "after the refused restore", snapshot(t, root), messed)

	// --wire describes stdin: with an archive file it is a mistake, said as one.
	code, _, msg = runHelperMain(t, []string{"restore", "--wire", "zstd", "--in", "/nonexistent/1-volumes.tar", "data"}, nil, nil)
	if code == 0 || !strings.Contains(msg, "--wire applies to stdin") {
		t.Errorf("--wire with --in: exit %d: %s", code, msg)
	}
	sameTree(t, "after --wire with --in", snapshot(t, root), messed)

	code, _, msg = runHelperMain(t, []string{"restore", "--wire", "zstd", "--sha256", sum.SHA256, "--stamp", "42", "data"}, wire.Bytes(), nil)
	if code != 0 {
		t.Fatalf("restore: exit %d: %s", code, msg)
	}
	sameTree(t, "restored from the wire", without(snapshot(t, root), leftOut), before)
}

// A restore whose archive does not match the checksum it was checked with changes nothing.
func TestHelperRestoreWrongChecksumChangesNothing(t *testing.T) {
	requireRoot(t)
	root := dataVolume(t)
	os.WriteFile(filepath.Join(root, "f"), []byte("before"), 0o644)
	var archive bytes.Buffer
	if code, _, msg := runHelperMain(t, []string{"backup", "data"}, nil, &archive); code != 0 {
		t.Fatal(msg)
	}
	os.WriteFile(filepath.Join(root, "f"), []byte("after"), 0o644)
	want := snapshot(t, root)
	code, _, msg := runHelperMain(t, []string{"restore", "--sha256", strings.Repeat("0", 64), "--name", "1-volumes.tar", "data"}, archive.Bytes(), nil)
	if code == 0 || !strings.Contains(msg, "changed since it was checked") {
		t.Fatalf("exit %d: %s", code, msg)
	}
	sameTree(t, "volume after a refused restore", withRootTimes(snapshot(t, root), want, ""), want)
}

// A restore interrupted by a crash is undone before its commit marker and completed after it, by the next
// restore of the volume.
func TestRecoverInterruptedRestore(t *testing.T) {
	setup := func(t *testing.T, committed bool) (dir string) {
		dir = t.TempDir()
		v := &volumeRestore{Dir: dir, ts: 7}
		os.Mkdir(v.stage(), 0o700)
		os.Mkdir(v.old(), 0o700)
		// Half moved: one old entry still in place, one in old/; one new entry up, one staged.
		os.WriteFile(filepath.Join(dir, "old-a"), []byte("a"), 0o644)
		os.WriteFile(filepath.Join(v.old(), "old-b"), []byte("b"), 0o644)
		if committed {
			os.WriteFile(v.marker(), nil, 0o600)
			os.Remove(filepath.Join(dir, "old-a"))
			os.WriteFile(filepath.Join(v.old(), "old-a"), []byte("a"), 0o644)
			os.WriteFile(filepath.Join(dir, "new-a"), []byte("A"), 0o644)
		}
		os.WriteFile(filepath.Join(v.stage(), "new-b"), []byte("B"), 0o644)
		return dir
	}
	names := func(dir string) string {
		entries, _ := os.ReadDir(dir)
		var out []string
		for _, e := range entries {
			out = append(out, e.Name())
		}
		return strings.Join(out, " ")
	}
	t.Run("before the marker: undone", func(t *testing.T) {
		dir := setup(t, false)
		if err := recoverInterrupted(dir); err != nil {
			t.Fatal(err)
		}
		if got := names(dir); got != "old-a old-b" {
			t.Errorf("volume holds %q", got)
		}
	})
	t.Run("after the marker: completed", func(t *testing.T) {
		dir := setup(t, true)
		if err := recoverInterrupted(dir); err != nil {
			t.Fatal(err)
		}
		if got := names(dir); got != "new-a new-b" {
			t.Errorf("volume holds %q", got)
		}
	})
}
