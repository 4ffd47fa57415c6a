package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"filippo.io/age"
	"filippo.io/age/agessh"
	"filippo.io/age/armor"
	"go.yaml.in/yaml/v3"
	"golang.org/x/crypto/ssh"
)

// Secrets encrypted with age: a secret file or an env_file may be committed as <name>.age, encrypted to the
// public keys of the hosts that load the settings; bee2d decrypts it with Options.Identities. What is
// decrypted is a Secret like a value read from a plain file.

// AgeExt ends the name of a file encrypted with age.
const AgeExt = ".age"

// ageMagic opens every file in age's binary format; armor.Header the armored (PEM-like) one, also read.
const ageMagic = "age-encryption.org/"

// MaxSecretSize is the largest value a secret file or an env_file may hold, plain or decrypted.
const MaxSecretSize = maxSecretFile

// maxIdentityFile bounds an identity file: a few keys, never more.
const maxIdentityFile = 64 << 10

// ParseIdentities reads an identity file: age identities (AGE-SECRET-KEY-1... lines; # comments and blank
// lines skipped) or an unencrypted SSH private key (ed25519 or RSA). Errors name the file and never quote it.
func ParseIdentities(file string) ([]age.Identity, error) {
	data, err := readLimited(file, maxIdentityFile)
	if err != nil {
		return nil, fmt.Errorf("age identity %s: %v", file, cause(err))
	}
	if bytes.Contains(data, []byte("-----BEGIN")) {
		id, err := agessh.ParseIdentity(data)
		var missing *ssh.PassphraseMissingError
		switch {
		case errors.As(err, &missing):
			return nil, fmt.Errorf("age identity %s: the SSH key is protected by a passphrase, which bee2d cannot ask for; "+
				"use a key without one, or an age identity (age-keygen)", file)
		case err != nil:
			return nil, fmt.Errorf("age identity %s: %v", file, err)
		}
		return []age.Identity{id}, nil
	}
	ids, err := age.ParseIdentities(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("age identity %s: %v (want AGE-SECRET-KEY-1... lines or an SSH private key)", file, err)
	}
	return ids, nil
}

// ParseRecipient reads one public key to encrypt to: an age recipient (age1...) or an SSH public key as in
// authorized_keys (ssh-ed25519 ..., ssh-rsa ...).
func ParseRecipient(s string) (age.Recipient, error) {
	s = strings.TrimSpace(s)
	switch {
	case strings.HasPrefix(s, "age1pq1"):
		return age.ParseHybridRecipient(s)
	case strings.HasPrefix(s, "age1"):
		return age.ParseX25519Recipient(s)
	case strings.HasPrefix(s, "ssh-"):
		return agessh.ParseRecipient(s)
	}
	// It may be a private key given by mistake: not quoted.
	return nil, errors.New("not a recipient: want age1... or an SSH public key (ssh-ed25519 ..., ssh-rsa ...)")
}

// EncryptSecret writes value encrypted to recipients in age's binary format: the content of a <name>.age
// secret file.
func EncryptSecret(w io.Writer, value []byte, recipients []age.Recipient) error {
	if len(recipients) == 0 {
		return errors.New("no recipient to encrypt to")
	}
	enc, err := age.Encrypt(w, recipients...)
	if err != nil {
		return err
	}
	if _, err := enc.Write(value); err != nil {
		return err
	}
	return enc.Close()
}

