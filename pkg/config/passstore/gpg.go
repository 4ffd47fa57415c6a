package passstore

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"strings"
)

// GPGStore is a pass(1) store: <Dir>/<folder>/<name>.gpg, each file a password encrypted to Recipient, read
// and written by running the user's own gpg (with its agent, keyring and configuration), as pass does.
type GPGStore struct {
	// Dir is the store's directory (StoreDir).
	Dir string
	// Recipient is the key new passwords are encrypted to: security.pgp_id.
	Recipient string
	// GPG is the gpg binary; empty means "gpg" on PATH.
	GPG string
}

// Get decrypts the password of folder/name, or generates one and keeps it encrypted to Recipient.
func (s GPGStore) Get(folder, name string) (string, bool, error) {
	path, err := entryPath(s.Dir, folder, name, ".gpg")
	if err != nil {
		return "", false, err
	}
	if _, err := os.Stat(path); err == nil {
		v, err := s.decrypt(path)
		return v, false, err
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", false, err
	}
	if s.Recipient == "" {
		return "", false, fmt.Errorf("%s does not exist and no key to encrypt a new password to (security.pgp_id)", path)
	}
	v, err := Generate()
	if err != nil {
		return "", false, err
	}
	existed, err := writeNewWith(path, func(f *os.File) error {
		// Binary output with a trailing newline, as pass insert writes.
		return s.run(f, strings.NewReader(v+"\n"), "--batch", "--yes", "--encrypt", "--recipient", s.Recipient)
	})
	if err != nil {
		return "", false, fmt.Errorf("encrypt a new password to %s for %s: %w", s.Recipient, path, err)
	}
	if existed {
		// Another run made it first: its password is the one kept.
		v, err := s.decrypt(path)
		return v, false, err
	}
	return v, true, nil
}

func (s GPGStore) decrypt(path string) (string, error) {
	var out bytes.Buffer
	if err := s.run(&out, nil, "--batch", "--quiet", "--decrypt", path); err != nil {
		return "", fmt.Errorf("decrypt %s: %w", path, err)
	}
	v := strings.TrimSpace(out.String())
	if v == "" {
		return "", fmt.Errorf("decrypt %s: the password is empty", path)
	}
	return v, nil
}

// run runs gpg with stdout to out; a failure says what gpg wrote to stderr (its end), which never holds the
// plain text.
func (s GPGStore) run(out io.Writer, in io.Reader, args ...string) error {
	bin := s.GPG
	if bin == "" {
		bin = "gpg"
	}
	var stderr bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdin = in
	cmd.Stdout, cmd.Stderr = out, &stderr
	if err := cmd.Run(); err != nil {
		if msg := stderrTail(stderr.String()); msg != "" {
			return fmt.Errorf("%s: %w: %s", bin, err, msg)
		}
		return fmt.Errorf("%s: %w", bin, err)
	}
	return nil
}

// stderrTail keeps the last lines of gpg's messages, joined on one line: the reason is at the end.
func stderrTail(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	lines = lines[max(0, len(lines)-4):]
	for i, l := range lines {
		lines[i] = strings.TrimSpace(l)
	}
	msg := strings.Join(lines, "; ")
	if len(msg) > 600 {
		msg = "..." + msg[len(msg)-600:]
	}
	return msg
}
