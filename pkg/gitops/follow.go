package gitops

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/bee2d/bee2d/pkg/config"
	"github.com/bee2d/bee2d/pkg/gitx"
)

// Metrics is what the follower reports.
type Metrics interface {
	// GitFetch counts a fetch, failed or not.
	GitFetch(ok bool, at time.Time)
	// GitHead tells whether the newest head examined loaded (valid) and carried an allowed signature
	// (verified; true when signatures are not checked).
	GitHead(commit string, valid, verified bool)
	// GitHeld tells whether a head is held back because it rewinds history.
	GitHeld(held bool)
	// SettingsCommit names the commit in force.
	SettingsCommit(commit string)
}

// Defaults of the Follower's fields.
const (
	DefaultBranch   = "main"
	DefaultPath     = "settings.yml"
	DefaultRetryMax = time.Minute
)

// firstBackoff is the wait after the first failed fetch; it doubles up to RetryMax.
const firstBackoff = time.Second

// maxErrors is how many lines of a rejected commit's errors are logged.
const maxErrors = 5

// Follower follows a branch of a git repository and puts in force the settings of each new head that passes
// the checks. Fill in the fields, call Check, Initial once, then Run.
type Follower struct {
	// URL is the repository, Branch the branch followed (DefaultBranch when empty), Path the settings file in
	// the repository (DefaultPath when empty).
	URL, Branch, Path string
	// Dir is the follower's own directory (<state-dir>/git): the mirror, the work trees and running.json.
	Dir string
	// Poll is how often the branch is fetched; 0 fetches only on Trigger.
	Poll time.Duration
	// Verify, when set, refuses commits without a good signature by one of its keys.
	Verify *gitx.Verifier
	// AllowRewind puts in force a head that does not descend from the commit in force (a force push).
	AllowRewind bool
	// Load reads and validates the settings file of a work tree (root).
	Load func(file, root string) (*config.Settings, []byte, error)
	// Log and Metrics may be nil.
	Log     *zap.Logger
	Metrics Metrics
	// RetryMax caps the back-off between failed fetches (DefaultRetryMax when 0).
	RetryMax time.Duration
	// Now is the clock (time.Now when nil).
	Now func() time.Time

	once    sync.Once
	trigger chan struct{}

	mu          sync.Mutex
	running     gitx.Commit
	runningTree string // the work tree of running, for Reload

	// The rest belongs to the goroutine that runs Initial, then Run.
	mirror *gitx.Mirror
	// tree is the running commit's work tree; previous the one before it, kept while a pass may use it.
	tree, previous string
	// rejected is a head that failed its checks, held one that rewinds history: neither is examined again
	// until the branch moves.
	rejected, held string
	// refusal says why rejected was refused.
	refusal  error
	fetchErr string
	backoff  time.Duration
}

// Check validates the fields and fills in the defaults; its messages name the command line flags.
func (f *Follower) Check() error {
	if err := gitx.CheckURL(f.URL); err != nil {
		return fmt.Errorf("--git: %w", err)
	}
	if f.Branch == "" {
		f.Branch = DefaultBranch
	}
	if err := gitx.CheckBranch(context.Background(), f.Branch); err != nil {
		return fmt.Errorf("--git-branch: %w", err)
	}
	if f.Path == "" {
		f.Path = DefaultPath
	}
	if !filepath.IsLocal(f.Path) {
		return fmt.Errorf("--git-path: %q is not a relative path inside the repository", f.Path)
	}
	f.Path = filepath.Clean(f.Path)
	if f.Dir == "" {
		return errors.New("--git: the follower has no state directory")
	}
	if f.Load == nil {
		return errors.New("--git: the follower has no settings loader")
	}
	if f.RetryMax <= 0 {
		f.RetryMax = DefaultRetryMax
	}
	return nil
}

// Trigger asks for a fetch now without waiting for it. Triggers coalesce: those arriving during a fetch cause
// one more fetch after it; during a back-off, one fetch at its end.
func (f *Follower) Trigger() {
	select {
	case f.triggers() <- struct{}{}:
	default:
	}
}

