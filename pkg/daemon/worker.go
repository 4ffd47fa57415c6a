package daemon

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/bee2d/bee2d/pkg/config"
	"github.com/bee2d/bee2d/pkg/daemon/metrics"
	"github.com/bee2d/bee2d/pkg/dockerx"
	"github.com/bee2d/bee2d/pkg/labels"
	"github.com/bee2d/bee2d/pkg/reconcile"
)

// worker runs one server's tasks on one goroutine: a pass when it is woken (convergence, and the tasks that
// run with it), and each task again when the time it asked for comes.
type worker struct {
	d      *Daemon
	server string
	log    *zap.Logger
	// wake holds at most one pending wake-up: triggers that arrive during a step coalesce into one more.
	wake chan struct{}
	// draining is closed when the server leaves the settings or the daemon stops; cancel closes it.
	draining <-chan struct{}
	cancel   context.CancelFunc

	tasks []*taskState
	// pass is the convergence task's state among tasks; nil when the tasks have none (a test's).
	pass *taskState

	mu       sync.Mutex
	passWant bool  // a pass was asked for: woken by kick, not only by a task's time
	passes   int64 // passes started, for the pass field of the logs
	// down is set while the engine does not answer: the tasks other than convergence wait for a pass
	// that reaches it.
	down       bool
	conn       Conn
	connHost   dockerx.Endpoint
	connPrefix string             // the prefix the event stream of conn filters on
	stopEvents context.CancelFunc // ends the event stream of conn
	unableSaid map[string]bool    // tasks whose missing capability was logged for this connection
	insecure   sync.Once          // the plain-TCP warning, once per start
	timer      *time.Timer        // wakes the worker when the first task is due

	// passSnapshot is the server's containers after this step's pass, for the tasks after it. Only the
	// worker's goroutine touches it.
	passSnapshot *reconcile.Snapshot
}

// taskState is the runtime's state of one task on one server, guarded by the worker's mu.
type taskState struct {
	task Task
	name string
	// follows tells that the task runs in every pass, due or not.
	follows bool

	next      time.Time // when the task asked to run again; zero for no time of its own
	stale     bool      // the settings changed since its last run: it runs with the next pass
	failures  int       // failed runs in a row
	notBefore time.Time // the end of the back-off after a failure
	failing   string    // the error of the failing streak, "" when not failing
	runs      int
	unable    string // the capability the engine lacks, "" when the task can run
}

// FollowsPasses is implemented by tasks that run in every pass, due or not, since what the pass changed
// concerns them.
type FollowsPasses interface{ FollowsPasses() bool }

func (d *Daemon) newWorker(server string) *worker {
	ctx, cancel := context.WithCancel(d.stop)
	w := &worker{
		d:          d,
		server:     server,
		log:        d.log().With(zap.String("server", server)),
		wake:       make(chan struct{}, 1),
		draining:   ctx.Done(),
		cancel:     cancel,
		passWant:   true,
		unableSaid: map[string]bool{},
	}
	tasks := d.Tasks
	if tasks == nil {
		tasks = Tasks
	}
	for _, nt := range tasks {
		t := nt(server)
		f, _ := t.(FollowsPasses)
		ts := &taskState{task: t, name: t.Name(), follows: f != nil && f.FollowsPasses(), stale: true}
		w.tasks = append(w.tasks, ts)
		if _, ok := t.(*convergeTask); ok {
			w.pass = ts
		}
	}
	return w
}

// kick asks for a pass: the server's live state may have drifted, or the settings changed.
func (w *worker) kick() {
	w.mu.Lock()
	w.passWant = true
	w.mu.Unlock()
	w.poke()
}

// poke wakes the worker without asking for a pass: a task's time may have come.
func (w *worker) poke() {
	select {
	case w.wake <- struct{}{}:
	default: // a wake-up is pending already
	}
}

// settingsChanged asks for a pass in which every task looks at the new settings: a schedule may have moved.
func (w *worker) settingsChanged() {
	w.mu.Lock()
	for _, t := range w.tasks {
		t.stale = true
	}
	w.mu.Unlock()
	w.kick()
}

func (w *worker) firstPassDone() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pass == nil || w.pass.runs > 0
}

// run steps until the worker is cancelled; ctx bounds the calls in flight.
func (w *worker) run(ctx context.Context) {
	defer w.closeConn()
	for {
		select {
		case <-w.draining:
			return
		case <-w.wake:
		}
		w.step(ctx)
	}
}

