package gitops

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/bee2d/bee2d/internal/testgit"
	"github.com/bee2d/bee2d/pkg/config"
	"github.com/bee2d/bee2d/pkg/gitx"
)

const good = `servers:
  local:
    docker: {host: unix:///var/run/docker.sock}
applications:
  web:
    server: local
    image: busybox:latest
`

// bad names a server that does not exist, and a key that does not either.
const bad = `servers:
  local:
    docker: {host: unix:///var/run/docker.sock}
applications:
  web:
    server: elsewhere
    image: busybox:latest
    colour: blue
`

// remote is a bare repository and a clone to push to it from.
type remote struct {
	t          *testing.T
	bare, work string
}

func newRemote(t *testing.T) *remote {
	t.Helper()
	testgit.Isolate(t)
	dir := t.TempDir()
	r := &remote{t: t, bare: filepath.Join(dir, "remote.git"), work: filepath.Join(dir, "work")}
	r.git(dir, "init", "--quiet", "--bare", "--initial-branch=main", r.bare)
	r.git(dir, "init", "--quiet", "--initial-branch=main", r.work)
	return r
}

func (r *remote) git(dir string, args ...string) string {
	r.t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		r.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// push commits settings.yml with content (and git commit's extra arguments) and pushes it; it returns the
// commit.
func (r *remote) push(content, subject string, extra ...string) string {
	r.t.Helper()
	if err := os.WriteFile(filepath.Join(r.work, "settings.yml"), []byte(content), 0o644); err != nil {
		r.t.Fatal(err)
	}
	r.git(r.work, "add", "settings.yml")
	r.git(r.work, append([]string{"commit", "--quiet", "--allow-empty", "-m", subject}, extra...)...)
	r.git(r.work, "push", "--quiet", "--force", r.bare, "HEAD:main")
	return r.git(r.work, "rev-parse", "HEAD")
}

// fakeMetrics records the follower's reports.
type fakeMetrics struct {
	mu      sync.Mutex
	fetches []bool
	heads   []head
	held    []bool
	commits []string
	// onFetch, when set, runs inside the n-th fetch's report (1-based).
	onFetch func(n int)
}

type head struct {
	commit          string
	valid, verified bool
}

func (m *fakeMetrics) GitFetch(ok bool, _ time.Time) {
	m.mu.Lock()
	m.fetches = append(m.fetches, ok)
	n, hook := len(m.fetches), m.onFetch
	m.mu.Unlock()
	if hook != nil {
		hook(n)
	}
}

func (m *fakeMetrics) GitHead(commit string, valid, verified bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.heads = append(m.heads, head{commit, valid, verified})
}

func (m *fakeMetrics) GitHeld(held bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.held = append(m.held, held)
}

func (m *fakeMetrics) SettingsCommit(commit string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.commits = append(m.commits, commit)
}

// seen reports whether check holds of the recorded calls.
func (m *fakeMetrics) seen(check func(m *fakeMetrics) bool) func() bool {
	return func() bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		return check(m)
	}
}

func load(file, _ string) (*config.Settings, []byte, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, nil, err
	}
	s, err := config.Parse(file, data)
	return s, data, err
}

func follower(r *remote, dir string, m Metrics) *Follower {
	return &Follower{URL: "file://" + r.bare, Dir: dir, Load: load, Metrics: m, RetryMax: 20 * time.Millisecond, Log: zaptest.NewLogger(r.t)}
}

// waitFor polls cond until it holds, failing the test after a while.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// uses collects the revisions Run puts in force.
type uses struct {
	mu   sync.Mutex
	revs []string
}

func (u *uses) use(s *config.Settings, raw []byte) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if !strings.Contains(string(raw), "busybox") || len(s.Applications) == 0 {
		panic("use called without the settings")
	}
	u.revs = append(u.revs, s.Revision)
}

func (u *uses) last() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.revs) == 0 {
		return ""
	}
	return u.revs[len(u.revs)-1]
}

func (u *uses) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.revs)
}

// start runs f until the test ends.
func start(t *testing.T, f *Follower) *uses {
	t.Helper()
	u := &uses{}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.Run(ctx, u.use)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return u
}

