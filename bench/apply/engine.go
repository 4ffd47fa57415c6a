package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/bee2d/bee2d/pkg/dockerx"
	"github.com/bee2d/bee2d/pkg/labels"
)

// composeProject is the label Docker Compose puts on its containers and networks.
const composeProject = "com.docker.compose.project"

// owner tells which contender created a container.
type owner int

const (
	// ownerBee2d covers bee2d and the floor, which creates bee2d's own specs.
	ownerBee2d owner = iota
	ownerCompose
)

// owns tells whether a container belongs to this run, and to which contender. Both checks need the run's
// unique name, so nothing of anyone else's can match.
func (b *bench) owns(c dockerx.Container) (owner, bool) {
	switch {
	case c.Labels[labels.Owner] == labels.Bee2d && c.Labels[labels.Prefix] == b.runID:
		return ownerBee2d, true
	case c.Labels[composeProject] == b.project:
		return ownerCompose, true
	}
	return 0, false
}

// floor creates the network and then creates and starts every container, par at a time: the Docker calls
// bee2d's cold apply must make, without anything else.
func (b *bench) floor(ctx context.Context, par int) (time.Duration, error) {
	labels := map[string]string{
		labels.Owner:  labels.Bee2d,
		labels.Prefix: b.runID,
		labels.Server: "local",
	}
	start := time.Now()
	if err := b.cli.CreateNetwork(ctx, b.network, labels); err != nil {
		return 0, fmt.Errorf("floor: %w", err)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(par)
	for _, spec := range b.specs {
		g.Go(func() error {
			id, err := b.cli.CreateContainer(gctx, spec)
			if err != nil {
				return err
			}
			return b.cli.StartContainer(gctx, id)
		})
	}
	if err := g.Wait(); err != nil {
		return 0, fmt.Errorf("floor at parallel %d: %w", par, err)
	}
	return time.Since(start), nil
}

// converged checks, untimed, that a contender left all N containers running, and returns their ids.
func (b *bench) converged(ctx context.Context, who owner) ([]string, error) {
	list, err := b.cli.ListContainers(ctx)
	if err != nil {
		return nil, err
	}
	var ids []string
	running := 0
	for _, c := range list {
		if o, ok := b.owns(c); ok && o == who {
			ids = append(ids, c.ID)
			if c.Running() {
				running++
			}
		}
	}
	if len(ids) != b.opt.n || running != b.opt.n {
		return nil, fmt.Errorf("%d containers, %d running; want %d running", len(ids), running, b.opt.n)
	}
	slices.Sort(ids)
	return ids, nil
}

// unchanged checks that a no-change run kept every container: same ids, all running.
func (b *bench) unchanged(ctx context.Context, who owner, before []string) error {
	after, err := b.converged(ctx, who)
	if err != nil {
		return err
	}
	if !slices.Equal(before, after) {
		return errors.New("containers were replaced")
	}
	return nil
}

// teardown removes the run's containers and then its networks, and nothing else: volumes are never
// touched (the bench's containers have none). It lists again after removing, since a contender killed by
// Ctrl-C may have had a create in flight.
//
// Containers are stopped and removed one at a time. Docker 20.10 keeps a per-network endpoint count that
// loses decrements when containers on one network stop concurrently (16 parallel stops of 100 containers
// left it at 1); such a network cannot be removed until dockerd restarts (moby/moby#42119). Creating
// them concurrently, as the contenders do, keeps the count right.
func (b *bench) teardown(ctx context.Context) error {
	for pass := 0; ; pass++ {
		list, err := b.cli.ListContainers(ctx)
		if err != nil {
			return err
		}
		var ids []string
		for _, c := range list {
			if _, ok := b.owns(c); ok {
				ids = append(ids, c.ID)
			}
		}
		if len(ids) == 0 {
			break
		}
		if pass == 3 {
			return fmt.Errorf("teardown: %d containers remain after 3 passes", len(ids))
		}
		for _, id := range ids {
			err := b.cli.StopContainer(ctx, id, 10*time.Second)
			if err == nil {
				err = b.cli.RemoveContainer(ctx, id)
			}
			if err != nil && !dockerx.IsNotFound(err) {
				return fmt.Errorf("teardown: %w", err)
			}
		}
	}

	nets, err := b.cli.ListNetworks(ctx)
	if err != nil {
		return err
	}
	for _, n := range nets {
		ours := (n.Name == b.network && n.Labels[labels.Prefix] == b.runID) ||
			(n.Name == b.project+"_default" && n.Labels[composeProject] == b.project)
		if ours {
			if err := b.removeNetwork(ctx, n); err != nil {
				return err
			}
		}
	}
	return nil
}

// removeNetwork retries for a while, in case the engine is still releasing the last endpoints.
func (b *bench) removeNetwork(ctx context.Context, n dockerx.Network) error {
	var err error
	for range 20 {
		if err = b.cli.RemoveNetwork(ctx, n.ID); err == nil || dockerx.IsNotFound(err) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	return fmt.Errorf("teardown: %w (if it has no containers, the engine's endpoint count for it is stale "+
		"(moby/moby#42119); it can be removed with `docker network rm %s` after dockerd restarts)", err, n.Name)
}

// otherContainers counts the engine's containers that are not the run's, for the record: a busy engine
// makes every number slower.
func (b *bench) otherContainers(ctx context.Context) (int, error) {
	list, err := b.cli.ListContainers(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, c := range list {
		if _, ok := b.owns(c); !ok {
			n++
		}
	}
	return n, nil
}
