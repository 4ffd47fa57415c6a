package reconcile

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bee2d/bee2d/pkg/config"
	"github.com/bee2d/bee2d/pkg/engine"
)

// TestBuildArgs checks that build arguments reach the build, name another image (so a container built
// with other arguments is recreated), and leave the tag of an image without arguments as it was.
func TestBuildArgs(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "dockerfiles", "HAProxy"), 0o755); err != nil {
		t.Fatal(err)
	}
	desire := func(args string) *Container {
		t.Helper()
		yml := "servers: {web1: {}}\napplications:\n  haproxy:\n    server: web1\n    build_dir: HAProxy\n" + args
		s, err := config.Parse(filepath.Join(dir, "settings.yml"), []byte(yml))
		if err != nil {
			t.Fatal(err)
		}
		d, err := DesireFrom(s, "web1", Sources{Digest: func(string) (string, error) { return "0123456789abcdef0123", nil }})
		if err != nil {
			t.Fatal(err)
		}
		return d.Containers[0]
	}
	plain := desire("")
	if plain.Image != "bee2/haproxy:0123456789ab" || plain.Source.Build.Display != "dockerfiles/HAProxy" {
		t.Errorf("without build args: %s from %s", plain.Image, plain.Source.Build.Display)
	}
	a := desire("    build_args: {BASE: \"haproxy:3.2\"}\n")
	b := desire("    build_args: {BASE: \"haproxy:2.8\"}\n")
	if a.Image == plain.Image || a.Image == b.Image || !strings.HasPrefix(a.Image, "bee2/haproxy:") {
		t.Errorf("images %s, %s, %s: each set of build args must name its own", plain.Image, a.Image, b.Image)
	}
	if a.Source.Build.Display != "dockerfiles/HAProxy with build args BASE" {
		t.Errorf("display %q", a.Source.Build.Display)
	}
	if cause, _ := changed(&engine.Container{Labels: b.Labels}, a); !strings.Contains(cause, "image bee2/haproxy:") {
		t.Errorf("other build args: cause %q; want a recreate for the image", cause)
	}

	eng := &buildRecorder{}
	ex := &Executor{Engine: eng}
	if err := ex.apply(t.Context(), Action{Op: OpBuildImage, Resource: a.Image, Container: a}); err != nil {
		t.Fatal(err)
	}
	if v := eng.req.BuildArgs["BASE"]; v == nil || *v != "haproxy:3.2" || len(eng.req.BuildArgs) != 1 {
		t.Errorf("build args sent: %v", eng.req.BuildArgs)
	}
}

// buildRecorder is an engine that only records a build request.
type buildRecorder struct {
	Engine
	req engine.BuildRequest
}

func (b *buildRecorder) BuildImage(_ context.Context, req engine.BuildRequest) (string, error) {
	b.req = req
	return "sha256:1", nil
}
