package daemon

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/bee2d/bee2d/pkg/config"
	"github.com/bee2d/bee2d/pkg/engine"
	"github.com/bee2d/bee2d/pkg/labels"
	"github.com/bee2d/bee2d/pkg/reconcile"
)

// Restarter lists a server's containers and restarts one in place; *dockerx.Client is one.
type Restarter interface {
	reconcile.Observer
	// RestartContainer stops the container, killing it after timeout, and starts it again.
	RestartContainer(ctx context.Context, id string, timeout time.Duration) error
}

// CanRestart lists containers and restarts them in place (the health task).
var CanRestart = Capability{Name: "container restarts", has: func(c Conn) bool { _, ok := c.(Restarter); return ok }}

// The back-off of one application's restarts: the first restart is at once, the next one no sooner than
// healthRestartMin after it, the one after that twice as long, up to healthRestartMax.
const (
	healthRestartMin = time.Minute
	healthRestartMax = time.Hour
)

// healthTask restarts the container of an application whose settings say healthcheck.on_unhealthy: restart
// when the engine calls it unhealthy after it had been seen healthy. The engine itself only reports the
// verdict; an application that hangs, or loses its database for good, is otherwise left unhealthy.
//
// Only a container seen healthy is restarted: one that never passed its check is a deploy that failed (the
// pass rolls it back) or a broken application that a restart would not mend. What the task knows lives in
// memory: after the daemon starts, a container counts as seen healthy once a pass sees it healthy, so one
// that was already unhealthy then is not restarted until it has been healthy again.
//
// Restarts of one application back off: see healthRestartMin. The back-off ends after the container has
// stayed healthy for as long as its current back-off, or when a new spec replaces the container. The task
// runs after every pass (a health_status event on a managed container starts one) and when a back-off
// ends. It touches only the applications' containers bee2d labelled as its own for the server, never a job.
type healthTask struct {
	server string
	// apps holds what the task knows of each application container it may restart, by container name.
	apps map[string]*appHealth
}

// appHealth is what the health task knows of one application's container.
type appHealth struct {
	// id and hash are the container the rest is about, and its spec.
	id, hash string
	// seenHealthy tells that the container id was seen healthy at least once.
	seenHealthy bool
	// healthySince is when it was first seen healthy in a row of looks; zero when it was not at the last.
	healthySince time.Time
	// restarts counts the restarts since the back-off last ended; notBefore is when the next may be.
	restarts  int
	notBefore time.Time
	// said tells that this state of the container (never healthy, or its restart held back) was logged.
	said bool
}

func newHealth(server string) Task { return &healthTask{server: server, apps: map[string]*appHealth{}} }

func (h *healthTask) Name() string        { return "health" }
func (h *healthTask) Needs() []Capability { return []Capability{CanRestart} }
func (h *healthTask) FollowsPasses() bool { return true }

// healthRestartBackoff is how long after its nth restart in a row an application may be restarted again.
func healthRestartBackoff(n int) time.Duration {
	return min(healthRestartMin<<min(max(n-1, 0), 10), healthRestartMax)
}

