package reconcile

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sync"
	"time"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/bee2d/bee2d/pkg/config"
	"github.com/bee2d/bee2d/pkg/engine"
	"github.com/bee2d/bee2d/pkg/labels"
)

// Engine is what the executor needs of a Docker engine; *dockerx.Client is one.
type Engine interface {
	CreateNetworkFrom(ctx context.Context, spec engine.NetworkSpec) error
	RemoveNetwork(ctx context.Context, nameOrID string) error
	CreateVolume(ctx context.Context, name string, labels map[string]string) error
	BuildImage(ctx context.Context, req engine.BuildRequest) (string, error)
	PullImage(ctx context.Context, ref string, out io.Writer) error
	CreateContainer(ctx context.Context, spec engine.ContainerSpec) (string, error)
	ConnectNetwork(ctx context.Context, network, containerID string, aliases []string) error
	StartContainer(ctx context.Context, id string) error
	StopContainer(ctx context.Context, id string, timeout time.Duration) error
	RenameContainer(ctx context.Context, id, newName string) error
	RemoveContainer(ctx context.Context, id string) error
	RunContainer(ctx context.Context, id string, out io.Writer) (int, error)
}

// Executor applies plans. It makes no decisions: every change it makes is an action of the plan.
type Executor struct {
	Engine Engine
	Log    *zap.Logger
	// Output receives image build and pull progress; nil discards it.
	Output io.Writer
	// Parallel bounds how many container actions run at once; links are always respected.
	Parallel int
	// StopTimeout is how long a container gets to stop before it is killed; config.StopTimeout when zero.
	StopTimeout time.Duration
	// Drain is how long the old container of a start-first deploy serves on after it lost its name;
	// DefaultDrain when zero, none when negative.
	Drain time.Duration
	// Prefix and Server label the networks and volumes created.
	Prefix, Server string
	// Draining, once closed, stops new actions from starting; those in flight finish. The context given
	// to Execute bounds the calls themselves.
	Draining <-chan struct{}
	// Done, if set, is told about every action that ran, and how long it took.
	Done func(a Action, err error, took time.Duration)
	// JobOutput, if set, gives the writer a job's output goes to.
	JobOutput func(job string) io.Writer
	// Clone checks out a git source into a directory of its own (gitx.CloneTemp does, with git) and returns
	// that directory, the commit checked out and a cleanup that removes it. Required for plans that build
	// from git: the executor runs no git itself.
	Clone func(ctx context.Context, url, branch string) (dir, commit string, cleanup func(), err error)

	// netLocks serialise the stops and removals of containers that share a network, on engines that need
	// it; Execute sets them.
	netLocks *networkLocks
}

// JobError is a job run that ended with a non-zero exit code.
type JobError struct {
	Job  string
	Code int
}

func (e *JobError) Error() string {
	return fmt.Sprintf("job %s exited with code %d", e.Job, e.Code)
}

// Result counts what an execution did.
type Result struct {
	Applied, Failed, Skipped int
}

// Execute applies the plan in order: removals, networks, volumes, images, networks to recreate, then
// containers (in parallel where links allow), then leftovers and networks no longer used. It goes on past
// a failed action where nothing depends on it, and returns every failure joined.
func (e *Executor) Execute(ctx context.Context, p *Plan) (Result, error) {
	e = e.withNetworkLocks()
	r := &execution{Executor: e, server: p.Server, failed: map[string]bool{}}
	var containers []Action
	for _, a := range p.Actions {
		switch a.Op {
		case OpCreateContainer, OpRecreateContainer, OpStartContainer, OpRunJob:
			containers = append(containers, a)
			continue
		}
		if len(containers) > 0 {
			// Everything after the container actions (leftover removals) waits for them.
			r.containers(ctx, containers)
			containers = nil
		}
		if err := r.halted(ctx); err != nil {
			r.skip(a, err)
			continue
		}
		if dep := r.failedDep(a); dep != "" {
			r.skip(a, fmt.Errorf("%s failed", dep))
			continue
		}
		start := time.Now()
		err := e.apply(ctx, a)
		r.record(a, err, time.Since(start))
	}
	if len(containers) > 0 {
		r.containers(ctx, containers)
	}
	return r.res, errors.Join(r.errs...)
}

// execution is the state of one Execute call.
type execution struct {
	*Executor
	server string

	mu     sync.Mutex
	res    Result
	errs   []error
	failed map[string]bool // resource names whose action failed or was skipped
}

// errDraining is why actions are skipped during shutdown.
var errDraining = errors.New("shutting down")

