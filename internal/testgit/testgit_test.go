package testgit

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestServeClonesWhatWasPushed(t *testing.T) {
	Isolate(t)
	root := t.TempDir()
	r := NewRemote(t, root, "site")
	key, _ := SSHKey(t, t.TempDir(), "signer")
	hash := r.Commit("first", map[string][]byte{"settings.yml": []byte("a: 1\n")}, SignedSSH(key))
	srv := Serve(t, root)
	dir := filepath.Join(t.TempDir(), "clone")
	if out, err := exec.Command("git", "clone", "--quiet", srv.URL+"/site.git", dir).CombinedOutput(); err != nil {
		t.Fatalf("clone over HTTP: %v\n%s", err, out)
	}
	if got := strings.TrimSpace(Git(t, dir, "rev-parse", "HEAD")); got != hash {
		t.Errorf("cloned %s, pushed %s", got, hash)
	}
	if sig := Git(t, dir, "log", "-1", "--format=%G?"); strings.TrimSpace(sig) == "N" {
		t.Error("the commit is not signed")
	}
	if srv.Requests.Load() == 0 {
		t.Error("no request counted")
	}
	srv.Stop()
	if err := exec.Command("git", "ls-remote", srv.URL+"/site.git").Run(); err == nil {
		t.Error("ls-remote worked while the server was stopped")
	}
	srv.Start()
	if out, err := exec.Command("git", "ls-remote", srv.URL+"/site.git").CombinedOutput(); err != nil {
		t.Errorf("ls-remote after the restart: %v\n%s", err, out)
	}
}