// step runs, in the order of the tasks, each one that is due: convergence when a pass was asked for and the
// server is not backing off, the others when their time came or, in a pass, when they follow passes or the
// settings changed. Then it arms the timer for the next. Tests call it directly.
func (w *worker) step(ctx context.Context) {
	s := w.d.Settings()
	if s.Server(w.server) == nil {
		return // removed by a reload in the meantime
	}
	w.passSnapshot = nil
	defer func() { w.passSnapshot = nil }()
	w.mu.Lock()
	// A pass was asked for and the server is not backing off: this step is one. A task that asks for a pass
	// during the step gets it in the next, which arm starts at once.
	inPass := w.passWant && (w.pass == nil || !w.d.now().Before(w.pass.notBefore))
	if inPass {
		w.passWant = false
		w.passes++
	}
	log := w.log.With(zap.Int64("pass", w.passes))
	w.mu.Unlock()
	for _, t := range w.tasks {
		select {
		case <-w.draining:
			return // stopping: no task starts; those that ran have finished
		default:
		}
		now := w.d.now()
		w.mu.Lock()
		run := w.due(t, now, inPass)
		down := w.down
		w.mu.Unlock()
		needsEngine := t == w.pass || len(t.task.Needs()) > 0
		if !run || (down && needsEngine && t != w.pass) {
			continue // the others wait for a pass that reaches the engine
		}
		var conn Conn
		var err error
		if needsEngine {
			conn, err = w.connection(s)
		}
		if err != nil {
			w.mu.Lock()
			w.down = true
			w.passWant = w.passWant || t != w.pass
			w.mu.Unlock()
			if t == w.pass {
				w.finish(t, log, Result{Err: errServerDown{err}}, 0)
			}
			continue
		}
		if !w.able(t, conn) {
			continue
		}
		res := w.runTask(ctx, t, &Run{Server: w.server, Settings: s, Conn: conn, Metrics: w.d.Metrics, Pass: inPass,
			Draining: w.draining, d: w.d, w: w}, log)
		if t == w.pass && res.Err == nil && !res.Pending {
			// Everything of these settings is in place on the server: it converged to their revision.
			w.d.converged(w.server, s.Revision, w.d.now())
		}
	}
	w.arm()
	w.d.checkReady()
}

// due tells whether t runs now. w.mu is held.
func (w *worker) due(t *taskState, now time.Time, inPass bool) bool {
	if now.Before(t.notBefore) {
		return false
	}
	if t == w.pass {
		return inPass
	}
	timeCame := !t.next.IsZero() && !now.Before(t.next)
	return timeCame || (inPass && (t.follows || t.stale)) || (!t.notBefore.IsZero() && t.failing != "")
}

// runTask runs one task once, recovering a panic, and records how it went.
func (w *worker) runTask(ctx context.Context, t *taskState, r *Run, log *zap.Logger) Result {
	r.Log = log.With(zap.String("task", t.name))
	start := w.d.now()
	res, panicked := func() (res Result, panicked bool) {
		defer func() {
			if p := recover(); p != nil {
				panicked = true
				res = Result{Err: fmt.Errorf("panic: %v", p)}
				r.Log.Error("task panicked", zap.Any("panic", p), zap.ByteString("stack", debug.Stack()))
			}
		}()
		return t.task.Run(ctx, r), false
	}()
	took := w.d.now().Sub(start)
	if m := w.d.Metrics; m != nil {
		result := metrics.ResultSuccess
		switch {
		case panicked:
			result = metrics.ResultPanic
		case res.Err != nil:
			result = metrics.ResultFailure
		}
		m.TaskRun(w.server, t.name, result, took)
	}
	w.finish(t, log, res, took)
	return res
}

// Back-off of a failing task: it doubles from backoffMin up to the daemon's RetryMax.
func (w *worker) backoff(failures int) time.Duration {
	return min(backoffMin<<min(failures-1, 20), w.d.retryMax())
}

