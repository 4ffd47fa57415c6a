package dockerx_test

import (
	"context"
	"testing"
	"time"

	"github.com/bee2d/bee2d/internal/testdocker"
	"github.com/bee2d/bee2d/pkg/dockerx"
	"github.com/bee2d/bee2d/pkg/engine"
	"github.com/bee2d/bee2d/pkg/labels"
)

// A health check given at create is the engine's: WaitHealth returns its verdict, healthy or unhealthy,
// and that the container exited; the list call and an inspect tell the same; a stop is dated.
func TestContainerHealth(t *testing.T) {
	t.Parallel()
	cli := testdocker.Require(t)
	prefix := testdocker.UniquePrefix(t)
	testdocker.Cleanup(t, cli, prefix)
	image := testdocker.Sleeper(t, cli)
	ctx := t.Context()
	run := func(name string, cmd, test []string) string {
		t.Helper()
		id, err := cli.CreateContainer(ctx, dockerx.ContainerSpec{Name: prefix + "-" + name, Image: image, Cmd: cmd,
			Labels: map[string]string{labels.Owner: labels.Bee2d, labels.Prefix: prefix},
			Health: &engine.HealthSpec{Test: test, Interval: 200 * time.Millisecond, Timeout: 2 * time.Second, Retries: 2}})
		if err != nil {
			t.Fatal(err)
		}
		if err := cli.StartContainer(ctx, id); err != nil {
			t.Fatal(err)
		}
		return id
	}
	wait := func(id string) engine.Health {
		t.Helper()
		wctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		h, err := cli.WaitHealth(wctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}

	good := run("good", nil, []string{"CMD", "/app", "exit", "0"})
	if h := wait(good); h.Status != engine.HealthHealthy || !h.Running || h.Check.Interval != 200*time.Millisecond || h.Check.Retries != 2 {
		t.Errorf("good: %+v", h)
	}
	bad := run("bad", nil, []string{"CMD", "/app", "exit", "1"})
	if h := wait(bad); h.Status != engine.HealthUnhealthy || h.Output != "exiting with 1" {
		t.Errorf("bad: %+v", h)
	}
	gone := run("gone", []string{"exit", "3"}, []string{"CMD", "/app", "exit", "0"})
	if h := wait(gone); h.Running || h.ExitCode != 3 {
		t.Errorf("exited: %+v", h)
	}
	list, err := cli.ListContainersLabelled(ctx, map[string]string{labels.Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{}
	for _, c := range list {
		seen[c.ID] = c.Health
	}
	if seen[good] != engine.HealthHealthy || seen[bad] != engine.HealthUnhealthy || seen[gone] != "" {
		t.Errorf("list health: good %q, bad %q, exited %q", seen[good], seen[bad], seen[gone])
	}

	if at, err := cli.ContainerFinished(ctx, good); err != nil || !at.IsZero() {
		t.Errorf("a running container finished at %v, %v", at, err)
	}
	before := time.Now().Add(-time.Minute) // the engine's clock may differ a little
	if err := cli.StopContainer(ctx, good, time.Second); err != nil {
		t.Fatal(err)
	}
	if at, err := cli.ContainerFinished(ctx, good); err != nil || at.Before(before) {
		t.Errorf("stopped at %v, %v", at, err)
	}
	if err := cli.RestartContainer(ctx, good, time.Second); err != nil {
		t.Fatal(err)
	}
	if h, err := cli.ContainerHealth(ctx, good); err != nil || !h.Running {
		t.Errorf("after a restart: %+v, %v", h, err)
	}
}
