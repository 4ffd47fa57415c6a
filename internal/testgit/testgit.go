// Package testgit gives tests real git repositories: a bare remote with a work clone that commits (signed or
// not) and pushes, served over git's smart HTTP (git http-backend) on loopback, and SSH signing keys.
package testgit

import (
	"errors"
	"net"
	"net/http"
	"net/http/cgi"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/bee2d/bee2d/internal/testdocker"
)

// Isolate keeps the user's and the system's git configuration out of the test and names the author.
func Isolate(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		testdocker.Need(t, "git not found (apt-get install git)")
	}
	global := filepath.Join(t.TempDir(), "gitconfig")
	if err := os.WriteFile(global, []byte("[init]\n\tdefaultBranch = main\n[protocol \"file\"]\n\tallow = always\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{
		"GIT_CONFIG_GLOBAL": global, "GIT_CONFIG_NOSYSTEM": "1",
		"GIT_AUTHOR_NAME": "bee2d test", "GIT_AUTHOR_EMAIL": "test@example.org",
		"GIT_COMMITTER_NAME": "bee2d test", "GIT_COMMITTER_EMAIL": "test@example.org",
	} {
		t.Setenv(k, v)
	}
}

// Remote is a bare repository (Dir) and a work clone that commits to Branch and pushes to it.
type Remote struct {
	Dir    string
	Branch string
	work   string
	t      testing.TB
}

// NewRemote makes an empty bare repository under a temporary directory, named name.git, and its clone.
func NewRemote(t testing.TB, root, name string) *Remote {
	t.Helper()
	r := &Remote{Dir: filepath.Join(root, name+".git"), Branch: "main", work: filepath.Join(t.TempDir(), "work"), t: t}
	Git(t, "", "init", "--quiet", "--bare", "--initial-branch=main", r.Dir)
	Git(t, r.Dir, "config", "http.receivepack", "true")
	Git(t, "", "init", "--quiet", "--initial-branch=main", r.work)
	Git(t, r.work, "remote", "add", "origin", r.Dir)
	return r
}

// Option changes a commit.
type Option func(args []string) []string

// SignedSSH signs the commit with the SSH private key file key.
func SignedSSH(key string) Option {
	return func(args []string) []string {
		return append([]string{"-c", "gpg.format=ssh", "-c", "user.signingkey=" + key}, append(args, "-S")...)
	}
}

// SignedGPG signs the commit with the gpg key of fingerprint, from the GNUPGHOME in the environment.
func SignedGPG(fingerprint string) Option {
	return func(args []string) []string {
		return append([]string{"-c", "gpg.format=openpgp", "-c", "user.signingkey=" + fingerprint}, append(args, "-S")...)
	}
}

// Commit writes files (path → content; nil content removes the file), commits them with msg and pushes;
// it returns the commit's hash.
func (r *Remote) Commit(msg string, files map[string][]byte, opts ...Option) string {
	r.t.Helper()
	hash := r.CommitOnly(msg, files, opts...)
	r.Push(false)
	return hash
}

// CommitOnly is Commit without the push: for a force push, or a push to another ref, that follows.
func (r *Remote) CommitOnly(msg string, files map[string][]byte, opts ...Option) string {
	r.t.Helper()
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		full := filepath.Join(r.work, p)
		if files[p] == nil {
			Git(r.t, r.work, "rm", "--quiet", "--", p)
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			r.t.Fatal(err)
		}
		if err := os.WriteFile(full, files[p], 0o644); err != nil {
			r.t.Fatal(err)
		}
		Git(r.t, r.work, "add", "--", p)
	}
	args := []string{"commit", "--quiet", "--allow-empty", "-m", msg}
	for _, o := range opts {
		args = o(args)
	}
	Git(r.t, r.work, args...)
	return r.Head()
}

// Head is the work clone's commit.
func (r *Remote) Head() string {
	r.t.Helper()
	return strings.TrimSpace(Git(r.t, r.work, "rev-parse", "HEAD"))
}

// Reset moves the work clone's branch back to commit (for a force push that follows).
func (r *Remote) Reset(commit string) {
	r.t.Helper()
	Git(r.t, r.work, "reset", "--quiet", "--hard", commit)
}

// Push pushes the branch, with --force when force.
func (r *Remote) Push(force bool) {
	r.t.Helper()
	args := []string{"push", "--quiet", "origin", "HEAD:refs/heads/" + r.Branch}
	if force {
		args = append(args, "--force")
	}
	Git(r.t, r.work, args...)
}

// PushRef pushes the work clone's HEAD to ref as well (refs/pull/1/head, as a forge keeps a pull request).
func (r *Remote) PushRef(ref string) {
	r.t.Helper()
	Git(r.t, r.work, "push", "--quiet", "origin", "HEAD:"+ref)
}

// Git runs git in dir and returns its output, failing the test on an error.
func Git(t testing.TB, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// SSHKey makes an ed25519 key pair without a passphrase at dir/name and returns the private key file and
// the public key line.
func SSHKey(t testing.TB, dir, name string) (private, public string) {
	t.Helper()
	if _, err := exec.LookPath("ssh-keygen"); err != nil {
		testdocker.Need(t, "ssh-keygen not found (apt-get install openssh-client)")
	}
	private = filepath.Join(dir, name)
	out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", private).CombinedOutput()
	if err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	pub, err := os.ReadFile(private + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	return private, strings.TrimSpace(string(pub))
}

// Server serves the bare repositories under a directory over git's smart HTTP protocol, through git
// http-backend, on 127.0.0.1. It can be stopped and started again on the same port, as a forge that goes
// down and comes back.
type Server struct {
	// URL is http://127.0.0.1:<port>; a repository is URL + "/" + name + ".git".
	URL string
	// Requests counts the requests served.
	Requests atomic.Int64

	t       testing.TB
	addr    string
	handler http.Handler
	mu      sync.Mutex
	srv     *http.Server
}

// Serve starts a smart HTTP server for the repositories under root.
func Serve(t testing.TB, root string) *Server {
	t.Helper()
	backend := "/usr/lib/git-core/git-http-backend"
	if out, err := exec.Command("git", "--exec-path").Output(); err == nil {
		backend = filepath.Join(strings.TrimSpace(string(out)), "git-http-backend")
	}
	if _, err := os.Stat(backend); err != nil {
		testdocker.Need(t, "git-http-backend not found (apt-get install git)")
	}
	s := &Server{t: t}
	cgiHandler := &cgi.Handler{Path: backend, Root: "/", Env: []string{
		"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1",
		"GIT_CONFIG_GLOBAL=" + os.Getenv("GIT_CONFIG_GLOBAL"), "GIT_CONFIG_NOSYSTEM=1",
	}}
	s.handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.Requests.Add(1)
		cgiHandler.ServeHTTP(w, r)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = ln.Addr().String()
	s.URL = "http://" + s.addr
	s.serve(ln)
	t.Cleanup(s.Stop)
	return s
}

func (s *Server) serve(ln net.Listener) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.srv = &http.Server{Handler: s.handler}
	go s.srv.Serve(ln)
}

// Stop closes the server: fetches fail with a refused connection.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		s.srv.Close()
		s.srv = nil
	}
}

// Start serves again on the same address.
func (s *Server) Start() {
	s.t.Helper()
	ln, err := net.Listen("tcp", s.addr)
	if err != nil && !errors.Is(err, net.ErrClosed) {
		s.t.Fatalf("listen again on %s: %v", s.addr, err)
	}
	s.serve(ln)
}
