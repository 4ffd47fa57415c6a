package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Hostile --at and --volume values, and Bee2's -d SERVER:restore:TS, are refused with a clear error before
// anything is read, locked or created: the storage directory stays as it was.
func TestBackupCommandsRefuseHostileNames(t *testing.T) {
	settings := writeBackupSettings(t, "bee2", "site")
	store := filepath.Join(filepath.Dir(settings), "store", "web1")
	if err := os.MkdirAll(store, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(store, "1511928000-volumes.tar"), bee2Tar(t, "site"), 0o600); err != nil {
		t.Fatal(err)
	}
	// An archive name that is a link out of the storage directory is never taken for an archive.
	outside := filepath.Join(t.TempDir(), "elsewhere.tar")
	if err := os.WriteFile(outside, bee2Tar(t, "site"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(store, "1511929000-volumes.tar")); err != nil {
		t.Fatal(err)
	}
	listing := func() []string { return dirNames(t, store) }
	before := listing()
	stamp := `the timestamp must be unix seconds, as in the archive's name (such as 1700000000), not `
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"verify", "-c", settings, "web1", "--at", "../../etc"}, stamp + `"../../etc"`},
		{[]string{"restore", "-c", settings, "web1", "--at", "../../etc/passwd"}, stamp + `"../../etc/passwd"`},
		{[]string{"restore", "-c", settings, "web1", "--at", "-5"}, stamp + `"-5"`},
		{[]string{"restore", "-c", settings, "web1", "--at", "0"}, stamp + `"0"`},
		{[]string{"restore", "-c", settings, "web1", "--at", "+1511928000"}, stamp + `"+1511928000"`},
		{[]string{"verify", "-c", settings, "web1", "--at", "2017-11-29"}, stamp + `"2017-11-29"`},
		{[]string{"restore", "-c", settings, "web1", "--volume", "../x"}, `"../x" is not a volume name`},
		{[]string{"restore", "-c", settings, "web1", "--volume", "a/b"}, `"a/b" is not a volume name`},
		{[]string{"restore", "-c", settings, "web1", "--volume", "/etc"}, `"/etc" is not a volume name`},
		{[]string{"restore", "-c", settings, "web1", "--volume", ""}, `"" is not a volume name`},
		{[]string{"-c", settings, "-d", "web1:restore:../../etc"}, `-d web1:restore:../../etc: ` + stamp + `"../../etc"`},
		{[]string{"verify", "-c", settings, "web1", "--at", "1511929000"}, "no archive taken at 1511929000"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args[3:], " "), func(t *testing.T) {
			code, out := runCmd(t, tt.args...)
			if code != 1 || !strings.Contains(out, tt.want) {
				t.Errorf("exit %d, want 1 with %q\n%s", code, tt.want, out)
			}
		})
	}
	if after := listing(); strings.Join(after, " ") != strings.Join(before, " ") {
		t.Errorf("the storage directory changed: %v -> %v", before, after)
	}
	code, out := runCmd(t, "backups", "-c", settings, "web1", "--quick")
	if code != 0 || strings.Contains(out, "1511929000") || !strings.Contains(out, "1511928000") {
		t.Errorf("backups lists the link out of the storage directory, or not the archive: exit %d\n%s", code, out)
	}
}

// dirNames lists the names in dir, sorted, so a test can tell that nothing was added or removed.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}
