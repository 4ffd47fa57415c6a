package testdocker_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bee2d/bee2d/internal/testdocker"
	"github.com/bee2d/bee2d/pkg/dockerx"
)

// Without Main, an image belongs to the test that built it and goes when that test ends.
func TestBuildGoImageWithoutMainIsRemovedWithTheTest(t *testing.T) {
	cli := testdocker.Require(t)
	var tag string
	t.Run("build", func(t *testing.T) {
		tag = testdocker.Sleeper(t, cli)
		if !strings.HasPrefix(tag, testdocker.NamePrefix) || !strings.Contains(tag, "/sleeper:") {
			t.Errorf("tag = %q", tag)
		}
		if ok, err := cli.ImageExists(t.Context(), tag); err != nil || !ok {
			t.Fatalf("ImageExists(%s) = %v, %v", tag, ok, err)
		}
	})
	if ok, err := cli.ImageExists(context.Background(), tag); err != nil || ok {
		t.Errorf("after the test: ImageExists(%s) = %v, %v; want it removed", tag, ok, err)
	}
}

func TestUniquePrefix(t *testing.T) {
	a, b := testdocker.UniquePrefix(t), testdocker.UniquePrefix(t)
	if a == b || !strings.HasPrefix(a, testdocker.NamePrefix) || strings.ToLower(a) != a {
		t.Errorf("prefixes %q, %q", a, b)
	}
}

// Cleanup removes every container of its prefix, several at a time: the engine is reached through a
// proxy that holds each container removal until a second one is in flight, so removals one by one would
// each wait out the hold and the peak would stay at one.
func TestCleanupRemovesContainersConcurrently(t *testing.T) {
	cli := testdocker.Require(t)
	image := testdocker.Sleeper(t, cli)
	g := &removalGate{want: 2, reached: make(chan struct{})}
	gated := g.client(t)
	prefix := testdocker.UniquePrefix(t)
	// The outer cleanup, through the plain client, catches whatever the one under test leaves.
	testdocker.Cleanup(t, cli, prefix)
	const n = 6
	t.Run("containers", func(t *testing.T) {
		testdocker.Cleanup(t, gated, prefix)
		for i := range n {
			if _, err := cli.CreateContainer(t.Context(), dockerx.ContainerSpec{Name: fmt.Sprintf("%s-c%d", prefix, i), Image: image}); err != nil {
				t.Fatal(err)
			}
		}
	})
	list, err := cli.ListContainers(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range list {
		if strings.HasPrefix(c.Name, prefix) {
			t.Errorf("%s left after the cleanup", c.Name)
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.removals != n || g.peak < g.want {
		t.Errorf("%d removals, at most %d at once; want %d, at least %d at once", g.removals, g.peak, n, g.want)
	}
}

// removalGate is a proxy to the engine that counts container removals in flight and holds each one until
// want are, or for hold at most.
type removalGate struct {
	want    int
	reached chan struct{}

	mu             sync.Mutex
	inFlight, peak int
	removals       int
	closed         bool
}

const hold = 20 * time.Second

func (g *removalGate) client(t *testing.T) *dockerx.Client {
	t.Helper()
	ln, sock := testdocker.ListenUnix(t, "bee2d-gate", "docker.sock")
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(&url.URL{Scheme: "http", Host: "docker"}) },
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", "/var/run/docker.sock")
		}},
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodDelete && strings.Contains(r.URL.Path, "/containers/") {
			g.mu.Lock()
			g.removals++
			g.inFlight++
			g.peak = max(g.peak, g.inFlight)
			if g.inFlight >= g.want && !g.closed {
				g.closed = true
				close(g.reached)
			}
			g.mu.Unlock()
			select {
			case <-g.reached:
			case <-time.After(hold):
			}
			defer func() {
				g.mu.Lock()
				g.inFlight--
				g.mu.Unlock()
			}()
		}
		rp.ServeHTTP(w, r)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	c, err := dockerx.Connect(t.Context(), dockerx.Endpoint{Host: "unix://" + sock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// outcomeTB records how a check ended a test: Fatalf and Skipf end its goroutine, as testing's do.
type outcomeTB struct {
	testing.TB
	fatal, skip string
}

func (o *outcomeTB) Helper() {}
func (o *outcomeTB) Fatalf(format string, args ...any) {
	o.fatal = fmt.Sprintf(format, args...)
	runtime.Goexit()
}
func (o *outcomeTB) Skipf(format string, args ...any) {
	o.skip = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// run calls check on a goroutine of its own, so that its Fatalf or Skipf ends only that goroutine.
func (o *outcomeTB) run(check func(testing.TB)) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		check(o)
	}()
	<-done
}

// Under CI=true nothing a test needs may be missing: Need and Require fail the test there, never skip it.
func TestMissingNeedsFailUnderCI(t *testing.T) {
	missingEngine := func(tb testing.TB) { testdocker.Require(tb) }
	missingTool := func(tb testing.TB) { testdocker.Need(tb, "no such tool") }
	for _, ci := range []string{"true", ""} {
		t.Run("CI="+ci, func(t *testing.T) {
			t.Setenv("CI", ci)
			t.Setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
			for name, check := range map[string]func(testing.TB){"Require": missingEngine, "Need": missingTool} {
				o := &outcomeTB{TB: t}
				o.run(check)
				switch {
				case ci == "true" && (o.fatal == "" || o.skip != ""):
					t.Errorf("%s under CI: fatal %q, skip %q; want a failure", name, o.fatal, o.skip)
				case ci == "" && (o.skip == "" || o.fatal != ""):
					t.Errorf("%s outside CI: fatal %q, skip %q; want a skip", name, o.fatal, o.skip)
				}
			}
		})
	}
}
