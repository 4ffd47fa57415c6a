package daemon

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/bee2d/bee2d/pkg/daemon/metrics"
	"github.com/bee2d/bee2d/pkg/dockerx"
	"github.com/bee2d/bee2d/pkg/gitx"
	"github.com/bee2d/bee2d/pkg/reconcile"
)

// convergeTask is the server's pass: it observes the server, plans and executes through reconcile.Apply,
// as `bee2d apply` does, and keeps what a pass learns for the next: containers whose start keeps failing
// (held back with a back-off of their own), containers that died (looked at again until the engine lists
// them stopped), and the networks, volumes and images of the last complete snapshot.
type convergeTask struct {
	server string
	heads  *headCache

	mu      sync.Mutex
	crashes map[string]*crashState
	holding int // actions held back on the last pass
	// force holds the jobs whose schedule fired, with why, for the next pass.
	force map[string]string
	// dying holds the containers that died and that no pass has seen stopped yet, with when they died.
	dying map[string]time.Time
	// destroyed is set when a managed container was destroyed since the last pass: the next pass takes
	// the complete snapshot at once.
	destroyed bool
	// recheck wakes the worker to look at a dying container again.
	recheck func()

	// prereq caches the networks, volumes and images of the last complete snapshot after a pass that
	// changed none of them and failed nowhere, so that healing a removed container lists only containers;
	// prereqAt is when it was listed. Only the worker's goroutine touches them.
	prereq   *reconcile.Snapshot
	prereqAt time.Time
	// netSeen is the digest of the desired networks that a pass found as the settings say, at netSeenAt:
	// until the settings change them or the resync is due, passes do not list networks.
	netSeen   string
	netSeenAt time.Time
}

// crashState is the back-off of a container whose create or start failed.
type crashState struct {
	streak    int
	holdUntil time.Time
	hash      string // the spec that failed; a changed spec is not held
}

func newConverge(server string) Task {
	return &convergeTask{server: server, heads: &headCache{entries: map[string]headEntry{}},
		crashes: map[string]*crashState{}}
}

func (c *convergeTask) Name() string        { return "converge" }
func (c *convergeTask) Needs() []Capability { return []Capability{CanConverge} }

// forget drops the cached prerequisites when the connection goes: the engine may have been replaced.
func (c *convergeTask) forget() { c.prereq, c.netSeen = nil, "" }

// forceJobs runs these jobs in the next pass, with why (their schedule fired).
func (c *convergeTask) forceJobs(due map[string]string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.force == nil {
		c.force = map[string]string{}
	}
	for k, v := range due {
		c.force[k] = v
	}
}

func (c *convergeTask) Run(ctx context.Context, r *Run) Result {
	d, s := r.d, r.Settings
	c.recheck = r.w.kick
	desired, err := reconcile.DesireFrom(s, c.server, reconcile.Sources{Digest: d.digest(), Head: c.heads.lookup(s, d.head(ctx), d.now)})
	if err != nil {
		return Result{Err: err}
	}
	host := r.Conn.(reconcile.Host) // CanConverge
	c.mu.Lock()
	hints := reconcile.Hints{Full: c.destroyed}
	c.destroyed = false
	force := c.force
	c.force = nil
	c.mu.Unlock()
	if c.prereq != nil && d.now().Sub(c.prereqAt) < d.resync() {
		hints.Prerequisites = c.prereq
	}
	if c.netSeen != "" && d.now().Sub(c.netSeenAt) < d.resync() {
		hints.NetworksSeen = c.netSeen
	}
	listedAt := d.now()
	log := r.Log
	res, err := reconcile.Apply(ctx, host, reconcile.Pass{
		Desired: desired,
		Options: reconcile.Options{ForceJobs: force},
		Hints:   hints,
		Hold: func(p *reconcile.Plan, snap *reconcile.Snapshot) map[string]string {
			c.recheckDying(r.Now(), snap)
			return c.holdFailing(r.Now(), p)
		},
		Executor: reconcile.Executor{
			Parallel:    d.Parallel,
			StopTimeout: d.StopTimeout,
			Draining:    r.Draining,
			Clone:       gitx.CloneTemp,
			Done: func(a reconcile.Action, err error, took time.Duration) {
				if m := r.Metrics; m != nil {
					m.Action(c.server, a.Op.Metric(), err == nil)
					if a.Op == reconcile.OpRunJob {
						m.JobRun(c.server, a.Container.Service, exitCodeOf(err), took, d.now())
					}
					var rollback *reconcile.RollbackError
					if errors.As(err, &rollback) {
						m.Rollback(c.server, a.Resource)
					}
				}
				if a.Op == reconcile.OpRunJob {
					logJobRun(log, a, err, took)
				}
				c.noteResult(r, a, err)
			},
		},
	}, log)
	var observeErr *reconcile.ObserveError
	if errors.As(err, &observeErr) {
		c.prereq = nil
		r.w.closeConn() // reconnect next time: the engine may have gone away
		c.requeue(force)
		return Result{Err: errServerDown{observeErr.Err}}
	}
	snap := res.Snapshot
	// A pass that took the networks on trust keeps the time they were last listed.
	if hints.NetworksSeen == "" || res.NetworksSeen != hints.NetworksSeen {
		c.netSeen, c.netSeenAt = res.NetworksSeen, listedAt
	}
	c.mu.Lock()
	c.holding = len(res.Held)
	c.mu.Unlock()
	var execErr error
	if !res.Plan.Empty() {
		if err != nil {
			// The failed containers back off on their own; the server does not.
			execErr = err
		}
		c.keepPrerequisites(res.Plan, snap, hints, listedAt, execErr)
		// Re-observe for the metrics: the plan says what was wrong, the engine says what is now.
		if snap, err = reconcile.ObserveContainers(ctx, host, desired.Prefix); err != nil {
			return Result{Err: errors.Join(execErr, errServerDown{err})}
		}
	}
	r.w.passSnapshot = snap
	c.report(r.Metrics, desired, snap, res.Held)
	return Result{Err: execErr, Partial: execErr != nil, Pending: len(res.Held) > 0}
}

