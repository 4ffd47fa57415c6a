package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// secretDir is a settings directory in a temporary place, with files written 0600 unless said.
type secretDir struct {
	t    *testing.T
	root string
}

func newSecretDir(t *testing.T) *secretDir {
	return &secretDir{t: t, root: t.TempDir()}
}

func (sd *secretDir) file(rel, content string, mode os.FileMode) string {
	sd.t.Helper()
	p := filepath.Join(sd.root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		sd.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		sd.t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // WriteFile leaves an existing file's mode, and umask applies
		sd.t.Fatal(err)
	}
	return p
}

func (sd *secretDir) load(settings string) (*Settings, error) {
	sd.t.Helper()
	return Load(sd.file("settings.yml", settings, 0o600))
}

const secretApp = "servers: {w: }\napplications:\n  db:\n    server: w\n    image: postgres\n"

// A {secret: name} value is read from the secrets directory, its trailing newline trimmed, and reaches
// the rendered environment; the key is marked secret; the hash key is made once, 0600.
func TestSecretValue(t *testing.T) {
	sd := newSecretDir(t)
	sd.file("secrets/db_password", "hunter2\n", 0o600)
	sd.file("secrets/crlf", "a b\r\n", 0o600)
	s, err := sd.load(secretApp + "    env: {user: app, db_password: {secret: db_password}, other: {secret: crlf}}\n")
	if err != nil {
		t.Fatal(err)
	}
	db := s.Application("db")
	want := []string{"USER=app", "DB_PASSWORD=hunter2", "OTHER=a b"}
	if got := RenderEnv(s, db); !slices.Equal(got, want) {
		t.Errorf("env %q, want %q", got, want)
	}
	if got := SecretKeys(db); len(got) != 2 || !got["DB_PASSWORD"] || !got["OTHER"] {
		t.Errorf("secret keys %v", got)
	}
	if len(s.Warnings) != 0 {
		t.Errorf("warnings for 0600 files: %v", s.Warnings)
	}
	keyFile := filepath.Join(sd.root, "secrets", HashKeyName)
	fi, err := os.Stat(keyFile)
	if err != nil {
		t.Fatalf("no hash key made: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("hash key mode %o, want 600", fi.Mode().Perm())
	}
	if len(s.HashKey()) != 32 {
		t.Errorf("hash key of %d bytes", len(s.HashKey()))
	}
	if s.HashKeyMade != keyFile {
		t.Errorf("HashKeyMade %q, want %q", s.HashKeyMade, keyFile)
	}
	again, err := Load(s.File)
	if err != nil {
		t.Fatal(err)
	}
	if string(again.HashKey()) != string(s.HashKey()) || again.HashKeyMade != "" {
		t.Errorf("a second load made another hash key (%q)", again.HashKeyMade)
	}
	var inputs []string
	for _, in := range s.Inputs {
		inputs = append(inputs, filepath.Base(in.Path))
	}
	slices.Sort(inputs)
	if want := []string{HashKeyName, "crlf", "db_password"}; !slices.Equal(inputs, want) {
		t.Errorf("inputs %v, want %v", inputs, want)
	}
	if got := s.WatchDirs(); !slices.Equal(got, []string{filepath.Join(sd.root, "secrets")}) {
		t.Errorf("watch dirs %v", got)
	}

	t.Run("secrets_dir, relative to the settings file", func(t *testing.T) {
		sd.file("private/db_password", "other", 0o600)
		s, err := sd.load("docker: {secrets_dir: private}\n" + secretApp + "    env: {db_password: {secret: db_password}}\n")
		if err != nil {
			t.Fatal(err)
		}
		if got := RenderEnv(s, s.Application("db")); !slices.Equal(got, []string{"DB_PASSWORD=other"}) {
			t.Errorf("env %q", got)
		}
		if _, err := os.Stat(filepath.Join(sd.root, "private", HashKeyName)); err != nil {
			t.Errorf("the hash key belongs in the secrets directory: %v", err)
		}
	})
	t.Run("no secret, no hash key", func(t *testing.T) {
		sd := newSecretDir(t)
		s, err := sd.load(secretApp + "    env: {a: {b: c}, secret: x}\n")
		if err != nil {
			t.Fatal(err)
		}
		// A mapping with other keys is JSON as before, and so is a key named secret.
		if got := RenderEnv(s, s.Application("db")); !slices.Equal(got, []string{`A={"b":"c"}`, "SECRET=x"}) {
			t.Errorf("env %q", got)
		}
		if s.HashKey() != nil || len(s.Inputs) != 0 {
			t.Errorf("hash key %x, inputs %v without any secret", s.HashKey(), s.Inputs)
		}
		if _, err := os.Stat(filepath.Join(sd.root, "secrets")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("a secrets directory was made without any secret: %v", err)
		}
	})
}

// A secret value prints as (secret) however it is formatted or encoded.
func TestSecretNeverPrinted(t *testing.T) {
	sd := newSecretDir(t)
	sd.file("secrets/pw", "s3cr3t-value", 0o600)
	sd.file("app.env", "TOKEN=t0ken-value\n", 0o600)
	s, err := sd.load(secretApp + "    env: {pw: {secret: pw}}\n    env_file: app.env\n")
	if err != nil {
		t.Fatal(err)
	}
	env := s.Application("db").Env
	b, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.DebugLevel)
	zap.New(core).Info("env", zap.Any("env", env), zap.Any("settings", s.Application("db")), zap.Stringer("v", env[0].Value.Secret.Value))
	var logged strings.Builder
	for _, e := range logs.All() {
		fmt.Fprintf(&logged, "%v", e.ContextMap())
	}
	texts := map[string]string{
		"%v":   fmt.Sprintf("%v", env),
		"%+v":  fmt.Sprintf("%+v %+v", env, *env[0].Value.Secret),
		"%#v":  fmt.Sprintf("%#v %#v", env, *env[1].Value.Secret),
		"%s":   fmt.Sprintf("%s %q %x", env[0].Value.Secret.Value, env[0].Value.Secret.Value, env[1].Value.Secret.Value),
		"json": string(b),
		"zap":  logged.String(),
	}
	for how, text := range texts {
		if strings.Contains(text, "s3cr3t") || strings.Contains(text, "t0ken") || strings.Contains(text, "733363723374") {
			t.Errorf("%s shows the secret: %s", how, text)
		}
	}
	if !strings.Contains(texts["%+v"], "(secret)") {
		t.Errorf("%%+v does not say (secret): %s", texts["%+v"])
	}
}

