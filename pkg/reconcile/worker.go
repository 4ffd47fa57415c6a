package reconcile

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/bee2d/bee2d/pkg/config"
	"github.com/bee2d/bee2d/pkg/dockerx"
	"github.com/bee2d/bee2d/pkg/labels"
	"github.com/bee2d/bee2d/pkg/reconcile/metrics"
)

// worker converges one server, one pass at a time.
type worker struct {
	d      *Daemon
	server string
	log    *zap.Logger
	// wake holds at most one pending wake-up: triggers that arrive during a pass coalesce into one more.
	wake   chan struct{}
	ctx    context.Context // ends when the server leaves the settings or the daemon stops
	cancel context.CancelFunc

	mu        sync.Mutex
	conn      Conn
	connHost  dockerx.Endpoint
	passes    int
	failures  int
	notBefore time.Time
	failing   string // the error of the failing streak being in, "" when passing
	crashes   map[string]*crashState
	pass      int64
	heads     *headCache
	schedules map[string]nextFire // by job name
	timer     *time.Timer         // wakes the worker for the next schedule or poll
	holding   int                 // actions held back on the last pass
	// backupNext is when the scheduled backup is due next; backupInit seeds its metrics once.
	backupNext time.Time
	backupInit sync.Once
	// backupRetry is when a failed scheduled backup may be tried again; backupFailures counts those in a row.
	backupRetry    time.Time
	backupFailures int
	insecure       sync.Once   // the plain-TCP warning, once per start
	reloads        *reloadTask // the reload rules' state (reloads.go)

	// connPrefix is the prefix the event stream of conn filters on.
	connPrefix string
	// dying holds the containers that died and that no pass has seen stopped yet, with when they died.
	dying map[string]time.Time
	// destroyed is set when a managed container was destroyed since the last pass: the next pass takes
	// the complete snapshot at once.
	destroyed bool

	// prereq caches the networks, volumes and images of the last complete snapshot after a pass that
	// changed none of them and failed nowhere, so that healing a removed container lists only containers;
	// prereqAt is when it was listed. Only the worker's goroutine touches them.
	prereq   *Snapshot
	prereqAt time.Time
}

// crashState is the back-off of a container whose create or start failed.
type crashState struct {
	streak    int
	holdUntil time.Time
	hash      string // the spec that failed; a changed spec is not held
}

func newWorker(d *Daemon, server string) *worker {
	ctx, cancel := context.WithCancel(d.stop)
	return &worker{
		d:         d,
		server:    server,
		log:       d.log().With(zap.String("server", server)),
		wake:      make(chan struct{}, 1),
		ctx:       ctx,
		cancel:    cancel,
		crashes:   map[string]*crashState{},
		heads:     &headCache{entries: map[string]headEntry{}},
		schedules: map[string]nextFire{},
	}
}

func (w *worker) kick() {
	select {
	case w.wake <- struct{}{}:
	default: // a wake-up is pending already
	}
}

func (w *worker) firstPassDone() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.passes > 0
}

func (w *worker) run() {
	defer w.closeConn()
	for {
		select {
		case <-w.ctx.Done():
			return
		case <-w.wake:
		}
		w.mu.Lock()
		wait := time.Until(w.notBefore)
		w.mu.Unlock()
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-w.ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		w.step()
	}
}

// step is one pass: observe, plan, execute, report. Tests call it directly.
func (w *worker) step() {
	start := w.d.now()
	w.mu.Lock()
	w.pass++
	log := w.log.With(zap.Int64("pass", w.pass))
	w.mu.Unlock()

	err := w.converge(log)

	took := w.d.now().Sub(start)
	if m := w.d.Metrics; m != nil {
		m.Pass(w.server, took, err, w.d.now())
		var down errServerDown
		m.ServerUp(w.server, !errors.As(err, &down))
	}
	w.mu.Lock()
	w.passes++
	var actionsFailed actionErrors
	if err != nil && !errors.As(err, &actionsFailed) {
		w.failures++
		backoff := min(backoffMin<<min(w.failures-1, 20), w.d.retryMax())
		w.notBefore = w.d.now().Add(backoff)
		if w.failures == 1 { // also after failing actions: an outage is news of its own
			log.Error("server pass failing", zap.Error(err), zap.Duration("retry_in", backoff))
		} else {
			log.Debug("server pass still failing", zap.Error(err), zap.Duration("retry_in", backoff))
		}
		w.failing = err.Error()
		time.AfterFunc(backoff, w.kick)
	} else if err != nil {
		if w.failing == "" {
			log.Error("actions failing", zap.Error(err))
		}
		w.failing = err.Error()
	} else if w.holding == 0 {
		// A pass with held actions is not a recovery: they have not succeeded yet.
		if w.failing != "" {
			log.Info("server pass recovered", zap.Int("failed_passes", w.failures))
		}
		w.failures, w.failing, w.notBefore = 0, "", time.Time{}
	}
	w.mu.Unlock()
	log.Debug("pass done", zap.Duration("took", took), zap.Error(err))
	w.d.checkReady()
}

