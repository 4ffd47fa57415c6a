package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"
)

// secretEncrypt runs `bee2d secret encrypt` with value on its standard input.
func secretEncrypt(t *testing.T, value string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := cmdSecret(append([]string{"encrypt"}, args...), strings.NewReader(value), &out, &errOut)
	return exitCode(err, &errOut), out.String(), errOut.String()
}

func newAgeKeyFile(t *testing.T, dir string) (recipient, file string) {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	file = filepath.Join(dir, "host.key")
	if err := os.WriteFile(file, []byte(id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return id.Recipient().String(), file
}

// A value encrypted with `bee2d secret encrypt` reaches the container's environment through the settings,
// when loaded with the identity it was encrypted to, and is shown nowhere else.
func TestSecretEncryptRoundTrip(t *testing.T) {
	t.Setenv(ageIdentityEnv, "")
	dir := t.TempDir()
	recipient, keyFile := newAgeKeyFile(t, t.TempDir())
	other, _ := newAgeKeyFile(t, t.TempDir())
	file := filepath.Join(dir, "settings.yml")
	settings := "servers: {web1: }\napplications:\n  db:\n    server: web1\n    image: postgres\n    env: {db_password: {secret: db_password}}\n"
	if err := os.WriteFile(file, []byte(settings), 0o600); err != nil {
		t.Fatal(err)
	}
	value := secretText(t, "pw")
	recipients := filepath.Join(dir, "recipients")
	if err := os.WriteFile(recipients, []byte("# the admin\n"+other+"\n\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := secretEncrypt(t, value+"\n", "db_password", "--recipient", recipient, "--recipients-file", recipients, "-c", file)
	if code != exitOK {
		t.Fatalf("encrypt: exit %d\n%s", code, stderr)
	}
	target := filepath.Join(dir, "secrets", "db_password.age")
	if want := "wrote " + target + " (2 recipients)\n"; stdout != want {
		t.Errorf("stdout %q, want %q", stdout, want)
	}
	fi, err := os.Stat(target)
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Fatalf("%s: %v %v, want mode 0644", target, fi, err)
	}
	enc, _ := os.ReadFile(target)
	if !bytes.HasPrefix(enc, []byte("age-encryption.org/v1\n")) || bytes.Contains(enc, []byte(value)) {
		t.Errorf("%s is not an age file, or holds the value", target)
	}
	left, _ := filepath.Glob(filepath.Join(dir, "secrets", ".*.tmp"))
	if len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}

	render := func(args ...string) (int, map[string]any, string) {
		var out, errOut bytes.Buffer
		code := run(t.Context(), append([]string{"render", "-c", file, "--json"}, args...), &out, &errOut)
		var doc map[string]any
		if code == exitOK {
			if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
				t.Fatal(err)
			}
		}
		return code, doc, out.String() + errOut.String()
	}
	code, doc, shown := render("--age-identity", keyFile, "--show-secrets")
	if code != exitOK {
		t.Fatalf("render: exit %d\n%s", code, shown)
	}
	equalJSON(t, "env", at(doc, "web1", "containers", "bee2-app-db", "Env"), `["DB_PASSWORD=`+value+`"]`)

	t.Setenv(ageIdentityEnv, keyFile)
	code, doc, shown = render()
	if code != exitOK {
		t.Fatalf("render with %s: exit %d\n%s", ageIdentityEnv, code, shown)
	}
	equalJSON(t, "env", at(doc, "web1", "containers", "bee2-app-db", "Env"), `["DB_PASSWORD=(secret)"]`)
	if strings.Contains(shown, value) || strings.Contains(stdout+stderr, value) {
		t.Errorf("the value shows:\n%s%s%s", stdout, stderr, shown)
	}

	t.Setenv(ageIdentityEnv, "")
	code, _, shown = render()
	if code == exitOK || !strings.Contains(shown, "secrets/db_password.age is encrypted with age: bee2d needs an identity that decrypts it (--age-identity FILE)") {
		t.Errorf("render without an identity: exit %d\n%s", code, shown)
	}
	code, _, shown = render("--age-identity", filepath.Join(dir, "gone.key"))
	if code == exitOK || !strings.Contains(shown, "age identity "+filepath.Join(dir, "gone.key")+": no such file or directory") {
		t.Errorf("render with a missing identity file: exit %d\n%s", code, shown)
	}
}

// What `secret encrypt` refuses, each with its reason and without writing anything.
func TestSecretEncryptRefuses(t *testing.T) {
	dir := t.TempDir()
	recipient, _ := newAgeKeyFile(t, t.TempDir())
	if err := os.WriteFile(filepath.Join(dir, "taken.age"), []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		args  []string
		value string
		want  string
	}{
		{"overwrite", []string{"taken", "--recipient", recipient, "--dir", dir}, "v",
			"bee2d secret encrypt: " + filepath.Join(dir, "taken.age") + " exists; --force replaces it\n"},
		{"bad name", []string{"../x", "--recipient", recipient, "--dir", dir}, "v",
			`bee2d secret encrypt: invalid secret name "../x": a name must match [a-zA-Z0-9][a-zA-Z0-9_.-]*` + "\n"},
		{"dot name", []string{".hash-key", "--recipient", recipient, "--dir", dir}, "v",
			`bee2d secret encrypt: invalid secret name ".hash-key": a name must match [a-zA-Z0-9][a-zA-Z0-9_.-]*` + "\n"},
		{"age name", []string{"pw.age", "--recipient", recipient, "--dir", dir}, "v",
			"bee2d secret encrypt: give the name the settings use, without .age: {secret: pw}\n"},
		{"no recipient", []string{"pw", "--dir", dir}, "v",
			"bee2d secret encrypt: no recipient: give --recipient or --recipients-file\n"},
		{"bad recipient", []string{"pw", "--recipient", "AGE-SECRET-KEY-1QQQ", "--dir", dir}, "v",
			"bee2d secret encrypt: --recipient: not a recipient: want age1... or an SSH public key (ssh-ed25519 ..., ssh-rsa ...)\n"},
		{"no place", []string{"pw", "--recipient", recipient}, "v",
			"bee2d secret encrypt: give -c settings.yml or --dir DIR, one of them\n"},
		{"two names", []string{"pw", "other", "--recipient", recipient, "--dir", dir}, "v",
			"bee2d secret encrypt: want one NAME, got 2\n"},
		{"nul", []string{"pw", "--recipient", recipient, "--dir", dir}, "a\x00b",
			"bee2d secret encrypt: the value holds a NUL byte, which an environment cannot\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := secretEncrypt(t, tc.value, tc.args...)
			if code != exitError || stdout != "" || stderr != tc.want {
				t.Errorf("exit %d, stdout %q, stderr:\n%s\nwant:\n%s", code, stdout, stderr, tc.want)
			}
		})
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("files written: %v", entries)
	}
	if data, _ := os.ReadFile(filepath.Join(dir, "taken.age")); string(data) != "old" {
		t.Errorf("taken.age replaced")
	}

	t.Run("force", func(t *testing.T) {
		code, _, stderr := secretEncrypt(t, "new", "taken", "--recipient", recipient, "--dir", dir, "--force")
		if code != exitOK {
			t.Fatalf("exit %d\n%s", code, stderr)
		}
		if data, _ := os.ReadFile(filepath.Join(dir, "taken.age")); !bytes.HasPrefix(data, []byte("age-encryption.org/")) {
			t.Errorf("--force did not replace taken.age")
		}
	})
	t.Run("plain one beside", func(t *testing.T) {
		if err := os.WriteFile(filepath.Join(dir, "both"), []byte("plain"), 0o600); err != nil {
			t.Fatal(err)
		}
		code, _, stderr := secretEncrypt(t, "v", "both", "--recipient", recipient, "--dir", dir)
		if code != exitOK || !strings.Contains(stderr, "note: "+filepath.Join(dir, "both")+" exists too") {
			t.Errorf("exit %d, stderr %q", code, stderr)
		}
	})
}
