package config

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"filippo.io/age"
)

// Options change how settings are loaded; the zero value is how a settings file on the admin box loads.
type Options struct {
	// Identities decrypt the .age secret files and env_files (age X25519 identities, SSH ed25519 and RSA
	// private keys; see ParseIdentities).
	Identities []age.Identity
	// Root, when set, is a checked-out repository the settings file lies in. The relative paths of the
	// settings (dockerfiles, build_dir, env_file, a relative secrets_dir and the secrets in it, the
	// conf/docker/<server>/ defaults) must then stay inside it, also after symbolic links, and may not be
	// absolute: a commit must not make bee2d read the host's files into containers. docker.secrets_dir
	// written absolute, the servers' TLS and SSH files and the provisioner's files are the host's own and
	// may point anywhere.
	Root string
	// KeyDir, when set, holds what bee2d makes for the settings instead of the secrets directory: the hash
	// key and the database passwords of the plain file store. A checkout is replaced at each commit, so what
	// bee2d makes must outlive it. Secrets named in the settings are still read from the secrets directory.
	KeyDir string
}

// Load reads, decodes and validates the settings file at path. Problems in the file come back as an ErrorList
// holding all of them, each placed file:line:col with its key path.
func Load(path string) (*Settings, error) {
	return LoadWith(path, Options{})
}

// LoadWith is Load with options.
func LoadWith(path string, opt Options) (*Settings, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseWith(path, data, opt)
}

// Parse decodes and validates settings read from file; file is used in messages and, made absolute, as the
// directory relative paths start from. On any problem it returns nil and an ErrorList.
func Parse(file string, data []byte) (*Settings, error) {
	return ParseWith(file, data, Options{})
}

// ParseWith is Parse with options.
func ParseWith(file string, data []byte, opt Options) (*Settings, error) {
	dir, err := filepath.Abs(filepath.Dir(file))
	if err != nil {
		return nil, err
	}
	if opt.Root != "" {
		if opt.Root, err = realPath(opt.Root); err != nil {
			return nil, fmt.Errorf("repository checkout: %w", err)
		}
	}
	if opt.KeyDir != "" {
		if opt.KeyDir, err = filepath.Abs(opt.KeyDir); err != nil {
			return nil, err
		}
	}
	d := &decoder{file: file, opt: opt}
	if root := d.document(data); root != nil {
		s := d.settings(root)
		s.File, s.Dir, s.keyDir = file, dir, opt.KeyDir
		if d.exhausted != nil {
			// What was left undecoded would only cause confusing follow-on errors.
			return nil, ErrorList{d.exhausted}
		}
		d.validate(s)
		if len(d.errs) == 0 {
			return s, nil
		}
	}
	d.errs.sort()
	// A merged anchor is decoded once per use; report each of its problems once.
	d.errs = slices.CompactFunc(d.errs, func(a, b *Error) bool { return *a == *b })
	return nil, d.errs
}

// ResolvePath returns p relative to the settings file's directory, unless it is absolute: paths in the settings
// (TLS files, storage_dir) are written relative to the file.
func (s *Settings) ResolvePath(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(s.Dir, p)
}

// BuildContext returns the directory an application or job with build_dir is built from.
func (s *Settings) BuildContext(svc *Service) string {
	if svc.BuildDir == "" {
		return ""
	}
	return filepath.Join(s.Docker.Dockerfiles, svc.BuildDir)
}
