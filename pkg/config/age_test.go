package config

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"filippo.io/age"
	"filippo.io/age/armor"
	"golang.org/x/crypto/ssh"
)

// ageKey is an identity and the recipient that encrypts to it, with their text forms as files hold them.
type ageKey struct {
	id        []age.Identity
	recipient string // age1... or an authorized_keys line
	idText    string // the identity file's content
}

func newX25519Key(t *testing.T) ageKey {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	return ageKey{id: []age.Identity{id}, recipient: id.Recipient().String(), idText: "# created: now\n" + id.String() + "\n"}
}

func newSSHKey(t *testing.T) ageKey {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	k := ageKey{recipient: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPub))), idText: string(pem.EncodeToMemory(block))}
	file := filepath.Join(t.TempDir(), "id_ed25519")
	if err := os.WriteFile(file, []byte(k.idText), 0o600); err != nil {
		t.Fatal(err)
	}
	if k.id, err = ParseIdentities(file); err != nil {
		t.Fatal(err)
	}
	return k
}

// encrypt returns value encrypted to the keys' recipients, as `bee2d secret encrypt` writes it.
func encrypt(t *testing.T, value string, keys ...ageKey) string {
	t.Helper()
	var rs []age.Recipient
	for _, k := range keys {
		r, err := ParseRecipient(k.recipient)
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, r)
	}
	var b bytes.Buffer
	if err := EncryptSecret(&b, []byte(value), rs); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// armored is an age file in the armored form `age -a` writes.
