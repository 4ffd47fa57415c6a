package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/bee2d/bee2d/internal/testdocker"
	"github.com/bee2d/bee2d/internal/testgit"
	"github.com/bee2d/bee2d/pkg/config"
	"github.com/bee2d/bee2d/pkg/gitops"
)

// gitStack is a daemon stack whose settings live in a git repository that the daemon follows.
type gitStack struct {
	*daemonStack
	remote   *testgit.Remote
	port     int
	stateDir string
	identity string // the age identity file
	secret   string // the value of the encrypted secret
	token    []byte // secrets/token.age
}

func newGitStack(t *testing.T) *gitStack {
	t.Helper()
	testgit.Isolate(t)
	st := &gitStack{daemonStack: newDaemonStack(t), port: freePort(t), stateDir: t.TempDir()}
	st.remote = testgit.NewRemote(t, t.TempDir(), "site")
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	st.identity = filepath.Join(t.TempDir(), "identity.txt")
	if err := os.WriteFile(st.identity, []byte(id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	st.secret = "tok-" + strings.ReplaceAll(t.Name(), "/", "-") + "-4f1c9a"
	var enc bytes.Buffer
	if err := config.EncryptSecret(&enc, []byte(st.secret+"\n"), []age.Recipient{id.Recipient()}); err != nil {
		t.Fatal(err)
	}
	st.token = enc.Bytes()
	return st
}

// settingsAt is the settings of one web application whose VERSION says which commit it came from, with
// the encrypted secret as TOKEN.
func (st *gitStack) settingsAt(version string) []byte {
	return []byte(st.settings(app{name: "web", port: st.port, env: []string{"version: " + version, "token: {secret: token}"}}))
}

// push commits the settings of version (and the encrypted secret) and returns the commit.
func (st *gitStack) push(version string, opts ...testgit.Option) string {
	st.t.Helper()
	return st.remote.Commit("deploy "+version, map[string][]byte{"settings.yml": st.settingsAt(version), "secrets/token.age": st.token}, opts...)
}

// startGit runs `bee2d daemon --git URL` until the test ends, and waits for /readyz.
func (st *gitStack) startGit(url string, extra ...string) <-chan int {
	st.t.Helper()
	st.listen = fmt.Sprintf("127.0.0.1:%d", freePort(st.t))
	args := append([]string{"daemon", "--git", url, "--state-dir", st.stateDir, "--age-identity", st.identity,
		"--listen", st.listen, "--resync", "1h", "--log-format", "json", "--log-level", "debug"}, extra...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- run(ctx, args, io.Discard, st.logs) }()
	st.t.Cleanup(func() {
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				st.t.Errorf("daemon exited %d", code)
			}
		case <-time.After(eventually):
			st.t.Error("daemon did not stop")
		}
	})
	st.waitReady(done)
	return done
}

// waitMetric waits until the series has the value want.
func (st *gitStack) waitMetric(series string, want float64) {
	st.t.Helper()
	st.until(fmt.Sprintf("%s = %v", series, want), func() error {
		if v, ok := metric(st.t, st.listen, series); !ok || v != want {
			return fmt.Errorf("%v (present %v)", v, ok)
		}
		return nil
	})
}

// runningCommit is the commit of bee2_settings_commit_info.
func (st *gitStack) runningCommit() string {
	st.t.Helper()
	_, body := st.get("/metrics")
	ms, err := parseMetrics(body)
	if err != nil {
		st.t.Fatal(err)
	}
	var commits []string
	for _, s := range ms.series("bee2_settings_commit_info") {
		commits = append(commits, s.labels["commit"])
	}
	if len(commits) != 1 {
		st.t.Fatalf("bee2_settings_commit_info has %d series: %v", len(commits), commits)
	}
	return commits[0]
}

// noSecret fails the test if the secret's value shows in any of the texts.
func (st *gitStack) noSecret(where string, text string) {
	st.t.Helper()
	if strings.Contains(text, st.secret) {
		st.t.Errorf("the secret's value appears in %s", where)
	}
}