// halted tells why no new action may start, if one may not.
func (r *execution) halted(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case <-r.Draining:
		return errDraining
	default:
		return nil
	}
}

func (r *execution) record(a Action, err error, took time.Duration) {
	if r.Done != nil {
		r.Done(a, err, took)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	// The caller's logger names the server.
	log := r.logger().With(zap.String("action", string(a.Op)), zap.String("name", a.Resource), zap.String("cause", a.Cause))
	if err != nil {
		r.res.Failed++
		r.failed[a.Resource] = true
		r.errs = append(r.errs, err) // dockerx errors name the call and the resource
		log.Error("action failed", zap.Error(err))
		return
	}
	r.res.Applied++
	log.Info("action applied")
}

func (r *execution) skip(a Action, why error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.res.Skipped++
	r.failed[a.Resource] = true
	r.errs = append(r.errs, fmt.Errorf("%s %s: skipped: %w", a.Op, a.Resource, why))
}

func (r *execution) hasFailed(name string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.failed[name]
}

// containers runs container actions concurrently, each after the actions of the containers it links to.
func (r *execution) containers(ctx context.Context, actions []Action) {
	done := map[string]chan struct{}{}
	for _, a := range actions {
		done[a.Resource] = make(chan struct{})
	}
	par := r.Parallel
	if par <= 0 {
		par = 1
	}
	sem := make(chan struct{}, par)
	var wg sync.WaitGroup
	for _, a := range actions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(done[a.Resource])
			for _, dep := range a.After {
				if ch, ok := done[dep]; ok {
					<-ch
				}
			}
			for _, dep := range a.Deps() {
				ch, ok := done[dep]
				if !ok {
					// An action before the containers (a network): it has ended.
					if r.hasFailed(dep) {
						r.skip(a, fmt.Errorf("%s failed", dep))
						return
					}
					continue
				}
				<-ch
				if r.hasFailed(dep) {
					r.skip(a, fmt.Errorf("%s failed", dep))
					return
				}
			}
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				r.skip(a, ctx.Err())
				return
			case <-r.Draining:
				r.skip(a, errDraining)
				return
			}
			if err := r.halted(ctx); err != nil {
				<-sem
				r.skip(a, err)
				return
			}
			start := time.Now()
			err := r.apply(ctx, a)
			<-sem
			r.record(a, err, time.Since(start))
		}()
	}
	wg.Wait()
}

func (e *Executor) logger() *zap.Logger {
	if e.Log == nil {
		return zap.NewNop()
	}
	return e.Log
}

// apply makes the Docker calls of one action.
func (e *Executor) apply(ctx context.Context, a Action) error {
	owned := labels.ForServer(e.Prefix, e.Server)
	switch a.Op {
	case OpRemoveContainer:
		err := e.removeContainer(ctx, a.Live)
		if engine.IsNotFound(err) {
			return nil // already gone: the goal is met
		}
		return err
	case OpCreateNetwork:
		spec := engine.NetworkSpec{Name: a.Resource, Labels: owned}
		if a.Network != nil {
			spec = *a.Network
		}
		err := e.Engine.CreateNetworkFrom(ctx, spec)
		if engine.IsConflict(err) {
			return nil
		}
		return err
	case OpRecreateNetwork:
		return e.recreateNetwork(ctx, a)
	case OpRemoveNetwork:
		return e.removeNetwork(ctx, a.Resource)
	case OpCreateVolume:
		return e.Engine.CreateVolume(ctx, a.Resource, owned)
	case OpBuildImage:
		b := a.Container.Source.Build
		dir := b.Dir
		if b.Git != nil {
			clone, cleanup, err := e.clone(ctx, b.Git)
			if err != nil {
				return err
			}
			defer cleanup()
			dir = filepath.Join(clone, b.Dir)
		}
		_, err := e.Engine.BuildImage(ctx, engine.BuildRequest{
			ContextDir: dir,
			Dockerfile: b.Dockerfile,
			Tags:       []string{a.Resource},
			// Containers inherit their image's labels, so an image must not carry the ownership labels:
			// a container someone runs by hand from it would look like bee2d's.
			Labels:    map[string]string{labels.BuiltBy: labels.Bee2d, labels.BuiltFor: e.Server + "/" + a.Container.Service},
			BuildArgs: buildArgs(b.Args),
			NoCache:   a.NoCache,
			Output:    e.Output,
		})
		return err
	case OpPullImage:
		return e.Engine.PullImage(ctx, a.Resource, e.Output)
	case OpCreateContainer:
		id, err := e.create(ctx, a.Container.ContainerSpec)
		if err != nil {
			return err
		}
		if err := e.Engine.StartContainer(ctx, id); err != nil {
			// Never a half-made container under its final name, also when the start was cut short by a
			// shutdown: the next pass creates it afresh.
			e.discard(ctx, id)
			return err
		}
		// Those that link to it start once it is healthy. There is no older version to go back to: one
		// that does not become healthy stays, and the plan says so.
		if why, err := e.gate(ctx, id); err != nil || why != "" {
			return cmp.Or(err, fmt.Errorf("%s started but is not healthy: %s", a.Resource, why))
		}
		return nil
	case OpRecreateContainer:
		if a.StartFirst {
			return e.startFirst(ctx, a)
		}
		return e.recreate(ctx, a)
	case OpRestoreContainer:
		return e.restore(ctx, a)
	case OpStartContainer:
		return e.Engine.StartContainer(ctx, a.Live.ID)
	case OpRunJob:
		return e.runJob(ctx, a)
	}
	return fmt.Errorf("unknown action %q", a.Op)
}