// inForce reports whether Run has put commit in force: handed its settings over, recorded it, reported it.
func inForce(f *Follower, u *uses, commit string) func() bool {
	return func() bool {
		if u.last() != commit || f.Running().Hash != commit {
			return false
		}
		if r, err := ReadRunning(f.Dir); err != nil || r.Commit != commit {
			return false
		}
		if m, ok := f.Metrics.(*fakeMetrics); ok {
			return m.seen(func(m *fakeMetrics) bool { return len(m.commits) > 0 && m.commits[len(m.commits)-1] == commit })()
		}
		return true
	}
}

func initial(t *testing.T, f *Follower, want string) {
	t.Helper()
	s, raw, err := f.Initial(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if s.Revision != want || f.Running().Hash != want || len(raw) == 0 {
		t.Fatalf("Initial: revision %s, running %s; want %s", s.Revision, f.Running().Hash, want)
	}
}

func TestFollow(t *testing.T) {
	r := newRemote(t)
	first := r.push(good, "first")
	m := &fakeMetrics{}
	dir := filepath.Join(t.TempDir(), "git")
	f := follower(r, dir, m)
	initial(t, f, first)
	if got := f.Running(); got.Subject != "first" {
		t.Errorf("running %+v", got)
	}
	u := start(t, f)

	second := r.push(good+"# second\n", "second")
	f.Trigger()
	waitFor(t, "the second commit in force", inForce(f, u, second))
	if f.Running().Hash != second {
		t.Errorf("running %s, want %s", f.Running().Hash, second)
	}
	rec, err := ReadRunning(dir)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Commit != second || rec.Subject != "second" || rec.Branch != "main" || rec.Path != "settings.yml" ||
		rec.URL != f.URL || rec.Tree != filepath.Join(dir, "trees", second) || rec.Time.IsZero() {
		t.Errorf("record %+v", rec)
	}

	broken := r.push(bad, "broken")
	f.Trigger()
	waitFor(t, "the broken head refused", m.seen(func(m *fakeMetrics) bool {
		return len(m.heads) > 0 && m.heads[len(m.heads)-1] == head{broken, false, true}
	}))
	if u.count() != 1 || f.Running().Hash != second {
		t.Errorf("after a broken head: %d uses, running %s", u.count(), gitx.Short(f.Running().Hash))
	}
	if _, err := os.Stat(filepath.Join(dir, "trees", broken)); err == nil {
		t.Error("the broken head's work tree is left")
	}
	// A refused head is not examined again while the branch stays there.
	heads := len(m.heads)
	f.Trigger()
	waitFor(t, "another fetch", m.seen(func(m *fakeMetrics) bool { return len(m.fetches) >= 4 }))
	f.Trigger()
	waitFor(t, "another fetch", m.seen(func(m *fakeMetrics) bool { return len(m.fetches) >= 5 }))
	if m.seen(func(m *fakeMetrics) bool { return len(m.heads) != heads })() {
		t.Error("the refused head was examined again")
	}

	fixed := r.push(good+"# fixed\n", "fixed")
	f.Trigger()
	waitFor(t, "the fix in force", inForce(f, u, fixed))

	// The remote goes away: fetches fail, the settings stay.
	gone := r.bare + ".gone"
	if err := os.Rename(r.bare, gone); err != nil {
		t.Fatal(err)
	}
	f.Trigger()
	waitFor(t, "a failed fetch", m.seen(func(m *fakeMetrics) bool { return !m.fetches[len(m.fetches)-1] }))
	if f.Running().Hash != fixed {
		t.Errorf("running %s after a failed fetch", f.Running().Hash)
	}
	if err := os.Rename(gone, r.bare); err != nil {
		t.Fatal(err)
	}
	back := r.push(good+"# back\n", "back")
	f.Trigger()
	waitFor(t, "the commit after the outage in force", inForce(f, u, back))

	// Only the running tree and the one before it are kept.
	trees, err := os.ReadDir(filepath.Join(dir, "trees"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range trees {
		names = append(names, e.Name())
	}
	if len(names) != 2 || !strings.Contains(strings.Join(names, " "), back) || !strings.Contains(strings.Join(names, " "), fixed) {
		t.Errorf("work trees %v, want %s and %s", names, gitx.Short(back), gitx.Short(fixed))
	}
	if got := m.seen(func(m *fakeMetrics) bool {
		return strings.Join(m.commits, " ") == strings.Join([]string{first, second, fixed, back}, " ")
	})(); !got {
		t.Errorf("SettingsCommit calls %v", m.commits)
	}
}

func TestFollowRewind(t *testing.T) {
	for _, allow := range []bool{false, true} {
		t.Run(map[bool]string{false: "held", true: "allowed"}[allow], func(t *testing.T) {
			r := newRemote(t)
			first := r.push(good, "first")
			second := r.push(good+"# second\n", "second")
			m := &fakeMetrics{}
			f := follower(r, filepath.Join(t.TempDir(), "git"), m)
			f.AllowRewind = allow
			initial(t, f, second)
			u := start(t, f)

			r.git(r.work, "reset", "--quiet", "--hard", first)
			rewound := r.push(good+"# another second\n", "another second")
			f.Trigger()
			if allow {
				waitFor(t, "the rewound head in force", inForce(f, u, rewound))
				return
			}
			waitFor(t, "the rewound head held", m.seen(func(m *fakeMetrics) bool { return len(m.held) == 1 && m.held[0] }))
			if u.count() != 0 || f.Running().Hash != second {
				t.Fatalf("a held head was used: %d uses, running %s", u.count(), gitx.Short(f.Running().Hash))
			}

			// The branch comes back to a descendant of the commit in force.
			r.git(r.work, "reset", "--quiet", "--hard", second)
			third := r.push(good+"# third\n", "third")
			f.Trigger()
			waitFor(t, "the descendant in force", inForce(f, u, third))
			if !m.seen(func(m *fakeMetrics) bool { return len(m.held) == 2 && !m.held[1] })() {
				t.Errorf("GitHeld calls %v", m.held)
			}
		})
	}
}

// sshKey makes an ed25519 key without a passphrase and returns its private key file and public key line.
func sshKey(t *testing.T, name string) (string, string) {
	t.Helper()
	return testgit.SSHKey(t, t.TempDir(), name)
}

func TestFollowVerify(t *testing.T) {
	r := newRemote(t)
	allowed, pub := sshKey(t, "allowed")
	other, _ := sshKey(t, "other")
	signed := func(key string) []string {
		return []string{"-S", "--gpg-sign=" + key}
	}
	// gpg.format is a setting of the pushing clone.
	r.git(r.work, "config", "gpg.format", "ssh")

	first := r.push(good, "first", signed(allowed)...)
	keys := filepath.Join(t.TempDir(), "allowed_signers")
	if err := os.WriteFile(keys, []byte("ops@example.net "+pub+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	v, err := gitx.NewVerifier(keys)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	m := &fakeMetrics{}
	f := follower(r, filepath.Join(t.TempDir(), "git"), m)
	f.Verify = v
	initial(t, f, first)
	u := start(t, f)

	lastHead := func(want head) func() bool {
		return m.seen(func(m *fakeMetrics) bool { return len(m.heads) > 0 && m.heads[len(m.heads)-1] == want })
	}
	unsigned := r.push(good+"# unsigned\n", "unsigned")
	f.Trigger()
	waitFor(t, "the unsigned head refused", lastHead(head{unsigned, false, false}))

	byOther := r.push(good+"# other\n", "other", signed(other)...)
	f.Trigger()
	waitFor(t, "the head signed by another key refused", lastHead(head{byOther, false, false}))
	if u.count() != 0 {
		t.Fatalf("%d uses of refused heads", u.count())
	}

	ok := r.push(good+"# ok\n", "ok", signed(allowed)...)
	f.Trigger()
	waitFor(t, "the signed head in force", inForce(f, u, ok))
	waitFor(t, "the signed head reported", lastHead(head{ok, true, true}))
}

func TestRestart(t *testing.T) {
	r := newRemote(t)
	first := r.push(good, "first")
	dir := filepath.Join(t.TempDir(), "git")
	f := follower(r, dir, nil)
	initial(t, f, first)
	u := start(t, f)
	second := r.push(good+"# second\n", "second")
	f.Trigger()
	waitFor(t, "the second commit in force", inForce(f, u, second))

	// The remote is down at the next start: the commit in force before is used.
	gone := r.bare + ".gone"
	if err := os.Rename(r.bare, gone); err != nil {
		t.Fatal(err)
	}
	m := &fakeMetrics{}
	initial(t, follower(r, dir, m), second)
	if !m.seen(func(m *fakeMetrics) bool { return len(m.fetches) == 1 && !m.fetches[0] && len(m.commits) == 1 })() {
		t.Errorf("metrics %+v", m)
	}

	// The remote is back with a broken head: the commit in force before is used, and the head refused.
	if err := os.Rename(gone, r.bare); err != nil {
		t.Fatal(err)
	}
	broken := r.push(bad, "broken")
	m = &fakeMetrics{}
	f = follower(r, dir, m)
	initial(t, f, second)
	if !m.seen(func(m *fakeMetrics) bool { return len(m.heads) == 1 && m.heads[0] == head{broken, false, true} })() {
		t.Errorf("GitHead calls %v", m.heads)
	}

	// Without a commit from before, the same is an error naming the commit and the problems.
	_, _, err := follower(r, filepath.Join(t.TempDir(), "git"), nil).Initial(t.Context())
	if err == nil || !strings.Contains(err.Error(), gitx.Short(broken)) || !strings.Contains(err.Error(), "elsewhere") {
		t.Errorf("Initial of a broken head: %v", err)
	}
	// Nor does a down remote leave anything to start with.
	if err := os.Rename(r.bare, gone); err != nil {
		t.Fatal(err)
	}
	if _, _, err := follower(r, filepath.Join(t.TempDir(), "git"), nil).Initial(t.Context()); err == nil {
		t.Error("Initial without a remote or a commit from before: no error")
	}
}

func TestTriggerCoalesces(t *testing.T) {
	r := newRemote(t)
	first := r.push(good, "first")
	m := &fakeMetrics{}
	f := follower(r, filepath.Join(t.TempDir(), "git"), m)
	initial(t, f, first)

	pending := make(chan int, 1)
	m.onFetch = func(n int) {
		switch n {
		case 2:
			// Many triggers while the second fetch is under way...
			for range 100 {
				f.Trigger()
			}
		case 3:
			// ... make one more fetch, after which none is pending.
			pending <- len(f.triggers())
		}
	}
	start(t, f)
	f.Trigger()
	select {
	case n := <-pending:
		if n != 0 {
			t.Errorf("%d triggers pending after the fetch that served the burst", n)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("timed out waiting for the third fetch")
	}
}

func TestCheck(t *testing.T) {
	ok := func() *Follower {
		return &Follower{URL: "https://example.net/r.git", Dir: t.TempDir(), Load: load}
	}
	for _, tc := range []struct {
		name   string
		change func(f *Follower)
		err    string
	}{
		{"defaults", func(*Follower) {}, ""},
		{"sub-directory", func(f *Follower) { f.Path = "hosts/a/settings.yml" }, ""},
		{"no URL", func(f *Follower) { f.URL = "" }, "--git: "},
		{"ext", func(f *Follower) { f.URL = "ext::sh -c x" }, "--git: "},
		{"option", func(f *Follower) { f.URL = "--upload-pack=x" }, "--git: "},
		{"branch", func(f *Follower) { f.Branch = "a..b" }, "--git-branch: "},
		{"parent", func(f *Follower) { f.Path = "../settings.yml" }, "--git-path: "},
		{"absolute", func(f *Follower) { f.Path = "/etc/settings.yml" }, "--git-path: "},
		{"no dir", func(f *Follower) { f.Dir = "" }, "state directory"},
		{"no loader", func(f *Follower) { f.Load = nil }, "loader"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := ok()
			tc.change(f)
			err := f.Check()
			if tc.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				if f.Branch != DefaultBranch || f.Path == "" || f.RetryMax != DefaultRetryMax {
					t.Errorf("defaults not filled in: %+v", f)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Check = %v, want %q", err, tc.err)
			}
		})
	}
}

func TestFirstLines(t *testing.T) {
	if got := firstLines("a\nb", 5); got != "a\nb" {
		t.Errorf("%q", got)
	}
	if got := firstLines("1\n2\n3\n4\n5\n6\n7", 5); got != "1\n2\n3\n4\n5\n(and 2 more)" {
		t.Errorf("%q", got)
	}
}
