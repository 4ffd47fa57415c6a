package config

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"go.yaml.in/yaml/v3"
)

// Secret holds a value read from a secret file or an env_file. It prints as "(secret)" in every format
// (%v, %+v, %#v, JSON, zap fields), so a value cannot reach a log, a plan or an error by accident; Reveal
// is for the container's environment only.
type Secret struct{ value string }

const secretMark = "(secret)"

func (Secret) String() string               { return secretMark }
func (Secret) GoString() string             { return secretMark }
func (Secret) MarshalText() ([]byte, error) { return []byte(secretMark), nil }
func (s Secret) Reveal() string             { return s.value }
func (s Secret) Format(f fmt.State, _ rune) { io.WriteString(f, secretMark) }
func (Secret) MarshalYAML() (any, error)    { return secretMark, nil }

// SecretSource says where a secret env value comes from.
type SecretSource struct {
	// Name is the secret's name in {secret: name}; empty for an env_file entry.
	Name string
	// File is the file it was read from; Line its line in an env_file.
	File  string
	Line  int
	Value Secret
}

// DefaultSecretsDir is where {secret: name} is looked up when docker.secrets_dir is not set: beside the
// settings file.
const DefaultSecretsDir = "secrets"

// HashKeyName is the file in the secrets directory that holds the key of the keyed hashes bee2d writes in
// container labels for secret values. It starts with a dot, which no secret name can.
const HashKeyName = ".hash-key"

// maxSecretFile bounds a secret file or an env_file: an environment is no place for more.
const maxSecretFile = 1 << 20

// Input is a file the settings were made from besides the settings file itself: a secret, an env_file, the
// hash key. Sum covers its content and mode, so a reload notices a changed secret and a fixed permission.
type Input struct {
	Path string
	Sum  string
}

// Warning is a problem that does not stop the settings from loading, such as a secret readable by others.
type Warning struct {
	File string
	Msg  string
}

func (w Warning) String() string { return w.File + ": " + w.Msg }

// HashKey is the key for hashing secret env values in labels; nil when no value is secret.
func (s *Settings) HashKey() []byte { return s.hashKey }

// InputsChanged tells whether any input file differs from when the settings were loaded (content, mode, or
// existence): the daemon then loads the settings again although the settings file did not change.
func (s *Settings) InputsChanged() bool {
	for _, in := range s.Inputs {
		if sum, _ := fingerprint(in.Path); sum != in.Sum {
			return true
		}
	}
	return false
}

// WatchDirs are the directories whose entries the settings depend on, besides the settings file's own: the
// secrets directory and each env_file's directory.
func (s *Settings) WatchDirs() []string {
	var out []string
	seen := map[string]bool{filepath.Clean(s.Dir): true}
	add := func(dir string) {
		if !seen[dir] {
			seen[dir] = true
			out = append(out, dir)
		}
	}
	if s.hashKey != nil {
		add(filepath.Clean(s.Docker.SecretsDir))
	}
	for _, in := range s.Inputs {
		add(filepath.Dir(in.Path))
	}
	return out
}

func fingerprint(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	fmt.Fprintf(h, "%o\x00", fi.Mode())
	h.Write(data)
	return hex.EncodeToString(h.Sum(nil)), nil
}

// secretUse is one {secret: name} env value, resolved once the secrets directory is known.
type secretUse struct {
	name string
	src  *SecretSource // shared with the EnvValue, which is copied around
	node *yaml.Node
	path string
}