// recreate replaces a container while keeping the time without one short. The old container is renamed
// aside while it still runs; then the new one is created under the final name while the old one stops, so
// the service is down only for the longer of the two plus the new one's start (it cannot start earlier:
// the old one may hold its ports and its volumes). The new one must then pass its health check, if it has
// one (gate); once it has, the old one is removed. If the new one cannot be created or started, or fails
// its health check, the old one gets its name back and runs again (rollBack). Named volumes are never
// removed, so data survives either way; a crash in between leaves containers under other names that the
// next plan settles (settleLeftovers).
func (e *Executor) recreate(ctx context.Context, a Action) error {
	old := a.Live
	aside := asideName(a.Resource, old.ID)
	if err := e.Engine.RenameContainer(ctx, old.ID, aside); err != nil {
		if !engine.IsNotFound(err) {
			return err // nothing changed: the old container runs on under its name
		}
		old = nil // removed meanwhile
	}
	stopped := make(chan error, 1)
	if old != nil {
		go func() {
			err := e.stopContainer(ctx, old, e.graceOf(a.Container))
			if engine.IsNotFound(err) {
				err = nil
			}
			stopped <- err
		}()
	} else {
		stopped <- nil
	}
	id, err := e.create(ctx, a.Container.ContainerSpec)
	if serr := <-stopped; serr != nil && err == nil {
		// The old container may still hold the ports: the new one cannot take over.
		e.discard(ctx, id)
		err = serr
	}
	if err == nil {
		err = e.Engine.StartContainer(ctx, id)
		if err != nil {
			// A container that was made but cannot start must not keep the final name from the old one.
			e.discard(ctx, id)
		}
	}
	if err != nil {
		if old != nil {
			bg := context.WithoutCancel(ctx)
			if rerr := e.Engine.RenameContainer(bg, old.ID, a.Resource); rerr == nil {
				e.restart(old)
			}
		}
		return err
	}
	why, err := e.gate(ctx, id)
	if err != nil {
		// Cut short (a shutdown past its grace): the new version keeps the name, the old one stays aside,
		// and the next plan settles them.
		return err
	}
	if why != "" {
		return e.rollBack(ctx, a, id, why, old)
	}
	if old != nil {
		if err := e.removeContainer(ctx, old); err != nil && !engine.IsNotFound(err) {
			return fmt.Errorf("remove replaced container %s: %w", aside, err)
		}
	}
	e.dropFailed(ctx, a)
	return nil
}