func (w *worker) converge(log *zap.Logger) error {
	s := w.d.Settings()
	if s.Server(w.server) == nil {
		return nil // removed by a reload in the meantime
	}
	desired, err := DesireFrom(s, w.server, Sources{Digest: w.d.digest(), Head: w.heads.lookup(s, w.d.head(), w.d.now)})
	if err != nil {
		return err
	}
	force := w.dueSchedules(s)
	conn, err := w.connection(s)
	if err != nil {
		return errServerDown{err}
	}
	ctx := w.d.work
	w.mu.Lock()
	hints := Hints{Full: w.destroyed}
	w.destroyed = false
	w.mu.Unlock()
	if w.prereq != nil && w.d.now().Sub(w.prereqAt) < w.d.resync() {
		hints.Prerequisites = w.prereq
	}
	listedAt := w.d.now()
	p, snap, err := PlanServerWith(ctx, conn, desired, Options{ForceJobs: force}, hints)
	if err != nil {
		w.prereq = nil
		w.closeConn() // reconnect next time: the engine may have gone away
		return errServerDown{err}
	}
	w.recheckDying(snap)
	held := w.holdFailing(p)
	w.mu.Lock()
	w.holding = len(held)
	w.mu.Unlock()
	for _, b := range p.Blocked {
		log.Warn("left alone", zap.String("name", b.Resource), zap.String("reason", b.Reason))
	}
	var execErr error
	if !p.Empty() {
		ex := &Executor{
			Engine:      conn,
			Log:         log,
			Parallel:    w.d.Parallel,
			StopTimeout: w.d.StopTimeout,
			Prefix:      desired.Prefix,
			Server:      w.server,
			Draining:    w.ctx.Done(),
			Done: func(a Action, err error, took time.Duration) {
				if m := w.d.Metrics; m != nil {
					m.Action(w.server, a.Op.Metric(), err == nil)
					if a.Op == OpRunJob {
						m.JobRun(w.server, a.Container.Service, exitCodeOf(err), took, w.d.now())
					}
				}
				if a.Op == OpRunJob {
					w.logJobRun(log, a, err, took)
				}
				w.noteResult(a, err)
			},
		}
		if _, err := ex.Execute(ctx, p); err != nil {
			// The failed containers back off on their own; the server does not.
			execErr = actionErrors{err}
		}
		w.keepPrerequisites(p, snap, hints, listedAt, execErr)
		// Re-observe for the metrics: the plan says what was wrong, the engine says what is now.
		if snap, err = ObserveContainers(ctx, conn, desired.Prefix); err != nil {
			return errors.Join(execErr, errServerDown{err})
		}
	}
	w.report(desired, snap, held)
	w.runReloads(ctx, log, s, conn, snap)
	backupNext := w.runDueBackup(ctx, log, s, conn)
	w.mu.Lock()
	w.backupNext = backupNext
	w.mu.Unlock()
	w.wakeForTimers(s)
	return execErr
}

// keepPrerequisites caches the networks, volumes and images of a fresh complete snapshot when the pass
// made none of them and no action failed, and drops the cache otherwise: a failure may come from a network
// or image that is gone.
func (w *worker) keepPrerequisites(p *Plan, snap *Snapshot, hints Hints, listedAt time.Time, execErr error) {
	if execErr != nil || slices.ContainsFunc(p.Actions, func(a Action) bool {
		switch a.Op {
		case OpCreateNetwork, OpCreateVolume, OpBuildImage, OpPullImage:
			return true
		}
		return false
	}) {
		w.prereq = nil
		return
	}
	if snap.Complete && hints.Prerequisites == nil {
		w.prereq = &Snapshot{Networks: snap.Networks, Volumes: snap.Volumes, Images: snap.Images}
		w.prereqAt = listedAt
	}
}

// exitCodeOf turns a job run's error into the exit code metric: the job's own code, or -1 when it could
// not run.
func exitCodeOf(err error) int {
	var je *JobError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &je):
		return je.Code
	}
	return -1
}

