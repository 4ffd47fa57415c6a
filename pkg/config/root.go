package config

import (
	"errors"
	"io/fs"
	"path/filepath"
	"syscall"

	"go.yaml.in/yaml/v3"
)

// Settings from a repository checkout (Options.Root) come from whoever can push to the repository. The files
// they name are read into containers' environments and build contexts, so those must stay inside the
// checkout: an absolute path, a "..", or a symbolic link out of it would let a commit read the host's files.

// realPath is p made absolute with its symbolic links followed. For a path that does not exist, the links of
// its longest existing ancestor are followed and the rest appended: where the file would be once made.
func realPath(p string) (string, error) {
	p, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	rest := ""
	for {
		real, err := filepath.EvalSymlinks(p)
		if err == nil {
			return filepath.Join(real, rest), nil
		}
		if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
			return "", err
		}
		parent := filepath.Dir(p)
		if parent == p {
			return filepath.Join(p, rest), nil
		}
		rest = filepath.Join(filepath.Base(p), rest)
		p = parent
	}
}

// rootProblem says what is wrong with a path of the settings under Options.Root: written as in the file,
// resolved to where it is read. "" when there is no root or the path stays inside it.
func (d *decoder) rootProblem(written, resolved string) string {
	if d.opt.Root == "" {
		return ""
	}
	if filepath.IsAbs(written) {
		return written + " is absolute; settings from a repository checkout name files inside it, relative to the settings file"
	}
	real, err := realPath(resolved)
	if err != nil {
		return written + " cannot be resolved in the repository checkout: " + cause(err).Error()
	}
	if rel, err := filepath.Rel(d.opt.Root, real); err != nil || !filepath.IsLocal(rel) {
		return written + " leaves the repository checkout"
	}
	return ""
}

// checkRoot reports, at n, a path that leaves the repository checkout; what names the key (env_file). It
// tells whether the path may be read.
func (d *decoder) checkRoot(n *yaml.Node, path, what, written, resolved string) bool {
	if problem := d.rootProblem(written, resolved); problem != "" {
		d.errorf(n, path, "%s: %s", what, problem)
		return false
	}
	return true
}

// checkRootSecretsDir checks a relative docker.secrets_dir against the repository checkout; one written
// absolute is the host's own directory. It tells whether the secrets in it are to be checked one by one (the
// directory is inside the checkout, where a link could lead out).
func (d *decoder) checkRootSecretsDir(s *Settings) (checkEach, ok bool) {
	if d.opt.Root == "" || (d.secretsDirNode != nil && filepath.IsAbs(d.secretsDir)) {
		return false, true
	}
	if d.secretsDirNode == nil {
		return true, true
	}
	return true, d.checkRoot(d.secretsDirNode, "docker.secrets_dir", "secrets_dir", d.secretsDir, s.ResolvePath(d.secretsDir))
}

// checkRootTLSDefaults checks the conf/docker/<server>/ files of the servers reached with them (no docker
// key, a private name): they lie beside the settings file, so in the checkout.
func (d *decoder) checkRootTLSDefaults(s *Settings) {
	if d.opt.Root == "" {
		return
	}
	for _, srv := range s.Servers {
		if srv.Docker != nil || len(srv.DNS.Private) == 0 {
			continue
		}
		f := s.ServerTLSFiles(srv.Name)
		for _, p := range []string{f.CA, f.ClientCert, f.ClientKey} {
			rel, err := filepath.Rel(s.Dir, p)
			if err != nil {
				rel = p
			}
			if problem := d.rootProblem(rel, p); problem != "" {
				d.errorAt(srv.Pos.Line, srv.Pos.Col, joinPath("servers", srv.Name),
					"the TLS file of its engine %s; give docker.tls with the files' absolute paths to keep them outside", problem)
				break
			}
		}
	}
}