func TestEnvFile(t *testing.T) {
	sd := newSecretDir(t)
	sd.file("conf/app.env", strings.Join([]string{
		"# a comment",
		"",
		"PLAIN=value with spaces  ",
		"  export EXPORTED=1",
		"HASH=abc#def # not a comment",
		"DOLLAR=$HOME ${X} $(id)",
		"SINGLE=' kept \\n as is '",
		`DOUBLE="line\nnext \"q\" \\ \x"`,
		"EMPTY=",
		"lower=x",
		"CRLF=y\r",
		"EQ=a=b",
	}, "\n"), 0o600)
	sd.file("conf/more.env", "SECOND=2", 0o600)
	s, err := sd.load(secretApp + "    env: {first: 1}\n    env_file: [conf/app.env, conf/more.env]\n")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"FIRST=1", "PLAIN=value with spaces", "EXPORTED=1", "HASH=abc#def # not a comment",
		"DOLLAR=$HOME ${X} $(id)", `SINGLE= kept \n as is `, "DOUBLE=line\nnext \"q\" \\ \\x", "EMPTY=", "LOWER=x",
		"CRLF=y", "EQ=a=b", "SECOND=2"}
	db := s.Application("db")
	if got := RenderEnv(s, db); !slices.Equal(got, want) {
		t.Errorf("env\n got %q\nwant %q", got, want)
	}
	if keys := SecretKeys(db); len(keys) != len(want)-1 || keys["FIRST"] {
		t.Errorf("secret keys %v: every env_file key and only those", keys)
	}
	if !slices.Equal(db.EnvFiles, []string{"conf/app.env", "conf/more.env"}) {
		t.Errorf("env files %v", db.EnvFiles)
	}
	if got := s.WatchDirs(); !slices.Contains(got, filepath.Join(sd.root, "conf")) {
		t.Errorf("watch dirs %v lack the env_file's directory", got)
	}
	// env_file alone is enough for a hash key, in the (default) secrets directory.
	if _, err := os.Stat(filepath.Join(sd.root, "secrets", HashKeyName)); err != nil {
		t.Error(err)
	}
}

