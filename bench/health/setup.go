package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/bee2d/bee2d/internal/testdocker"
	"github.com/bee2d/bee2d/pkg/config"
	"github.com/bee2d/bee2d/pkg/dockerx"
	"github.com/bee2d/bee2d/pkg/reconcile"
	"github.com/bee2d/bee2d/pkg/reconcile/gitsrc"
)

// app is the application the trials deploy.
const app = "web"

// bench is one run: its names, its files, the engine, and the daemon under measurement.
type bench struct {
	opt options
	cli *dockerx.Client
	dir string // the generated files

	// runID starts every name the run creates and is the prefix of its settings, so teardown can never
	// touch anything else.
	runID    string
	image    string
	network  string
	bee2dBin string
	settings string
	logFile  string

	daemon  *exec.Cmd
	exited  chan error
	events  *eventLog
	version versions

	imageBuilt bool
}

// versions say what was measured.
type versions struct {
	Engine string `json:"engine"`
	Bee2d  string `json:"bee2d"`
	Go     string `json:"go"`
	CPUs   int    `json:"cpus"`
}

func newBench(ctx context.Context, opt options) (*bench, error) {
	id := make([]byte, 3)
	if _, err := rand.Read(id); err != nil {
		return nil, err
	}
	b := &bench{opt: opt, runID: "b2health" + hex.EncodeToString(id)}
	b.image = b.runID + "/webapp:1"
	b.network = config.NetworkName(b.runID)
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cli, err := dockerx.Connect(cctx, dockerx.Endpoint{})
	if err != nil {
		return nil, err
	}
	b.cli = cli
	return b, nil
}

// prepare builds the image and the daemon, writes the first settings, starts following the engine's events
// and starts the daemon.
func (b *bench) prepare(ctx context.Context) error {
	var err error
	if b.dir, err = os.MkdirTemp("", b.runID+"-"); err != nil {
		return err
	}
	b.bee2dBin = b.opt.bee2d
	if b.bee2dBin == "" {
		b.bee2dBin = filepath.Join(b.dir, "bee2d")
		logf("building %s", b.bee2dBin)
		if err := command(ctx, "", nil, "go", "build", "-o", b.bee2dBin, "github.com/bee2d/bee2d/cmd/bee2d"); err != nil {
			return err
		}
	} else if b.bee2dBin, err = filepath.Abs(b.bee2dBin); err != nil {
		return err
	}
	if err := b.buildImage(ctx); err != nil {
		return err
	}
	b.settings = filepath.Join(b.dir, "settings.yml")
	if err := writeAtomic(b.settings, b.settingsText("v0", "yes", b.opt.modes[0])); err != nil {
		return err
	}
	if err := b.readVersions(ctx); err != nil {
		return err
	}
	// Following the events from before the daemon starts, the bench sees every container it makes.
	if b.events, err = followEvents(ctx, b.cli, b.runID); err != nil {
		return err
	}
	return b.startDaemon()
}

// buildImage builds the test web application FROM scratch, so no registry is needed.
func (b *bench) buildImage(ctx context.Context) error {
	bctx := filepath.Join(b.dir, "image")
	logf("building image %s", b.image)
	if err := testdocker.WriteGoBuildDir(bctx, testdocker.WebAppSource); err != nil {
		return err
	}
	var out bytes.Buffer
	b.imageBuilt = true // a failed build may still leave the tag; close removes it if so
	if _, err := b.cli.BuildImage(ctx, dockerx.BuildRequest{ContextDir: bctx, Tags: []string{b.image}, Output: &out}); err != nil {
		return fmt.Errorf("%w\n%s", err, out.String())
	}
	return nil
}

// settingsText is the settings with the application at a version, healthy or not (the web application's
// HEALTHY), deployed in a mode.
func (b *bench) settingsText(version, healthy, mode string) string {
	test := make([]string, len(testdocker.WebAppProbe))
	for i, a := range testdocker.WebAppProbe {
		test[i] = fmt.Sprintf("%q", a)
	}
	var s strings.Builder
	fmt.Fprintf(&s, "servers:\n  local: {}\ndocker:\n  prefix: %s\napplications:\n", b.runID)
	fmt.Fprintf(&s, "  %s:\n    server: local\n    image: %s\n    env: {version: %s, healthy: %q}\n", app, b.image, version, healthy)
	fmt.Fprintf(&s, "    healthcheck:\n      test: [%s]\n      interval: %v\n      timeout: %v\n      retries: %d\n",
		strings.Join(test, ", "), b.opt.interval, b.opt.timeout, b.opt.retries)
	if b.opt.startPeriod > 0 {
		fmt.Fprintf(&s, "      start_period: %v\n", b.opt.startPeriod)
	}
	fmt.Fprintf(&s, "    deploy: %s\n", mode)
	return s.String()
}