func armored(t *testing.T, binary string) string {
	t.Helper()
	var b bytes.Buffer
	w := armor.NewWriter(&b)
	if _, err := io.WriteString(w, binary); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func (sd *secretDir) loadWith(settings string, opt Options) (*Settings, error) {
	sd.t.Helper()
	return LoadWith(sd.file("settings.yml", settings, 0o600), opt)
}

// {secret: name} reads name.age when there is no plain name, decrypted with an age or an SSH identity; the
// value is a secret as a plain one is, and the encrypted file, committed readable by all, is no warning.
func TestAgeSecret(t *testing.T) {
	for _, tc := range []struct {
		name string
		key  func(*testing.T) ageKey
	}{{"x25519", newX25519Key}, {"ssh-ed25519", newSSHKey}} {
		t.Run(tc.name, func(t *testing.T) {
			key, other := tc.key(t), newX25519Key(t)
			sd := newSecretDir(t)
			pw := sd.file("secrets/db_password.age", encrypt(t, "hunter2\n", other, key), 0o644)
			s, err := sd.loadWith(secretApp+"    env: {user: app, db_password: {secret: db_password}}\n", Options{Identities: key.id})
			if err != nil {
				t.Fatal(err)
			}
			db := s.Application("db")
			if got, want := RenderEnv(s, db), []string{"USER=app", "DB_PASSWORD=hunter2"}; !slices.Equal(got, want) {
				t.Errorf("env %q, want %q", got, want)
			}
			if got := SecretKeys(db); !got["DB_PASSWORD"] || got["USER"] {
				t.Errorf("secret keys %v", got)
			}
			if src := db.Env[1].Value.Secret; src.Name != "db_password" || src.File != pw {
				t.Errorf("source %+v, want the .age file", src)
			}
			if len(s.Warnings) != 0 {
				t.Errorf("warnings for an encrypted file: %v", s.Warnings)
			}
			var inputs []string
			for _, in := range s.Inputs {
				inputs = append(inputs, filepath.Base(in.Path))
			}
			slices.Sort(inputs)
			if want := []string{HashKeyName, "db_password", "db_password.age"}; !slices.Equal(inputs, want) {
				t.Errorf("inputs %v, want %v", inputs, want)
			}
			if s.InputsChanged() {
				t.Fatal("inputs changed right after loading")
			}
			sd.file("secrets/db_password.age", encrypt(t, "hunter3\n", key), 0o644)
			if !s.InputsChanged() {
				t.Error("a new encrypted value is not seen")
			}
			s, err = sd.loadWith(secretApp+"    env: {db_password: {secret: db_password}}\n", Options{Identities: key.id})
			if err != nil {
				t.Fatal(err)
			}
			sd.file("secrets/db_password", "plain", 0o600)
			if !s.InputsChanged() {
				t.Error("a plain secret made beside the encrypted one is not seen")
			}
		})
	}
}

// An env_file ending in .age is decrypted (binary or armored), and one that does not exist is read from its
// .age form; one that exists is read as it is.
func TestAgeEnvFile(t *testing.T) {
	key := newX25519Key(t)
	sd := newSecretDir(t)
	sd.file("conf/app.env.age", encrypt(t, "TOKEN=t0ken\nOTHER='a b'\n", key), 0o644)
	sd.file("conf/more.env.age", encrypt(t, "MORE=1\n", key), 0o644)
	sd.file("conf/armored.env.age", armored(t, encrypt(t, "ARMORED=1\n", key)), 0o644)
	sd.file("conf/plain.env", "PLAIN=1\n", 0o600)
	sd.file("conf/plain.env.age", encrypt(t, "PLAIN=from-age\n", key), 0o644)
	s, err := sd.loadWith(secretApp+"    env_file: [conf/app.env.age, conf/more.env, conf/plain.env, conf/armored.env.age]\n", Options{Identities: key.id})
	if err != nil {
		t.Fatal(err)
	}
	db := s.Application("db")
	if got, want := RenderEnv(s, db), []string{"TOKEN=t0ken", "OTHER=a b", "MORE=1", "PLAIN=1", "ARMORED=1"}; !slices.Equal(got, want) {
		t.Errorf("env %q, want %q", got, want)
	}
	if keys := SecretKeys(db); len(keys) != 5 {
		t.Errorf("secret keys %v", keys)
	}
	if f := db.Env[2].Value.Secret.File; f != filepath.Join(sd.root, "conf", "more.env.age") {
		t.Errorf("MORE read from %s", f)
	}
	if len(s.Warnings) != 0 {
		t.Errorf("warnings %v", s.Warnings)
	}
	sd.file("conf/more.env.age", encrypt(t, "MORE=2\n", key), 0o644)
	if !s.InputsChanged() {
		t.Error("a changed encrypted env_file is not seen")
	}
}

// Problems of encrypted files are settings errors at the reference that name the file and never show a value.
func TestAgeErrors(t *testing.T) {
	key, wrong := newX25519Key(t), newX25519Key(t)
	sd := newSecretDir(t)
	sd.file("secrets/both", "hunter2", 0o600)
	sd.file("secrets/both.age", encrypt(t, "hunter2", key), 0o644)
	sd.file("secrets/theirs.age", encrypt(t, "hunter2", wrong), 0o644)
	sd.file("secrets/named.age", encrypt(t, "hunter2", key), 0o644)
	sd.file("secrets/nul.age", encrypt(t, "a\x00hunter2", key), 0o644)
	sd.file("secrets/garbage.age", "hunter2", 0o644)
	sd.file("bad.env.age", encrypt(t, "GOOD=1\nhunter2\n", key), 0o644)
	sd.file("theirs.env.age", encrypt(t, "A=hunter2\n", wrong), 0o644)
	settings := secretApp + `    env:
      both: {secret: both}
      theirs: {secret: theirs}
      named: {secret: named.age}
      nul: {secret: nul}
      garbage: {secret: garbage}
    env_file: [bad.env, theirs.env]
`
	_, err := sd.loadWith(settings, Options{Identities: key.id})
	if err == nil {
		t.Fatal("loaded")
	}
	got := strings.ReplaceAll(err.Error(), filepath.Join(sd.root, "settings.yml"), "settings.yml")
	got = strings.ReplaceAll(got, sd.root+"/", "")
	want := strings.Join([]string{
		`settings.yml:7:22: applications.db.env.both.secret: secret "both": both secrets/both and secrets/both.age exist; remove the one not meant`,
		`settings.yml:8:24: applications.db.env.theirs.secret: secret "theirs": secrets/theirs.age: identity did not match any of the recipients: incorrect identity for recipient block (the age identities given do not decrypt it; was it encrypted to this host's key?)`,
		`settings.yml:9:23: applications.db.env.named.secret: secret "named.age": secrets/named.age is encrypted with age; write {secret: named}, which decrypts it`,
		`settings.yml:10:21: applications.db.env.nul.secret: secret "nul": secrets/nul.age holds a NUL byte, which an environment cannot`,
		`settings.yml:11:25: applications.db.env.garbage.secret: secret "garbage": secrets/garbage.age is not an age file (bee2d secret encrypt writes them)`,
		`settings.yml:12:16: applications.db.env_file[0]: bad.env.age:2: expected KEY=VALUE, found no =; write KEY= for an empty value (values are never taken from bee2d's environment)`,
		`settings.yml:12:25: applications.db.env_file[1]: env_file: theirs.env.age: identity did not match any of the recipients: incorrect identity for recipient block (the age identities given do not decrypt it; was it encrypted to this host's key?)`,
	}, "\n")
	if got != want {
		t.Errorf("errors\n got:\n%s\nwant:\n%s", got, want)
	}

	t.Run("no identity", func(t *testing.T) {
		sd := newSecretDir(t)
		sd.file("secrets/pw.age", encrypt(t, "hunter2", key), 0o644)
		sd.file("app.env.age", encrypt(t, "A=hunter2", key), 0o644)
		_, err := sd.loadWith(secretApp+"    env: {pw: {secret: pw}}\n    env_file: app.env.age\n", Options{})
		got := strings.ReplaceAll(fmt.Sprint(err), sd.root+"/", "")
		want := `settings.yml:6:24: applications.db.env.pw.secret: secret "pw": secrets/pw.age is encrypted with age: bee2d needs an identity that decrypts it (--age-identity FILE)` + "\n" +
			`settings.yml:7:15: applications.db.env_file: env_file: app.env.age is encrypted with age: bee2d needs an identity that decrypts it (--age-identity FILE)`
		if got != want {
			t.Errorf("errors\n got:\n%s\nwant:\n%s", got, want)
		}
	})
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("an error quotes a secret:\n%s", err)
	}
}