// requeue keeps the fired schedules of a pass that could not run them for the next.
func (c *convergeTask) requeue(force map[string]string) {
	if len(force) > 0 {
		c.forceJobs(force)
	}
}

// keepPrerequisites caches the networks, volumes and images of a fresh complete snapshot when the pass
// made none of them and no action failed, and drops the cache otherwise: a failure may come from a network
// or image that is gone.
func (c *convergeTask) keepPrerequisites(p *reconcile.Plan, snap *reconcile.Snapshot, hints reconcile.Hints, listedAt time.Time, execErr error) {
	if execErr != nil || slices.ContainsFunc(p.Actions, func(a reconcile.Action) bool {
		switch a.Op {
		case reconcile.OpCreateNetwork, reconcile.OpRecreateNetwork, reconcile.OpRemoveNetwork,
			reconcile.OpCreateVolume, reconcile.OpBuildImage, reconcile.OpPullImage:
			return true
		}
		return false
	}) {
		c.prereq = nil
		return
	}
	if snap.Complete && hints.Prerequisites == nil {
		c.prereq = &reconcile.Snapshot{Networks: snap.Networks, Volumes: snap.Volumes, Images: snap.Images}
		c.prereqAt = listedAt
	}
}

// exitCodeOf turns a job run's error into the exit code metric: the job's own code, or -1 when it could
// not run.
func exitCodeOf(err error) int {
	var je *reconcile.JobError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &je):
		return je.Code
	}
	return -1
}

func logJobRun(log *zap.Logger, a reconcile.Action, err error, took time.Duration) {
	fields := []zap.Field{zap.String("job", a.Container.Service), zap.Duration("took", took), zap.String("cause", a.Cause)}
	if g := a.Container.Source.Build; g != nil && g.Git != nil {
		fields = append(fields, zap.String("commit", g.Git.Commit))
	}
	if err != nil {
		log.Warn("job run failed", append(fields, zap.Int("exit_code", exitCodeOf(err)), zap.Error(err))...)
		return
	}
	log.Info("job run succeeded", fields...)
}

// The engine sends "die" before it has cleaned up after the container and recorded it as stopped, so the
// pass that the event starts can still list the container as running (Docker 20.10 after `docker kill`;
// a second or more on a busy engine), and no later event says otherwise. So until a pass sees it stopped
// or gone, or a "start" says the engine restarted it, the worker looks again (one list call each time):
// often at first, when a restart is most likely to be due, then less often.
const (
	dyingRecheckMin = 25 * time.Millisecond
	dyingRecheckMax = 2 * time.Second
	dyingForget     = time.Minute // then the resync is left to see it
)

// noteDeath tracks the containers that died until a pass has seen them stopped.
func (c *convergeTask) noteDeath(ev dockerx.Event, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch ev.Action {
	case "die":
		if c.dying == nil {
			c.dying = map[string]time.Time{}
		}
		c.dying[ev.ID] = now
	case "start":
		delete(c.dying, ev.ID)
	case "destroy":
		delete(c.dying, ev.ID)
		c.destroyed = true
	}
}

