package daemon

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/bee2d/bee2d/pkg/backup"
	"github.com/bee2d/bee2d/pkg/config"
	"github.com/bee2d/bee2d/pkg/daemon/metrics"
	"github.com/bee2d/bee2d/pkg/daemon/reload"
	"github.com/bee2d/bee2d/pkg/reconcile"
)

// Task is one kind of work the daemon does for each server beside, or as, its convergence. The runtime
// makes one per server (NewTask), runs it on the server's goroutine, one task at a time, and gives every
// task the same logging fields, metrics (bee2_task_runs_total, bee2_task_duration_seconds), back-off after a
// failure, panic recovery and shutdown drain.
type Task interface {
	// Name labels the task in logs and metrics: lower case, one word.
	Name() string
	// Needs lists what the task needs of the server's engine. The runtime checks it once per connection; a
	// task whose engine lacks something does not run there, and the log, bee2_task_runnable and /readyz
	// say so.
	Needs() []Capability
	// Run does the task's work once. It runs when the server's pass runs (a settings change, an event on a
	// managed container, the resync) if it is due or follows passes, and when the time it last asked for
	// comes.
	Run(ctx context.Context, r *Run) Result
}

// NewTask makes a task's instance for one server; it keeps that server's state of the task.
type NewTask func(server string) Task

// Tasks are the tasks every server runs, in the order they run in a pass. Adding a task is a file with its
// type and one line here.
var Tasks = []NewTask{
	newConverge,  // the pass itself: observe, plan, execute
	newSchedules, // job schedules and git polls: ask for a pass when one fires
	newBackups,   // scheduled backups of the server's volumes
	newReloads,   // certificate reloads and the checks of what is served
	newHealth,    // restarts of applications that turned unhealthy (healthcheck.on_unhealthy: restart)
}

// Result is how a task's run went.
type Result struct {
	// Next is when the task wants to run again; zero for no time of its own (it runs with the next pass if
	// it follows passes, else when the settings change).
	Next time.Time
	// Err is a failure: the task backs off, doubling from a second up to the daemon's RetryMax, unless
	// Partial is set or Next is later.
	Err error
	// Partial tells that Err is of parts that back off on their own (the actions of single containers):
	// the task itself does not back off.
	Partial bool
	// Pending tells that work is held back although nothing failed this time: not yet a recovery.
	Pending bool
	// Pass asks for the server's pass to run now, after this task.
	Pass bool
}

// Run is what one run of a task gets: the server, the settings in force, the engine and a logger that names
// the server, the task and the pass.
type Run struct {
	Server   string
	Settings *config.Settings
	// Conn is the server's engine; it offers every Capability the task Needs. It is nil for a task that
	// needs nothing of the engine.
	Conn Conn
	Log  *zap.Logger
	// Metrics may be nil.
	Metrics *metrics.Metrics
	// Pass tells that the server's pass is running this time (the task runs in it).
	Pass bool
	// Draining is closed when the daemon stops or the server leaves the settings: start nothing new; the
	// context given to Run bounds the calls in flight.
	Draining <-chan struct{}

	d *Daemon
	w *worker
}

// Now is the daemon's clock.
func (r *Run) Now() time.Time { return r.d.now() }

// Snapshot returns the server's containers: those the pass saw after acting when this run follows a pass,
// else a fresh list of bee2d's containers (one call).
func (r *Run) Snapshot(ctx context.Context) (*reconcile.Snapshot, error) {
	if s := r.w.passSnapshot; s != nil {
		return s, nil
	}
	obs, ok := r.Conn.(reconcile.Observer)
	if !ok {
		return nil, errors.New("the engine cannot list containers")
	}
	return reconcile.ObserveContainers(ctx, obs, r.Settings.Prefix(r.Server))
}

// Capability is something a task needs of a server's engine.
type Capability struct {
	// Name says it to a person: "containers", "backup helpers".
	Name string
	has  func(Conn) bool
}

// The capabilities tasks need. *dockerx.Client has them all; an engine without one (a test's fake) runs
// the tasks that do not need it.
var (
	// CanConverge lists, creates, starts, stops and removes containers, networks and volumes, builds and
	// pulls images.
	CanConverge = Capability{Name: "containers", has: func(c Conn) bool { _, ok := c.(reconcile.Host); return ok }}
	// CanBackup runs backup and restore helpers and reads archives out of containers.
	CanBackup = Capability{Name: "backup helpers", has: func(c Conn) bool { _, ok := c.(backup.Engine); return ok }}
	// CanReload reads files out of containers, signals them and runs probes in their network.
	CanReload = Capability{Name: "file reads, signals and probes", has: func(c Conn) bool { _, ok := c.(reload.Client); return ok }}
)

// missing returns the first capability of t that conn lacks, "" when it has them all.
func missing(t Task, conn Conn) string {
	for _, c := range t.Needs() {
		if !c.has(conn) {
			return c.Name
		}
	}
	return ""
}