func (f *Follower) triggers() chan struct{} {
	f.once.Do(func() { f.trigger = make(chan struct{}, 1) })
	return f.trigger
}

// Running returns the commit in force; the zero Commit before Initial.
func (f *Follower) Running() gitx.Commit {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.running
}

// Initial fetches the branch and returns the settings to start with, those of its head. When the fetch fails
// or the head fails its checks, the commit a previous run left in force is used if there is one; else the
// error.
func (f *Follower) Initial(ctx context.Context) (*config.Settings, []byte, error) {
	if err := f.Check(); err != nil {
		return nil, nil, err
	}
	if err := os.MkdirAll(f.Dir, 0o700); err != nil {
		return nil, nil, err
	}
	m, err := gitx.OpenMirror(filepath.Join(f.Dir, "mirror"))
	if err != nil {
		return nil, nil, err
	}
	f.mirror = m
	prev := f.previousRun()

	head, err := f.fetch(ctx)
	if err != nil {
		if prev == nil {
			return nil, nil, err
		}
		f.log().Warn("git fetch failed; starting with the commit in force before",
			zap.String("commit", gitx.Short(prev.Commit)), zap.Error(err))
		f.backoff = firstBackoff
		return f.resume(*prev)
	}
	if prev != nil && head == prev.Commit {
		return f.resume(*prev)
	}
	if prev != nil {
		// The checks of the head are relative to the commit in force before, and its tree is the previous one.
		f.setRunning(gitx.Commit{Hash: prev.Commit, Subject: prev.Subject}, prev.Tree)
		f.tree = prev.Tree
	}
	next, err := f.examine(ctx, head)
	if err != nil || next == nil {
		if prev == nil {
			if err == nil {
				err = f.refusal
			}
			return nil, nil, err
		}
		if err != nil {
			f.log().Warn("git head not examined; starting with the commit in force before",
				zap.String("commit", gitx.Short(prev.Commit)), zap.Error(err))
			f.backoff = firstBackoff // Run tries again soon
		}
		return f.resume(*prev)
	}
	f.adopt(next)
	return next.settings, next.raw, nil
}

// previousRun returns the record of the commit a previous run put in force, if it still applies: same
// repository, branch and file, its work tree still there.
func (f *Follower) previousRun() *Record {
	r, err := ReadRunning(f.Dir)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			f.log().Warn("the record of the commit in force is unreadable", zap.Error(err))
		}
		return nil
	}
	if r.URL != config.RedactURL(f.URL) || r.Branch != f.Branch || r.Path != f.Path {
		f.log().Info("the commit in force before is of another repository, branch or file; not used",
			zap.String("commit", gitx.Short(r.Commit)))
		return nil
	}
	if _, err := os.Stat(filepath.Join(r.Tree, f.Path)); err != nil {
		f.log().Warn("the work tree of the commit in force before is gone", zap.String("commit", gitx.Short(r.Commit)), zap.Error(err))
		return nil
	}
	return &r
}

// resume loads the settings of the commit a previous run put in force, from its work tree.
func (f *Follower) resume(r Record) (*config.Settings, []byte, error) {
	s, raw, err := f.Load(filepath.Join(r.Tree, f.Path), r.Tree)
	if err != nil {
		return nil, nil, fmt.Errorf("commit %s, in force before: %s", gitx.Short(r.Commit), firstLines(err.Error(), maxErrors))
	}
	s.Revision = r.Commit
	f.tree = r.Tree
	f.setRunning(gitx.Commit{Hash: r.Commit, Subject: r.Subject}, r.Tree)
	f.removeStale()
	f.metrics(func(m Metrics) { m.SettingsCommit(r.Commit) })
	return s, raw, nil
}

// Run follows the branch until ctx ends: at each Poll tick and each Trigger it fetches, and calls use with the
// settings of a new head that passes the checks.
func (f *Follower) Run(ctx context.Context, use func(*config.Settings, []byte)) {
	for {
		var wait <-chan time.Time
		trigger := f.triggers()
		var timer *time.Timer
		switch {
		case f.backoff > 0:
			// A trigger is served at the back-off's end, by the fetch that ends it.
			timer = time.NewTimer(f.backoff)
			trigger = nil
		case f.Poll > 0:
			timer = time.NewTimer(f.Poll)
		}
		if timer != nil {
			wait = timer.C
		}
		select {
		case <-ctx.Done():
			if timer != nil {
				timer.Stop()
			}
			return
		case <-wait:
		case <-trigger:
		}
		if timer != nil {
			timer.Stop()
		}
		f.step(ctx, use)
	}
}

