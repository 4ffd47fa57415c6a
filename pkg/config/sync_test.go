package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestSyncSection(t *testing.T) {
	s := mustParse(t, `
provisioner:
  type: digitalocean
  state_file: state.yml
  ssh_key:
    public: conf/id_ed25519.pub
    private: conf/id_ed25519
servers:
  web1:
    dns: {private: [web1.example.internal]}
  web2:
    dns: {private: [web2.example.internal]}
sync:
  web1:
    push:
      - /media/photos:/media
      - static/:/srv/static/
      - "backups:/srv/archive:2024"
  web2: {}
`)
	want := map[string][]SyncPush{
		"web1": {
			{Local: "/media/photos", Remote: "/media", Pos: Pos{Line: 16, Col: 9}},
			{Local: "static/", Remote: "/srv/static/", Pos: Pos{Line: 17, Col: 9}},
			// Split at the first ":": the remote path keeps its own.
			{Local: "backups", Remote: "/srv/archive:2024", Pos: Pos{Line: 18, Col: 9}},
		},
		"web2": nil,
	}
	if !reflect.DeepEqual(s.Sync, want) {
		t.Errorf("sync:\n got %+v\nwant %+v", s.Sync, want)
	}
	if s.SSHKey != "conf/id_ed25519" {
		t.Errorf("ssh key %q, want it as written", s.SSHKey)
	}
	if s.Extra["provisioner"] == nil {
		t.Errorf("provisioner is no longer kept as written")
	}
}

func TestNoSyncSection(t *testing.T) {
	s := mustParse(t, "provisioner: {type: digitalocean}\nservers:\n  web1: {}\n")
	if s.Sync != nil || s.SSHKey != "" {
		t.Errorf("sync %v, ssh key %q; want none", s.Sync, s.SSHKey)
	}
}

func TestSplitSyncPush(t *testing.T) {
	for _, tc := range []struct {
		in, local, remote string
		bad               bool
	}{
		{in: "/media/photos:/media", local: "/media/photos", remote: "/media"},
		{in: "a:b:c", local: "a", remote: "b:c"},
		{in: "a::", local: "a", remote: ":"},
		{in: "a", bad: true},
		{in: ":b", bad: true},
		{in: "a:", bad: true},
		{in: ":", bad: true},
	} {
		local, remote, problem := splitSyncPush(tc.in)
		if (problem != "") != tc.bad || local != tc.local || remote != tc.remote {
			t.Errorf("%q: %q, %q, %q", tc.in, local, remote, problem)
		}
	}
}

// The key sync logs in with is a secret: like the TLS and SSH keys of the docker connections, it is
// named when others can read it. It is resolved beside the settings file.
func TestSyncKeyReadableByOthers(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "conf"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "conf", "id_ed25519"), []byte("key"), 0o644); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "settings.yml")
	if err := os.WriteFile(file, []byte("provisioner:\n  ssh_key: {private: conf/id_ed25519}\nservers:\n  web1: {}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Load(file)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Warnings) != 1 || s.Warnings[0].File != filepath.Join(dir, "conf", "id_ed25519") ||
		!strings.Contains(s.Warnings[0].Msg, "readable by its group and others") {
		t.Errorf("warnings: %v", s.Warnings)
	}
}