// startFirst replaces a container by starting the new one beside it under a temporary name, which nothing
// uses: the old one keeps the name, and all the traffic, until the new one is healthy. A new one that is not
// healthy in time is stopped and kept as the failed version; the old one never stopped serving. A healthy
// one takes the name from the old one (two renames: Docker's DNS answers for a container's name at once),
// and the old one, set aside, serves on for Drain, the time for the front end and other clients to look
// the name up again and send their requests to the new one; then it is stopped and removed.
func (e *Executor) startFirst(ctx context.Context, a Action) error {
	old := a.Live
	spec := a.Container.ContainerSpec
	spec.Name = startingName(a.Resource, a.Container.Hash)
	id, err := e.create(ctx, spec)
	if err != nil {
		return err
	}
	if err := e.Engine.StartContainer(ctx, id); err != nil {
		e.discard(ctx, id)
		return err
	}
	why, err := e.gate(ctx, id)
	if err != nil {
		return err // the next plan removes the new one: the old one still has the name
	}
	if why != "" {
		return e.rollBack(ctx, a, id, why, nil)
	}
	// Cut short between the renames, the next plan gives the new one the name: it is healthy.
	aside := asideName(a.Resource, old.ID)
	if err := e.Engine.RenameContainer(ctx, old.ID, aside); err != nil && !engine.IsNotFound(err) {
		return err // the old one serves on under its name; the next plan removes the new one
	}
	if err := e.Engine.RenameContainer(ctx, id, a.Resource); err != nil {
		return err
	}
	e.dropFailed(ctx, a)
	if old.Running() {
		select {
		case <-time.After(cmp.Or(e.Drain, DefaultDrain)):
		case <-ctx.Done():
			return ctx.Err() // the next plan removes the old one
		}
	}
	if err := e.stopContainer(ctx, old, e.graceOf(a.Container)); err != nil && !engine.IsNotFound(err) {
		return fmt.Errorf("stop replaced container %s: %w", aside, err)
	}
	if err := e.removeContainer(ctx, old); err != nil && !engine.IsNotFound(err) {
		return fmt.Errorf("remove replaced container %s: %w", aside, err)
	}
	return nil
}

// DefaultDrain is how long the old container of a start-first deploy serves on after the new one has taken
// its name: one look-up and one check of the bundled HAProxy (a second each), with room to spare.
const DefaultDrain = 2 * time.Second

// graceOf is how long a container gets to stop: the executor's, or the container's own when longer
// (stop_grace), which is what it was promised.
func (e *Executor) graceOf(c *Container) time.Duration {
	return max(cmp.Or(e.StopTimeout, config.StopTimeout), c.StopTimeout)
}

// gate waits for a container that was just started to pass its health check, if it has one, for as long as
// the engine may take to decide (engine.HealthSpec.Verdict). It returns why the container is not healthy
// ("" when it is, or has no check), or ctx's error when it was cut short. With an engine that cannot tell
// health, a started container passes.
func (e *Executor) gate(ctx context.Context, id string) (string, error) {
	hw, ok := e.Engine.(HealthWatcher)
	if !ok {
		return "", nil
	}
	h, err := hw.ContainerHealth(ctx, id)
	if err != nil {
		return "", err
	}
	if len(h.Check.Test) == 0 {
		return "", nil
	}
	limit := h.Check.Verdict()
	wctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	h, err = hw.WaitHealth(wctx, id)
	switch {
	case ctx.Err() != nil:
		return "", ctx.Err()
	case err != nil && wctx.Err() == nil:
		return "", err
	case !h.Running:
		return fmt.Sprintf("exited with code %d", h.ExitCode), nil
	case h.Status == engine.HealthHealthy:
		return "", nil
	case h.Status == engine.HealthUnhealthy:
		why := "unhealthy"
		if h.Output != "" {
			why += ": " + clip(h.Output, 200)
		}
		return why, nil
	}
	return fmt.Sprintf("not healthy within %s", limit), nil
}

// rollBack stops a new version that failed its health check and keeps it, stopped, as the application's
// failed version (replacing an earlier one), and gives the old version, if it was set aside, its name back
// and starts it again. The steps run to their end even during a shutdown: what serves must not be left
// stopped. The order leaves a state the next plan settles at every point: the failed one is renamed before
// the old one takes the name back.
func (e *Executor) rollBack(ctx context.Context, a Action, id, why string, aside *engine.Container) error {
	bg := context.WithoutCancel(ctx)
	failed := FailedName(a.Resource, a.Container.Hash)
	rb := &RollbackError{Container: a.Resource, Hash: a.Container.Hash, Failed: failed, Reason: why, Restored: true}
	if err := e.Engine.StopContainer(bg, id, e.graceOf(a.Container)); err != nil && !engine.IsNotFound(err) {
		e.logger().Warn("could not stop a version that failed its health check", zap.String("name", a.Resource), zap.Error(err))
	}
	for _, f := range a.Failed {
		if err := e.Engine.RemoveContainer(bg, f.ID); err != nil && !engine.IsNotFound(err) {
			e.logger().Warn("could not remove an earlier failed version", zap.String("name", f.Name), zap.Error(err))
		}
	}
	if err := e.Engine.RenameContainer(bg, id, failed); err != nil {
		// It cannot keep the name from the old version: better lose its logs than the service.
		e.discard(ctx, id)
		rb.Failed = "(removed: " + err.Error() + ")"
	}
	switch {
	case a.StartFirst:
		rb.Restored = a.Live != nil && a.Live.Running() // it kept serving
	case aside == nil:
		rb.Restored = false // removed by someone meanwhile
	default:
		if err := e.Engine.RenameContainer(bg, aside.ID, a.Resource); err != nil {
			rb.Restored = false
		} else if err := e.Engine.StartContainer(bg, aside.ID); err != nil {
			rb.Restored = false
		}
	}
	return rb
}