// secretRef decodes {secret: name}. It reports whether n is such a mapping.
func (d *decoder) secretRef(n *yaml.Node, path string, v *EnvValue, m *svcMeta) bool {
	if n.Kind != yaml.MappingNode || len(n.Content) != 2 || deref(n.Content[0]).Value != "secret" {
		return false
	}
	val := deref(n.Content[1])
	sp := joinPath(path, "secret")
	if val.Kind != yaml.ScalarNode || val.ShortTag() != "!!str" {
		d.errorf(val, sp, "secret must name a file of the secrets directory, got %s", describe(val))
		return true
	}
	if !ValidName(val.Value) {
		// The name is a file name in the secrets directory: no path, no dot file (the hash key is one).
		d.errorf(val, sp, "invalid secret name %q: %s", val.Value, nameRule)
		return true
	}
	v.Scalar, v.Tag = true, "!!str"
	v.Secret = &SecretSource{Name: val.Value}
	m.secrets = append(m.secrets, secretUse{name: val.Value, src: v.Secret, node: val, path: sp})
	return true
}

// loadSecrets reads the secrets and env_files the services name, then the hash key if any value is secret.
// It runs after the rest of validation so that each service's env is complete.
func (d *decoder) loadSecrets(s *Settings) {
	d.resolveSecretsDir(s)
	checkEach, dirOK := d.secretsEach, d.secretsDirOK
	first := d.firstSecret // the first secret reference, where a hash key problem is reported
	seen := map[string]bool{}
	// note makes file an input; want is the file the settings name when file is its encrypted form.
	note := func(file, want string) {
		if seen[file] {
			return
		}
		seen[file] = true
		if sum, err := fingerprint(file); err == nil {
			s.Inputs = append(s.Inputs, Input{Path: file, Sum: sum})
		}
		if file != want && !seen[want] {
			// The plain file appearing beside its encrypted form is a change.
			seen[want] = true
			s.Inputs = append(s.Inputs, Input{Path: want})
		}
		if !strings.HasSuffix(file, AgeExt) {
			// An encrypted file is meant to be committed, readable by anyone.
			d.checkPrivate(s, file)
		}
	}
	writtenDir := DefaultSecretsDir
	if d.secretsDirNode != nil {
		writtenDir = d.secretsDir
	}
	for _, m := range d.svcs {
		for i := range m.secrets {
			u := &m.secrets[i]
			if first == nil {
				first = u.node
			}
			if !dirOK {
				continue
			}
			file := filepath.Join(s.Docker.SecretsDir, u.name)
			if checkEach {
				what, written := fmt.Sprintf("secret %q", u.name), filepath.Join(writtenDir, u.name)
				if !d.checkRoot(u.node, u.path, what, written, file) || !d.checkRoot(u.node, u.path, what, written+AgeExt, file+AgeExt) {
					continue
				}
			}
			read, data, problem := d.readSecretFile(s, file, true)
			if problem != "" {
				d.errorf(u.node, u.path, "secret %q: %s", u.name, problem)
				continue
			}
			if strings.HasSuffix(u.name, AgeExt) && bytes.HasPrefix(data, []byte(ageMagic)) {
				d.errorf(u.node, u.path, "secret %q: %s is encrypted with age; write {secret: %s}, which decrypts it",
					u.name, showPath(s, file), strings.TrimSuffix(u.name, AgeExt))
				continue
			}
			data = bytes.TrimSuffix(data, []byte("\n"))
			data = bytes.TrimSuffix(data, []byte("\r"))
			if bytes.IndexByte(data, 0) >= 0 {
				d.errorf(u.node, u.path, "secret %q: %s holds a NUL byte, which an environment cannot", u.name, showPath(s, read))
				continue
			}
			u.src.File = read
			u.src.Value = Secret{string(data)}
			note(read, file)
		}
		for _, ef := range m.envFiles {
			if first == nil {
				first = ef.node
			}
			file := s.ResolvePath(ef.val)
			if !d.checkRoot(ef.node, ef.path, "env_file", ef.val, file) ||
				!strings.HasSuffix(file, AgeExt) && !d.checkRoot(ef.node, ef.path, "env_file", ef.val+AgeExt, file+AgeExt) {
				continue
			}
			if read, ok := d.envFile(s, m, ef, file); ok {
				note(read, file)
			}
		}
	}
	if first == nil || len(d.errs) > 0 {
		// No secret, or settings that will not be used: no key is made for them.
		return
	}
	key, file, made, err := loadHashKey(s.madeDir())
	if err != nil {
		d.errorf(first, "", "%v", err)
		return
	}
	s.hashKey = key
	if made {
		s.HashKeyMade = showPath(s, file)
	}
	note(file, file)
}