func (h *healthTask) Run(ctx context.Context, r *Run) Result {
	s, m := r.Settings, r.Metrics
	prefix := s.Prefix(h.server)
	var apps []*config.Service
	want := map[string]bool{}
	for _, app := range s.ServicesOn(h.server, config.KindApp) {
		if app.Health != nil && app.Health.OnUnhealthy == config.UnhealthyRestart {
			apps = append(apps, app)
			want[config.ContainerName(prefix, config.KindApp, app.Name)] = true
		}
	}
	for name := range h.apps {
		if !want[name] {
			delete(h.apps, name)
			if m != nil {
				m.ForgetHealthRestarts(h.server, name)
			}
		}
	}
	if len(apps) == 0 {
		return Result{}
	}
	snap, err := r.Snapshot(ctx)
	if err != nil {
		return Result{Err: err}
	}
	eng := r.Conn.(Restarter) // CanRestart
	now := r.Now()
	var res Result
	consider := func(at time.Time) {
		if at.After(now) && (res.Next.IsZero() || at.Before(res.Next)) {
			res.Next = at
		}
	}
	var errs []error
	for _, app := range apps {
		name := config.ContainerName(prefix, config.KindApp, app.Name)
		if m != nil {
			m.InitHealthRestarts(h.server, name)
		}
		st := h.apps[name]
		if st == nil {
			st = &appHealth{}
			h.apps[name] = st
		}
		ct := ownContainer(snap, name, prefix, h.server)
		if ct == nil {
			continue // missing or taken by a container bee2d does not own: the pass's business
		}
		if ct.ID != st.id {
			if hash := ct.Labels[labels.SpecHash]; hash != st.hash {
				st.hash, st.restarts, st.notBefore = hash, 0, time.Time{}
			}
			st.id, st.seenHealthy, st.healthySince, st.said = ct.ID, false, time.Time{}, false
		}
		if ct.State != "running" || ct.Health != engine.HealthUnhealthy {
			h.observe(st, ct, now, consider)
			continue
		}
		st.healthySince = time.Time{}
		log := r.Log.With(zap.String("name", name))
		switch {
		case !st.seenHealthy:
			if !st.said {
				log.Info("unhealthy container not restarted: it has not been seen healthy since bee2d started or it was created")
				st.said = true
			}
			continue
		case now.Before(st.notBefore):
			if !st.said {
				log.Info("unhealthy container's restart held back", zap.Int("restarts", st.restarts),
					zap.Time("not_before", st.notBefore))
				st.said = true
			}
			res.Pending = true
			consider(st.notBefore)
			continue
		}
		if draining(r) {
			break // stopping: no restart starts
		}
		cause := "health check failing after it had passed"
		if out := lastProbe(ctx, r.Conn, ct.ID); out != "" {
			cause += ": " + out
		}
		grace := max(cmp.Or(r.d.StopTimeout, config.StopTimeout), app.StopGrace)
		err := eng.RestartContainer(ctx, ct.ID, grace)
		// A failed restart counts for the back-off too: the engine would refuse it again at once.
		st.restarts++
		wait := healthRestartBackoff(st.restarts)
		st.notBefore, st.said = now.Add(wait), false
		consider(st.notBefore)
		if err != nil {
			log.Error("restart of unhealthy container failed", zap.String("cause", cause), zap.Error(err),
				zap.Duration("retry_in", wait))
			errs = append(errs, fmt.Errorf("restart %s: %w", name, err))
			continue
		}
		log.Warn("restarted unhealthy container", zap.String("cause", cause), zap.Int("restarts", st.restarts),
			zap.Duration("next_restart_in", wait))
		if m != nil {
			m.HealthRestart(h.server, name)
		}
	}
	if len(errs) > 0 {
		// Each application backs off on its own; the task does not.
		res.Err, res.Partial = errors.Join(errs...), true
	}
	return res
}

// observe notes a container that is not unhealthy: whether it is seen healthy, and whether it has been for
// as long as its back-off, which then ends. consider is given the time that will be.
func (h *healthTask) observe(st *appHealth, ct *engine.Container, now time.Time, consider func(time.Time)) {
	if ct.State != "running" || ct.Health != engine.HealthHealthy {
		st.healthySince = time.Time{}
		return
	}
	st.seenHealthy = true
	if st.healthySince.IsZero() {
		st.healthySince = now
	}
	if st.restarts == 0 {
		return
	}
	calm := st.healthySince.Add(healthRestartBackoff(st.restarts))
	if now.Before(calm) {
		consider(calm) // look again then, to end the back-off
		return
	}
	st.restarts, st.notBefore, st.said = 0, time.Time{}, false
}

// draining tells whether the daemon is stopping or the server left the settings.
func draining(r *Run) bool {
	select {
	case <-r.Draining:
		return true
	default:
		return false
	}
}

// ownContainer returns the application container of that name if bee2d made it for this prefix and server.
func ownContainer(snap *reconcile.Snapshot, name, prefix, server string) *engine.Container {
	for i := range snap.Containers {
		c := &snap.Containers[i]
		if c.Name == name && labels.Managed(c.Labels, prefix, server) && c.Labels[labels.Kind] == string(config.KindApp) {
			return c
		}
	}
	return nil
}

// healthInspector reads the last probe's output, for the cause of a restart; an engine without it
// restarts all the same.
type healthInspector interface {
	ContainerHealth(ctx context.Context, id string) (engine.Health, error)
}

// lastProbe returns the output of the container's last health probe, "" when it cannot be read.
func lastProbe(ctx context.Context, conn Conn, id string) string {
	hi, ok := conn.(healthInspector)
	if !ok {
		return ""
	}
	hs, err := hi.ContainerHealth(ctx, id)
	if err != nil {
		return ""
	}
	const most = 200 // a probe may print a page
	if out := []rune(hs.Output); len(out) > most {
		return string(out[:most]) + "…"
	}
	return hs.Output
}
