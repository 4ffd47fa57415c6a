package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/cgi"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/bee2d/bee2d/bench/internal/benchrun"
	"github.com/bee2d/bee2d/pkg/config"
	"github.com/bee2d/bee2d/pkg/dockerx"
	"github.com/bee2d/bee2d/pkg/gitx"
	"github.com/bee2d/bee2d/pkg/reconcile"
)

// probe is the application each push changes.
const probe = "probe"

// The repositories the bench serves, under its GIT_PROJECT_ROOT.
const (
	settingsRepo = "settings.git"
	bigRepo      = "big.git"
	branch       = "main"
)

// bench is one run: its names, its files, its git server, the engine, and the daemon under measurement.
type bench struct {
	opt options
	cli *dockerx.Client
	dir string // everything the run writes

	// runID starts every name the run creates and is the prefix of its settings, so teardown can never
	// touch anything else.
	runID    string
	image    string
	network  string
	bee2dBin string
	version  benchrun.Versions

	// gitEnv isolates every git the run starts (its own, the daemon's, the http-backend's) from the user's
	// and the system's configuration.
	gitEnv  []string
	server  *http.Server
	baseURL string // http://127.0.0.1:port/
	work    string // the clone the bench commits and pushes the settings from
	secret  []byte // the webhook's
	round   int    // the probe's env value in the settings last pushed

	daemon     *benchrun.Daemon
	daemonLog  string
	listenAddr string
	events     *benchrun.EventLog

	imageBuilt bool
}

func newBench(ctx context.Context, opt options) (*bench, error) {
	id := make([]byte, 3)
	if _, err := rand.Read(id); err != nil {
		return nil, err
	}
	b := &bench{opt: opt, runID: "b2gitops" + hex.EncodeToString(id)}
	b.image = b.runID + "/sleeper:1"
	b.network = config.NetworkName(b.runID)
	if opt.skipPush {
		return b, nil
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cli, err := dockerx.Connect(cctx, dockerx.Endpoint{})
	if err != nil {
		return nil, err
	}
	b.cli = cli
	return b, nil
}

// prepare isolates git, serves the repositories, builds the daemon and the image, pushes the first settings
// and starts following the engine's events.
func (b *bench) prepare(ctx context.Context) error {
	var err error
	if b.dir, err = os.MkdirTemp("", b.runID+"-"); err != nil {
		return err
	}
	if err := b.isolateGit(); err != nil {
		return err
	}
	if err := b.serveGit(); err != nil {
		return err
	}
	if b.opt.skipPush {
		b.version = benchrun.Versions{Engine: "-", Bee2d: "-", Go: runtime.Version(), CPUs: runtime.NumCPU()}
		return nil
	}
	if err := b.buildBee2d(ctx); err != nil {
		return err
	}
	if b.version, err = benchrun.ReadVersions(ctx, b.bee2dBin); err != nil {
		return err
	}
	logf("building image %s", b.image)
	b.imageBuilt = true // a failed build may still leave the tag; close removes it if so
	if err := benchrun.BuildSleeper(ctx, b.cli, b.dir, b.image); err != nil {
		return err
	}
	if err := b.initSettingsRepo(ctx); err != nil {
		return err
	}
	if b.secret, err = randomHex(32); err != nil {
		return err
	}
	if err := os.WriteFile(b.secretFile(), b.secret, 0o600); err != nil {
		return err
	}
	// Following the events from before the daemon starts, the bench sees every container it makes.
	b.events = benchrun.FollowEvents(ctx, b.cli, b.runID, nil)
	return nil
}

// isolateGit gives every git of the run a global configuration of its own (an identity, the branch name)
// and none of the system's. The daemon and the in-process gitx calls inherit the bench's environment.
func (b *bench) isolateGit() error {
	global := filepath.Join(b.dir, "gitconfig")
	conf := "[user]\n\tname = bee2d bench\n\temail = bench@bee2d.invalid\n[init]\n\tdefaultBranch = main\n"
	if err := os.WriteFile(global, []byte(conf), 0o644); err != nil {
		return err
	}
	b.gitEnv = []string{
		"GIT_CONFIG_GLOBAL=" + global, "GIT_CONFIG_NOSYSTEM=1",
		"GIT_AUTHOR_NAME=bee2d bench", "GIT_AUTHOR_EMAIL=bench@bee2d.invalid",
		"GIT_COMMITTER_NAME=bee2d bench", "GIT_COMMITTER_EMAIL=bench@bee2d.invalid",
	}
	for _, kv := range b.gitEnv {
		k, v, _ := strings.Cut(kv, "=")
		if err := os.Setenv(k, v); err != nil {
			return err
		}
	}
	return nil
}

// serveGit serves the directory of the run's bare repositories over git's smart HTTP protocol, read only,
// as a forge would: git http-backend as a CGI program.
func (b *bench) serveGit() error {
	if err := os.MkdirAll(b.repoRoot(), 0o755); err != nil {
		return err
	}
	out, err := exec.Command("git", "--exec-path").Output()
	if err != nil {
		return fmt.Errorf("git --exec-path: %w", err)
	}
	backend := filepath.Join(strings.TrimSpace(string(out)), "git-http-backend")
	logFile, err := os.Create(filepath.Join(b.dir, "http-backend.log"))
	if err != nil {
		return err
	}
	h := &cgi.Handler{
		Path:   backend,
		Env:    append([]string{"GIT_PROJECT_ROOT=" + b.repoRoot(), "GIT_HTTP_EXPORT_ALL=1"}, b.gitEnv...),
		Stderr: logFile,
		Logger: log.New(logFile, "", log.LstdFlags),
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		logFile.Close()
		return err
	}
	b.baseURL = "http://" + ln.Addr().String() + "/"
	b.server = &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ErrorLog: log.New(logFile, "", log.LstdFlags)}
	go func() {
		b.server.Serve(ln)
		logFile.Close()
	}()
	logf("serving %s over smart HTTP at %s", b.repoRoot(), b.baseURL)
	return nil
}

