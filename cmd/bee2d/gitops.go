package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"go.uber.org/zap"

	"github.com/bee2d/bee2d/pkg/config"
	"github.com/bee2d/bee2d/pkg/daemon"
	"github.com/bee2d/bee2d/pkg/gitops"
	"github.com/bee2d/bee2d/pkg/gitx"
)

// defaultStateDir is where the daemon keeps what outlives a run: the followed repository and the record of
// what each server converged to.
const defaultStateDir = "/var/lib/bee2d"

// gitFlags are the flags of settings followed from a git repository.
type gitFlags struct {
	url, branch, path, ref string
	stateDir, verify       string
	poll                   time.Duration
	allowRewind            bool
}

// addGitFlags registers --git and its companions; follow adds those of the daemon (poll, verify, rewind),
// else --git-ref of one-shot commands.
func addGitFlags(fs *flag.FlagSet, g *gitFlags, follow bool) {
	fs.StringVar(&g.url, "git", "", "take the settings from this git repository (https://, ssh://, git@host:path, file://, a path) instead of -c")
	fs.StringVar(&g.branch, "git-branch", "main", "the branch to follow")
	fs.StringVar(&g.path, "git-path", "settings.yml", "the settings file inside the repository")
	fs.StringVar(&g.stateDir, "state-dir", defaultStateDir, "where bee2d keeps the checkout, the keys it makes and what each server converged to")
	if follow {
		fs.DurationVar(&g.poll, "git-poll", time.Minute, "fetch the branch this often (0: only when the webhook asks)")
		fs.StringVar(&g.verify, "git-verify", "", "apply only commits signed by a key of this file: an SSH allowed_signers file or a GPG public keyring")
		fs.BoolVar(&g.allowRewind, "git-allow-rewind", false, "apply a head that does not descend from the running commit (a force push); held otherwise")
	} else {
		fs.StringVar(&g.ref, "git-ref", "", "plan this branch, tag, ref (refs/pull/12/head) or commit instead of --git-branch")
	}
}

// gitLoad loads the settings file of a checked-out commit: its paths confined to the work tree root, the
// files bee2d makes (the hash key, generated passwords) kept in the state directory, which outlives the
// work tree.
func gitLoad(base config.Options, stateDir string) func(file, root string) (*config.Settings, []byte, error) {
	return func(file, root string) (*config.Settings, []byte, error) {
		raw, err := os.ReadFile(file)
		if err != nil {
			return nil, nil, err
		}
		opt := base
		opt.Root = root
		opt.KeyDir = filepath.Join(stateDir, "secrets")
		s, err := config.ParseWith(file, raw, opt)
		return s, raw, err
	}
}

// follower makes the daemon's git source from the flags.
func follower(g gitFlags, opt config.Options, log *zap.Logger, m gitops.Metrics) (*gitops.Follower, error) {
	f := &gitops.Follower{
		URL:         g.url,
		Branch:      g.branch,
		Path:        g.path,
		Dir:         filepath.Join(g.stateDir, "git"),
		Poll:        g.poll,
		AllowRewind: g.allowRewind,
		Load:        gitLoad(opt, g.stateDir),
		Log:         log,
		Metrics:     m,
	}
	if g.verify != "" {
		v, err := gitx.NewVerifier(g.verify)
		if err != nil {
			return nil, fmt.Errorf("--git-verify: %w", err)
		}
		f.Verify = v
	}
	if err := f.Check(); err != nil {
		if f.Verify != nil {
			f.Verify.Close()
		}
		return nil, err
	}
	return f, nil
}

// checkoutForPlan fetches --git-ref (or --git-branch) into a temporary work tree and loads its settings,
// for `bee2d plan --git`: what a CI job runs on a pull request. cleanup removes the work tree.
func checkoutForPlan(ctx context.Context, g gitFlags, opt config.Options, stderr io.Writer) (*config.Settings, func(), error) {
	if err := gitx.CheckURL(g.url); err != nil {
		return nil, nil, fmt.Errorf("--git: %w", err)
	}
	if !filepath.IsLocal(g.path) {
		return nil, nil, fmt.Errorf("--git-path %q: want a path inside the repository", g.path)
	}
	ref := g.ref
	if ref == "" {
		ref = g.branch
	}
	tmp, err := os.MkdirTemp("", "bee2d-plan-")
	if err != nil {
		return nil, nil, err
	}
	cleanup := func() { os.RemoveAll(tmp) }
	dir := filepath.Join(tmp, "tree")
	commit, err := gitx.FetchRef(ctx, g.url, ref, dir)
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	s, _, err := gitLoad(opt, g.stateDir)(filepath.Join(dir, g.path), dir)
	if err != nil {
		cleanup()
		var list config.ErrorList
		if errors.As(err, &list) {
			fmt.Fprintf(stderr, "commit %s of %s does not validate:\n", gitx.Short(commit), config.RedactURL(g.url))
			fmt.Fprintln(stderr, err)
			return nil, nil, errUsage
		}
		return nil, nil, fmt.Errorf("commit %s: %w", gitx.Short(commit), err)
	}
	s.Revision = commit
	fmt.Fprintf(stderr, "planning commit %s of %s (%s)\n", gitx.Short(commit), config.RedactURL(g.url), ref)
	return s, cleanup, nil
}

// runningSettings loads the settings of the commit a daemon with this state directory runs, for `bee2d
// status` without -c.
func runningSettings(stateDir string, opt config.Options) (*config.Settings, error) {
	rec, err := gitops.ReadRunning(filepath.Join(stateDir, "git"))
	if err != nil {
		return nil, err
	}
	s, _, err := gitLoad(opt, stateDir)(filepath.Join(rec.Tree, rec.Path), rec.Tree)
	if err != nil {
		return nil, err
	}
	s.Revision = rec.Commit
	return s, nil
}

// convergedLine says what a server converged to, from the daemon's record, "" without one.
func convergedLine(stateDir, server string) string {
	rec, err := daemon.ReadConverged(stateDir)
	if err != nil {
		return ""
	}
	c, ok := rec[server]
	if !ok {
		return ""
	}
	return c.Describe(time.Now())
}
