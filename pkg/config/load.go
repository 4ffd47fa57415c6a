package config

import (
	"os"
	"path/filepath"
	"slices"
)

// Load reads, decodes and validates the settings file at path. Problems in the file come back as an ErrorList
// holding all of them, each placed file:line:col with its key path.
func Load(path string) (*Settings, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// Parse decodes and validates settings read from file; file is used in messages and, made absolute, as the
// directory relative paths start from. On any problem it returns nil and an ErrorList.
func Parse(file string, data []byte) (*Settings, error) {
	dir, err := filepath.Abs(filepath.Dir(file))
	if err != nil {
		return nil, err
	}
	d := &decoder{file: file}
	if root := d.document(data); root != nil {
		s := d.settings(root)
		s.File, s.Dir = file, dir
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