// A decrypted value prints as (secret) wherever the settings, a service or an error are printed.
func TestAgeNeverPrinted(t *testing.T) {
	key := newX25519Key(t)
	sd := newSecretDir(t)
	sd.file("secrets/pw.age", encrypt(t, "s3cr3t-value", key), 0o644)
	sd.file("app.env.age", encrypt(t, "TOKEN=t0ken-value\n", key), 0o644)
	s, err := sd.loadWith(secretApp+"    env: {pw: {secret: pw}}\n    env_file: app.env.age\n", Options{Identities: key.id})
	if err != nil {
		t.Fatal(err)
	}
	svc := s.Application("db")
	if got := RenderEnv(s, svc); !slices.Equal(got, []string{"PW=s3cr3t-value", "TOKEN=t0ken-value"}) {
		t.Fatalf("env %q", got)
	}
	settingsJSON, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	envJSON, err := json.Marshal(svc.Env)
	if err != nil {
		t.Fatal(err)
	}
	// A load that fails after reading the secrets: its errors must not show them either.
	_, loadErr := sd.loadWith(secretApp+"    env: {pw: {secret: pw}, x: {secret: gone}}\n    env_file: app.env.age\n", Options{Identities: key.id})
	if loadErr == nil {
		t.Fatal("loaded with a missing secret")
	}
	texts := map[string]string{
		"settings %v":  fmt.Sprintf("%v", *s),
		"settings %+v": fmt.Sprintf("%+v", *s),
		"settings %#v": fmt.Sprintf("%#v", *s),
		"service %v":   fmt.Sprintf("%v", *svc),
		"service %+v":  fmt.Sprintf("%+v %+v", *svc, *svc.Env[0].Value.Secret),
		"service %#v":  fmt.Sprintf("%#v %#v", *svc, *svc.Env[1].Value.Secret),
		"json":         string(settingsJSON) + string(envJSON),
		"error %v":     fmt.Sprintf("%v", loadErr),
		"error %+v":    fmt.Sprintf("%+v", loadErr),
		"error %#v":    fmt.Sprintf("%#v", loadErr),
	}
	for how, text := range texts {
		if strings.Contains(text, "s3cr3t") || strings.Contains(text, "t0ken") {
			t.Errorf("%s shows the secret: %s", how, text)
		}
	}
	if !strings.Contains(texts["service %+v"], "(secret)") {
		t.Errorf("%%+v does not say (secret): %s", texts["service %+v"])
	}
}