func (b *bench) repoRoot() string           { return filepath.Join(b.dir, "repos") }
func (b *bench) repoURL(name string) string { return b.baseURL + name }
func (b *bench) secretFile() string         { return filepath.Join(b.dir, "webhook-secret") }

// buildBee2d builds bin/bee2d in the module unless -bee2d names a binary.
func (b *bench) buildBee2d(ctx context.Context) error {
	if b.opt.bee2d != "" {
		var err error
		b.bee2dBin, err = filepath.Abs(b.opt.bee2d)
		return err
	}
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	gomod := strings.TrimSpace(string(out))
	if err != nil || gomod == "" || gomod == os.DevNull {
		return fmt.Errorf("go env GOMOD: not in the bee2d module (%v)", err)
	}
	root := filepath.Dir(gomod)
	b.bee2dBin = filepath.Join(root, "bin", "bee2d")
	logf("building %s", b.bee2dBin)
	return benchrun.Command(ctx, root, nil, "go", "build", "-o", b.bee2dBin, "./cmd/bee2d")
}

// initSettingsRepo makes the bare repository the daemon follows and the clone the bench pushes from, and
// pushes the first settings.
func (b *bench) initSettingsRepo(ctx context.Context) error {
	bare := filepath.Join(b.repoRoot(), settingsRepo)
	b.work = filepath.Join(b.dir, "work")
	if err := b.git(ctx, "", "init", "--quiet", "--bare", "--initial-branch="+branch, bare); err != nil {
		return err
	}
	if err := b.git(ctx, "", "init", "--quiet", "--initial-branch="+branch, b.work); err != nil {
		return err
	}
	if err := b.git(ctx, b.work, "remote", "add", "origin", bare); err != nil {
		return err
	}
	if _, err := b.commitSettings(ctx, b.settingsText(0), "first settings"); err != nil {
		return err
	}
	return b.git(ctx, b.work, "push", "--quiet", "origin", branch)
}

// commitSettings writes the settings into the clone and commits them; it returns the commit's hash.
func (b *bench) commitSettings(ctx context.Context, text, msg string) (string, error) {
	if err := os.WriteFile(filepath.Join(b.work, "settings.yml"), []byte(text), 0o644); err != nil {
		return "", err
	}
	if err := b.git(ctx, b.work, "add", "settings.yml"); err != nil {
		return "", err
	}
	if err := b.git(ctx, b.work, "commit", "--quiet", "-m", msg); err != nil {
		return "", err
	}
	return b.gitOutput(ctx, b.work, "rev-parse", "HEAD")
}

