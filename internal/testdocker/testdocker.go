// Package testdocker gives tests a real Docker engine: a client, unique names, cleanup, and images built
// from small Go programs, since no registry is reachable.
package testdocker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bee2d/bee2d/pkg/dockerx"
)

// NamePrefix starts every name UniquePrefix gives; Cleanup refuses any other prefix, so a test can never remove
// a developer's own containers.
const NamePrefix = "bee2dt-"

// cleanupTimeout bounds the removals at the end of a test; they run after the test's context is cancelled.
const cleanupTimeout = 2 * time.Minute

// Cleanup removes cleanupParallel containers at once, and gives each cleanupPerContainer on top of
// cleanupTimeout.
const (
	cleanupParallel     = 8
	cleanupPerContainer = 3 * time.Second
)

// Require returns a client for the local engine (DOCKER_HOST, else the default socket), closed when the test
// ends. Without an engine the test is skipped, except under CI=true, where it fails: CI must never pass by
// skipping.
func Require(t testing.TB) *dockerx.Client {
	t.Helper()
	cli, err := connect()
	if err != nil {
		if InCI() {
			t.Fatalf("docker engine required (CI is set): %v", err)
		}
		t.Skipf("no docker engine, skipping (set CI=true to fail instead): %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

func connect() (*dockerx.Client, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return dockerx.Connect(ctx, dockerx.Endpoint{})
}

// InCI tells whether the tests run under CI (CI=true), where nothing a test needs may be missing.
func InCI() bool {
	ci, _ := strconv.ParseBool(os.Getenv("CI"))
	return ci
}

// Need skips the test for something missing here (a tool, root, a mount), or fails it under CI=true: CI must
// never pass by skipping.
func Need(t testing.TB, why string) {
	t.Helper()
	if InCI() {
		t.Fatalf("%s (CI is set: .ci/run installs and runs as what the tests need)", why)
	}
	t.Skipf("%s, skipping (set CI=true to fail instead)", why)
}

// UniquePrefix returns a new short name prefix such as "bee2dt-3f9a1c7e", valid in container, network, volume
// and image names, so tests running in parallel, in any package, never share a name.
func UniquePrefix(t testing.TB) string {
	t.Helper()
	return NamePrefix + randomHex(t, 4)
}

func randomHex(t testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("random name: %v", err)
	}
	return hex.EncodeToString(b)
}

// Cleanup removes, when the test ends, every container and network whose name starts with prefix, every image
// tag that does, and the named volumes. Other volumes are kept, as bee2d keeps them; a test that creates one
// names it here. Anything left behind fails the test.
func Cleanup(t testing.TB, cli *dockerx.Client, prefix string, volumes ...string) {
	t.Helper()
	if !strings.HasPrefix(prefix, NamePrefix) || len(prefix) <= len(NamePrefix) {
		t.Fatalf("testdocker.Cleanup: prefix %q does not come from UniquePrefix", prefix)
	}
	t.Cleanup(func() {
		removeByPrefix(t, cli, prefix)
		ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer cancel()
		for _, v := range volumes {
			if err := cli.RemoveVolume(ctx, v); err != nil && !dockerx.IsNotFound(err) {
				t.Errorf("cleanup: %v", err)
			}
		}
	})
}

func removeByPrefix(t testing.TB, cli *dockerx.Client, prefix string) {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	containers, err := cli.ListContainers(ctx)
	if err != nil {
		t.Errorf("cleanup: %v", err)
		return
	}
	var mine, running []string
	for _, c := range containers {
		if strings.HasPrefix(c.Name, prefix) {
			mine = append(mine, c.ID)
			if c.Running() {
				running = append(running, c.ID)
			}
		}
	}
	// A hundred containers on a loaded engine (a second or more each, whatever the parallelism) did not
	// all go within cleanupTimeout: the removals get time for each on top of it, and run several at once.
	rctx, rcancel := context.WithTimeout(context.Background(), cleanupTimeout+time.Duration(len(mine))*cleanupPerContainer)
	defer rcancel()
	// The running ones are killed one at a time first: Docker 20.10 loses decrements of a network's
	// endpoint count when containers on it stop at once, and the network then cannot be removed until the
	// engine restarts (moby/moby#42119). The removals of stopped containers below may run together.
	for _, id := range running {
		if err := cli.StopContainer(rctx, id, 0); err != nil && !dockerx.IsNotFound(err) {
			t.Logf("cleanup: %v (removed by force below)", err)
		}
	}
	var wg sync.WaitGroup
	slots := make(chan struct{}, cleanupParallel)
	for _, id := range mine {
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			if err := removeContainer(rctx, cli, id); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		})
	}
	wg.Wait()
	networks, err := cli.ListNetworks(ctx)
	if err != nil {
		t.Errorf("cleanup: %v", err)
		return
	}
	for _, n := range networks {
		if strings.HasPrefix(n.Name, prefix) {
			if err := cli.RemoveNetwork(ctx, n.ID); err != nil && !dockerx.IsNotFound(err) {
				t.Errorf("cleanup: %v", err)
			}
		}
	}
	images, err := cli.ListImages(ctx)
	if err != nil {
		t.Errorf("cleanup: %v", err)
		return
	}
	for _, img := range images {
		for _, tag := range img.Tags {
			if strings.HasPrefix(tag, prefix) {
				if err := cli.RemoveImage(ctx, tag); err != nil && !dockerx.IsNotFound(err) {
					t.Errorf("cleanup: %v", err)
				}
			}
		}
	}
}

// removeContainer removes a container and returns once it is gone. A removal already under way (a daemon
// under test removing the same container) is waited for rather than reported.
func removeContainer(ctx context.Context, cli *dockerx.Client, id string) error {
	err := cli.RemoveContainer(ctx, id)
	// A call that outlived its own deadline on a loaded engine may have removed the container, or still be
	// removing it: ask again while the cleanup has time.
	for err != nil && errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		err = cli.RemoveContainer(ctx, id)
	}
	if err == nil || dockerx.IsNotFound(err) {
		return nil
	}
	if !dockerx.IsConflict(err) && !strings.Contains(err.Error(), "already in progress") {
		return err
	}
	for ctx.Err() == nil {
		list, lerr := cli.ListContainers(ctx)
		if lerr != nil {
			return lerr
		}
		gone := true
		for _, c := range list {
			if c.ID == id {
				gone = false
			}
		}
		if gone {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return err
}