// Identity and recipient files that are not what they should be are errors naming the file, never quoting it.
func TestAgeKeyFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	locked, err := ssh.MarshalPrivateKeyWithPassphrase(priv, "", []byte("pass"))
	if err != nil {
		t.Fatal(err)
	}
	x := newX25519Key(t)
	for _, tc := range []struct {
		name, content, want string
	}{
		{"recipient", x.recipient + "\n", "error at line 1: unknown identity type (want AGE-SECRET-KEY-1... lines or an SSH private key)"},
		{"locked", string(pem.EncodeToMemory(locked)), "the SSH key is protected by a passphrase"},
		{"empty", "# nothing\n", "no identities found"},
		{"broken-ssh", "-----BEGIN OPENSSH PRIVATE KEY-----\nAGE-SECRET-KEY-1XYZ\n-----END OPENSSH PRIVATE KEY-----\n", "age identity " + filepath.Join(dir, "broken-ssh") + ": "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := write(tc.name, tc.content)
			_, err := ParseIdentities(file)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), file) {
				t.Errorf("got %v, want it to name %s and say %q", err, file, tc.want)
			}
			if strings.Contains(fmt.Sprint(err), "AGE-SECRET-KEY-1XYZ") {
				t.Errorf("the error quotes the file: %v", err)
			}
		})
	}
	if _, err := ParseIdentities(filepath.Join(dir, "gone")); err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "gone")+": no such file") {
		t.Errorf("missing file: %v", err)
	}
	ids, err := ParseIdentities(write("ok", x.idText))
	if err != nil || len(ids) != 1 {
		t.Errorf("identities %v, %v", ids, err)
	}
	for _, r := range []string{"age1", strings.TrimPrefix(x.idText, "# created: now\n"), "ssh-dss AAAA"} {
		if _, err := ParseRecipient(r); err == nil || strings.Contains(err.Error(), "AGE-SECRET-KEY") {
			t.Errorf("recipient %.10q: %v", r, err)
		}
	}
	if err := EncryptSecret(new(bytes.Buffer), []byte("x"), nil); err == nil {
		t.Error("encrypted to nobody")
	}
}

// SecretsDirOf finds the secrets directory of settings that need not validate.
func TestSecretsDirOf(t *testing.T) {
	sd := newSecretDir(t)
	for _, tc := range []struct{ settings, want string }{
		{"servers: {w: }\napplications: {bad: 1}\n", filepath.Join(sd.root, "secrets")},
		{"docker: {secrets_dir: private, prefix: 3}\n", filepath.Join(sd.root, "private")},
		{"docker: {secrets_dir: /etc/bee2d/secrets}\n", "/etc/bee2d/secrets"},
	} {
		got, err := SecretsDirOf(sd.file("settings.yml", tc.settings, 0o600))
		if err != nil || got != tc.want {
			t.Errorf("%q: %q, %v; want %q", tc.settings, got, err, tc.want)
		}
	}
	if _, err := SecretsDirOf(sd.file("settings.yml", "docker: [\n", 0o600)); err == nil {
		t.Error("no error for a file that is no YAML")
	}
}