// madeDir is where bee2d keeps the files it makes for the settings: Options.KeyDir, else the secrets
// directory.
func (s *Settings) madeDir() string {
	if s.keyDir != "" {
		return s.keyDir
	}
	return s.Docker.SecretsDir
}

// resolveSecretsDir sets Docker.SecretsDir: docker.secrets_dir, else secrets/ beside the settings file.
func (d *decoder) resolveSecretsDir(s *Settings) {
	dir := s.ResolvePath(DefaultSecretsDir)
	if d.secretsDirNode != nil {
		dir = s.ResolvePath(d.secretsDir)
	}
	s.Docker.SecretsDir = filepath.Clean(dir)
}

// envFile reads one env_file into the service's env, after its env entries. Problems are placed at the
// env_file reference and name the env_file's line; they never quote a line, which may hold a secret.
// An env_file ending in .age is decrypted; one that does not exist is read from its .age form when that
// exists. It returns the file read.
func (d *decoder) envFile(s *Settings, m *svcMeta, ef strItem, file string) (string, bool) {
	var data []byte
	var problem string
	if strings.HasSuffix(file, AgeExt) {
		file, data, problem = d.readAgeFile(s, file)
	} else {
		file, data, problem = d.readSecretFile(s, file, false)
	}
	if problem != "" {
		d.errorf(ef.node, ef.path, "env_file: %s", problem)
		return file, false
	}
	show := showPath(s, file)
	vars, errs := parseDotenv(data)
	for _, e := range errs {
		d.errorf(ef.node, ef.path, "%s:%d: %s", show, e.line, e.msg)
	}
	taken := map[string]Pos{}
	for _, e := range m.svc.Env {
		taken[strings.ToUpper(e.Key)] = e.Pos
	}
	for _, v := range vars {
		u := strings.ToUpper(v.key)
		if p, dup := taken[u]; dup {
			d.errorf(ef.node, ef.path, "%s:%d: %s is also set at line %d of the settings or an earlier env_file; set it in one place", show, v.line, u, p.Line)
			continue
		}
		taken[u] = Pos{Line: v.line, Col: 1}
		m.svc.Env = append(m.svc.Env, EnvVar{Key: v.key, Pos: pos(ef.node), Value: EnvValue{
			Scalar: true, Tag: "!!str", Pos: pos(ef.node),
			Secret: &SecretSource{File: file, Line: v.line, Value: Secret{v.value}},
		}})
	}
	return file, len(errs) == 0
}

// checkKeyFiles warns about the settings file and the private keys it names (TLS, SSH) when they are
// readable by their group or others; Bee2's default TLS files of a server count when they exist.
func (d *decoder) checkKeyFiles(s *Settings) {
	if fi, err := os.Stat(s.File); err == nil && fi.Mode().IsRegular() {
		d.checkPrivate(s, s.File)
	}
	for _, srv := range s.Servers {
		switch c := srv.Docker; {
		case c != nil && c.TLS != nil && c.TLS.Key != "":
			d.checkPrivate(s, s.ResolvePath(c.TLS.Key))
		case c != nil && c.SSH != nil && c.SSH.Identity != "":
			d.checkPrivate(s, s.ResolvePath(c.SSH.Identity))
		case c == nil && len(srv.DNS.Private) > 0:
			d.checkPrivate(s, s.ServerTLSFiles(srv.Name).ClientKey)
		}
	}
}

// readSmall reads a regular file of at most maxSecretFile bytes. A FIFO or a device would block or never
// end, so only regular files are read.
func readSmall(path string) ([]byte, error) {
	return readLimited(path, maxSecretFile)
}

