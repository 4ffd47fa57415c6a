package dockerx

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"

	"github.com/bee2d/bee2d/pkg/engine"
)

// healthRecheck is how often WaitHealth looks at the container besides its events: an event sent before the
// subscription was in place is not replayed.
const healthRecheck = time.Second

// ContainerHealth inspects a container's health: its verdict, whether it runs, and the check in force (its
// own or its image's).
func (c *Client) ContainerHealth(ctx context.Context, id string) (engine.Health, error) {
	info, err := c.inspect(ctx, id)
	if err != nil {
		return engine.Health{}, err
	}
	return healthOf(info), nil
}

func (c *Client) inspect(ctx context.Context, id string) (container.InspectResponse, error) {
	ctx, cancel := short(ctx)
	defer cancel()
	info, err := c.api.ContainerInspect(ctx, id)
	if err != nil {
		return info, fmt.Errorf("inspect container %s: %w", id, err)
	}
	return info, nil
}

func healthOf(info container.InspectResponse) engine.Health {
	var h engine.Health
	if st := info.State; st != nil {
		h.Running = st.Running || st.Restarting
		h.ExitCode = st.ExitCode
		if st.Health != nil && h.Running {
			h.Status = st.Health.Status
			if h.Status == "none" {
				h.Status = ""
			}
			if n := len(st.Health.Log); n > 0 {
				h.Output = strings.TrimSpace(st.Health.Log[n-1].Output)
			}
		}
	}
	if info.Config != nil && info.Config.Healthcheck != nil {
		hc := info.Config.Healthcheck
		if len(hc.Test) > 0 && hc.Test[0] != "NONE" {
			h.Check = engine.HealthSpec{Test: hc.Test, Interval: hc.Interval, Timeout: hc.Timeout,
				StartPeriod: hc.StartPeriod, Retries: hc.Retries}.Effective()
		}
	}
	return h
}

// WaitHealth returns once the container has a verdict: healthy or unhealthy, or it no longer runs (or has no
// check). It follows the container's events and looks again each second; when ctx ends first it returns
// the last health seen with ctx's error.
func (c *Client) WaitHealth(ctx context.Context, id string) (engine.Health, error) {
	ectx, cancel := context.WithCancel(ctx)
	defer cancel()
	f := filters.NewArgs(filters.Arg("type", string(events.ContainerEventType)), filters.Arg("container", id))
	msgs, errs := c.api.Events(ectx, events.ListOptions{Filters: f})
	tick := time.NewTicker(healthRecheck)
	defer tick.Stop()
	for {
		h, err := c.ContainerHealth(ctx, id)
		if err != nil {
			return h, err
		}
		if !h.Running || h.Status != engine.HealthStarting {
			return h, nil
		}
		select {
		case <-msgs:
		case <-errs:
			// The stream broke; the ticker goes on looking.
			errs = nil
		case <-tick.C:
		case <-ctx.Done():
			return h, ctx.Err()
		}
	}
}

// RestartContainer stops a container, killing it after timeout, and starts it again.
func (c *Client) RestartContainer(ctx context.Context, id string, timeout time.Duration) error {
	ctx, cancel, opts := stopping(ctx, timeout)
	defer cancel()
	if err := c.api.ContainerRestart(ctx, id, opts); err != nil {
		return fmt.Errorf("restart container %s: %w", id, err)
	}
	return nil
}

// ContainerFinished tells when a container last stopped; zero if it never did.
func (c *Client) ContainerFinished(ctx context.Context, id string) (time.Time, error) {
	info, err := c.inspect(ctx, id)
	if err != nil {
		return time.Time{}, err
	}
	if info.State == nil || info.State.FinishedAt == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, info.State.FinishedAt)
	if err != nil || t.Year() < 2000 {
		return time.Time{}, nil // "0001-01-01T00:00:00Z": never stopped
	}
	return t, nil
}
