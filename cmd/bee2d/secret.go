package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"filippo.io/age"

	"github.com/bee2d/bee2d/pkg/config"
)

const secretUsage = `Usage: bee2d secret encrypt NAME --recipient R [--recipient R]... [--recipients-file F]
                           [-c settings.yml | --dir DIR] [--force]

Reads a secret's value from standard input, to its end (one trailing newline is dropped), encrypts it with
age to the recipients and writes it as NAME.age in the secrets directory: docker.secrets_dir of the settings
file, else secrets/ beside it, or DIR. Settings that say {secret: NAME} read it, decrypted with the identity
of --age-identity or $BEE2D_AGE_IDENTITY. The file is mode 0644: it is meant to be committed.

A recipient is an age public key (age1..., from age-keygen) or an SSH public key (ssh-ed25519 ...,
ssh-rsa ...); a recipients file holds one a line, # comments and blank lines allowed. Encrypt to every host
that loads the settings, and to yourself to read it again.

Flags:
`

func cmdSecret(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "encrypt" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			fmt.Fprint(stdout, secretUsage)
			return errHelp
		}
		fmt.Fprintf(stderr, "bee2d secret: want encrypt\n\n%s", secretUsage)
		return errUsage
	}
	var recipients, recipientFiles stringsFlag
	var settings, dir string
	var force bool
	fs := flag.NewFlagSet("secret encrypt", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Var(&recipients, "recipient", "encrypt to this public key: age1... or ssh-ed25519/ssh-rsa ... (repeatable)")
	fs.Var(&recipientFiles, "recipients-file", "encrypt to the public keys in this file, one a line (repeatable)")
	fs.StringVar(&settings, "c", "", "settings file whose secrets directory NAME.age is written to")
	fs.StringVar(&settings, "config", "", "settings file (same as -c)")
	fs.StringVar(&dir, "dir", "", "secrets directory to write NAME.age to, instead of the settings file's")
	fs.BoolVar(&force, "force", false, "replace an existing NAME.age")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), secretUsage)
		fs.PrintDefaults()
	}
	names, err := parseAnyOrder(fs, args[1:])
	if err != nil {
		return err
	}
	fail := func(format string, a ...any) error {
		fmt.Fprintf(stderr, "bee2d secret encrypt: "+format+"\n", a...)
		return errUsage
	}
	switch {
	case len(names) != 1:
		return fail("want one NAME, got %d", len(names))
	case !config.ValidName(names[0]):
		return fail("invalid secret name %q: a name must match [a-zA-Z0-9][a-zA-Z0-9_.-]*", names[0])
	case strings.HasSuffix(names[0], config.AgeExt):
		return fail("give the name the settings use, without %s: {secret: %s}", config.AgeExt, strings.TrimSuffix(names[0], config.AgeExt))
	case (settings == "") == (dir == ""):
		return fail("give -c settings.yml or --dir DIR, one of them")
	case len(recipients) == 0 && len(recipientFiles) == 0:
		return fail("no recipient: give --recipient or --recipients-file")
	}
	name := names[0]
	rs, err := secretRecipients(recipients, recipientFiles)
	if err != nil {
		return fail("%v", err)
	}
	if settings != "" {
		if dir, err = config.SecretsDirOf(settings); err != nil {
			return fail("%v", err)
		}
	}
	target := filepath.Join(dir, name+config.AgeExt)
	if _, err := os.Lstat(target); err == nil && !force {
		return fail("%s exists; --force replaces it", target)
	}

	if f, ok := stdin.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			fmt.Fprintln(stderr, "reading the value from standard input; end it with Ctrl-D")
		}
	}
	value, err := io.ReadAll(io.LimitReader(stdin, config.MaxSecretSize+2))
	if err != nil {
		return fmt.Errorf("read the value: %w", err)
	}
	// As the settings read a plain secret file: one newline, as echo or an editor ends the value, is no part of it.
	value = bytes.TrimSuffix(value, []byte("\n"))
	value = bytes.TrimSuffix(value, []byte("\r"))
	switch {
	case len(value) > config.MaxSecretSize:
		return fail("the value is larger than %d bytes", config.MaxSecretSize)
	case bytes.IndexByte(value, 0) >= 0:
		return fail("the value holds a NUL byte, which an environment cannot")
	}

	var enc bytes.Buffer
	if err := config.EncryptSecret(&enc, value, rs); err != nil {
		return fmt.Errorf("encrypt: %w", err)
	}
	if err := writeNewFile(target, enc.Bytes(), 0o644, force); err != nil {
		if errors.Is(err, os.ErrExist) {
			return fail("%s exists; --force replaces it", target)
		}
		return err
	}
	fmt.Fprintf(stdout, "wrote %s (%s)\n", target, count(len(rs), "recipient"))
	if _, err := os.Lstat(filepath.Join(dir, name)); err == nil {
		fmt.Fprintf(stderr, "note: %s exists too; settings that name %s refuse to load while both do: remove it once %s is in place\n",
			filepath.Join(dir, name), name, target)
	}
	return nil
}

// parseAnyOrder parses flags given before, between and after positional arguments, and returns those.
func parseAnyOrder(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, errHelp
			}
			return nil, errUsage
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// secretRecipients are the recipients of --recipient and those of each --recipients-file.
func secretRecipients(given, files []string) ([]age.Recipient, error) {
	var rs []age.Recipient
	for _, s := range given {
		r, err := config.ParseRecipient(s)
		if err != nil {
			return nil, fmt.Errorf("--recipient: %v", err)
		}
		rs = append(rs, r)
	}
	for _, file := range files {
		f, err := os.Open(file)
		if err != nil {
			return nil, fmt.Errorf("--recipients-file: %v", err)
		}
		sc := bufio.NewScanner(io.LimitReader(f, 1<<20))
		n, before := 0, len(rs)
		for sc.Scan() {
			n++
			line := strings.TrimSpace(sc.Text())
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			r, err := config.ParseRecipient(line)
			if err != nil {
				f.Close()
				return nil, fmt.Errorf("--recipients-file %s:%d: %v", file, n, err)
			}
			rs = append(rs, r)
		}
		err = sc.Err()
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("--recipients-file %s: %v", file, err)
		}
		if len(rs) == before {
			return nil, fmt.Errorf("--recipients-file %s holds no recipient", file)
		}
	}
	return rs, nil
}

// writeNewFile writes data to path through a temporary file in the same directory, synced, so that path
// never holds part of it. Without replace, an existing path is left alone (fs.ErrExist): the file appears by
// a hard link, which never replaces.
func writeNewFile(path string, data []byte, mode os.FileMode, replace bool) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+"-*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Chmod(mode)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if replace {
		err = os.Rename(tmp.Name(), path)
	} else {
		err = os.Link(tmp.Name(), path)
	}
	if err != nil {
		return err
	}
	// The new name lasts once the directory is synced.
	if d, err := os.Open(dir); err == nil {
		err = d.Sync()
		d.Close()
		return err
	}
	return nil
}
