package gitx

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// The ways a commit fails verification; Verify wraps them with the commit and the key.
var (
	ErrUnsigned     = errors.New("is not signed")
	ErrNotAllowed   = errors.New("is signed by a key that is not allowed")
	ErrBadSignature = errors.New("has a bad signature")
	ErrKeyExpired   = errors.New("is signed by an expired key, or its signature has expired")
	ErrKeyRevoked   = errors.New("is signed by a revoked key")
)

// Verifier checks commit signatures against the keys of one file: an SSH allowed signers file (the format
// of git's gpg.ssh.allowedSignersFile) or a GPG public keyring, armored or binary. The keys are copied into
// a directory of the Verifier's own when it is made, so neither later edits of the file nor the user's own
// keyring change which keys are allowed.
type Verifier struct {
	file string
	// home is the GNUPGHOME gpg runs with: the keyring given, or empty for SSH keys, so that a GPG signature
	// is never checked against the user's keyring.
	home string
	// signers is the allowed signers file git reads: a copy of the file, or an empty one for a keyring.
	signers string
	gpg     string
	kind    string
}

// NewVerifier reads the keys of file. Close removes what it made.
func NewVerifier(file string) (*Verifier, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	home, err := os.MkdirTemp("", "bee2d-keys-")
	if err != nil {
		return nil, err
	}
	v := &Verifier{file: file, home: home, signers: filepath.Join(home, "allowed_signers"), gpg: "gpg"}
	if err := v.load(data); err != nil {
		v.Close()
		return nil, fmt.Errorf("keys %s: %w", file, err)
	}
	return v, nil
}

func (v *Verifier) load(data []byte) error {
	// gpg's options for its home: the keys given are the ones trusted, and no key is looked up on the
	// network. An empty common.conf keeps gpg from starting a key box daemon for this home.
	conf := "trust-model always\nno-auto-key-retrieve\nauto-key-locate local\n"
	if err := os.WriteFile(filepath.Join(v.home, "gpg.conf"), []byte(conf), 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(v.home, "common.conf"), nil, 0o600); err != nil {
		return err
	}
	armored := bytes.HasPrefix(bytes.TrimSpace(data), []byte("-----BEGIN PGP PUBLIC KEY BLOCK-----"))
	// A binary OpenPGP packet starts with its tag byte, whose top bit is set; text never does.
	binary := len(data) > 0 && data[0]&0x80 != 0
	if !armored && !binary {
		v.kind = "ssh"
		if err := checkSigners(data); err != nil {
			return err
		}
		return os.WriteFile(v.signers, data, 0o600)
	}
	v.kind = "gpg"
	if err := os.WriteFile(v.signers, nil, 0o600); err != nil {
		return err
	}
	gpg, err := exec.LookPath("gpg")
	if err != nil {
		return errors.New("a GPG keyring needs gpg, which is not installed")
	}
	v.gpg = gpg
	cmd := exec.Command(gpg, "--batch", "--quiet", "--import")
	cmd.Env = append(os.Environ(), "GNUPGHOME="+v.home)
	cmd.Stdin = bytes.NewReader(data)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("gpg --import: %v: %s", err, strings.TrimSpace(string(out)))
	}
	cmd = exec.Command(gpg, "--batch", "--with-colons", "--list-keys")
	cmd.Env = append(os.Environ(), "GNUPGHOME="+v.home)
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("gpg --list-keys: %v", err)
	}
	if !bytes.Contains(out, []byte("\npub:")) && !bytes.HasPrefix(out, []byte("pub:")) {
		return errors.New("the keyring holds no public key")
	}
	return nil
}

// checkSigners makes sure an allowed signers file has at least one entry: "principals [options] key-type key".
func checkSigners(data []byte) error {
	n := 0
	sc := bufio.NewScanner(bytes.NewReader(data))
	for line := 1; sc.Scan(); line++ {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if len(strings.Fields(l)) < 3 {
			return fmt.Errorf("line %d: an allowed signer is \"principals [options] key-type key\"", line)
		}
		n++
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if n == 0 {
		return errors.New("neither an allowed signers file with an entry nor a GPG public keyring")
	}
	return nil
}

// Kind is "ssh" or "gpg": the keys the Verifier holds.
func (v *Verifier) Kind() string { return v.kind }

// File is the file the keys were read from.
func (v *Verifier) File() string { return v.file }

// Close removes the Verifier's copy of the keys.
func (v *Verifier) Close() error {
	if v.kind == "gpg" {
		// Importing may have started an agent for the home; it would outlive it.
		cmd := exec.Command("gpgconf", "--kill", "all")
		cmd.Env = append(os.Environ(), "GNUPGHOME="+v.home)
		cmd.Run()
	}
	return os.RemoveAll(v.home)
}

// Verify checks that commit hash carries a good signature by one of v's keys and returns the signer (the
// principal of an SSH key, the user ID of a GPG key). Its errors wrap ErrUnsigned, ErrNotAllowed,
// ErrBadSignature, ErrKeyExpired or ErrKeyRevoked and name the commit and, when known, the key.
func (m *Mirror) Verify(ctx context.Context, hash string, v *Verifier) (string, error) {
	if err := checkHash(hash); err != nil {
		return "", err
	}
	c := command{gitDir: m.dir, env: []string{"GNUPGHOME=" + v.home},
		config: []string{"gpg.ssh.allowedSignersFile=" + v.signers, "gpg.program=" + v.gpg}}
	out, err := c.run(ctx, "log", "-1", "--no-walk", "--format=%G?%x00%GS%x00%GK%x00%GF", hash+"^{commit}", "--")
	if err != nil {
		return "", err
	}
	f := strings.Split(strings.TrimSuffix(string(out), "\n"), "\x00")
	if len(f) != 4 {
		return "", fmt.Errorf("git log %s: unexpected output %q", Short(hash), out)
	}
	status, signer, key := f[0], f[1], f[3]
	if key == "" {
		key = f[2]
	}
	var why error
	switch status {
	case "G":
		return signer, nil
	case "N":
		return "", fmt.Errorf("commit %s %w", Short(hash), ErrUnsigned)
	case "B":
		why = ErrBadSignature
	case "X", "Y":
		why = ErrKeyExpired
	case "R":
		why = ErrKeyRevoked
	default:
		// U: a good signature by a key outside the allowed signers; E: a key gpg does not hold.
		why = ErrNotAllowed
	}
	who := key
	if signer != "" && key != "" {
		who = signer + " (" + key + ")"
	} else if signer != "" {
		who = signer
	}
	if who == "" {
		return "", fmt.Errorf("commit %s %w", Short(hash), why)
	}
	return "", fmt.Errorf("commit %s %w: %s", Short(hash), why, who)
}
