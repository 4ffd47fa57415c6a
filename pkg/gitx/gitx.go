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

// git runs one git command in dir (the current directory when empty) about the remote url.
func git(ctx context.Context, dir, url string, args ...string) ([]byte, error) {
	return command{dir: dir, url: url}.run(ctx, args...)
}

// command is how one git command runs: where, against which repository, about which remote.
type command struct {
	// dir is the working directory; gitDir, when set, the repository (so that git never searches for one).
	dir, gitDir string
	// url is the remote the command talks to, named (redacted) in errors.
	url string
	// env is added to the environment; config adds -c settings.
	env, config []string
}

// run runs git with args. Nothing may prompt (a daemon has no terminal), transports that run commands are
// off, no hook of a repository runs, and the URL's credentials are taken out of any error.
func (c command) run(ctx context.Context, args ...string) ([]byte, error) {
	full := []string{"-c", "protocol.ext.allow=never", "-c", "protocol.fd.allow=never", "-c", "core.hooksPath=/dev/null"}
	for _, kv := range c.config {
		full = append(full, "-c", kv)
	}
	if c.gitDir != "" {
		full = append(full, "--git-dir="+c.gitDir)
	}
	full = append(full, args...)
	cmd := exec.CommandContext(ctx, "git", full...)
	cmd.Dir = c.dir
	cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "GIT_ASKPASS=/bin/false", "SSH_ASKPASS=/bin/false",
		"GIT_SSH_COMMAND="+sshCommand())
	cmd.Env = append(cmd.Env, c.env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		e := &Error{Op: args[0], URL: config.RedactURL(c.url), Code: -1}
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			e.Code = exit.ExitCode()
		}
		e.Msg = strings.TrimSpace(stderr.String())
		if c.url != "" {
			e.Msg = strings.ReplaceAll(e.Msg, c.url, e.URL)
		}
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			e.Msg = "timed out"
		}
		if e.Msg == "" {
			e.Msg = err.Error()
		}
		return nil, e
	}
	return out, nil
}

// Error is a git command that failed.
type Error struct {
	// Op is git's subcommand; URL the remote it talked to, redacted, if any.
	Op, URL string
	// Code is git's exit status, -1 when it did not exit on its own.
	Code int
	// Msg is what git wrote to its standard error, without credentials.
	Msg string
}

func (e *Error) Error() string {
	if e.URL == "" {
		return fmt.Sprintf("git %s: %s", e.Op, e.Msg)
	}
	return fmt.Sprintf("git %s %s: %s", e.Op, e.URL, e.Msg)
}

// sshCommand keeps the user's GIT_SSH_COMMAND, else runs ssh in batch mode so that a host key or
// passphrase question fails instead of waiting for an answer that never comes.
func sshCommand() string {
	if c := os.Getenv("GIT_SSH_COMMAND"); c != "" {
		return c
	}
	return "ssh -o BatchMode=yes"
}