// step fetches once and puts the head in force if it is new and passes the checks.
func (f *Follower) step(ctx context.Context, use func(*config.Settings, []byte)) {
	head, err := f.fetch(ctx)
	if err != nil {
		if ctx.Err() == nil {
			f.backoff = min(max(2*f.backoff, firstBackoff), f.RetryMax)
		}
		return
	}
	f.backoff = 0
	next, err := f.examine(ctx, head)
	if err != nil {
		// A local failure (disk, git) is worth another try.
		f.log().Warn("git head not examined", zap.String("commit", gitx.Short(head)), zap.Error(err))
		f.backoff = min(max(2*f.backoff, firstBackoff), f.RetryMax)
		return
	}
	if next != nil {
		use(next.settings, next.raw)
		f.adopt(next)
	}
}

// fetch fetches the branch into the mirror; a trigger pending until now is served by it.
func (f *Follower) fetch(ctx context.Context) (string, error) {
	select {
	case <-f.triggers():
	default:
	}
	head, err := f.mirror.Fetch(ctx, f.URL, f.Branch)
	if ctx.Err() == nil {
		// A fetch cut short by the shutdown is no failure of the remote.
		f.metrics(func(m Metrics) { m.GitFetch(err == nil, f.now()) })
	}
	if err != nil {
		if msg := err.Error(); msg != f.fetchErr && ctx.Err() == nil {
			f.log().Warn("git fetch failed", zap.String("url", config.RedactURL(f.URL)), zap.Error(err))
			f.fetchErr = msg
		}
		return "", err
	}
	if f.fetchErr != "" {
		f.log().Info("git fetch works again", zap.String("url", config.RedactURL(f.URL)))
		f.fetchErr = ""
	}
	return head, nil
}

// candidate is a head that passed every check, with its settings.
type candidate struct {
	commit   gitx.Commit
	tree     string
	settings *config.Settings
	raw      []byte
}

// examine checks head and returns it with its settings if it passes, nil if not. A head that fails a check
// is logged and remembered, not an error; err is a failure to examine it at all.
func (f *Follower) examine(ctx context.Context, head string) (*candidate, error) {
	running := f.Running()
	if head == running.Hash {
		f.release()
		return nil, nil
	}
	if head == f.rejected || head == f.held {
		return nil, nil
	}
	c, err := f.mirror.Describe(ctx, head)
	if err != nil {
		return nil, err
	}
	log := f.log().With(zap.String("commit", c.Short()), zap.String("subject", c.Subject))

	verified := f.Verify == nil // nothing to check is nothing refused
	if f.Verify != nil {
		signer, err := f.mirror.Verify(ctx, head, f.Verify)
		if err != nil {
			f.reject(log, c, false, false, err)
			return nil, nil
		}
		log = log.With(zap.String("signer", signer))
		verified = true
	}

	if running.Hash != "" && !f.AllowRewind {
		descends, err := f.mirror.IsAncestor(ctx, running.Hash, head)
		if err != nil {
			return nil, err
		}
		if !descends {
			log.Warn("git head rewinds history; held until the branch descends from the commit in force again",
				zap.String("running", running.Hash), zap.String("head", head))
			f.held = head
			f.metrics(func(m Metrics) { m.GitHeld(true) })
			return nil, nil
		}
	}

	tree := filepath.Join(f.Dir, "trees", head)
	if tree == f.previous {
		f.previous = "" // the branch went back to the commit before; a fresh tree replaces its old one
	}
	if err := f.mirror.RemoveTree(tree); err != nil {
		return nil, err
	}
	if err := f.mirror.Checkout(ctx, head, tree); err != nil {
		return nil, err
	}
	s, raw, err := f.Load(filepath.Join(tree, f.Path), tree)
	if err != nil {
		f.mirror.RemoveTree(tree)
		f.reject(log, c, false, verified, err)
		return nil, nil
	}
	s.Revision = head
	f.metrics(func(m Metrics) { m.GitHead(head, true, verified) })
	return &candidate{commit: c, tree: tree, settings: s, raw: raw}, nil
}