// finish records a task's result: its next time, its back-off, the log lines that start and end a failing
// streak (once each), and for the pass the server's metrics.
func (w *worker) finish(t *taskState, log *zap.Logger, res Result, took time.Duration) {
	now := w.d.now()
	isPass := t == w.pass
	subject := "task" // convergence is the server's pass, as the logs have always said
	if isPass {
		subject = "server pass"
	}
	tlog := log
	if !isPass {
		tlog = log.With(zap.String("task", t.name))
	}
	var down errServerDown
	if isPass {
		if m := w.d.Metrics; m != nil {
			m.Pass(w.server, took, res.Err, now)
			m.ServerUp(w.server, !errors.As(res.Err, &down))
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	t.runs++
	t.stale = false
	t.next = res.Next
	if isPass {
		w.down = errors.As(res.Err, &down)
	}
	if res.Pass {
		w.passWant = true
	}
	switch {
	case res.Err != nil && !res.Partial:
		t.failures++
		wait := w.backoff(t.failures)
		if res.Next.After(now.Add(wait)) {
			wait = res.Next.Sub(now) // the task's own, longer back-off
		}
		t.notBefore = now.Add(wait)
		if t.failures == 1 { // also after failing actions: an outage is news of its own
			tlog.Error(subject+" failing", zap.Error(res.Err), zap.Duration("retry_in", wait))
		} else {
			tlog.Debug(subject+" still failing", zap.Error(res.Err), zap.Duration("retry_in", wait))
		}
		t.failing = res.Err.Error()
		if isPass {
			w.passWant = true // the pass comes again after the back-off
		}
	case res.Err != nil:
		if t.failing == "" {
			tlog.Error(map[bool]string{true: "actions failing", false: "task partly failing"}[isPass], zap.Error(res.Err))
		}
		t.failing = res.Err.Error()
	case !res.Pending:
		// A run that held work back is not a recovery: that work has not succeeded yet.
		if t.failing != "" {
			tlog.Info(subject+" recovered", zap.Int("failed_"+map[bool]string{true: "passes", false: "runs"}[isPass], t.failures))
		}
		t.failures, t.failing, t.notBefore = 0, "", time.Time{}
	}
	log.Debug(subject+" done", zap.String("task", t.name), zap.Duration("took", took), zap.Error(res.Err))
}

// arm sets the timer for the earliest time a task is due: a pass asked for that waits for its back-off, a
// task's own time, the end of a failed task's back-off. While the engine is down only the pass counts.
func (w *worker) arm() {
	now := w.d.now()
	var earliest time.Time
	consider := func(t time.Time) {
		if !t.IsZero() && (earliest.IsZero() || t.Before(earliest)) {
			earliest = t
		}
	}
	w.mu.Lock()
	if w.passWant {
		at := now
		if w.pass != nil && w.pass.notBefore.After(now) {
			at = w.pass.notBefore
		}
		consider(at)
	}
	for _, t := range w.tasks {
		if t == w.pass || w.down && len(t.task.Needs()) > 0 {
			continue
		}
		consider(t.next)
		if t.failing != "" && !t.notBefore.IsZero() {
			consider(t.notBefore)
		}
	}
	defer w.mu.Unlock()
	if earliest.IsZero() {
		return
	}
	wait := max(earliest.Sub(now), 10*time.Millisecond)
	if w.timer == nil {
		w.timer = time.AfterFunc(wait, w.poke)
	} else {
		w.timer.Reset(wait)
	}
}

// able tells whether conn offers what t needs; the first time it does not, per connection, it says so.
func (w *worker) able(t *taskState, conn Conn) bool {
	if conn == nil {
		return true // the task needs nothing of the engine
	}
	why := missing(t.task, conn)
	w.mu.Lock()
	t.unable = why
	said := w.unableSaid[t.name]
	if why != "" {
		w.unableSaid[t.name] = true
	}
	w.mu.Unlock()
	if why != "" && !said {
		w.log.Warn("task cannot run on this server", zap.String("task", t.name), zap.String("missing", why))
		if m := w.d.Metrics; m != nil {
			m.TaskRunnable(w.server, t.name, false)
		}
	}
	return why == ""
}

// problems says which tasks cannot run on the server's engine, and why.
func (w *worker) problems() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for _, t := range w.tasks {
		if t.unable != "" {
			out = append(out, fmt.Sprintf("server %s: task %s cannot run: the engine offers no %s", w.server, t.name, t.unable))
		}
	}
	return out
}

// connection returns the server's connection, opening it (and its event stream) when there is none or
// when the settings now point elsewhere.
func (w *worker) connection(s *config.Settings) (Conn, error) {
	ep, err := reconcile.EndpointFor(s, w.server)
	if err != nil {
		return nil, err
	}
	if ep.Insecure {
		w.insecure.Do(func() { reconcile.WarnInsecure(w.log, ep) })
	}
	w.mu.Lock()
	// The event stream filters on the prefix: a new prefix needs a new stream.
	conn, same := w.conn, w.connHost.Equal(ep) && w.connPrefix == s.Prefix(w.server)
	w.mu.Unlock()
	if conn != nil && same {
		return conn, nil
	}
	w.closeConn()
	conn, err = w.d.connect(w.d.work, ep)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(w.d.work)
	w.mu.Lock()
	w.conn, w.connHost, w.connPrefix, w.stopEvents = conn, ep, s.Prefix(w.server), cancel
	w.unableSaid = map[string]bool{}
	w.mu.Unlock()
	if m := w.d.Metrics; m != nil {
		for _, t := range w.tasks {
			m.TaskRunnable(w.server, t.name, missing(t.task, conn) == "")
		}
	}
	go w.watchEvents(ctx, conn, s.Prefix(w.server))
	return conn, nil
}

func (w *worker) closeConn() {
	if w.pass != nil {
		w.converge().forget()
	}
	w.mu.Lock()
	conn, stop := w.conn, w.stopEvents
	w.conn, w.stopEvents = nil, nil
	w.mu.Unlock()
	if stop != nil {
		stop()
	}
	if conn != nil {
		conn.Close()
	}
}

// converge is the convergence task; w.pass is not nil.
func (w *worker) converge() *convergeTask { return w.pass.task.(*convergeTask) }

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
					if w.pass != nil {
						w.converge().noteDeath(ev, w.d.now())
					}
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
