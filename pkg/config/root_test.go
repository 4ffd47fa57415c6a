package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// checkout is a repository checkout in a temporary place, with a directory outside it holding the host's files.
type checkout struct {
	*secretDir
	outside string
}

func newCheckout(t *testing.T) *checkout {
	base := t.TempDir()
	c := &checkout{secretDir: &secretDir{t: t, root: filepath.Join(base, "repo")}, outside: filepath.Join(base, "host")}
	for _, dir := range []string{c.root, c.outside} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func (c *checkout) outsideFile(rel, content string) string {
	c.t.Helper()
	p := filepath.Join(c.outside, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		c.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		c.t.Fatal(err)
	}
	return p
}

func (c *checkout) link(rel, target string) {
	c.t.Helper()
	p := filepath.Join(c.root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		c.t.Fatal(err)
	}
	if err := os.Symlink(target, p); err != nil {
		c.t.Fatal(err)
	}
}

// errors loads settings from the checkout and returns their errors with the places made short.
func (c *checkout) errors(settings string) string {
	c.t.Helper()
	_, err := c.loadWith(settings, Options{Root: c.root, KeyDir: filepath.Join(c.outside, "state")})
	if err == nil {
		c.t.Fatal("loaded")
	}
	got := strings.ReplaceAll(err.Error(), filepath.Join(c.root, "settings.yml"), "settings.yml")
	got = strings.ReplaceAll(got, c.outside, "HOST")
	return strings.ReplaceAll(got, c.root+"/", "")
}

// Under Options.Root, a path of the settings that is absolute or leads out of the checkout, by ".." or by a
// symbolic link, is an error at its place; nothing outside is read.
func TestRootPathsLeaving(t *testing.T) {
	c := newCheckout(t)
	shadow := c.outsideFile("shadow", "root:hunter2\n")
	c.outsideFile("outside.env", "A=hunter2\n")
	c.outsideFile("df/web/Dockerfile", "FROM scratch\n")
	c.file("dockerfiles/app/Dockerfile", "FROM scratch\n", 0o600)
	c.link("dockerfiles/escape", filepath.Join(c.outside, "df", "web"))
	c.link("linked.env", shadow)
	c.link("secrets/linked", shadow)
	c.link("secrets/encrypted.age", shadow)
	c.link("encrypted.age", shadow)
	c.file("secrets/pw", "x", 0o600)
	settings := `servers: {w: }
applications:
  up:
    server: w
    image: x
    env_file: ../host/outside.env
  abs:
    server: w
    image: x
    env_file: ` + shadow + `
  sym:
    server: w
    image: x
    env_file: [linked.env, encrypted]
  esc:
    server: w
    build_dir: escape
  sec:
    server: w
    image: x
    env: {a: {secret: linked}, b: {secret: encrypted}, c: {secret: pw}}
`
	want := strings.Join([]string{
		`settings.yml:6:15: applications.up.env_file: env_file: ../host/outside.env leaves the repository checkout`,
		`settings.yml:10:15: applications.abs.env_file: env_file: HOST/shadow is absolute; settings from a repository checkout name files inside it, relative to the settings file`,
		`settings.yml:14:16: applications.sym.env_file[0]: env_file: linked.env leaves the repository checkout`,
		`settings.yml:14:28: applications.sym.env_file[1]: env_file: encrypted.age leaves the repository checkout`,
		`settings.yml:17:16: applications.esc.build_dir: build_dir "escape" leads outside the dockerfiles directory`,
		`settings.yml:21:23: applications.sec.env.a.secret: secret "linked": secrets/linked leaves the repository checkout`,
		`settings.yml:21:44: applications.sec.env.b.secret: secret "encrypted": secrets/encrypted.age leaves the repository checkout`,
	}, "\n")
	if got := c.errors(settings); got != want {
		t.Errorf("errors\n got:\n%s\nwant:\n%s", got, want)
	}
	// The same files are fine on the admin box.
	if _, err := c.loadWith(strings.ReplaceAll(settings, "build_dir: escape", "build_dir: app"), Options{}); err == nil || strings.Contains(err.Error(), "checkout") {
		t.Errorf("without a root: %v", err)
	}
}

// docker.dockerfiles and a relative docker.secrets_dir must lie in the checkout; the working directory's
// dockerfiles, where Bee2 looked, is not used.
func TestRootDirectories(t *testing.T) {
	c := newCheckout(t)
	c.outsideFile("df/app/Dockerfile", "FROM scratch\n")
	c.outsideFile("secrets/pw", "hunter2")
	app := "servers: {w: }\napplications:\n  a: {server: w, build_dir: app}\n"
	for _, tc := range []struct{ name, settings, want string }{
		{"dockerfiles absolute", "docker: {dockerfiles: " + filepath.Join(c.outside, "df") + "}\n" + app,
			`settings.yml:1:23: docker.dockerfiles: dockerfiles: HOST/df is absolute; settings from a repository checkout name files inside it, relative to the settings file`},
		{"dockerfiles up", "docker: {dockerfiles: ../host/df}\n" + app,
			`settings.yml:1:23: docker.dockerfiles: dockerfiles: ../host/df leaves the repository checkout`},
		{"secrets_dir up", "docker: {secrets_dir: ../host/secrets}\nservers: {w: }\napplications:\n  b: {server: w, image: x, env: {pw: {secret: pw}}}\n",
			`settings.yml:1:23: docker.secrets_dir: secrets_dir: ../host/secrets leaves the repository checkout`},
		{"no dockerfiles", "servers: {w: }\napplications:\n  a: {server: w, build_dir: app}\n",
			`settings.yml:3:29: applications.a.build_dir: no dockerfiles directory beside the settings file in the repository checkout; set docker.dockerfiles`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "no dockerfiles" {
				// Bee2's fallback, ./dockerfiles in the working directory, exists here.
				t.Chdir(c.outside)
				if err := os.Rename(filepath.Join(c.outside, "df"), filepath.Join(c.outside, "dockerfiles")); err != nil {
					t.Fatal(err)
				}
				defer os.Rename(filepath.Join(c.outside, "dockerfiles"), filepath.Join(c.outside, "df"))
			}
			if got := c.errors(tc.settings); got != tc.want {
				t.Errorf("errors\n got:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
	t.Run("secrets_dir up, no password made there", func(t *testing.T) {
		c := newCheckout(t)
		_, err := c.loadWith("docker: {secrets_dir: ../host/secrets}\nservers: {w: }\napplications:\n"+
			"  a: {server: w, image: x, db: [postgres], env: {pw: _postgres^password}}\n", Options{Root: c.root})
		if err == nil || !strings.Contains(err.Error(), "secrets_dir: ../host/secrets leaves the repository checkout") {
			t.Errorf("got %v", err)
		}
		if _, err := os.Stat(filepath.Join(c.outside, "secrets")); !os.IsNotExist(err) {
			t.Errorf("something was made outside the checkout: %v", err)
		}
	})
	t.Run("dockerfiles a link out", func(t *testing.T) {
		c := newCheckout(t)
		c.outsideFile("df/app/Dockerfile", "FROM scratch\n")
		c.link("dockerfiles", filepath.Join(c.outside, "df"))
		want := `settings.yml:3:29: applications.a.build_dir: dockerfiles: dockerfiles leaves the repository checkout`
		if got := c.errors("servers: {w: }\napplications:\n  a: {server: w, build_dir: app}\n"); got != want {
			t.Errorf("errors\n got:\n%s\nwant:\n%s", got, want)
		}
	})
	t.Run("conf/docker a link out", func(t *testing.T) {
		c := newCheckout(t)
		c.outsideFile("conf/docker/w/docker-client.pem", "k")
		c.link("conf", filepath.Join(c.outside, "conf"))
		want := `settings.yml:2:3: servers.w: the TLS file of its engine conf/docker/w/ca.pem leaves the repository checkout; give docker.tls with the files' absolute paths to keep them outside`
		if got := c.errors("servers:\n  w: {dns: {private: [w.vpn]}}\napplications:\n  b: {server: w, image: x}\n"); got != want {
			t.Errorf("errors\n got:\n%s\nwant:\n%s", got, want)
		}
	})
}

// The host's own files may lie anywhere: an absolute secrets_dir, the servers' TLS and SSH files.
func TestRootHostFiles(t *testing.T) {
	c := newCheckout(t)
	c.outsideFile("secrets/pw", "hunter2")
	for _, f := range []string{"ca.pem", "cert.pem", "key.pem", "id_ed25519", "known_hosts"} {
		c.outsideFile("keys/"+f, "k")
	}
	c.file("dockerfiles/app/Dockerfile", "FROM scratch\n", 0o600)
	c.file("conf/docker/legacy/docker-client.pem", "k", 0o600)
	keys := filepath.Join(c.outside, "keys")
	settings := "docker: {secrets_dir: " + filepath.Join(c.outside, "secrets") + "}\n" + `servers:
  w: {docker: {host: "tcp://h:2376", tls: {ca: ` + keys + `/ca.pem, cert: ` + keys + `/cert.pem, key: ` + keys + `/key.pem}}}
  s: {docker: {host: "ssh://u@h", ssh: {identity: ` + keys + `/id_ed25519, known_hosts: ` + keys + `/known_hosts}}}
  legacy: {dns: {private: [legacy.vpn]}}
applications:
  a: {server: w, build_dir: app, env: {pw: {secret: pw}}}
`
	state := filepath.Join(c.outside, "state")
	s, err := c.loadWith(settings, Options{Root: c.root, KeyDir: state})
	if err != nil {
		t.Fatal(err)
	}
	if got := RenderEnv(s, s.Application("a")); len(got) != 1 || got[0] != "PW=hunter2" {
		t.Errorf("env %q", got)
	}
	if _, err := os.Stat(filepath.Join(state, HashKeyName)); err != nil {
		t.Errorf("hash key not in KeyDir: %v", err)
	}
}

// Under Options.KeyDir, the hash key and the database passwords bee2d makes are kept there, not in the
// secrets directory of the checkout; a second load from a new checkout reads the same ones.
func TestKeyDir(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	load := func() *Settings {
		t.Helper()
		dir := t.TempDir() // a new checkout each time
		for _, f := range []string{"settings.yml", "state.yml"} {
			data, err := os.ReadFile(filepath.Join("testdata", "later", f))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, f), data, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		s, err := LoadWith(filepath.Join(dir, "settings.yml"), Options{Root: dir, KeyDir: state})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(s.Docker.SecretsDir); !os.IsNotExist(err) {
			t.Errorf("the checkout's secrets directory was written: %v", err)
		}
		return s
	}
	s := load()
	pw := envMap(RenderEnv(s, s.App("web1", "ttrss")))["DB_PASS"]
	if len(pw) != 32 {
		t.Fatalf("password %q", pw)
	}
	if s.HashKeyMade != filepath.Join(state, HashKeyName) || len(s.PasswordsMade) == 0 {
		t.Errorf("made %q and %v", s.HashKeyMade, s.PasswordsMade)
	}
	for _, p := range s.PasswordsMade {
		if !strings.HasPrefix(p, state+"/database/postgres/") {
			t.Errorf("password made at %s, not in KeyDir", p)
		}
	}
	fi, err := os.Stat(filepath.Join(state, "database", "postgres", "ttrss"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("password file: %v %v", fi, err)
	}
	again := load()
	if string(again.HashKey()) != string(s.HashKey()) || again.HashKeyMade != "" || len(again.PasswordsMade) != 0 {
		t.Errorf("a second load made a hash key (%q) or passwords (%v)", again.HashKeyMade, again.PasswordsMade)
	}
	if got := envMap(RenderEnv(again, again.App("web1", "ttrss")))["DB_PASS"]; got != pw {
		t.Errorf("second load: password %q, want %q", got, pw)
	}
}