// adopt puts a candidate in force once the daemon has its settings: it becomes the running commit, its
// record is written, and the work trees no longer needed go.
func (f *Follower) adopt(next *candidate) {
	if f.tree != "" && f.tree != next.tree {
		f.previous = f.tree
	}
	f.tree = next.tree
	f.rejected = ""
	f.release()
	f.setRunning(next.commit, next.tree)
	c := next.commit
	log := f.log().With(zap.String("commit", c.Short()), zap.String("subject", c.Subject))
	if err := writeRunning(f.Dir, Record{Commit: c.Hash, Subject: c.Subject, Branch: f.Branch, Path: f.Path,
		URL: config.RedactURL(f.URL), Tree: next.tree, Time: f.now().UTC()}); err != nil {
		log.Warn("the record of the commit in force is not written", zap.Error(err))
	}
	f.removeStale()
	f.metrics(func(m Metrics) { m.SettingsCommit(c.Hash) })
	log.Info("git settings commit in force")
}

// reject logs a head that failed its checks, once: it is not examined again until the branch moves.
func (f *Follower) reject(log *zap.Logger, c gitx.Commit, valid, verified bool, err error) {
	f.rejected = c.Hash
	f.refusal = fmt.Errorf("commit %s (%s): %s", c.Short(), c.Subject, firstLines(err.Error(), maxErrors))
	log.Error("git head refused; the commit in force stays", zap.String("errors", firstLines(err.Error(), maxErrors)))
	f.metrics(func(m Metrics) { m.GitHead(c.Hash, valid, verified) })
}

// release ends a hold: the branch is back at, or descends from, the commit in force.
func (f *Follower) release() {
	if f.held != "" {
		f.held = ""
		f.metrics(func(m Metrics) { m.GitHeld(false) })
	}
}

// removeStale removes the work trees other than the running one and the one before it, which a pass
// started before the change may still be building from.
func (f *Follower) removeStale() {
	dir := filepath.Join(f.Dir, "trees")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		if p == f.tree || p == f.previous {
			continue
		}
		if err := f.mirror.RemoveTree(p); err != nil {
			f.log().Warn("an old work tree is not removed", zap.String("tree", p), zap.Error(err))
		}
	}
}

func (f *Follower) setRunning(c gitx.Commit, tree string) {
	f.mu.Lock()
	f.running, f.runningTree = c, tree
	f.mu.Unlock()
}

// Reload loads the settings of the commit in force again from its work tree: the files they read outside
// the repository (an absolute secrets_dir, keys) may have changed. The work tree itself does not.
func (f *Follower) Reload() (*config.Settings, []byte, error) {
	f.mu.Lock()
	c, tree := f.running, f.runningTree
	f.mu.Unlock()
	if c.Hash == "" {
		return nil, nil, errors.New("no commit in force yet")
	}
	s, raw, err := f.Load(filepath.Join(tree, f.Path), tree)
	if err != nil {
		return nil, nil, fmt.Errorf("commit %s: %w", c.Short(), err)
	}
	s.Revision = c.Hash
	return s, raw, nil
}

func (f *Follower) log() *zap.Logger {
	if f.Log == nil {
		return zap.NewNop()
	}
	return f.Log
}

func (f *Follower) metrics(report func(Metrics)) {
	if f.Metrics != nil {
		report(f.Metrics)
	}
}

func (f *Follower) now() time.Time {
	if f.Now == nil {
		return time.Now()
	}
	return f.Now()
}

// firstLines keeps the first n lines of a message (config errors hold one problem a line).
func firstLines(msg string, n int) string {
	lines := strings.Split(msg, "\n")
	if len(lines) <= n {
		return msg
	}
	return strings.Join(lines[:n], "\n") + fmt.Sprintf("\n(and %d more)", len(lines)-n)
}
