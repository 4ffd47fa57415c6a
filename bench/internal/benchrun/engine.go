package benchrun

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/bee2d/bee2d/pkg/dockerx"
	"github.com/bee2d/bee2d/pkg/labels"
)

// CreateStart creates and starts a container as the engine alone would: a bench's floor.
func CreateStart(ctx context.Context, cli *dockerx.Client, spec dockerx.ContainerSpec) (string, error) {
	id, err := cli.CreateContainer(ctx, spec)
	if err != nil {
		return "", err
	}
	return id, cli.StartContainer(ctx, id)
}

// RemoveContainers stops and removes containers, untimed; one already gone is no error.
func RemoveContainers(ctx context.Context, cli *dockerx.Client, ids ...string) error {
	for _, id := range ids {
		if err := cli.StopContainer(ctx, id, 5*time.Second); err != nil && !dockerx.IsNotFound(err) {
			return err
		}
		if err := cli.RemoveContainer(ctx, id); err != nil && !dockerx.IsNotFound(err) {
			return err
		}
	}
	return nil
}

// WaitConverged polls the engine until every container of want (name to spec hash) runs with its spec
// hash and no other application container of the run exists. It gives up when d exits or after timeout,
// naming the daemon's log.
func WaitConverged(ctx context.Context, cli *dockerx.Client, d *Daemon, runID string, want map[string]string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var problem string
	for time.Now().Before(deadline) {
		select {
		case err := <-d.Exited:
			return fmt.Errorf("the daemon exited (%v); its log is %s (run with -keep to keep it)", err, d.LogFile)
		default:
		}
		list, err := cli.ListContainers(ctx)
		if err != nil {
			return err
		}
		problem = ""
		ok := 0
		for _, c := range list {
			if !strings.HasPrefix(c.Name, runID+"-app-") {
				continue
			}
			hash, wanted := want[c.Name]
			switch {
			case !wanted:
				problem = c.Name + " should not exist"
			case !c.Running() || c.Labels[labels.SpecHash] != hash:
				problem = c.Name + " is " + c.State + " with spec hash " + c.Labels[labels.SpecHash]
			default:
				ok++
			}
		}
		if problem == "" && ok == len(want) {
			return nil
		}
		if problem == "" {
			problem = fmt.Sprintf("%d of %d containers converged", ok, len(want))
		}
		if err := Sleep(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
	return fmt.Errorf("not converged within %v: %s; the daemon's log is %s (run with -keep to keep it)", timeout, problem, d.LogFile)
}

// OtherContainers counts the engine's containers that are not the run's: a busy engine makes every number
// slower, so the report says how many there were.
func OtherContainers(ctx context.Context, cli *dockerx.Client, runID string) (int, error) {
	list, err := cli.ListContainers(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, c := range list {
		if !strings.HasPrefix(c.Name, runID+"-") {
			n++
		}
	}
	return n, nil
}

// Sleep waits for d or until ctx ends.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TimeCreateStart times the engine alone creating and starting spec, up to its start event, and returns
// the container's id: the floor under any create.
func TimeCreateStart(ctx context.Context, cli *dockerx.Client, events *EventLog, spec dockerx.ContainerSpec) (string, time.Duration, error) {
	from := events.Mark()
	t0 := time.Now()
	id, err := CreateStart(ctx, cli, spec)
	if err != nil {
		return "", 0, err
	}
	ev, err := events.WaitFor(ctx, from, EventWait, "start of the engine's container", func(e dockerx.Event) bool {
		return e.Action == "start" && e.ID == id
	})
	if err != nil {
		return id, 0, err
	}
	return id, ev.At.Sub(t0), nil
}

// TimeRecreate times what a recreate asks of the engine, in the order bee2d's executor asks it: a running
// container of spec is renamed aside, stopped while the new one is created, and the new one started, up to
// its start event. It returns the ids of the old and the new container.
func TimeRecreate(ctx context.Context, cli *dockerx.Client, events *EventLog, spec dockerx.ContainerSpec) (old, id string, took time.Duration, err error) {
	old, err = CreateStart(ctx, cli, spec)
	if err != nil {
		return "", "", 0, err
	}
	from := events.Mark()
	t0 := time.Now()
	if err := cli.RenameContainer(ctx, old, spec.Name+"-old"); err != nil {
		return old, "", 0, err
	}
	stopped := make(chan error, 1)
	go func() { stopped <- cli.StopContainer(ctx, old, 10*time.Second) }()
	id, err = cli.CreateContainer(ctx, spec)
	if serr := <-stopped; err == nil {
		err = serr
	}
	if err == nil {
		err = cli.StartContainer(ctx, id)
	}
	if err != nil {
		return old, id, 0, err
	}
	ev, err := events.WaitFor(ctx, from, EventWait, "start of the engine's new container", func(e dockerx.Event) bool {
		return e.Action == "start" && e.ID == id
	})
	if err != nil {
		return old, id, 0, err
	}
	return old, id, ev.At.Sub(t0), nil
}
