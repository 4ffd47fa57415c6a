package gitx

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bee2d/bee2d/internal/testgit"
	"github.com/bee2d/bee2d/internal/testgpg"
)

// sshKey makes an ed25519 key without a passphrase and returns its private key file and public key line.
func sshKey(t *testing.T, name string) (string, string) {
	t.Helper()
	return testgit.SSHKey(t, t.TempDir(), name)
}

func writeFile(t *testing.T, data string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// tamper stores in m a copy of commit whose message was changed after it was signed, and returns it.
func tamper(t *testing.T, m *Mirror, commit string) string {
	t.Helper()
	body := run(t, m.Dir(), "cat-file", "commit", commit)
	changed := strings.Replace(body, "\n\n", "\n\nforged ", 1)
	p := writeFile(t, changed+"\n")
	return run(t, m.Dir(), "hash-object", "-t", "commit", "-w", p)
}

// verifyCase is a commit of the test repository and what Verify must say of it.
type verifyCase struct {
	name, commit string
	// err is the error Verify wraps, nil for a good signature; msg a part of its message (or the signer).
	err error
	msg string
}

func checkVerify(t *testing.T, m *Mirror, v *Verifier, cases []verifyCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			signer, err := m.Verify(t.Context(), tc.commit, v)
			if tc.err == nil {
				if err != nil || !strings.Contains(signer, tc.msg) {
					t.Fatalf("Verify = %q, %v; want signer %q", signer, err, tc.msg)
				}
				return
			}
			if !errors.Is(err, tc.err) {
				t.Fatalf("Verify = %q, %v; want %v", signer, err, tc.err)
			}
			if !strings.Contains(err.Error(), Short(tc.commit)) || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not name the commit and %q", err, tc.msg)
			}
		})
	}
}

func TestVerifySSH(t *testing.T) {
	src, unsigned := repo(t)
	allowed, allowedPub := sshKey(t, "allowed")
	other, otherPub := sshKey(t, "other")
	sign := func(key string) []string { return []string{"-c", "gpg.format=ssh", "-c", "user.signingkey=" + key} }
	run(t, src, append(sign(allowed), "commit", "--quiet", "--allow-empty", "-S", "-m", "good")...)
	good := run(t, src, "rev-parse", "HEAD")
	run(t, src, append(sign(other), "commit", "--quiet", "--allow-empty", "-S", "-m", "other")...)
	byOther := run(t, src, "rev-parse", "HEAD")

	m := mirror(t)
	if _, err := m.Fetch(t.Context(), src, "main"); err != nil {
		t.Fatal(err)
	}
	keys := writeFile(t, "# who may change the settings\nops@example.net "+allowedPub+"\n")
	v, err := NewVerifier(keys)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if v.Kind() != "ssh" {
		t.Errorf("kind %s", v.Kind())
	}
	// The file is read once: an entry added later is not allowed.
	if err := os.WriteFile(keys, []byte("ops@example.net "+allowedPub+"\nx@example.net "+otherPub+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	checkVerify(t, m, v, []verifyCase{
		{name: "allowed key", commit: good, msg: "ops@example.net"},
		{name: "unsigned", commit: unsigned, err: ErrUnsigned, msg: "is not signed"},
		{name: "other key", commit: byOther, err: ErrNotAllowed, msg: "SHA256:"},
		{name: "bad signature", commit: tamper(t, m, good), err: ErrBadSignature, msg: "bad signature"},
	})
}

func TestVerifyGPG(t *testing.T) {
	gpg, fpr := testgpg.Home(t)
	src, unsigned := repo(t)
	if out, err := exec.Command(gpg, "--batch", "--passphrase", "", "--quick-gen-key", "other <o@example.org>",
		"future-default", "default", "never").CombinedOutput(); err != nil {
		t.Fatalf("second key: %v\n%s", err, out)
	}
	run(t, src, "-c", "user.signingkey="+fpr, "commit", "--quiet", "--allow-empty", "-S", "-m", "good")
	good := run(t, src, "rev-parse", "HEAD")
	run(t, src, "-c", "user.signingkey=o@example.org", "commit", "--quiet", "--allow-empty", "-S", "-m", "other")
	byOther := run(t, src, "rev-parse", "HEAD")
	ssh, _ := sshKey(t, "ssh")
	run(t, src, "-c", "gpg.format=ssh", "-c", "user.signingkey="+ssh, "commit", "--quiet", "--allow-empty", "-S", "-m", "ssh")
	bySSH := run(t, src, "rev-parse", "HEAD")

	m := mirror(t)
	if _, err := m.Fetch(t.Context(), src, "main"); err != nil {
		t.Fatal(err)
	}
	for _, armor := range []bool{true, false} {
		t.Run(map[bool]string{true: "armored", false: "binary"}[armor], func(t *testing.T) {
			args := []string{"--batch", "--export", fpr}
			if armor {
				args = append([]string{"--armor"}, args...)
			}
			pub, err := exec.Command(gpg, args...).Output()
			if err != nil || len(pub) == 0 {
				t.Fatalf("export: %v", err)
			}
			v, err := NewVerifier(writeFile(t, string(pub)))
			if err != nil {
				t.Fatal(err)
			}
			defer v.Close()
			if v.Kind() != "gpg" {
				t.Errorf("kind %s", v.Kind())
			}
			checkVerify(t, m, v, []verifyCase{
				{name: "allowed key", commit: good, msg: "bee2d test"},
				{name: "unsigned", commit: unsigned, err: ErrUnsigned, msg: "is not signed"},
				// The other key is in the user's keyring, which the Verifier does not consult.
				{name: "other key", commit: byOther, err: ErrNotAllowed, msg: "not allowed"},
				{name: "ssh key", commit: bySSH, err: ErrNotAllowed, msg: "SHA256:"},
				{name: "bad signature", commit: tamper(t, m, good), err: ErrBadSignature, msg: "bad signature"},
			})
		})
	}
}

// A GPG signature is not checked against the user's keyring when the allowed keys are SSH keys.
func TestVerifySSHRefusesGPG(t *testing.T) {
	_, fpr := testgpg.Home(t)
	src, _ := repo(t)
	run(t, src, "-c", "user.signingkey="+fpr, "commit", "--quiet", "--allow-empty", "-S", "-m", "gpg")
	head := run(t, src, "rev-parse", "HEAD")
	m := mirror(t)
	if _, err := m.Fetch(t.Context(), src, "main"); err != nil {
		t.Fatal(err)
	}
	_, pub := sshKey(t, "k")
	v, err := NewVerifier(writeFile(t, "ops@example.net "+pub+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if _, err := m.Verify(t.Context(), head, v); !errors.Is(err, ErrNotAllowed) {
		t.Errorf("Verify = %v, want %v", err, ErrNotAllowed)
	}
}

func TestNewVerifierRefuses(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	for name, data := range map[string]string{
		"empty":         "",
		"comments only": "# nobody\n\n",
		"one field":     "ops@example.net\n",
		"bad armor":     "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nnonsense\n-----END PGP PUBLIC KEY BLOCK-----\n",
	} {
		t.Run(name, func(t *testing.T) {
			v, err := NewVerifier(writeFile(t, data))
			if err == nil {
				v.Close()
				t.Fatal("accepted")
			}
		})
	}
	if _, err := NewVerifier(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("a missing file accepted")
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("refused keys left %d entries in TMPDIR", len(left))
	}
}