func (w *worker) logJobRun(log *zap.Logger, a Action, err error, took time.Duration) {
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

// dueSchedules returns the jobs of this server whose schedule fired since the last pass, and arms the
// next firing of each.
func (w *worker) dueSchedules(s *config.Settings) map[string]string {
	now := w.d.now()
	w.mu.Lock()
	defer w.mu.Unlock()
	due := map[string]string{}
	seen := map[string]bool{}
	for _, j := range s.ServicesOn(w.server, config.KindJob) {
		if j.Schedule == "" {
			continue
		}
		seen[j.Name] = true
		sched, err := config.ParseSchedule(j.Schedule)
		if err != nil {
			continue // validated when loaded
		}
		next, ok := w.schedules[j.Name]
		if !ok || next.spec != j.Schedule {
			// A new or changed schedule starts counting now: it does not fire for the past.
			w.schedules[j.Name] = nextFire{spec: j.Schedule, at: sched.Next(now)}
			continue
		}
		if !now.Before(next.at) {
			due[j.Name] = "schedule " + j.Schedule + " fired"
			w.schedules[j.Name] = nextFire{spec: j.Schedule, at: sched.Next(now)}
		}
	}
	for name := range w.schedules {
		if !seen[name] {
			delete(w.schedules, name)
		}
	}
	return due
}

// nextFire is when a job's schedule fires next.
type nextFire struct {
	spec string
	at   time.Time
}

// wakeForTimers arms one timer for the earliest of the next schedule firing and the next git poll.
func (w *worker) wakeForTimers(s *config.Settings) {
	var earliest time.Time
	consider := func(t time.Time) {
		if !t.IsZero() && (earliest.IsZero() || t.Before(earliest)) {
			earliest = t
		}
	}
	w.mu.Lock()
	for _, n := range w.schedules {
		consider(n.at)
	}
	consider(w.backupNext)
	w.mu.Unlock()
	consider(w.heads.nextExpiry(s, w.server))
	if earliest.IsZero() {
		return
	}
	wait := max(earliest.Sub(w.d.now()), 10*time.Millisecond)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.timer == nil {
		w.timer = time.AfterFunc(wait, w.kick)
	} else {
		w.timer.Reset(wait)
	}
}

// connection returns the server's connection, opening it (and its event stream) when there is none or
// when the settings now point elsewhere.
func (w *worker) connection(s *config.Settings) (Conn, error) {
	ep, err := EndpointFor(s, w.server)
	if err != nil {
		return nil, err
	}
	if ep.Insecure {
		w.insecure.Do(func() { WarnInsecure(w.log, ep) })
	}
	w.mu.Lock()
	// The event stream filters on the prefix: a new prefix needs a new stream.
	conn, same := w.conn, sameEndpoint(w.connHost, ep) && w.connPrefix == s.Docker.Prefix
	w.mu.Unlock()
	if conn != nil && same {
		return conn, nil
	}
	w.closeConn()
	conn, err = w.d.connect(w.d.work, ep)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(w.ctx)
	w.mu.Lock()
	w.conn, w.connHost, w.connPrefix = &watchedConn{Conn: conn, stopEvents: cancel}, ep, s.Docker.Prefix
	w.mu.Unlock()
	go w.watchEvents(ctx, conn, s.Docker.Prefix)
	return w.conn, nil
}

func sameEndpoint(a, b dockerx.Endpoint) bool {
	return a.Equal(b)
}

// watchedConn is a connection with its event stream, which closes with it.
type watchedConn struct {
	Conn
	stopEvents context.CancelFunc
}

func (c *watchedConn) Close() error {
	c.stopEvents()
	return c.Conn.Close()
}

func (w *worker) closeConn() {
	w.prereq = nil
	w.mu.Lock()
	conn := w.conn
	w.conn = nil
	w.mu.Unlock()
	if conn != nil {
		conn.Close()
	}
}

// wakeActions are the container events after which the server may have drifted.
var wakeActions = map[string]bool{"die": true, "stop": true, "kill": true, "destroy": true, "oom": true,
	"pause": true, "rename": true, "update": true}

// watchEvents wakes the worker on events of the server's managed containers. When the stream breaks it
// reconnects with back-off, and wakes the worker after each reconnect, since events may have been missed.
func (w *worker) watchEvents(ctx context.Context, conn Conn, prefix string) {
	filter := labels.ForServer(prefix, w.server)
	backoff := backoffMin
	for attempt := 0; ; attempt++ {
		evs, errs := conn.Events(ctx, filter)
		if attempt > 0 {
			w.kick()
		}
		err := func() error {
			for {
				select {
				case ev, ok := <-evs:
					if !ok {
						return nil
					}
					backoff = backoffMin
					// Noted before the kick, so that the pass it starts knows.
					w.noteDeath(ev)
					if wakeActions[ev.Action] || strings.HasPrefix(ev.Action, "health_status") {
						w.log.Debug("container event", zap.String("name", ev.Name), zap.String("event", ev.Action))
						w.kick()
					}
				case err, ok := <-errs:
					if !ok {
						return nil
					}
					return err
				}
			}
		}()
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			w.log.Warn("event stream broken, reconnecting", zap.Error(err), zap.Duration("retry_in", backoff))
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(backoff*2, w.d.retryMax())
	}
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
func (w *worker) noteDeath(ev dockerx.Event) {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch ev.Action {
	case "die":
		if w.dying == nil {
			w.dying = map[string]time.Time{}
		}
		w.dying[ev.ID] = w.d.now()
	case "start":
		delete(w.dying, ev.ID)
	case "destroy":
		delete(w.dying, ev.ID)
		w.destroyed = true
	}
}

// recheckDying forgets the dead containers that snap shows stopped or gone, and wakes the worker again
// soon while it still lists one as running.
func (w *worker) recheckDying(snap *Snapshot) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.dying) == 0 {
		return
	}
	// Only "running" can be stale: "restarting" is the engine's restart policy at work, after the death
	// was recorded.
	running := map[string]bool{}
	for _, c := range snap.Containers {
		if c.State == "running" {
			running[c.ID] = true
		}
	}
	now := w.d.now()
	next := time.Duration(-1)
	for id, died := range w.dying {
		since := now.Sub(died)
		if !running[id] || since > dyingForget {
			delete(w.dying, id)
			continue
		}
		if wait := min(max(since/8, dyingRecheckMin), dyingRecheckMax); next < 0 || wait < next {
			next = wait
		}
	}
	if next >= 0 {
		time.AfterFunc(next, w.kick)
	}
}

