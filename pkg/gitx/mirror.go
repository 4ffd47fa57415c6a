package gitx

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/bee2d/bee2d/pkg/config"
)

// FetchTimeout bounds one fetch into a mirror; the first one fetches the whole history.
const FetchTimeout = CloneTimeout

// headRef is where a mirror keeps the branch it follows.
const headRef = "refs/bee2d/head"

// Mirror is a bare repository holding the history of the branch followed, and the work trees checked out of it.
type Mirror struct {
	dir string
}

// OpenMirror opens the bare repository at dir, making it when missing.
func OpenMirror(dir string) (*Mirror, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	m := &Mirror{dir: dir}
	ctx, cancel := context.WithTimeout(context.Background(), HeadTimeout)
	defer cancel()
	if _, err := os.Stat(filepath.Join(dir, "HEAD")); err == nil {
		if _, err := m.git(ctx, "", "rev-parse", "--git-dir"); err != nil {
			return nil, fmt.Errorf("mirror %s: %w", dir, err)
		}
		return m, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if _, err := git(ctx, "", "", "init", "--quiet", "--bare", "--", dir); err != nil {
		return nil, fmt.Errorf("mirror %s: %w", dir, err)
	}
	return m, nil
}

// Dir is the mirror's directory.
func (m *Mirror) Dir() string { return m.dir }

func (m *Mirror) git(ctx context.Context, url string, args ...string) ([]byte, error) {
	return command{gitDir: m.dir, url: url}.run(ctx, args...)
}

// Fetch fetches the whole history of branch from url and returns the commit it points to. The URL is given
// to git each time and never written into the mirror, as it may hold a token.
func (m *Mirror) Fetch(ctx context.Context, url, branch string) (string, error) {
	if err := CheckURL(url); err != nil {
		return "", err
	}
	if err := CheckBranch(ctx, branch); err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, FetchTimeout)
	defer cancel()
	_, err := m.git(ctx, url, "fetch", "--quiet", "--no-tags", "--prune", "--no-write-fetch-head",
		"--", url, "+refs/heads/"+branch+":"+headRef)
	if err != nil {
		var ge *Error
		if errors.As(err, &ge) && strings.Contains(ge.Msg, "couldn't find remote ref") {
			return "", fmt.Errorf("git %s: no branch %q", config.RedactURL(url), branch)
		}
		return "", err
	}
	out, err := m.git(ctx, "", "rev-parse", "--verify", "--quiet", headRef+"^{commit}")
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(out)), nil
}

// IsAncestor reports whether older is newer or one of its ancestors.
func (m *Mirror) IsAncestor(ctx context.Context, older, newer string) (bool, error) {
	if err := checkHash(older); err != nil {
		return false, err
	}
	if err := checkHash(newer); err != nil {
		return false, err
	}
	_, err := m.git(ctx, "", "merge-base", "--is-ancestor", older, newer)
	var ge *Error
	if errors.As(err, &ge) && ge.Code == 1 {
		return false, nil
	}
	return err == nil, err
}

// Commit is what a log shows of a commit.
type Commit struct {
	// Hash is the full hash; Author is "name <email>".
	Hash, Subject, Author string
	// Time is the commit's committer date.
	Time time.Time
}

// Short is the commit's abbreviated hash, as messages name it.
func (c Commit) Short() string { return Short(c.Hash) }

// Short abbreviates a commit hash to 7 digits, as git shows it.
func Short(hash string) string {
	if len(hash) > 7 {
		return hash[:7]
	}
	return hash
}

// Describe reads the commit hash names.
func (m *Mirror) Describe(ctx context.Context, hash string) (Commit, error) {
	if err := checkHash(hash); err != nil {
		return Commit{}, err
	}
	out, err := m.git(ctx, "", "log", "-1", "--no-walk", "--format=%H%x00%s%x00%an <%ae>%x00%ct", hash+"^{commit}", "--")
	if err != nil {
		return Commit{}, err
	}
	f := strings.Split(strings.TrimSuffix(string(out), "\n"), "\x00")
	if len(f) != 4 {
		return Commit{}, fmt.Errorf("git log %s: unexpected output %q", Short(hash), out)
	}
	sec, err := strconv.ParseInt(f[3], 10, 64)
	if err != nil {
		return Commit{}, fmt.Errorf("git log %s: commit time %q", Short(hash), f[3])
	}
	return Commit{Hash: f[0], Subject: f[1], Author: f[2], Time: time.Unix(sec, 0).UTC()}, nil
}

// Checkout makes a work tree of commit hash at dir, which must not exist. Files keep the modes git records
// and symbolic links stay links; no hook runs.
func (m *Mirror) Checkout(ctx context.Context, hash, dir string) error {
	if err := checkHash(hash); err != nil {
		return err
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if _, err := os.Lstat(dir); err == nil {
		return fmt.Errorf("check out %s: %s exists", Short(hash), dir)
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, CloneTimeout)
	defer cancel()
	// A work tree removed behind git's back would still be registered, and refuse the same path.
	if _, err := m.git(ctx, "", "worktree", "prune"); err != nil {
		return err
	}
	if _, err := m.git(ctx, "", "worktree", "add", "--quiet", "--detach", "--", dir, hash+"^{commit}"); err != nil {
		os.RemoveAll(dir)
		m.git(ctx, "", "worktree", "prune")
		return fmt.Errorf("check out %s: %w", Short(hash), err)
	}
	return nil
}

// RemoveTree removes a work tree Checkout made.
func (m *Mirror) RemoveTree(dir string) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), HeadTimeout)
	defer cancel()
	_, err := m.git(ctx, "", "worktree", "prune")
	return err
}

// checkHash refuses anything but a hexadecimal object name, so that no value reaches git as an option or
// as a revision expression.
func checkHash(h string) error {
	if len(h) < 4 || len(h) > 64 || strings.Trim(h, "0123456789abcdef") != "" {
		return fmt.Errorf("%q is not a commit hash", h)
	}
	return nil
}