// TestGitOpsFollowsABranch follows a branch over git's smart HTTP: a push converges; an invalid commit is
// not applied and the one before keeps running; a fix is; an unreachable remote keeps the last good
// commit and the daemon catches up when it returns; a force push is held. The encrypted secret reaches
// the container and never a log, a plan, a status or a metric. status, /readyz and the metrics say which
// commit each server runs; plan --git plans a pull request's head.
func TestGitOpsFollowsABranch(t *testing.T) {
	st := newGitStack(t)
	srv := testgit.Serve(t, filepath.Dir(st.remote.Dir))
	url := srv.URL + "/site.git"
	c1 := st.push("v1")
	st.startGit(url, "--git-poll", "100ms")
	st.waitEnv(st.port, "VERSION", "v1")
	st.waitEnv(st.port, "TOKEN", st.secret)
	st.waitMetric(fmt.Sprintf(`bee2_settings_commit_info{commit=%q}`, c1), 1)
	st.waitMetric(fmt.Sprintf(`bee2_server_converged_commit_info{commit=%q,server="local"}`, c1), 1)
	if _, body := st.get("/readyz"); !strings.Contains(body, "local converged to "+c1[:7]) {
		t.Errorf("/readyz does not say what local converged to:\n%s", body)
	}

	t.Run("invalid commit not applied", func(t *testing.T) {
		bad := st.remote.Commit("typo", map[string][]byte{"settings.yml": append(st.settingsAt("v2"), []byte("aplications: {}\n")...)})
		st.waitMetric("bee2_git_commit_valid", 0)
		if got := st.runningCommit(); got != c1 {
			t.Errorf("running %s after an invalid head, want %s", got, c1)
		}
		if v, _ := env(st.port, "VERSION"); v != "v1" {
			t.Errorf("VERSION %q after an invalid head", v)
		}
		var found bool
		for _, e := range logged(st.logs.String(), "settings commit rejected") {
			found = found || strings.Contains(fmt.Sprint(e), bad[:7])
		}
		if !found && !strings.Contains(st.logs.String(), bad[:7]) {
			t.Errorf("no log names the rejected commit %s", bad[:7])
		}
	})

	c3 := st.push("v3")
	t.Run("fix applied", func(t *testing.T) {
		st.waitEnv(st.port, "VERSION", "v3")
		st.waitMetric("bee2_git_commit_valid", 1)
		st.waitMetric(fmt.Sprintf(`bee2_server_converged_commit_info{commit=%q,server="local"}`, c3), 1)
		out := &lockedBuffer{}
		if code := run(context.Background(), []string{"status", "--state-dir", st.stateDir, "--age-identity", st.identity}, out, out); code != 0 {
			t.Fatalf("status exited %d:\n%s", code, out)
		}
		if !strings.Contains(out.String(), "local  converged to "+c3[:7]) {
			t.Errorf("status does not say local converged to %s:\n%s", c3[:7], out)
		}
		st.noSecret("status", out.String())
	})

	t.Run("remote down keeps the last good commit", func(t *testing.T) {
		srv.Stop()
		before, _ := metric(t, st.listen, "bee2_git_fetch_errors_total")
		st.until("a failed fetch counted", func() error {
			if v, _ := metric(t, st.listen, "bee2_git_fetch_errors_total"); v <= before {
				return fmt.Errorf("bee2_git_fetch_errors_total %v", v)
			}
			return nil
		})
		c4 := st.push("v4")
		if got := st.runningCommit(); got != c3 {
			t.Errorf("running %s with the remote down, want %s", got, c3)
		}
		srv.Start()
		st.waitEnv(st.port, "VERSION", "v4")
		st.waitMetric(fmt.Sprintf(`bee2_settings_commit_info{commit=%q}`, c4), 1)
	})

	t.Run("force push held", func(t *testing.T) {
		running := st.remote.Head()
		st.remote.Reset(c3)
		st.remote.Commit("rewritten", map[string][]byte{"settings.yml": st.settingsAt("v5-rewound")})
		st.remote.Push(true)
		st.waitMetric("bee2_git_head_held", 1)
		if got := st.runningCommit(); got != running {
			t.Errorf("running %s after a force push, want %s", got, running)
		}
		if v, _ := env(st.port, "VERSION"); v != "v4" {
			t.Errorf("VERSION %q after a force push", v)
		}
	})

	t.Run("plan a pull request", func(t *testing.T) {
		st.remote.Reset(c3)
		st.remote.Commit("proposal", map[string][]byte{"settings.yml": st.settingsAt("v6-proposed")})
		st.remote.PushRef("refs/pull/1/head")
		out := &lockedBuffer{}
		code := run(context.Background(), []string{"plan", "--git", url, "--git-ref", "refs/pull/1/head", "--state-dir", st.stateDir,
			"--age-identity", st.identity, "--detailed-exitcode"}, out, out)
		if code != exitChanges {
			t.Fatalf("plan exited %d, want %d:\n%s", code, exitChanges, out)
		}
		if !strings.Contains(out.String(), st.name("web")) || !strings.Contains(out.String(), "VERSION") {
			t.Errorf("the plan does not say web is recreated for VERSION:\n%s", out)
		}
		st.noSecret("the plan", out.String())
	})

	_, body := st.get("/metrics")
	st.noSecret("/metrics", body)
	st.noSecret("the daemon's log", st.logs.String())
}

