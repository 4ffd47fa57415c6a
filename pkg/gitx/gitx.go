// Package gitx runs the user's git command for bee2d: heads of remotes, clones for image builds, and the
// mirror the settings are followed from. It is the only package that runs git, so that every call gets the
// same guards: no prompts, no command-running transports, no repository hooks, and no credentials in errors.
package gitx

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/bee2d/bee2d/pkg/config"
)

// Timeouts for talking to a remote: asking for a branch head is quick; a clone may be large.
const (
	HeadTimeout  = time.Minute
	CloneTimeout = 10 * time.Minute
)

// Head asks the remote which commit branch points to (HEAD when branch is empty), without cloning.
func Head(ctx context.Context, url, branch string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, HeadTimeout)
	defer cancel()
	ref := "HEAD"
	if branch != "" {
		ref = "refs/heads/" + branch
	}
	out, err := git(ctx, "", url, "ls-remote", "--", url, ref)
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(out), "\n") {
		commit, name, ok := strings.Cut(line, "\t")
		if ok && name == ref && len(commit) >= 40 {
			return commit, nil
		}
	}
	if branch != "" {
		return "", fmt.Errorf("git %s: no branch %q", config.RedactURL(url), branch)
	}
	return "", fmt.Errorf("git %s: the remote has no HEAD", config.RedactURL(url))
}

// Heads is Head bound to ctx, in the form the planner's sources take (reconcile.Sources.Head).
func Heads(ctx context.Context) func(url, branch string) (string, error) {
	return func(url, branch string) (string, error) {
		return Head(ctx, url, branch)
	}
}

// CloneTemp makes a shallow clone of branch into a new temporary directory, for the executor's builds from
// git. It returns the clone's directory, the commit checked out, and cleanup, which removes the clone; on an
// error nothing is left behind.
func CloneTemp(ctx context.Context, url, branch string) (dir, commit string, cleanup func(), err error) {
	tmp, err := os.MkdirTemp("", "bee2d-git-")
	if err != nil {
		return "", "", nil, err
	}
	cleanup = func() { os.RemoveAll(tmp) }
	dir = filepath.Join(tmp, "src")
	commit, err = Clone(ctx, url, branch, dir)
	if err != nil {
		cleanup()
		return "", "", nil, err
	}
	return dir, commit, cleanup, nil
}

// Clone makes a shallow clone of branch (the default branch when empty) into dir, which must not exist,
// and returns the commit checked out.
func Clone(ctx context.Context, url, branch, dir string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, CloneTimeout)
	defer cancel()
	args := []string{"clone", "--quiet", "--depth", "1", "--no-tags", "--single-branch"}
	if branch != "" {
		args = append(args, "--branch", branch)
	}
	args = append(args, "--", url, dir)
	if _, err := git(ctx, "", url, args...); err != nil {
		return "", err
	}
	out, err := git(ctx, dir, url, "rev-parse", "HEAD")
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(out)), nil
}

// git runs one git command. Nothing may prompt (a daemon has no terminal), transports that run commands
// are off, and the URL's credentials are taken out of any error.
func git(ctx context.Context, dir, url string, args ...string) ([]byte, error) {
	full := append([]string{"-c", "protocol.ext.allow=never", "-c", "protocol.fd.allow=never"}, args...)
	cmd := exec.CommandContext(ctx, "git", full...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "GIT_ASKPASS=/bin/false", "SSH_ASKPASS=/bin/false",
		"GIT_SSH_COMMAND="+sshCommand())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		msg = strings.ReplaceAll(msg, url, config.RedactURL(url))
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			msg = "timed out"
		}
		if msg == "" {
			msg = err.Error()
		}
		return nil, fmt.Errorf("git %s %s: %s", args[0], config.RedactURL(url), msg)
	}
	return out, nil
}

// sshCommand keeps the user's GIT_SSH_COMMAND, else runs ssh in batch mode so that a host key or
// passphrase question fails instead of waiting for an answer that never comes.
func sshCommand() string {
	if c := os.Getenv("GIT_SSH_COMMAND"); c != "" {
		return c
	}
	return "ssh -o BatchMode=yes"
}
