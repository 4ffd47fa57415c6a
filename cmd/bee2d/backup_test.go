package main

import (
	"archive/tar"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/bee2d/bee2d/internal/testdocker"
	"github.com/bee2d/bee2d/pkg/dockerx/selfimage"
)

func TestParseMixed(t *testing.T) {
	for _, args := range [][]string{
		{"-c", "s.yml", "web1", "--at", "5"},
		{"web1", "-c", "s.yml", "--at=5"},
		{"--at", "5", "web1", "-c", "s.yml"},
	} {
		var f backupFlags
		fs := newBackupFlags("restore", "restore", &f, &bytes.Buffer{})
		pos, err := parseMixed(fs, &f.common, args)
		if err != nil || len(pos) != 1 || pos[0] != "web1" || f.at != 5 || f.config != "s.yml" {
			t.Errorf("%v: %v %v %+v", args, pos, err, f)
		}
	}
	var f backupFlags
	if _, err := parseMixed(newBackupFlags("backup", "backup", &f, &bytes.Buffer{}), &f.common, []string{"web1", "--nope"}); err == nil {
		t.Error("unknown flag accepted")
	}
}

// bee2Tar is an archive as Bee2 wrote it for one volume.
func bee2Tar(t *testing.T, vol string) []byte {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range []struct {
		name string
		body string
	}{{"volumes/", ""}, {"volumes/" + vol + "/", ""}, {"volumes/" + vol + "/index.html", "<h1>hi</h1>\n"}} {
		h := &tar.Header{Name: e.name, Mode: 0o755, Typeflag: tar.TypeDir}
		if e.body != "" {
			h = &tar.Header{Name: e.name, Mode: 0o644, Typeflag: tar.TypeReg, Size: int64(len(e.body))}
		}
		tw.WriteHeader(h)
		tw.Write([]byte(e.body))
	}
	tw.Close()
	return b.Bytes()
}

func writeBackupSettings(t *testing.T, prefix, vol string) string {
	dir := t.TempDir()
	yml := fmt.Sprintf("servers:\n  web1: {}\ndocker:\n  prefix: %s\n  backup:\n    web1:\n      storage_dir: store\n      volumes: [%s]\n      compression: zstd\n", prefix, vol)
	path := filepath.Join(dir, "settings.yml")
	if err := os.WriteFile(path, []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func runCmd(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(t.Context(), args, &out, &errOut)
	return code, out.String() + errOut.String()
}

// backups and verify read the storage directory only: a Bee2 archive lists with its structure checked, and
// a damaged archive fails both with exit status 1.
func TestBackupsAndVerifyWithoutEngine(t *testing.T) {
	settings := writeBackupSettings(t, "bee2", "site")
	store := filepath.Join(filepath.Dir(settings), "store", "web1")
	os.MkdirAll(store, 0o700)
	os.WriteFile(filepath.Join(store, "1511928000-volumes.tar"), bee2Tar(t, "site"), 0o600)
	code, out := runCmd(t, "backups", "-c", settings)
	if code != 0 || !strings.Contains(out, "1511928000-volumes.tar") || !strings.Contains(out, "structure ok, no checksum (Bee2)") || !strings.Contains(out, "site") {
		t.Errorf("backups: exit %d\n%s", code, out)
	}
	code, out = runCmd(t, "verify", "web1", "-c", settings, "--at", "1511928000")
	if code != 0 || !strings.Contains(out, "ok: no manifest") {
		t.Errorf("verify: exit %d\n%s", code, out)
	}
	good := bee2Tar(t, "site")
	os.WriteFile(filepath.Join(store, "1511929000-volumes.tar"), good[:len(good)-1100], 0o600)
	code, out = runCmd(t, "verify", "-c", settings, "web1")
	if code != 1 || !strings.Contains(out, "1511929000-volumes.tar is truncated") {
		t.Errorf("verify of a truncated archive: exit %d\n%s", code, out)
	}
	code, out = runCmd(t, "backups", "-c", settings, "web1")
	if code != 1 || !strings.Contains(out, "FAILED") {
		t.Errorf("backups with a truncated archive: exit %d\n%s", code, out)
	}
}

// The commands and Bee2's -d forms back up and restore through the engine.
func TestBackupRestoreCommands(t *testing.T) {
	if os.Geteuid() != 0 {
		testdocker.Need(t, "writes into a volume's directory: needs root")
	}
	cli := testdocker.Require(t)
	prefix := testdocker.UniquePrefix(t)
	vol := prefix + "-site"
	testdocker.Cleanup(t, cli, prefix, vol)
	if err := cli.CreateVolume(t.Context(), vol, nil); err != nil {
		t.Fatal(err)
	}
	dir, err := cli.VolumeMountpoint(t.Context(), vol)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "index.html"), []byte("first"), 0o644)
	bin := filepath.Join(t.TempDir(), "bee2d")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOARCH="+runtime.GOARCH)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build a static bee2d: %v\n%s", err, out)
	}
	settings := writeBackupSettings(t, prefix, vol)

	code, out := runCmd(t, "backup", "-c", settings, "web1", "--helper", bin)
	if code != 0 || !strings.Contains(out, "server web1: ") || !strings.Contains(out, "-volumes.tar.zst") {
		t.Fatalf("backup: exit %d\n%s", code, out)
	}
	first := strings.Fields(strings.TrimPrefix(out, "server web1: "))[0]
	stamp := strings.TrimSuffix(filepath.Base(first), "-volumes.tar.zst,")
	os.WriteFile(filepath.Join(dir, "index.html"), []byte("second"), 0o644)
	// Bee2's form runs the backup with bee2d's own binary: the test binary is not static, so the helper
	// cannot run and the archive endpoint takes over.
	if dynamic(t) {
		code, out = runCmd(t, "-c", settings, "-d", "web1:backup")
		if code != 0 || !strings.Contains(out, "(archive-endpoint)") {
			t.Fatalf("-d web1:backup: exit %d\n%s", code, out)
		}
	}
	code, out = runCmd(t, "restore", "-c", settings, "web1", "--helper", bin, "--at", stamp)
	if code != 0 || !strings.Contains(out, "restored "+vol) || !strings.Contains(out, "checksum verified") {
		t.Fatalf("restore --at %s: exit %d\n%s", stamp, code, out)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "index.html")); string(b) != "first" {
		t.Errorf("after restore --at: %q", b)
	}
	if !dynamic(t) {
		return
	}
	// Without --helper there is no helper to restore with: refused, volume unchanged.
	code, out = runCmd(t, "-c", settings, "-d", "web1:restore")
	if code != 1 || !strings.Contains(out, "needs bee2d's helper") {
		t.Errorf("-d web1:restore without a helper: exit %d\n%s", code, out)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "index.html")); string(b) != "first" {
		t.Errorf("after a refused restore: %q", b)
	}
}

// dynamic tells whether the test binary needs a program interpreter (cgo, as with -race): then it cannot be
// the helper, and bee2d falls back as it would on a server of another platform.
func dynamic(t *testing.T) bool {
	b, err := selfimage.Inspect(selfimage.ProcSelf)
	if err != nil {
		t.Fatal(err)
	}
	return !b.Static
}