// TestGitOpsWebhookOverSSH follows a branch over SSH with polling off: only an authenticated webhook makes
// the daemon fetch. GitHub, Gitea, GitLab and the generic signature each deliver a push; wrong and missing
// signatures answer 401, are counted and fetch nothing. The webhook listens on an address of its own.
func TestGitOpsWebhookOverSSH(t *testing.T) {
	st := newGitStack(t)
	sshd := testdocker.StartSSHD(t)
	t.Setenv("GIT_SSH_COMMAND", fmt.Sprintf("ssh -i %s -o UserKnownHostsFile=%s -o IdentitiesOnly=yes -o BatchMode=yes", sshd.Identity, sshd.KnownHosts))
	url := "ssh://" + sshd.User + "@" + sshd.Addr + st.remote.Dir
	secretFile := filepath.Join(t.TempDir(), "webhook-secret")
	hookSecret := []byte("whs-" + t.Name())
	if err := os.WriteFile(secretFile, append(hookSecret, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	hookAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	st.push("v1")
	st.startGit(url, "--git-poll", "0", "--webhook-secret-file", secretFile, "--listen-webhook", hookAddr)
	st.waitEnv(st.port, "VERSION", "v1")

	post := func(header, value string) int {
		t.Helper()
		body := []byte(`{"ref":"refs/heads/main"}`)
		req, err := http.NewRequest(http.MethodPost, "http://"+hookAddr+"/hooks/git", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if header != "" {
			req.Header.Set(header, value)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	body := []byte(`{"ref":"refs/heads/main"}`)
	sig := gitops.SignGitHub(hookSecret, body)
	wrong := gitops.SignGitHub([]byte("not the secret"), body)

	if code, _ := st.get("/hooks/git"); code != http.StatusNotFound && code != http.StatusMethodNotAllowed {
		t.Errorf("the metrics listener answers /hooks/git with %d; with --listen-webhook it is not served there", code)
	}
	st.push("v2")
	logins := sshd.Logins()
	for _, bad := range [][2]string{{"", ""}, {"X-Hub-Signature-256", wrong}, {"X-Gitea-Signature", strings.TrimPrefix(wrong, "sha256=")},
		{"X-Gitlab-Token", "not the secret"}, {"X-Bee2d-Signature-256", "sha256=zz"}} {
		if code := post(bad[0], bad[1]); code != http.StatusUnauthorized {
			t.Errorf("webhook with %q %q: %d, want 401", bad[0], bad[1], code)
		}
	}
	st.waitMetric(`bee2_webhook_requests_total{result="unauthorized"}`, 5)
	// Nothing asked the daemon to fetch: no login reached sshd, and v1 runs.
	time.Sleep(time.Second)
	if n := sshd.Logins(); n != logins {
		t.Errorf("%d logins to the git server after rejected webhooks", n-logins)
	}
	if v, _ := env(st.port, "VERSION"); v != "v1" {
		t.Errorf("VERSION %q after rejected webhooks", v)
	}

	for i, good := range [][2]string{{"X-Hub-Signature-256", sig}, {"X-Gitea-Signature", strings.TrimPrefix(sig, "sha256=")},
		{"X-Gitlab-Token", string(hookSecret)}, {"X-Bee2d-Signature-256", sig}} {
		version := fmt.Sprintf("v%d", i+2)
		if i > 0 {
			st.push(version)
		}
		if code := post(good[0], good[1]); code != http.StatusAccepted {
			t.Fatalf("webhook with a good %s: %d, want 202", good[0], code)
		}
		st.waitEnv(st.port, "VERSION", version)
	}
	st.waitMetric(`bee2_webhook_requests_total{result="accepted"}`, 4)
	if strings.Contains(st.logs.String(), string(hookSecret)) {
		t.Error("the webhook secret appears in the daemon's log")
	}
}

// TestGitOpsSignedCommits follows a local repository with --git-verify: an unsigned head and one signed by
// a key not allowed are not applied; one signed by an allowed key is.
func TestGitOpsSignedCommits(t *testing.T) {
	st := newGitStack(t)
	keys := t.TempDir()
	allowed, allowedPub := testgit.SSHKey(t, keys, "deployer")
	other, _ := testgit.SSHKey(t, keys, "stranger")
	signers := filepath.Join(keys, "allowed_signers")
	if err := os.WriteFile(signers, []byte("deployer@example.org "+allowedPub+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c1 := st.push("v1", testgit.SignedSSH(allowed))
	st.startGit(st.remote.Dir, "--git-poll", "100ms", "--git-verify", signers)
	st.waitEnv(st.port, "VERSION", "v1")
	st.waitMetric("bee2_git_commit_verified", 1)

	unsigned := st.push("v2-unsigned")
	st.waitMetric("bee2_git_commit_verified", 0)
	if got := st.runningCommit(); got != c1 {
		t.Errorf("running %s after the unsigned %s", got[:7], unsigned[:7])
	}
	st.push("v3-stranger", testgit.SignedSSH(other))
	st.until("the stranger's commit refused", func() error {
		if !strings.Contains(st.logs.String(), st.remote.Head()[:7]) {
			return fmt.Errorf("no log names %s", st.remote.Head()[:7])
		}
		return nil
	})
	if v, _ := env(st.port, "VERSION"); v != "v1" {
		t.Errorf("VERSION %q after unsigned and wrongly signed heads", v)
	}
	st.push("v4", testgit.SignedSSH(allowed))
	st.waitEnv(st.port, "VERSION", "v4")
	st.waitMetric("bee2_git_commit_verified", 1)
}