// readLimited reads a regular file of at most limit bytes.
func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, errNotRegular
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	switch {
	case int64(len(data)) <= limit:
		return data, nil
	case limit == maxSecretFile:
		return nil, errTooLarge
	}
	return nil, fmt.Errorf("larger than %d bytes", limit)
}

var (
	errNotRegular = errors.New("not a regular file")
	errTooLarge   = fmt.Errorf("larger than %d bytes", maxSecretFile)
)

// fileProblem says why a file could not be read, naming it.
func fileProblem(s *Settings, file string, err error) string {
	show := showPath(s, file)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return show + " does not exist"
	case errors.Is(err, fs.ErrPermission):
		return show + " is not readable (permission denied)"
	case errors.Is(err, errNotRegular), errors.Is(err, errTooLarge):
		return show + " is " + err.Error()
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return show + ": " + pe.Err.Error()
	}
	return show + ": " + err.Error()
}

// showPath names a file as the user can reach it: relative to the working directory as the settings file
// was given when the file lies beside it, else absolute.
func showPath(s *Settings, p string) string {
	if rel, err := filepath.Rel(s.Dir, p); err == nil && filepath.IsLocal(rel) {
		return filepath.Join(filepath.Dir(s.File), rel)
	}
	return p
}

// checkPrivate warns when a file that holds a secret or a key is readable by its group or by others.
func (d *decoder) checkPrivate(s *Settings, path string) {
	fi, err := os.Stat(path)
	if err != nil {
		return
	}
	if w := privateWarning(showPath(s, path), fi.Mode()); w != nil {
		s.Warnings = append(s.Warnings, *w)
	}
}

func privateWarning(show string, mode fs.FileMode) *Warning {
	var who string
	switch perm := mode.Perm(); {
	case perm&0o044 == 0o044:
		who = "its group and others"
	case perm&0o004 != 0:
		who = "others"
	case perm&0o040 != 0:
		who = "its group"
	default:
		return nil
	}
	return &Warning{File: show, Msg: fmt.Sprintf("readable by %s (mode %04o); chmod 600 %s", who, mode.Perm(), show)}
}

// loadHashKey reads the hash key of a secrets directory, making it (32 random bytes, mode 0600) when there
// is none. Two processes making it at once agree: the file appears by a hard link, which never replaces.
func loadHashKey(dir string) (key []byte, file string, made bool, err error) {
	file = filepath.Join(dir, HashKeyName)
	if key, err := readHashKey(file); !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
		return key, file, false, err
	}
	key, made, err = makeHashKey(dir, file)
	return key, file, made, err
}

func makeHashKey(dir, file string) ([]byte, bool, error) {
	fail := func(err error) ([]byte, bool, error) {
		return nil, false, fmt.Errorf("no hash key %s, and it cannot be made (%v): it keys the hashes of secret values "+
			"in container labels; run bee2d validate once as a user who can write there", file, cause(err))
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fail(err)
	}
	tmp, err := os.CreateTemp(dir, ".hash-key-*.tmp") // mode 0600
	if err != nil {
		return fail(err)
	}
	defer os.Remove(tmp.Name())
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		tmp.Close()
		return nil, false, err
	}
	_, err = tmp.WriteString(hex.EncodeToString(key) + "\n")
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fail(err)
	}
	err = os.Link(tmp.Name(), file)
	if err != nil && !errors.Is(err, fs.ErrExist) {
		return fail(err)
	}
	made := err == nil // else another process made it first: use its key
	key, err = readHashKey(file)
	return key, made && err == nil, err
}

// cause is the operating system's reason in a path error, without the path repeated.
func cause(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func readHashKey(file string) ([]byte, error) {
	data, err := readSmall(file)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return nil, err
		}
		return nil, fmt.Errorf("hash key %s: %v (it must be readable by the user bee2d runs as)", file, cause(err))
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(data)))
	if err != nil || len(key) < 32 {
		return nil, fmt.Errorf("hash key %s is not 64 hex digits; remove it and bee2d makes a new one "+
			"(containers with secret values are then recreated once)", file)
	}
	return key, nil
}
