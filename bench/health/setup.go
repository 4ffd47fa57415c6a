package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/bee2d/bee2d/bench/internal/benchrun"
	"github.com/bee2d/bee2d/internal/testdocker"
	"github.com/bee2d/bee2d/pkg/config"
	"github.com/bee2d/bee2d/pkg/dockerx"
	"github.com/bee2d/bee2d/pkg/gitx"
	"github.com/bee2d/bee2d/pkg/reconcile"
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

	daemon  *benchrun.Daemon
	events  *benchrun.EventLog
	version benchrun.Versions

	imageBuilt bool
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
	// The health probes' exec_* events (five a second per container at the bench's interval) are dropped.
	b.events = benchrun.FollowEvents(ctx, b.cli, b.runID, func(e dockerx.Event) bool { return !strings.HasPrefix(e.Action, "exec_") })
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
	d, err := reconcile.DesireFrom(s, "local", reconcile.Sources{Digest: dockerx.ContextDigest, Head: gitx.Heads(context.Background())})
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

// startDaemon runs the daemon with its log in a file: JSON at debug level.
func (b *bench) startDaemon() error {
	b.logFile = filepath.Join(b.dir, "daemon.log")
	d, err := benchrun.StartDaemon(b.bee2dBin, b.settings, b.opt.debounce, b.logFile)
	if err != nil {
		return err
	}
	b.daemon = d
	logf("daemon started, pid %d, log %s", d.Cmd.Process.Pid, b.logFile)
	return nil
}

func (b *bench) readVersions(ctx context.Context) (err error) {
	b.version, err = benchrun.ReadVersions(ctx, b.bee2dBin)
	return err
}

// close stops the daemon and removes everything the run created: containers and network (never volumes;
// the run has none), the image, the files. It runs after a cancelled context too, so it has its own.
func (b *bench) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	logf("cleaning up %s", b.runID)
	// The daemon goes first: it would bring back what teardown removes.
	err := b.daemon.Stop()
	b.daemon = nil
	if b.events != nil {
		b.events.Stop()
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

func (b *bench) teardown(ctx context.Context) error {
	return benchrun.Teardown(ctx, b.cli, b.runID, b.network)
}

func writeAtomic(path, text string) error { return benchrun.WriteAtomic(path, text, 0o600) }

var command = benchrun.Command