// restore gives a container that an interrupted recreate left under another name its final name back, and
// starts it if it is stopped.
func (e *Executor) restore(ctx context.Context, a Action) error {
	if err := e.Engine.RenameContainer(ctx, a.Live.ID, a.Resource); err != nil {
		return err
	}
	if !a.Live.Running() {
		return e.Engine.StartContainer(ctx, a.Live.ID)
	}
	return nil
}

// dropFailed removes the application's failed versions once a new version is healthy: their spec is no
// longer held, so settings that go back to it try it again.
func (e *Executor) dropFailed(ctx context.Context, a Action) {
	for _, f := range a.Failed {
		if err := e.Engine.RemoveContainer(ctx, f.ID); err != nil && !engine.IsNotFound(err) {
			e.logger().Warn("could not remove a failed version", zap.String("name", f.Name), zap.Error(err))
		}
	}
}

// clip shortens s to n bytes at most, on a rune boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// create makes the container of spec and connects it to its further networks, so that it starts on all of
// them at once. A container that cannot be connected is removed, as one that cannot start is: never a
// half-made container under its final name.
func (e *Executor) create(ctx context.Context, spec engine.ContainerSpec) (string, error) {
	id, err := e.Engine.CreateContainer(ctx, spec)
	if err != nil {
		return "", err
	}
	for _, n := range spec.MoreNetworks {
		if err := e.Engine.ConnectNetwork(ctx, n, id, spec.Aliases); err != nil {
			e.discard(ctx, id)
			return "", fmt.Errorf("%s: %w", spec.Name, err)
		}
	}
	return id, nil
}

// errNoClone is a build from git given to an executor without a Clone.
var errNoClone = errors.New("the executor has no Clone to check out git sources")

// clone checks out a git source at the commit the plan was made for.
func (e *Executor) clone(ctx context.Context, g *GitSource) (string, func(), error) {
	if e.Clone == nil {
		return "", nil, fmt.Errorf("git %s: %w", config.RedactURL(g.URL), errNoClone)
	}
	dir, commit, cleanup, err := e.Clone(ctx, g.URL, g.Branch)
	if err != nil {
		return "", nil, err
	}
	if commit != g.Commit {
		// The image is tagged with the planned commit; building another would make the tag lie.
		cleanup()
		return "", nil, fmt.Errorf("git %s moved from %s to %s while planning; the next pass builds the new commit",
			config.RedactURL(g.URL), shortID(g.Commit), shortID(commit))
	}
	return dir, cleanup, nil
}

// runJob replaces the job's previous container (kept until now so its logs stay readable) with a new one,
// runs it to its end and turns a non-zero exit code into a JobError.
func (e *Executor) runJob(ctx context.Context, a Action) error {
	if a.Live != nil {
		if err := e.removeContainer(ctx, a.Live); err != nil && !engine.IsNotFound(err) {
			return err
		}
	}
	id, err := e.create(ctx, a.Container.ContainerSpec)
	if err != nil {
		return err
	}
	var out io.Writer
	if e.JobOutput != nil {
		out = e.JobOutput(a.Container.Service)
	}
	code, err := e.Engine.RunContainer(ctx, id, out)
	if err != nil {
		return err
	}
	if code != 0 {
		return &JobError{Job: a.Container.Service, Code: code}
	}
	return nil
}

// discardTimeout bounds the removal of a container that was created but could not start, which runs even
// when ctx has ended (a shutdown past its grace period).
const discardTimeout = 30 * time.Second

// discard removes a container that was created but could not start.
func (e *Executor) discard(ctx context.Context, id string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), discardTimeout)
	defer cancel()
	if err := e.Engine.RemoveContainer(ctx, id); err != nil && !engine.IsNotFound(err) {
		e.logger().Warn("could not remove a container that failed to start", zap.String("id", shortID(id)), zap.Error(err))
	}
}

// restart starts the old container again after a failed replacement, if it was running before.
func (e *Executor) restart(old *engine.Container) {
	if old.Running() {
		_ = e.Engine.StartContainer(context.Background(), old.ID)
	}
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
