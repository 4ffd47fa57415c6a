package main

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bee2d/bee2d/internal/testdocker"
	"github.com/bee2d/bee2d/pkg/config"
)

// runBee2d runs the command line in process and returns its exit code and output.
func runBee2d(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(t.Context(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// writeFiles writes files (path relative to dir: content) with their directories.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// syncSettings writes a settings file into dir and loads it.
func syncSettings(t *testing.T, dir, yml string) *config.Settings {
	t.Helper()
	file := filepath.Join(dir, "settings.yml")
	writeFiles(t, dir, map[string]string{"settings.yml": yml})
	s, err := config.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// The rsync command line is Bee2's, given to rsync without a shell: the ssh command is one argument with no
// quotes around it, a key path with a space or a quote is quoted the way rsync splits that argument, local
// paths are beside the settings file with their trailing "/", and the remote path keeps its ":".
func TestRsyncArgs(t *testing.T) {
	dir := t.TempDir()
	s := syncSettings(t, dir, `
provisioner:
  ssh_key: {private: "keys/my key's/id"}
servers:
  web1:
    dns: {private: [web1.example.internal, web1.other]}
  six:
    dns: {private: ["fd00::1"]}
  nodns: {}
sync:
  web1:
    push: ["site/:/srv/site", "/abs/photos:/srv/archive:2024"]
  six:
    push: [notes:notes]
  nodns:
    push: [a:b]
`)
	ssh := "ssh -i '" + dir + "/keys/my key''s/id' -o BatchMode=yes"
	for _, tc := range []struct {
		server string
		i      int
		want   []string
	}{
		{"web1", 0, []string{"-av", "--delete", "-e", ssh, dir + "/site/", "root@web1.example.internal:/srv/site"}},
		{"web1", 1, []string{"-av", "--delete", "-e", ssh, "/abs/photos", "root@web1.example.internal:/srv/archive:2024"}},
		{"six", 0, []string{"-av", "--delete", "-e", ssh, dir + "/notes", "root@[fd00::1]:notes"}},
	} {
		got, err := rsyncArgs(s, tc.server, s.Sync[tc.server][tc.i])
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("%s[%d]:\n got %q, %v\nwant %q", tc.server, tc.i, got, err, tc.want)
		}
		for _, a := range got {
			if strings.HasPrefix(a, `"`) || strings.HasSuffix(a, `"`) {
				t.Errorf("%s[%d]: argument %q has literal quotes (Bee2's shell string)", tc.server, tc.i, a)
			}
		}
	}
	if _, err := rsyncArgs(s, "nodns", s.Sync["nodns"][0]); err == nil || !strings.Contains(err.Error(), "server nodns") ||
		!strings.Contains(err.Error(), "dns.private") {
		t.Errorf("a server without dns.private: %v", err)
	}

	s.SSHKey = ""
	if got := sshCommand(s); got != "ssh -o BatchMode=yes" {
		t.Errorf("without ssh_key: %q, want ssh's own keys", got)
	}
}

// The errors and the no-ops of sync that need neither rsync nor a server.
func TestSyncCommandLine(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"settings.yml": `
servers:
  web1:
    dns: {private: [web1.example.internal]}
  web2:
    dns: {private: [web2.example.internal]}
  nodns: {}
sync:
  nodns:
    push: [a:/b]
`, "nokey.yml": `
provisioner:
  ssh_key: {private: keys/missing}
servers:
  web1:
    dns: {private: [web1.example.internal]}
sync:
  web1:
    push: [a:/b]
`, "none.yml": "servers:\n  web1: {}\n"})
	settings, nokey, none := filepath.Join(dir, "settings.yml"), filepath.Join(dir, "nokey.yml"), filepath.Join(dir, "none.yml")
	for _, tc := range []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"sync", "-c", settings, "nowhere"}, 1, `no server "nowhere"`},
		{[]string{"-c", settings, "-s", "nowhere"}, 1, `no server "nowhere"`},
		{[]string{"sync", "-c", settings, "web1", "web2"}, 0, "server web1: no sync entries (sync.web1.push), nothing to push\nserver web2: no sync entries"},
		{[]string{"-c", settings, "-s", "web2"}, 0, "server web2: no sync entries"},
		{[]string{"sync", "-c", settings, "nodns"}, 1, "server nodns: sync pushes to its first dns.private name"},
		{[]string{"-c", settings, "-s", "all"}, 1, "server nodns: sync pushes to its first dns.private name"},
		{[]string{"sync", "-c", nokey}, 1, "provisioner.ssh_key.private: " + dir + "/keys/missing does not exist"},
		{[]string{"sync", "-c", none}, 0, "has sync entries"},
		{[]string{"-c", none, "-s", "all"}, 0, "has sync entries"},
		{[]string{"-c", settings, "-s", "web1", "-d", "web1:build"}, 1, "-d and -s exclude each other"},
		{[]string{"-c", settings, "-s", ""}, 1, "-s wants SERVER or all"},
		{[]string{"-s", "web1"}, 1, "-c settings.yml is required"},
		{[]string{"-s", "help"}, 0, "-s SERVER"},
		{[]string{"sync", "--help"}, 0, "--delete removes files on the server"},
	} {
		t.Run(strings.ReplaceAll(strings.Join(tc.args, " "), dir+"/", ""), func(t *testing.T) {
			code, out, errOut := runBee2d(t, tc.args...)
			all := out + errOut
			if code != tc.code || !strings.Contains(all, tc.out) {
				t.Errorf("exit %d (want %d), output:\n%s\nwant it to contain %q", code, tc.code, all, tc.out)
			}
		})
	}
}