// holdFailing removes from the plan the container actions that failed on recent passes, until their
// back-off ends (the worker is woken then). A container whose start keeps failing is thus retried at
// growing intervals while the rest of the server converges at once. Containers that crash after a good
// start are restarted by the engine itself (unless-stopped), with its own back-off. It returns the names
// held with why.
func (w *worker) holdFailing(p *Plan) map[string]string {
	held := map[string]string{}
	now := w.d.now()
	w.mu.Lock()
	defer w.mu.Unlock()
	kept := p.Actions[:0]
	for _, a := range p.Actions {
		if cs := w.crashes[a.Resource]; cs != nil && a.Container != nil && cs.hash != a.Container.Hash {
			delete(w.crashes, a.Resource) // the spec changed (a fix, a new commit): try it at once
		}
		if cs := w.crashes[a.Resource]; cs != nil && now.Before(cs.holdUntil) {
			held[a.Resource] = "failed " + strconv.Itoa(cs.streak) + " times; retried after back-off"
			continue
		}
		// What needs a held action waits with it: the executor would not know it is missing.
		if dep := slices.IndexFunc(a.deps(), func(d string) bool { _, h := held[d]; return h }); dep >= 0 {
			held[a.Resource] = "waiting for " + a.deps()[dep]
			continue
		}
		kept = append(kept, a)
	}
	p.Actions = kept
	return held
}

// noteResult keeps the back-off of a container whose action failed, and forgets it after a success.
func (w *worker) noteResult(a Action, err error) {
	switch a.Op {
	case OpCreateContainer, OpRecreateContainer, OpStartContainer, OpRunJob:
	default:
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if err == nil {
		delete(w.crashes, a.Resource)
		return
	}
	cs := w.crashes[a.Resource]
	if cs == nil {
		cs = &crashState{}
		w.crashes[a.Resource] = cs
	}
	if a.Container != nil {
		cs.hash = a.Container.Hash
	}
	cs.streak++
	backoff := min(backoffMin<<min(cs.streak-1, 20), crashBackoffMax)
	cs.holdUntil = w.d.now().Add(backoff)
	time.AfterFunc(backoff, w.kick)
}

// actionErrors are failures of single actions, as opposed to failures to reach or plan the server.
type actionErrors struct{ err error }

func (e actionErrors) Error() string { return e.err.Error() }
func (e actionErrors) Unwrap() error { return e.err }

// report sets the in-sync metrics from the live state after the pass.
func (w *worker) report(d *Desired, snap *Snapshot, held map[string]string) {
	if w.d.Metrics == nil {
		return
	}
	var rs []metrics.Resource
	for _, st := range Status(d, snap) {
		ok := st.InSync
		if st.Kind == "container" {
			// Restarting by the engine's policy is running, but not healthy.
			ok = ok && st.State == "running"
		}
		if _, h := held[st.Name]; h {
			ok = false
		}
		if st.Detail != "" && strings.HasPrefix(st.Detail, "to be removed") {
			continue
		}
		rs = append(rs, metrics.Resource{Kind: st.Kind, Name: st.Name, InSync: ok})
	}
	w.d.Metrics.SetResources(w.server, rs)
}