// desired is the application's container in a settings text, as bee2d computes it.
func (b *bench) desired(text string) (reconcile.Container, error) {
	s, err := config.Parse(b.settings, []byte(text))
	if err != nil {
		return reconcile.Container{}, err
	}
	d, err := reconcile.DesireFrom(s, "local", reconcile.Sources{Digest: dockerx.ContextDigest, Head: gitsrc.Heads(context.Background())})
	if err != nil {
		return reconcile.Container{}, err
	}
	for _, c := range d.Containers {
		if c.Name == b.appName() {
			return *c, nil
		}
	}
	return reconcile.Container{}, fmt.Errorf("no %s in the settings", b.appName())
}

func (b *bench) appName() string { return config.ContainerName(b.runID, config.KindApp, app) }

// startDaemon runs the daemon with its log in a file.
func (b *bench) startDaemon() error {
	b.logFile = filepath.Join(b.dir, "daemon.log")
	f, err := os.Create(b.logFile)
	if err != nil {
		return err
	}
	b.daemon = exec.Command(b.bee2dBin, "daemon", "-c", b.settings, "--listen", "", "--debounce", b.opt.debounce.String(),
		"--log-format", "json", "--log-level", "debug")
	b.daemon.Stdout, b.daemon.Stderr = f, f
	if err := b.daemon.Start(); err != nil {
		f.Close()
		return err
	}
	b.exited = make(chan error, 1)
	go func() {
		b.exited <- b.daemon.Wait()
		f.Close()
	}()
	logf("daemon started, pid %d, log %s", b.daemon.Process.Pid, b.logFile)
	return nil
}

// stopDaemon sends SIGTERM and waits for the exit.
func (b *bench) stopDaemon() error {
	if b.daemon == nil || b.daemon.Process == nil {
		return nil
	}
	select {
	case err := <-b.exited:
		b.daemon = nil
		return fmt.Errorf("the daemon had exited: %v", err)
	default:
	}
	b.daemon.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-b.exited:
		b.daemon = nil
		return err
	case <-time.After(time.Minute):
		b.daemon.Process.Kill()
		b.daemon = nil
		return errors.New("the daemon did not stop within a minute of SIGTERM; killed")
	}
}

func (b *bench) readVersions(ctx context.Context) error {
	b.version = versions{Go: runtime.Version(), CPUs: runtime.NumCPU(), Engine: "unknown"}
	out, err := exec.CommandContext(ctx, b.bee2dBin, "version").Output()
	if err != nil {
		return fmt.Errorf("%s version: %w", b.bee2dBin, err)
	}
	b.version.Bee2d = strings.TrimSpace(strings.TrimPrefix(string(out), "bee2d "))
	// The docker CLI is optional; the engine version is only for the record.
	if out, err := exec.CommandContext(ctx, "docker", "version", "--format", "{{.Server.Version}}").Output(); err == nil {
		b.version.Engine = strings.TrimSpace(string(out))
	}
	return nil
}

// close stops the daemon and removes everything the run created: containers and network (never volumes;
// the run has none), the image, the files. It runs after a cancelled context too, so it has its own.
func (b *bench) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	logf("cleaning up %s", b.runID)
	// The daemon goes first: it would bring back what teardown removes.
	err := b.stopDaemon()
	if b.events != nil {
		b.events.stop()
	}
	err = errors.Join(err, b.teardown(ctx))
	if b.imageBuilt {
		if rerr := b.cli.RemoveImage(ctx, b.image); rerr != nil && !dockerx.IsNotFound(rerr) {
			err = errors.Join(err, rerr)
		}
	}
	if b.dir != "" {
		if b.opt.keep {
			logf("kept %s and %s", b.settings, b.logFile)
		} else if rerr := os.RemoveAll(b.dir); rerr != nil {
			err = errors.Join(err, rerr)
		}
	}
	return errors.Join(err, b.cli.Close())
}

// teardown removes the run's containers (the failed versions kept for their logs too), then its network,
// one container at a time: on Docker 20.10 concurrent stops on one network can leave it believing it still
// has endpoints (see bench/README.md).
func (b *bench) teardown(ctx context.Context) error {
	list, err := b.cli.ListContainers(ctx)
	if err != nil {
		return err
	}
	for _, c := range list {
		if !strings.HasPrefix(c.Name, b.runID+"-") {
			continue
		}
		if err := b.cli.StopContainer(ctx, c.ID, 5*time.Second); err != nil && !dockerx.IsNotFound(err) {
			return fmt.Errorf("teardown: %w", err)
		}
		if err := b.cli.RemoveContainer(ctx, c.ID); err != nil && !dockerx.IsNotFound(err) {
			return fmt.Errorf("teardown: %w", err)
		}
	}
	var last error
	for range 5 {
		last = b.cli.RemoveNetwork(ctx, b.network)
		if last == nil || dockerx.IsNotFound(last) {
			return nil
		}
		time.Sleep(time.Second)
	}
	return fmt.Errorf("teardown: network %s (if it \"has active endpoints\", see bench/README.md): %w", b.network, last)
}

// command runs a preparation step, showing its output only when it fails.
func command(ctx context.Context, dir string, env []string, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out)
	}
	return nil
}

// writeAtomic replaces a file by renaming a new one over it, as editors and `git checkout` do: the daemon
// never reads half a file.
func writeAtomic(path, text string) error {
	tmp := path + ".new"
	if err := os.WriteFile(tmp, []byte(text), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
