package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The daemon takes scheduled backups as a task of the server's pass: archives appear on schedule, the
// metrics follow, and the application stopped for consistency runs again afterwards.
func TestDaemonTakesScheduledBackups(t *testing.T) {
	st := newStack(t)
	storage := filepath.Join(st.dir, "backups")
	yml := strings.Replace(st.read(), "  prefix: "+st.prefix, "  prefix: "+st.prefix+`
  backup:
    local:
      storage_dir: backups
      volumes: [`+st.volume+`]
      schedule: "@every 2s"
      compression: zstd
      stop: [static]`, 1)
	st.write(yml)
	addr, logs := runDaemon(t, st.settings)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("daemon log:\n%s", logs)
		}
	})

	waitUntil(t, "two scheduled backups", func() bool {
		v, _ := metric(t, addr, `bee2_backup_runs_total{result="success",server="local"}`)
		return v >= 2
	})
	entries, err := os.ReadDir(filepath.Join(storage, "local"))
	if err != nil {
		t.Fatal(err)
	}
	var archives int
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), "-volumes.tar.zst") {
			archives++
		}
	}
	if archives < 2 {
		t.Errorf("archives in %s: %v", storage, entries)
	}
	if !strings.Contains(logs.String(), `"msg":"scheduled backup done"`) {
		t.Errorf("no log line for the scheduled backup")
	}
	waitUntil(t, "static runs again after the backups", func() bool {
		return st.containers()[st.name("static")].Running()
	})
}
