package benchrun

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/bee2d/bee2d/pkg/dockerx"
)

// sleeperSource runs until SIGTERM or SIGINT. As PID 1 it must handle them itself, or they are ignored.
const sleeperSource = `package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	<-sig
}
`

// BuildSleeper compiles a program that waits for SIGTERM statically and builds it FROM scratch as image, in
// dir (which it fills with the sources and the build context), so that no registry is needed and nobody
// pulls. A failed build may still leave the tag: the caller removes image either way.
func BuildSleeper(ctx context.Context, cli *dockerx.Client, dir, image string) error {
	src, bctx := filepath.Join(dir, "sleeper"), filepath.Join(dir, "image")
	files := map[string]string{
		filepath.Join(src, "go.mod"):      "module sleeper\n\ngo 1.22\n",
		filepath.Join(src, "main.go"):     sleeperSource,
		filepath.Join(bctx, "Dockerfile"): "FROM scratch\nCOPY sleeper /sleeper\nENTRYPOINT [\"/sleeper\"]\n",
	}
	for path, content := range files {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			return err
		}
	}
	env := []string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=" + runtime.GOARCH, "GOWORK=off", "GOTOOLCHAIN=local", "GOFLAGS=-buildvcs=false"}
	if err := Command(ctx, src, env, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", filepath.Join(bctx, "sleeper"), "."); err != nil {
		return err
	}
	var out bytes.Buffer
	if _, err := cli.BuildImage(ctx, dockerx.BuildRequest{ContextDir: bctx, Tags: []string{image}, Output: &out}); err != nil {
		return fmt.Errorf("%w\n%s", err, out.String())
	}
	return nil
}
