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
	// Prefix and Server label the networks and volumes created.
	Prefix, Server string
	// Draining, once closed, stops new actions from starting; those in flight finish. The context given
	// to Execute bounds the calls themselves.
	Draining <-chan struct{}
	// Done, if set, is told about every action that ran, and how long it took.
	Done func(a Action, err error, took time.Duration)
	// JobOutput, if set, gives the writer a job's output goes to.
	JobOutput func(job string) io.Writer
	// Clone checks out a git source into a directory of its own (gitsrc.CloneTemp does, with git) and returns
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
		return nil
	case OpRecreateContainer:
		return e.recreate(ctx, a)
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
// the old one may hold its ports and its volumes). Once the new one runs, the old one is removed. If the
// new one cannot be created or started, the old one gets its name back and runs again. Named volumes are
// never removed, so data survives either way; a crash in between leaves a renamed container that the next
// plan removes as a leftover (first, if it still runs, so that it frees its ports).
func (e *Executor) recreate(ctx context.Context, a Action) error {
	old := a.Live
	aside := fmt.Sprintf("%s-bee2d-old-%s", a.Resource, shortID(old.ID))
	if err := e.Engine.RenameContainer(ctx, old.ID, aside); err != nil {
		if !engine.IsNotFound(err) {
			return err // nothing changed: the old container runs on under its name
		}
		old = nil // removed meanwhile
	}
	stopped := make(chan error, 1)
	if old != nil {
		go func() {
			// The container's own grace, when longer, is what it was promised (stop_grace).
			grace := max(cmp.Or(e.StopTimeout, config.StopTimeout), a.Container.StopTimeout)
			err := e.stopContainer(ctx, old, grace)
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
	if old != nil {
		if err := e.removeContainer(ctx, old); err != nil && !engine.IsNotFound(err) {
			return fmt.Errorf("remove replaced container %s: %w", aside, err)
		}
	}
	return nil
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