// SecretsDirOf returns the secrets directory of a settings file, absolute: docker.secrets_dir relative to
// the file, else secrets/ beside it. It decodes only that key, so settings that do not validate still tell.
func SecretsDirOf(file string) (string, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	var doc struct {
		Docker struct {
			SecretsDir string `yaml:"secrets_dir"`
		} `yaml:"docker"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return "", fmt.Errorf("%s: %v", file, err)
	}
	dir, err := filepath.Abs(filepath.Dir(file))
	if err != nil {
		return "", err
	}
	s := &Settings{Dir: dir}
	if p := doc.Docker.SecretsDir; p != "" {
		return filepath.Clean(s.ResolvePath(p)), nil
	}
	return filepath.Join(dir, DefaultSecretsDir), nil
}

// maxAgeFile bounds an encrypted file: a plaintext of maxSecretFile bytes, age's 16 bytes per 64 KiB chunk,
// and room for a header with many recipients.
const maxAgeFile = maxSecretFile + (maxSecretFile>>16+1)*16 + 64<<10

var (
	// errNoIdentity is a .age file read without any identity given.
	errNoIdentity = errors.New("no age identity")
	errNotAge     = errors.New("not an age file")
)

// decryptFile reads an age file and returns its plaintext, bounded as a plain secret file is.
func (d *decoder) decryptFile(file string) ([]byte, error) {
	data, err := readLimited(file, maxAgeFile)
	if err != nil {
		return nil, err
	}
	var src io.Reader = bytes.NewReader(data)
	switch {
	case bytes.HasPrefix(data, []byte(armor.Header)):
		src = armor.NewReader(src)
	case !bytes.HasPrefix(data, []byte(ageMagic)):
		// age's error would quote the first line, which may be a value put there unencrypted.
		return nil, errNotAge
	}
	if len(d.opt.Identities) == 0 {
		return nil, errNoIdentity
	}
	r, err := age.Decrypt(src, d.opt.Identities...)
	if err != nil {
		return nil, err
	}
	plain, err := io.ReadAll(io.LimitReader(r, maxSecretFile+1))
	if err != nil {
		return nil, err
	}
	if len(plain) > maxSecretFile {
		return nil, errTooLarge
	}
	return plain, nil
}

// ageProblem says why an encrypted file could not be read, naming it. age's own errors speak of keys and
// headers, never of the plaintext.
func ageProblem(s *Settings, file string, err error) string {
	show := showPath(s, file)
	var nomatch *age.NoIdentityMatchError
	switch {
	case errors.Is(err, errNoIdentity):
		return show + " is encrypted with age: bee2d needs an identity that decrypts it (--age-identity FILE)"
	case errors.As(err, &nomatch):
		return show + ": " + err.Error() + " (the age identities given do not decrypt it; was it encrypted to this host's key?)"
	case errors.Is(err, errNotAge):
		return show + " is not an age file (bee2d secret encrypt writes them)"
	case errors.Is(err, errTooLarge):
		return show + " decrypts to more than " + fmt.Sprint(maxSecretFile) + " bytes"
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, fs.ErrPermission), errors.Is(err, errNotRegular):
		return fileProblem(s, file, err)
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fileProblem(s, file, err)
	}
	return show + ": cannot decrypt: " + err.Error()
}

// readSecretFile reads the file of a secret or an env_file, or its encrypted form: file when it exists,
// else file.age, decrypted. It returns the file read, an Input. For a {secret: name} (bothIsProblem), both
// forms present is a problem: which one is meant? An env_file names its file, so the plain one is read.
func (d *decoder) readSecretFile(s *Settings, file string, bothIsProblem bool) (read string, data []byte, problem string) {
	data, err := readSmall(file)
	plain := !errors.Is(err, fs.ErrNotExist)
	if plain && !bothIsProblem {
		if err != nil {
			return file, nil, fileProblem(s, file, err)
		}
		return file, data, ""
	}
	enc := file + AgeExt
	if _, serr := os.Lstat(enc); serr != nil {
		if err != nil {
			return file, nil, fileProblem(s, file, err)
		}
		return file, data, ""
	}
	if plain {
		return file, nil, fmt.Sprintf("both %s and %s exist; remove the one not meant", showPath(s, file), showPath(s, enc))
	}
	return d.readAgeFile(s, enc)
}

// readAgeFile decrypts an age file.
func (d *decoder) readAgeFile(s *Settings, file string) (read string, data []byte, problem string) {
	data, err := d.decryptFile(file)
	if err != nil {
		return file, nil, ageProblem(s, file, err)
	}
	return file, data, ""
}
