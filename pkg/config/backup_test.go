package config

import (
	"reflect"
	"testing"
)

func TestBackupSection(t *testing.T) {
	const file = `
servers:
  web1: {}
  web2: {}
docker:
  backup:
    web1:
      storage_dir: backups
      volumes: [db, uploads]
      schedule: "30 3 * * *"
      retain: {last: 3, daily: 7, weekly: 4, monthly: 12}
      compression: zstd
      stop: [postgres]
    web2:
      volumes: [mail]
      schedule: "@daily"
applications:
  postgres:
    server: web1
    image: postgres:16
`
	s, err := Parse("/srv/conf/settings.yml", []byte(file))
	if err != nil {
		t.Fatal(err)
	}
	got := *s.Docker.Backup["web1"]
	got.Pos = Pos{}
	want := Backup{
		Server:      "web1",
		StorageDir:  "backups",
		Volumes:     []string{"db", "uploads"},
		Schedule:    "30 3 * * *",
		Retain:      Retain{Last: 3, Daily: 7, Weekly: 4, Monthly: 12},
		Compression: CompressionZstd,
		Stop:        []string{"postgres"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("web1 backup:\n got %+v\nwant %+v", got, want)
	}
	if p := s.ResolvePath(got.StorageDir); p != "/srv/conf/backups" {
		t.Errorf("storage dir resolves to %s", p)
	}
	// Bee2's defaults: ./volumes beside the settings, plain tar, every archive kept.
	web2 := s.Docker.Backup["web2"]
	if web2.StorageDir != DefaultStorageDir || web2.Compression != CompressionNone || web2.Retain.Any() || len(web2.Stop) != 0 {
		t.Errorf("web2 defaults: %+v", web2)
	}
	for _, spec := range []string{"@daily", "@weekly", "@every 6h", "0 */4 * * 1-5"} {
		if _, err := ParseSchedule(spec); err != nil {
			t.Errorf("ParseSchedule(%q): %v", spec, err)
		}
	}
}