// syncHarness is a test sshd with ssh and rsync wrappers first in PATH. The ssh wrapper gives ssh the
// settings a user would put in ~/.ssh/config (the sshd's port, a known_hosts file holding its key; none
// for the host "stranger.test"), and both record their arguments.
type syncHarness struct {
	t          *testing.T
	sshd       *testdocker.SSHD
	bin        string
	rsyncCalls string
	sshCalls   string
}

func newSyncHarness(t *testing.T) *syncHarness {
	t.Helper()
	rsync, err := exec.LookPath("rsync")
	if err != nil {
		testdocker.Need(t, "rsync not found (Debian: apt-get install rsync)")
	}
	ssh, err := exec.LookPath("ssh")
	if err != nil {
		testdocker.Need(t, "ssh not found (Debian: apt-get install openssh-client)")
	}
	sshd := testdocker.StartSSHD(t)
	if sshd.User != "root" {
		// Bee2's sync logs in as root; so does bee2d's.
		testdocker.Need(t, "sync logs in as root: the test sshd must run as root")
	}
	h := &syncHarness{t: t, sshd: sshd, bin: t.TempDir()}
	h.rsyncCalls, h.sshCalls = filepath.Join(h.bin, "rsync.calls"), filepath.Join(h.bin, "ssh.calls")
	_, port, _ := strings.Cut(sshd.Addr, ":")
	empty := filepath.Join(h.bin, "empty_known_hosts")
	config := fmt.Sprintf("Host 127.0.0.1\n  Port %s\n  UserKnownHostsFile %s\n  GlobalKnownHostsFile /dev/null\n"+
		"Host stranger.test\n  HostName 127.0.0.1\n  Port %s\n  UserKnownHostsFile %s\n  GlobalKnownHostsFile /dev/null\n",
		port, sshd.KnownHosts, port, empty)
	// Each call appends its arguments, each ended by a NUL, then a \001 argument that ends the call.
	record := `for a in "$@"; do printf '%%s\0' "$a"; done >>%s; printf '\001\0' >>%s`
	writeFiles(t, h.bin, map[string]string{
		"empty_known_hosts": "",
		"ssh_config":        config,
		"ssh": "#!/bin/sh\n" + fmt.Sprintf(record, h.sshCalls, h.sshCalls) + "\n" +
			fmt.Sprintf("exec %s -F %s \"$@\"\n", ssh, filepath.Join(h.bin, "ssh_config")),
		"rsync": "#!/bin/sh\n" + fmt.Sprintf(record, h.rsyncCalls, h.rsyncCalls) + "\n" + fmt.Sprintf("exec %s \"$@\"\n", rsync),
	})
	for _, f := range []string{"ssh", "rsync"} {
		if err := os.Chmod(filepath.Join(h.bin, f), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", h.bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	return h
}

// calls returns the argument lists recorded in file since the last call, and forgets them.
func (h *syncHarness) calls(file string) [][]string {
	h.t.Helper()
	b, err := os.ReadFile(file)
	if err != nil && !os.IsNotExist(err) {
		h.t.Fatal(err)
	}
	_ = os.Remove(file)
	var out [][]string
	var cur []string
	for _, a := range strings.Split(string(b), "\x00") {
		switch a {
		case "":
		case "\x01":
			out = append(out, cur)
			cur = nil
		default:
			cur = append(cur, a)
		}
	}
	return out
}

func readTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		out[rel] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestSyncPushesOverSSH pushes local directories to a server (a test sshd on this machine) with the real
// rsync and ssh: the files arrive, --delete removes what is not on this side, a remote path keeps its ":",
// -s does what bee2d sync does, a failing entry stops the run, and an unknown host key is refused without a
// prompt.
func TestSyncPushesOverSSH(t *testing.T) {
	h := newSyncHarness(t)
	dir, remote := t.TempDir(), t.TempDir()
	siteDst, archive := filepath.Join(remote, "site"), filepath.Join(remote, "archive:2024")
	failed, never, strangers := filepath.Join(remote, "failed"), filepath.Join(remote, "never"), filepath.Join(remote, "strangers")
	writeFiles(t, dir, map[string]string{
		"site/index.html":  "hello\n",
		"site/css/a.css":   "body{}\n",
		"photos/cat.jpg":   "meow\n",
		"strangers/1.html": "1\n",
	})
	writeFiles(t, remote, map[string]string{"site/stale.html": "old\n", "archive:2024/keep.txt": "kept\n"})
	key := filepath.Join(dir, "keys", "my key's", "id")
	b, err := os.ReadFile(h.sshd.Identity)
	if err != nil {
		t.Fatal(err)
	}
	writeFiles(t, dir, map[string]string{"keys/my key's/id": string(b)})
	settings := filepath.Join(dir, "settings.yml")
	writeFiles(t, dir, map[string]string{"settings.yml": fmt.Sprintf(`
provisioner:
  type: digitalocean
  ssh_key: {private: "keys/my key's/id"}
servers:
  web1:
    dns: {private: [127.0.0.1]}
  web2:
    dns: {private: [127.0.0.1]}
  broken:
    dns: {private: [127.0.0.1]}
  stranger:
    dns: {private: [stranger.test]}
sync:
  web1:
    push:
      - site/:%s
      - photos:%s
  broken:
    push:
      - missing/:%s
      - site/:%s
  stranger:
    push: ["strangers/:%s"]
`, siteDst, archive, failed, never, strangers)})
	wantSite := map[string]string{"index.html": "hello\n", "css/a.css": "body{}\n"}
	wantArchive := map[string]string{"keep.txt": "kept\n", "photos/cat.jpg": "meow\n"}

	code, out, errOut := runBee2d(t, "sync", "-c", settings, "web1", "web2")
	if code != 0 {
		t.Fatalf("sync exited %d\n%s%s\nsshd:\n%s", code, out, errOut, h.sshd.Log())
	}
	if got := readTree(t, siteDst); !maps.Equal(got, wantSite) {
		t.Errorf("site on the server: %v, want %v (stale.html removed by --delete)", got, wantSite)
	}
	if got := readTree(t, archive); !maps.Equal(got, wantArchive) {
		t.Errorf("archive:2024 on the server: %v, want %v (photos as a directory, without a trailing /)", got, wantArchive)
	}
	for _, want := range []string{
		"server web1: push " + dir + "/site/ to root@127.0.0.1:" + siteDst + "\n",
		"server web1: push " + dir + "/photos to root@127.0.0.1:" + archive + "\n",
		"index.html\n", "photos/cat.jpg\n", // rsync -v's own output, streamed
		"deleting stale.html\n",
		"server web2: no sync entries (sync.web2.push), nothing to push\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Index(out, "/site/ to") > strings.Index(out, "/photos to") {
		t.Errorf("entries not pushed in file order:\n%s", out)
	}
	ssh := "ssh -i '" + dir + "/keys/my key''s/id' -o BatchMode=yes"
	rsyncCalls := h.calls(h.rsyncCalls)
	wantCalls := [][]string{
		{"-av", "--delete", "-e", ssh, dir + "/site/", "root@127.0.0.1:" + siteDst},
		{"-av", "--delete", "-e", ssh, dir + "/photos", "root@127.0.0.1:" + archive},
	}
	if !slices.EqualFunc(rsyncCalls, wantCalls, slices.Equal) {
		t.Errorf("rsync was run as\n%q\nwant\n%q", rsyncCalls, wantCalls)
	}
	// rsync split the -e argument back into ssh's arguments: the key path arrives whole, without quotes.
	sshCalls := h.calls(h.sshCalls)
	if len(sshCalls) != 2 {
		t.Fatalf("ssh calls: %q", sshCalls)
	}
	for _, c := range sshCalls {
		if len(c) < 4 || !slices.Equal(c[:4], []string{"-i", key, "-o", "BatchMode=yes"}) || !slices.Contains(c, "root") {
			t.Errorf("ssh was run as %q, want -i %q -o BatchMode=yes first, and root", c, key)
		}
		for _, a := range c {
			if strings.ContainsAny(a, `"`) {
				t.Errorf("ssh argument %q has a literal quote", a)
			}
		}
	}

	t.Run("-s does what bee2d sync does", func(t *testing.T) {
		writeFiles(t, dir, map[string]string{"site/new.html": "new\n"})
		if err := os.Remove(filepath.Join(dir, "site", "css", "a.css")); err != nil {
			t.Fatal(err)
		}
		code, out2, errOut := runBee2d(t, "-c", settings, "-s", "web1")
		if code != 0 {
			t.Fatalf("-s web1 exited %d\n%s%s", code, out2, errOut)
		}
		want := map[string]string{"index.html": "hello\n", "new.html": "new\n"}
		if got := readTree(t, siteDst); !maps.Equal(got, want) {
			t.Errorf("site after -s: %v, want %v", got, want)
		}
		if calls := h.calls(h.rsyncCalls); !slices.EqualFunc(calls, wantCalls, slices.Equal) {
			t.Errorf("-s ran rsync as\n%q\nbee2d sync as\n%q", calls, wantCalls)
		}
		h.calls(h.sshCalls)
		announce := func(s string) (lines []string) {
			for _, l := range strings.Split(s, "\n") {
				if strings.HasPrefix(l, "server web1: ") {
					lines = append(lines, l)
				}
			}
			return lines
		}
		if a, b := announce(out), announce(out2); !slices.Equal(a, b) {
			t.Errorf("-s announces %q, bee2d sync %q", b, a)
		}
	})

	t.Run("-s all pushes every server that has entries and stops at the first failure", func(t *testing.T) {
		code, out, errOut := runBee2d(t, "-c", settings, "-s", "all")
		if code != 1 {
			t.Fatalf("-s all exited %d, want 1 for broken's missing directory\n%s%s", code, out, errOut)
		}
		if !strings.Contains(out, "server web1: push "+dir+"/site/") {
			t.Errorf("web1 was not pushed first:\n%s", out)
		}
		if want := `server broken: push "missing/:` + failed + `" (` + settings + `:21:9): rsync: exit status 23`; !strings.Contains(errOut, want) {
			t.Errorf("the failing entry is not named with its place:\n%s\nwant %q", errOut, want)
		}
		if _, err := os.Stat(never); err == nil {
			t.Errorf("the entry after the failing one ran")
		}
		if calls := h.calls(h.rsyncCalls); len(calls) != 3 {
			t.Errorf("rsync ran %d times, want web1's 2 and broken's first: %q", len(calls), calls)
		}
		h.calls(h.sshCalls)
	})

	t.Run("an unknown host key fails without a prompt", func(t *testing.T) {
		code, out, errOut := runBee2d(t, "sync", "-c", settings, "stranger")
		if code != 1 || !strings.Contains(errOut, "Host key verification failed") || !strings.Contains(errOut, `server stranger: push "strangers/:`) {
			t.Fatalf("exit %d\n%s%s", code, out, errOut)
		}
		if _, err := os.Stat(strangers); err == nil {
			t.Errorf("files were pushed to a host whose key is unknown")
		}
	})
}
