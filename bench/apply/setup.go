package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/bee2d/bee2d/bench/internal/benchrun"
	"github.com/bee2d/bee2d/pkg/config"
	"github.com/bee2d/bee2d/pkg/dockerx"
	"github.com/bee2d/bee2d/pkg/gitx"
	"github.com/bee2d/bee2d/pkg/reconcile"
)

// bench is one run: its names, its files, and its connection to the engine.
type bench struct {
	opt  options
	root string // the module's directory
	cli  *dockerx.Client
	dir  string // the generated files

	// runID starts every name the run creates, so teardown can never touch anything else.
	runID        string
	project      string // compose project
	image        string
	bee2dBin     string
	composeBin   string
	settingsFile string
	composeFile  string

	// network and specs are what bee2d creates for the settings; the floor creates exactly these.
	network string
	specs   []dockerx.ContainerSpec

	imageBuilt bool
	versions   versions
}

// versions say what was measured.
type versions struct {
	Engine  string `json:"engine"`
	Compose string `json:"compose"`
	Bee2d   string `json:"bee2d"`
	Go      string `json:"go"`
	CPUs    int    `json:"cpus"`
}

func newBench(ctx context.Context, opt options, root string) (*bench, error) {
	id := make([]byte, 3)
	if _, err := rand.Read(id); err != nil {
		return nil, err
	}
	b := &bench{opt: opt, root: root, runID: "b2bench" + hex.EncodeToString(id)}
	b.project = b.runID + "c"
	b.image = b.runID + "/sleeper:1"
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

// prepare builds what is measured and what it runs, and writes the settings and compose files.
func (b *bench) prepare(ctx context.Context) error {
	var err error
	if b.dir, err = os.MkdirTemp("", b.runID+"-"); err != nil {
		return err
	}
	b.bee2dBin, b.composeBin = b.opt.bee2d, b.opt.compose
	if b.bee2dBin == "" {
		b.bee2dBin = filepath.Join(b.root, "bin", "bee2d")
		logf("building %s", b.bee2dBin)
		if err := b.cmd(ctx, b.root, nil, "go", "build", "-o", b.bee2dBin, "./cmd/bee2d"); err != nil {
			return err
		}
	}
	if b.composeBin == "" {
		b.composeBin = filepath.Join(b.root, "bench", "bin", "docker-compose")
		logf("building %s (bench/tools/compose.sh; skipped when present)", b.composeBin)
		if err := b.cmd(ctx, b.root, nil, "bash", filepath.Join(b.root, "bench", "tools", "compose.sh")); err != nil {
			return err
		}
	}
	for _, p := range []*string{&b.bee2dBin, &b.composeBin} {
		if *p, err = filepath.Abs(*p); err != nil {
			return err
		}
	}
	if err := b.buildImage(ctx); err != nil {
		return err
	}
	if err := b.writeFiles(); err != nil {
		return err
	}
	return b.readVersions(ctx)
}

// buildImage builds the sleeper FROM scratch: no registry is needed, and neither contender ever pulls,
// since the image is present.
func (b *bench) buildImage(ctx context.Context) error {
	logf("building image %s", b.image)
	b.imageBuilt = true // a failed build may still leave the tag; close removes it if so
	return benchrun.BuildSleeper(ctx, b.cli, b.dir, b.image)
}

// writeFiles writes the same N services twice: as bee2d settings and as a compose file. Both give each
// container the sleeper image, one env var and restart unless-stopped, on one user-defined network, with no
// ports and no volumes. The floor's specs come from the settings through bee2d's own desired state, so the
// floor creates byte for byte what bee2d creates.
func (b *bench) writeFiles() error {
	var settings, compose strings.Builder
	fmt.Fprintf(&settings, "servers:\n  local: {}\ndocker:\n  prefix: %s\napplications:\n", b.runID)
	fmt.Fprintf(&compose, "name: %s\nservices:\n", b.project)
	for i := 1; i <= b.opt.n; i++ {
		name := fmt.Sprintf("a%03d", i)
		fmt.Fprintf(&settings, "  %s:\n    server: local\n    image: %s\n    env: {index: %d}\n", name, b.image, i)
		fmt.Fprintf(&compose, "  %s:\n    image: %s\n    environment:\n      INDEX: \"%d\"\n    restart: unless-stopped\n", name, b.image, i)
	}
	b.settingsFile = filepath.Join(b.dir, "bench.yml")
	b.composeFile = filepath.Join(b.dir, "bench-compose.yml")
	if err := os.WriteFile(b.settingsFile, []byte(settings.String()), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(b.composeFile, []byte(compose.String()), 0o644); err != nil {
		return err
	}

	s, err := config.Load(b.settingsFile)
	if err != nil {
		return err
	}
	d, err := reconcile.DesireFrom(s, "local", reconcile.Sources{Digest: dockerx.ContextDigest, Head: gitx.Heads(context.Background())})
	if err != nil {
		return err
	}
	if d.Network != b.network || len(d.Containers) != b.opt.n {
		return fmt.Errorf("desired state has network %s and %d containers; want %s and %d", d.Network, len(d.Containers), b.network, b.opt.n)
	}
	for _, c := range d.Containers {
		b.specs = append(b.specs, c.ContainerSpec)
	}
	return nil
}

func (b *bench) readVersions(ctx context.Context) error {
	b.versions = versions{Go: runtime.Version(), CPUs: runtime.NumCPU()}
	out, err := exec.CommandContext(ctx, b.bee2dBin, "version").Output()
	if err != nil {
		return fmt.Errorf("%s version: %w", b.bee2dBin, err)
	}
	b.versions.Bee2d = strings.TrimSpace(strings.TrimPrefix(string(out), "bee2d "))
	out, err = exec.CommandContext(ctx, b.composeBin, "version", "--short").Output()
	if err != nil {
		return fmt.Errorf("%s version: %w", b.composeBin, err)
	}
	b.versions.Compose = strings.TrimSpace(string(out))
	// The docker CLI is optional; the engine version is only for the record.
	b.versions.Engine = "unknown"
	if out, err := exec.CommandContext(ctx, "docker", "version", "--format", "{{.Server.Version}}").Output(); err == nil {
		b.versions.Engine = strings.TrimSpace(string(out))
	}
	return nil
}

// close removes everything the run created: containers and networks (never volumes), the image, the files.
// It runs after a cancelled context too, so it has its own.
func (b *bench) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	logf("cleaning up %s", b.runID)
	err := b.teardown(ctx)
	if b.imageBuilt {
		if rerr := b.cli.RemoveImage(ctx, b.image); rerr != nil && !dockerx.IsNotFound(rerr) {
			err = errors.Join(err, rerr)
		}
	}
	if b.dir != "" {
		if b.opt.keep {
			logf("kept %s and %s", b.settingsFile, b.composeFile)
		} else if rerr := os.RemoveAll(b.dir); rerr != nil {
			err = errors.Join(err, rerr)
		}
	}
	return errors.Join(err, b.cli.Close())
}

// timed runs one contender's command and returns how long the whole process took, and its output.
func (b *bench) timed(ctx context.Context, name string, args ...string) (time.Duration, []byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = b.dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	return time.Since(start), out.Bytes(), err
}

// cmd runs a preparation step, showing its output only when it fails.
func (b *bench) cmd(ctx context.Context, dir string, env []string, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out)
	}
	return nil
}

// moduleRoot is the directory of the main module's go.mod, so the bench runs from any directory in it.
func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("run this inside the bee2d module (go run ./bench/apply)")
	}
	return filepath.Dir(mod), nil
}

// bee2dParallel reads the constant defaultParallel from bee2d's source, so the floor runs at the concurrency
// bee2d really uses without the two having to be kept in step by hand.
func bee2dParallel(file string) (int, error) {
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, 0)
	if err != nil {
		return 0, fmt.Errorf("read defaultParallel (or give -parallel): %w", err)
	}
	for _, decl := range f.Decls {
		gd, ok := decl.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			continue
		}
		for _, spec := range gd.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, name := range vs.Names {
				if name.Name != "defaultParallel" || i >= len(vs.Values) {
					continue
				}
				if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.INT {
					return strconv.Atoi(lit.Value)
				}
			}
		}
	}
	return 0, fmt.Errorf("%s: no integer constant defaultParallel; give -parallel", file)
}