// Problems in a secret or an env_file are settings errors placed at the reference (file:line:col), that
// name the file and, for an env_file, its line, and never quote what the line holds.
func TestSecretErrors(t *testing.T) {
	sd := newSecretDir(t)
	sd.file("bad.env", strings.Join([]string{
		"GOOD=1",
		"hunter2",                   // 2: a value pasted alone
		"NOVALUE",                   // 3
		"1BAD=hunter2",              // 4
		"Q='hunter2",                // 5
		`D="hunter2`,                // 6
		"T='hunter2' x",             // 7
		"GOOD=again",                // 8
		"N=a\x00hunter2",            // 9
		"pass word=hunter2",         // 10
		`E="hunter2" hunter2-after`, // 11
	}, "\n"), 0o600)
	sd.file("dup.env", "USER=x\n", 0o600)
	sd.file("secrets/nul", "a\x00hunter2", 0o600)
	if err := os.MkdirAll(filepath.Join(sd.root, "secrets", "adir"), 0o700); err != nil {
		t.Fatal(err)
	}
	settings := secretApp + `    env:
      user: app
      missing: {secret: nope}
      up: {secret: ../settings.yml}
      key: {secret: .hash-key}
      path: {secret: a/b}
      num: {secret: 1}
      dir: {secret: adir}
      nul: {secret: nul}
      domains: {secret: nope}
    env_file: [bad.env, gone.env, dup.env]
`
	_, err := sd.load(settings)
	if err == nil {
		t.Fatal("loaded")
	}
	file := filepath.Join(sd.root, "settings.yml")
	got := strings.ReplaceAll(err.Error(), file, "settings.yml")
	got = strings.ReplaceAll(got, sd.root+"/", "")
	want := strings.Join([]string{
		`settings.yml:8:25: applications.db.env.missing.secret: secret "nope": secrets/nope does not exist`,
		`settings.yml:9:20: applications.db.env.up.secret: invalid secret name "../settings.yml": ` + nameRule,
		`settings.yml:10:21: applications.db.env.key.secret: invalid secret name ".hash-key": ` + nameRule,
		`settings.yml:11:22: applications.db.env.path.secret: invalid secret name "a/b": ` + nameRule,
		`settings.yml:12:21: applications.db.env.num.secret: secret must name a file of the secrets directory, got an integer`,
		`settings.yml:13:21: applications.db.env.dir.secret: secret "adir": secrets/adir is not a regular file`,
		`settings.yml:14:21: applications.db.env.nul.secret: secret "nul": secrets/nul holds a NUL byte, which an environment cannot`,
		`settings.yml:15:16: applications.db.env.domains: domains must be "all" or a list of strings, got a mapping`,
		`settings.yml:16:16: applications.db.env_file[0]: bad.env:2: expected KEY=VALUE, found no =; write KEY= for an empty value (values are never taken from bee2d's environment)`,
		`settings.yml:16:16: applications.db.env_file[0]: bad.env:3: expected KEY=VALUE, found no =; write KEY= for an empty value (values are never taken from bee2d's environment)`,
		`settings.yml:16:16: applications.db.env_file[0]: bad.env:4: expected KEY=VALUE, with a name of letters, digits and _ not starting with a digit`,
		`settings.yml:16:16: applications.db.env_file[0]: bad.env:5: Q: no closing ' (a value cannot span lines)`,
		`settings.yml:16:16: applications.db.env_file[0]: bad.env:6: D: no closing " (a value cannot span lines)`,
		`settings.yml:16:16: applications.db.env_file[0]: bad.env:7: T: text after the closing '`,
		`settings.yml:16:16: applications.db.env_file[0]: bad.env:8: GOOD is set twice (first at line 1)`,
		`settings.yml:16:16: applications.db.env_file[0]: bad.env:9: N: the value holds a NUL byte, which an environment cannot`,
		`settings.yml:16:16: applications.db.env_file[0]: bad.env:10: expected KEY=VALUE, with a name of letters, digits and _ not starting with a digit`,
		`settings.yml:16:16: applications.db.env_file[0]: bad.env:11: E: text after the closing "`,
		`settings.yml:16:25: applications.db.env_file[1]: env_file: gone.env does not exist`,
		`settings.yml:16:35: applications.db.env_file[2]: dup.env:1: USER is also set at line 7 of the settings or an earlier env_file; set it in one place`,
	}, "\n")
	if got != want {
		t.Errorf("errors\n got:\n%s\nwant:\n%s", got, want)
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("an error quotes a secret:\n%s", err)
	}
	if _, err := os.Stat(filepath.Join(sd.root, "secrets", HashKeyName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("settings that do not load made a hash key: %v", err)
	}
}

// A hash key that cannot be made or read is a settings error at the first secret reference.
func TestHashKeyProblems(t *testing.T) {
	t.Run("secrets_dir is a file", func(t *testing.T) {
		sd := newSecretDir(t)
		sd.file("x.env", "A=1\n", 0o600)
		sd.file("notadir", "", 0o600)
		_, err := sd.load("docker: {secrets_dir: notadir}\n" + secretApp + "    env_file: x.env\n")
		if err == nil || !strings.Contains(err.Error(), ":7:15: no hash key "+filepath.Join(sd.root, "notadir", HashKeyName)+", and it cannot be made (not a directory)") {
			t.Errorf("got %v", err)
		}
	})
	t.Run("not a key", func(t *testing.T) {
		sd := newSecretDir(t)
		sd.file("x.env", "A=1\n", 0o600)
		sd.file("secrets/"+HashKeyName, "short\n", 0o600)
		_, err := sd.load(secretApp + "    env_file: x.env\n")
		if err == nil || !strings.Contains(err.Error(), "is not 64 hex digits; remove it and bee2d makes a new one") {
			t.Errorf("got %v", err)
		}
	})
	t.Run("made at once by several loads, one key", func(t *testing.T) {
		sd := newSecretDir(t)
		sd.file("x.env", "A=1\n", 0o600)
		file := sd.file("settings.yml", secretApp+"    env_file: x.env\n", 0o600)
		keys := make([]string, 8)
		made := make([]bool, len(keys))
		var wg sync.WaitGroup
		for i := range keys {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if s, err := Load(file); err == nil {
					keys[i], made[i] = string(s.HashKey()), s.HashKeyMade != ""
				}
			}()
		}
		wg.Wait()
		makers := 0
		for i, k := range keys {
			if k == "" || k != keys[0] {
				t.Fatalf("loads disagree on the key or failed")
			}
			if made[i] {
				makers++
			}
		}
		if makers != 1 {
			t.Errorf("%d loads say they made the key, want 1", makers)
		}
		left, _ := filepath.Glob(filepath.Join(sd.root, "secrets", ".hash-key-*"))
		if len(left) != 0 {
			t.Errorf("temporary files left: %v", left)
		}
	})
}