// recheckDying forgets the dead containers that the snapshot a plan was made from shows stopped or gone,
// and wakes the worker again soon while it still lists one as running.
func (c *convergeTask) recheckDying(now time.Time, snap *reconcile.Snapshot) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.dying) == 0 {
		return
	}
	// Only "running" can be stale: "restarting" is the engine's restart policy at work, after the death
	// was recorded.
	running := map[string]bool{}
	for _, ct := range snap.Containers {
		if ct.State == "running" {
			running[ct.ID] = true
		}
	}
	next := time.Duration(-1)
	for id, died := range c.dying {
		since := now.Sub(died)
		if !running[id] || since > dyingForget {
			delete(c.dying, id)
			continue
		}
		if wait := min(max(since/8, dyingRecheckMin), dyingRecheckMax); next < 0 || wait < next {
			next = wait
		}
	}
	if next >= 0 && c.recheck != nil {
		time.AfterFunc(next, c.recheck)
	}
}

// holdFailing removes from the plan the container actions that failed on recent passes, until their
// back-off ends (the worker is woken then). A container whose start keeps failing is thus retried at
// growing intervals while the rest of the server converges at once. Containers that crash after a good
// start are restarted by the engine itself (unless-stopped), with its own back-off. A network whose
// recreate failed is held the same way, with its steps (the removal and creation again of its containers),
// so that an engine that refuses to remove it does not have them replaced on every pass. It returns the
// names held with why.
func (c *convergeTask) holdFailing(now time.Time, p *reconcile.Plan) map[string]string {
	held := map[string]string{}
	c.mu.Lock()
	defer c.mu.Unlock()
	kept := p.Actions[:0]
	for _, a := range p.Actions {
		if cs := c.crashes[a.Resource]; cs != nil && specKey(a) != "" && cs.hash != specKey(a) {
			delete(c.crashes, a.Resource) // the spec changed (a fix, a new commit): try it at once
		}
		if cs := c.crashes[a.Resource]; cs != nil && now.Before(cs.holdUntil) {
			held[a.Resource] = "failed " + strconv.Itoa(cs.streak) + " times; retried after back-off"
			continue
		}
		if n := slices.IndexFunc(a.StepOf, func(n string) bool { cs := c.crashes[n]; return cs != nil && now.Before(cs.holdUntil) }); n >= 0 {
			held[a.Resource] = "waiting for the recreate of network " + a.StepOf[n]
			continue
		}
		// What needs a held action waits with it: the executor would not know it is missing.
		deps := a.Deps()
		if dep := slices.IndexFunc(deps, func(d string) bool { _, h := held[d]; return h }); dep >= 0 {
			held[a.Resource] = "waiting for " + deps[dep]
			continue
		}
		kept = append(kept, a)
	}
	p.Actions = kept
	return held
}

// noteResult keeps the back-off of a container whose action failed, and forgets it after a success.
func (c *convergeTask) noteResult(r *Run, a reconcile.Action, err error) {
	switch a.Op {
	case reconcile.OpCreateContainer, reconcile.OpRecreateContainer, reconcile.OpStartContainer, reconcile.OpRunJob,
		reconcile.OpRecreateNetwork:
	default:
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err == nil {
		delete(c.crashes, a.Resource)
		return
	}
	cs := c.crashes[a.Resource]
	if cs == nil {
		cs = &crashState{}
		c.crashes[a.Resource] = cs
	}
	if k := specKey(a); k != "" {
		cs.hash = k
	}
	cs.streak++
	backoff := min(backoffMin<<min(cs.streak-1, 20), crashBackoffMax)
	cs.holdUntil = r.Now().Add(backoff)
	time.AfterFunc(backoff, r.w.kick)
}

// specKey identifies what an action makes: the container's spec hash, or the network's settings; a held
// action whose spec changed is tried at once.
func specKey(a reconcile.Action) string {
	switch {
	case a.Container != nil:
		return a.Container.Hash
	case a.Network != nil:
		return fmt.Sprint(*a.Network) // maps print sorted
	}
	return ""
}

// report sets the in-sync and health metrics from the live state after the pass.
func (c *convergeTask) report(m *metrics.Metrics, d *reconcile.Desired, snap *reconcile.Snapshot, held map[string]string) {
	if m == nil {
		return
	}
	var rs []metrics.Resource
	for _, st := range reconcile.Status(d, snap) {
		// Status counts a container whose check is starting or failing as out of sync: in sync is running
		// and healthy, or running without a check.
		ok := st.InSync
		if st.Kind == metrics.KindContainer {
			// Restarting by the engine's policy is running, but not healthy.
			ok = ok && st.State == "running"
		}
		if _, h := held[st.Name]; h {
			ok = false
		}
		if st.Detail != "" && strings.HasPrefix(st.Detail, "to be removed") {
			continue
		}
		rs = append(rs, metrics.Resource{Kind: st.Kind, Name: st.Name, InSync: ok, Health: st.Health})
	}
	m.SetResources(c.server, rs)
}
