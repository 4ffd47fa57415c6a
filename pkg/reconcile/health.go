package reconcile

import (
	"context"
	"fmt"

	"github.com/bee2d/bee2d/pkg/engine"
)

// HealthWatcher is what health-gated deploys need of an engine; *dockerx.Client is one. With an engine that
// lacks it (a test's fake) a container counts as ready once it starts.
type HealthWatcher interface {
	// ContainerHealth inspects a container's health and the check in force.
	ContainerHealth(ctx context.Context, id string) (engine.Health, error)
	// WaitHealth returns once the container is healthy, unhealthy or no longer runs, or ctx ends.
	WaitHealth(ctx context.Context, id string) (engine.Health, error)
}

// RollbackError is a new version of an application that did not become healthy in time: it was stopped
// and kept under Failed for its logs, and the version before it serves again (or still does, after a
// start-first deploy).
type RollbackError struct {
	Container string
	// Hash is the spec hash of the version that failed; Failed the name it is kept under.
	Hash, Failed string
	// Reason says how it failed: unhealthy (with the last probe's output), exited, or no verdict in time.
	Reason string
	// Restored is false when there was no old version to go back to, or it could not be started again.
	Restored bool
}

func (e *RollbackError) Error() string {
	back := "the previous version serves again"
	if !e.Restored {
		back = "the previous version could not be started again"
	}
	return fmt.Sprintf("%s: version %s failed its health check (%s); %s; the failed one is kept stopped as %s",
		e.Container, shortID(e.Hash), e.Reason, back, e.Failed)
}