// settingsText is the settings with the probe at a given round: each push changes its env.
func (b *bench) settingsText(round int) string {
	var s strings.Builder
	fmt.Fprintf(&s, "servers:\n  local: {}\ndocker:\n  prefix: %s\napplications:\n", b.runID)
	fmt.Fprintf(&s, "  %s:\n    server: local\n    image: %s\n    env: {round: %d}\n", probe, b.image, round)
	if b.opt.deploy == "start-first" {
		s.WriteString("    deploy: start-first\n")
	}
	for i := 1; i <= b.opt.sleepers; i++ {
		fmt.Fprintf(&s, "  a%03d:\n    server: local\n    image: %s\n    env: {index: %d}\n", i, b.image, i)
	}
	return s.String()
}

// desired computes the settings' containers as bee2d does.
func (b *bench) desired(text string) (*reconcile.Desired, error) {
	s, err := config.Parse(filepath.Join(b.work, "settings.yml"), []byte(text))
	if err != nil {
		return nil, err
	}
	return reconcile.DesireFrom(s, "local", reconcile.Sources{Digest: dockerx.ContextDigest, Head: gitx.Heads(context.Background())})
}

// hashes maps every container of the settings text to its spec hash.
func (b *bench) hashes(text string) (map[string]string, error) {
	d, err := b.desired(text)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, c := range d.Containers {
		out[c.Name] = c.Hash
	}
	return out, nil
}

func (b *bench) probeName() string { return config.ContainerName(b.runID, config.KindApp, probe) }

// mode is how the daemon learns of a push.
type mode string

const (
	modeWebhook mode = "webhook"
	modePoll    mode = "poll"
)

// startDaemon runs `bee2d daemon --git` on the settings repository over HTTP, with a state directory of
// its own for each mode, so that each starts from an empty mirror.
func (b *bench) startDaemon(m mode) error {
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	b.listenAddr = addr
	args := []string{"--git", b.repoURL(settingsRepo), "--git-branch", branch, "--git-path", "settings.yml",
		"--state-dir", filepath.Join(b.dir, "state-"+string(m)), "--listen", addr}
	switch m {
	case modeWebhook:
		args = append(args, "--git-poll", "0", "--webhook-secret-file", b.secretFile())
	case modePoll:
		args = append(args, "--git-poll", b.opt.poll.String())
	}
	b.daemonLog = filepath.Join(b.dir, "daemon-"+string(m)+".log")
	d, err := benchrun.StartDaemonArgs(b.bee2dBin, args, b.daemonLog)
	if err != nil {
		return err
	}
	b.daemon = d
	logf("daemon (%s) started, pid %d, log %s", m, d.Cmd.Process.Pid, b.daemonLog)
	return nil
}

// stopDaemon stops the daemon with SIGTERM and waits for it.
func (b *bench) stopDaemon() error {
	err := b.daemon.Stop()
	b.daemon = nil
	return err
}

// freeAddr is a loopback address with a port free a moment ago.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// close stops the daemon and the git server and removes everything the run created: containers and network
// (never volumes; the run has none), the image, the files. It runs after a cancelled context too, so it has
// its own.
func (b *bench) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	logf("cleaning up %s", b.runID)
	// The daemon goes first: it would bring back what teardown removes.
	var err error
	if b.daemon != nil {
		err = b.stopDaemon()
	}
	if b.events != nil {
		b.events.Stop()
	}
	if b.server != nil {
		err = errors.Join(err, b.server.Close())
	}
	if b.cli != nil {
		err = errors.Join(err, benchrun.Teardown(ctx, b.cli, b.runID, b.network))
		if b.imageBuilt {
			if rerr := b.cli.RemoveImage(ctx, b.image); rerr != nil && !dockerx.IsNotFound(rerr) {
				err = errors.Join(err, rerr)
			}
		}
		err = errors.Join(err, b.cli.Close())
	}
	if b.dir != "" {
		if b.opt.keep {
			logf("kept %s", b.dir)
		} else if rerr := os.RemoveAll(b.dir); rerr != nil {
			err = errors.Join(err, rerr)
		}
	}
	return err
}

// git runs a git command of the bench's own, untimed unless the caller times it.
func (b *bench) git(ctx context.Context, dir string, args ...string) error {
	return benchrun.Command(ctx, dir, b.gitEnv, "git", args...)
}

func (b *bench) gitOutput(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), b.gitEnv...)
	cmd.Stderr = io.Discard
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("git %s: %w", strings.Join(args, " "), err)
	}
	return strings.TrimSpace(string(out)), nil
}

func randomHex(n int) ([]byte, error) {
	raw := make([]byte, n)
	if _, err := rand.Read(raw); err != nil {
		return nil, err
	}
	return []byte(hex.EncodeToString(raw)), nil
}