// The settings file, a secret, an env_file, a TLS or SSH key, or the hash key readable by group or others
// is a warning naming the file; the settings still load.
func TestPrivateFileWarnings(t *testing.T) {
	sd := newSecretDir(t)
	sd.file("secrets/pw", "x", 0o644)
	sd.file("app.env", "A=1", 0o640)
	sd.file("conf/docker/w/key.pem", "k", 0o604)
	sd.file("conf/docker/w/ca.pem", "ca", 0o644)
	sd.file("conf/docker/w/cert.pem", "c", 0o644)
	sd.file("conf/docker/legacy/docker-client.pem", "k", 0o640)
	sd.file("id_ed25519", "k", 0o644)
	yml := `servers:
  w: {docker: {host: "tcp://h:2376", tls: {ca: conf/docker/w/ca.pem, cert: conf/docker/w/cert.pem, key: conf/docker/w/key.pem}}}
  legacy: {dns: {private: [legacy.vpn]}}
  s: {docker: {host: "ssh://u@h", ssh: {identity: id_ed25519}}}
applications:
  db: {server: w, image: x, env: {pw: {secret: pw}}, env_file: app.env}
`
	file := sd.file("settings.yml", yml, 0o644)
	s, err := Load(file)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range s.Warnings {
		got = append(got, strings.TrimPrefix(w.String(), sd.root+"/"))
	}
	slices.Sort(got)
	r := sd.root + "/"
	want := []string{
		"app.env: readable by its group (mode 0640); chmod 600 " + r + "app.env",
		"conf/docker/legacy/docker-client.pem: readable by its group (mode 0640); chmod 600 " + r + "conf/docker/legacy/docker-client.pem",
		"conf/docker/w/key.pem: readable by others (mode 0604); chmod 600 " + r + "conf/docker/w/key.pem",
		"id_ed25519: readable by its group and others (mode 0644); chmod 600 " + r + "id_ed25519",
		"secrets/pw: readable by its group and others (mode 0644); chmod 600 " + r + "secrets/pw",
		"settings.yml: readable by its group and others (mode 0644); chmod 600 " + r + "settings.yml",
	}
	if !slices.Equal(got, want) {
		t.Errorf("warnings\n got %q\nwant %q", got, want)
	}
	for _, f := range []string{"secrets/pw", "app.env", "conf/docker/w/key.pem", "conf/docker/legacy/docker-client.pem", "id_ed25519", "settings.yml"} {
		if err := os.Chmod(filepath.Join(sd.root, f), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if !s.InputsChanged() {
		t.Error("a chmod of a secret is not seen as a change of the inputs")
	}
	s, err = Load(file)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Warnings) != 0 {
		t.Errorf("warnings after chmod 600: %v", s.Warnings)
	}
}

// A changed, removed or re-created secret or env_file is a change of the inputs; an untouched one is not.
func TestInputsChanged(t *testing.T) {
	sd := newSecretDir(t)
	pw := sd.file("secrets/pw", "one", 0o600)
	envf := sd.file("app.env", "A=1\n", 0o600)
	s, err := sd.load(secretApp + "    env: {pw: {secret: pw}}\n    env_file: app.env\n")
	if err != nil {
		t.Fatal(err)
	}
	if s.InputsChanged() {
		t.Fatal("inputs changed right after loading")
	}
	sd.file("secrets/pw", "two", 0o600)
	if !s.InputsChanged() {
		t.Error("a new secret value is not seen")
	}
	sd.file("secrets/pw", "one", 0o600)
	if s.InputsChanged() {
		t.Error("the same value written again counts as a change")
	}
	os.Remove(envf)
	if !s.InputsChanged() {
		t.Error("a removed env_file is not seen")
	}
	_ = pw
}
