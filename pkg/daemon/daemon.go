// Package daemon is bee2d's runtime: it keeps the last good settings, runs one worker per server and, on
// each, the tasks (convergence, job schedules, backups, reloads) that keep the server as the settings say.
//
// It decides nothing itself: the planner (pkg/reconcile) decides and its executor acts, pkg/backup takes
// backups, package reload reloads. The runtime schedules them: level-triggered passes per server (an event
// only wakes the server's worker), each task's own timers, back-off, panic recovery, metrics and drain.
package daemon

import (
	"bytes"
	"context"
	"errors"
	"os"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/bee2d/bee2d/pkg/config"
	"github.com/bee2d/bee2d/pkg/daemon/metrics"
	"github.com/bee2d/bee2d/pkg/dockerx"
	"github.com/bee2d/bee2d/pkg/gitx"
	"github.com/bee2d/bee2d/pkg/reconcile"
)

// Conn is a connection to one server's engine as the daemon uses it; *dockerx.Client is one. What tasks
// need beyond events they state as Capabilities.
type Conn interface {
	Events(ctx context.Context, labels map[string]string) (<-chan dockerx.Event, <-chan error)
	Close() error
}

// Daemon keeps every server converged to the last good settings and runs its tasks. It is level-triggered:
// a settings change, a Docker event on a managed container, the resync timer or a signal only wakes a
// server's worker, which then re-reads the settings and the server's whole live state in a pass. Wake-ups
// coalesce; each server has its own worker, and each of its tasks its own timer and back-off.
type Daemon struct {
	// Path is the settings file, watched for changes; unused with a Source.
	Path string
	// Source, when set, gives the settings instead of the file at Path: a git branch (gitops.Follower).
	Source Source
	// Options say how the settings file loads (the identities of encrypted secrets).
	Options config.Options
	// StateDir, when set, is where the daemon records what each server converged to, for `bee2d status`.
	StateDir string
	Log      *zap.Logger
	// Metrics may be nil.
	Metrics *metrics.Metrics
	// Resync is the period of a full pass over every server even without events.
	Resync time.Duration
	// Debounce merges bursts of settings file events.
	Debounce time.Duration
	// Parallel bounds concurrent container actions per server.
	Parallel int
	// StopTimeout is what a container gets to stop before it is killed; config.StopTimeout when zero.
	StopTimeout time.Duration
	// Grace bounds how long the actions in flight may take after Run's context ends.
	Grace time.Duration
	// Connect opens a server's engine; dockerx.Connect when nil.
	Connect func(context.Context, dockerx.Endpoint) (Conn, error)
	// Digest hashes build directories; dockerx.ContextDigest when nil.
	Digest reconcile.DigestFunc
	// Head asks a git remote for a branch head; git ls-remote when nil.
	Head reconcile.HeadFunc
	// Tasks are made for each server; the package's Tasks when nil.
	Tasks []NewTask
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Ready, if set, is called once, when every server has had its first pass.
	Ready func()
	// Version is bee2d's, written into backup manifests.
	Version string
	// RetryMax caps the back-off of a failing server and of its event stream's reconnects; one minute
	// when zero.
	RetryMax time.Duration

	mu        sync.Mutex
	settings  *config.Settings
	raw       []byte
	reloadErr string // the settings error last logged, so a repeating one is logged once
	watcher   *config.Watcher
	workers   map[string]*worker
	jobSeries map[[2]string]bool // server, job: the job series created
	readyOnce sync.Once
	// useMu orders the settings a Source hands over and the reloads of those in force.
	useMu sync.Mutex
	// convergedTo is what each server's last successful pass converged to.
	convergedTo map[string]Converged

	// The contexts of Run, kept for the workers that settings reloads start: stop ends taking work (no new
	// pass or task starts); work bounds the Docker calls in flight and ends Grace after stop (the drain).
	stop, work context.Context
	wg         sync.WaitGroup
}

// Backoff bounds. A server that cannot be reached, or whose event stream broke, is tried again at least
// every RetryMax (default retryMaxDefault): an engine back after an outage of any length is converged within
// about a minute. A container that keeps failing to start waits up to crashBackoffMax, as it would only fail
// again.
const (
	backoffMin      = time.Second
	retryMaxDefault = time.Minute
	crashBackoffMax = 5 * time.Minute
)

func (d *Daemon) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

func (d *Daemon) retryMax() time.Duration {
	if d.RetryMax > 0 {
		return d.RetryMax
	}
	return retryMaxDefault
}

func (d *Daemon) log() *zap.Logger {
	if d.Log == nil {
		return zap.NewNop()
	}
	return d.Log
}

// Source gives the daemon its settings when they come from somewhere other than a file it watches.
type Source interface {
	// Initial returns the settings to start with.
	Initial(ctx context.Context) (*config.Settings, []byte, error)
	// Run follows the source until ctx ends, handing each new good settings to use.
	Run(ctx context.Context, use func(*config.Settings, []byte))
	// Reload loads the settings in force again, for their files outside the source (secrets) that may
	// have changed.
	Reload() (*config.Settings, []byte, error)
}

// LoadInitial reads the settings the daemon starts with. Unlike a reload, a failure here is fatal: there
// is no last good settings to keep running.
func (d *Daemon) LoadInitial() error { return d.LoadInitialContext(context.Background()) }

// LoadInitialContext is LoadInitial bounded by ctx (a source may fetch over the network).
func (d *Daemon) LoadInitialContext(ctx context.Context) error {
	var s *config.Settings
	var raw []byte
	var err error
	if d.Source != nil {
		s, raw, err = d.Source.Initial(ctx)
	} else {
		s, raw, err = d.load()
	}
	if err != nil {
		d.metricReload(false)
		return err
	}
	d.mu.Lock()
	d.settings, d.raw = s, raw
	d.mu.Unlock()
	d.metricReload(true)
	d.logWarnings(s)
	return nil
}

// load reads and validates the settings file at Path.
func (d *Daemon) load() (*config.Settings, []byte, error) {
	raw, err := os.ReadFile(d.Path)
	if err != nil {
		return nil, nil, err
	}
	s, err := config.ParseWith(d.Path, raw, d.Options)
	return s, raw, err
}

// logWarnings logs the problems of newly loaded settings that do not stop them, such as a secret readable
// by others: once per load, not at every pass.
func (d *Daemon) logWarnings(s *config.Settings) {
	for _, w := range s.Warnings {
		d.log().Warn("file readable by group or others", zap.String("file", w.File), zap.String("problem", w.Msg))
	}
	if s.HashKeyMade != "" {
		d.log().Info("made the hash key of secret values; keep it with the secrets", zap.String("file", s.HashKeyMade))
	}
	for _, p := range s.PasswordsMade {
		d.log().Info("made a database password", zap.String("file", p))
	}
}

// follow watches the files s was made from besides the settings file (secrets, env_files).
func (d *Daemon) follow(s *config.Settings) {
	d.mu.Lock()
	w := d.watcher
	d.mu.Unlock()
	if w == nil {
		return
	}
	if err := w.Follow(s); err != nil {
		d.log().Warn("cannot watch a directory the settings read from; its changes are seen at each resync and on SIGHUP", zap.Error(err))
	}
}

func (d *Daemon) metricReload(ok bool) {
	if d.Metrics != nil {
		d.Metrics.ConfigReload(ok, d.now())
	}
}

// Settings returns the settings in force.
func (d *Daemon) Settings() *config.Settings {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.settings
}

// Reload re-reads the settings file and the files it names (secrets, env_files). Identical bytes and
// unchanged files change nothing. Settings that fail to load are not
// applied: the last good ones stay in force, the error is logged once and the reload metric says 0. It
// reports whether new settings took effect.
func (d *Daemon) Reload() bool {
	d.mu.Lock()
	path, last, lastRaw := d.Path, d.settings, d.raw
	if d.Source != nil && last != nil {
		path = last.File // the source's file in force, for the log
	}
	d.mu.Unlock()
	var s *config.Settings
	var raw []byte
	var err error
	if d.Source != nil {
		// The source's files do not change under it (a commit's work tree); only inputs outside it can.
		if last != nil && !last.InputsChanged() {
			return false
		}
		// A new commit handed over meanwhile must not be replaced by the reload of the one before it.
		d.useMu.Lock()
		defer d.useMu.Unlock()
		s, raw, err = d.Source.Reload()
		if err == nil && last != nil && d.Settings().Revision != last.Revision {
			return false
		}
	} else {
		raw, err = os.ReadFile(path)
		if err == nil && bytes.Equal(raw, lastRaw) && last != nil && !last.InputsChanged() {
			d.recovered()
			return false
		}
		if err == nil {
			s, err = config.ParseWith(path, raw, d.Options)
		}
	}
	if err != nil {
		d.metricReload(false)
		d.mu.Lock()
		repeat := d.reloadErr == err.Error()
		d.reloadErr = err.Error()
		d.mu.Unlock()
		if !repeat {
			d.log().Error("settings rejected, keeping the last good settings", zap.String("file", path), zap.Error(err))
		}
		return false
	}
	d.set(s, raw)
	return true
}

// use is how a Source hands over new settings.
func (d *Daemon) use(s *config.Settings, raw []byte) {
	d.useMu.Lock()
	defer d.useMu.Unlock()
	d.set(s, raw)
}

// set puts new good settings in force and wakes every server.
func (d *Daemon) set(s *config.Settings, raw []byte) {
	d.mu.Lock()
	d.settings, d.raw = s, raw
	d.mu.Unlock()
	d.recovered()
	d.metricReload(true)
	fields := []zap.Field{zap.String("file", s.File), zap.Int("servers", len(s.Servers)), zap.Int("applications", len(s.Applications))}
	if s.Revision != "" {
		fields = append(fields, zap.String("commit", s.Revision))
	}
	d.log().Info("settings loaded", fields...)
	d.logWarnings(s)
	d.follow(s)
	d.syncWorkers()
	d.mu.Lock()
	for _, w := range d.workers {
		w.settingsChanged()
	}
	d.mu.Unlock()
}

// recovered notes that the settings file is good again after a rejected edit.
func (d *Daemon) recovered() {
	d.mu.Lock()
	was := d.reloadErr
	d.reloadErr = ""
	d.mu.Unlock()
	if was != "" {
		d.metricReload(true)
		d.log().Info("settings file is valid again", zap.String("file", d.Settings().File))
	}
}

// Run converges every server and keeps them converged until ctx ends. Then it stops taking work, lets
// the actions in flight finish within Grace, and returns. LoadInitial must have succeeded.
func (d *Daemon) Run(ctx context.Context) error {
	if d.Settings() == nil {
		return errors.New("daemon: no settings loaded")
	}
	work, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	d.mu.Lock()
	d.stop, d.work = ctx, work
	d.workers = map[string]*worker{}
	d.mu.Unlock()

	if d.Source != nil {
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			d.Source.Run(ctx, d.use)
		}()
	} else {
		w, err := config.NewWatcher(ctx, d.Path, d.Debounce, func() { d.Reload() })
		if err != nil {
			return err
		}
		d.mu.Lock()
		d.watcher = w
		d.mu.Unlock()
	}
	d.follow(d.Settings())
	d.syncWorkers()
	d.KickAll()

	tick := time.NewTicker(d.resync())
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			// A secret may have changed where no watch reaches (a directory that could not be watched,
			// a network file system): the resync reads the files again.
			d.Reload()
			d.KickAll()
		case <-ctx.Done():
			grace := d.Grace
			if grace <= 0 {
				grace = 30 * time.Second
			}
			timer := time.AfterFunc(grace, cancelWork)
			defer timer.Stop()
			d.wg.Wait()
			return nil
		}
	}
}

// resync is the period of full passes: Resync, 5 minutes by default.
func (d *Daemon) resync() time.Duration {
	if d.Resync <= 0 {
		return 5 * time.Minute
	}
	return d.Resync
}

// KickAll wakes every server's worker.
func (d *Daemon) KickAll() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, w := range d.workers {
		w.kick()
	}
}

// syncWorkers starts a worker for each server in the settings and stops those of servers removed.
func (d *Daemon) syncWorkers() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stop == nil || d.stop.Err() != nil {
		return
	}
	want := map[string]bool{}
	for _, srv := range d.settings.Servers {
		want[srv.Name] = true
		if _, ok := d.workers[srv.Name]; ok {
			continue
		}
		w := d.newWorker(srv.Name)
		d.workers[srv.Name] = w
		if d.Metrics != nil {
			ops := make([]string, len(reconcile.Ops))
			for i, o := range reconcile.Ops {
				ops[i] = o.Metric()
			}
			d.Metrics.InitServer(srv.Name, ops)
			for _, t := range w.tasks {
				d.Metrics.InitTask(srv.Name, t.task.Name())
			}
		}
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			w.run(d.work)
		}()
	}
	d.syncJobMetrics()
	for name, w := range d.workers {
		if !want[name] {
			w.cancel()
			delete(d.workers, name)
			if d.Metrics != nil {
				d.Metrics.ForgetServer(name)
			}
			delete(d.convergedTo, name)
			d.log().Info("server removed from the settings; its containers are left as they are", zap.String("server", name))
		}
	}
}

// syncJobMetrics creates the series of the jobs in the settings and deletes those of jobs gone. d.mu is held.
func (d *Daemon) syncJobMetrics() {
	if d.Metrics == nil {
		return
	}
	now := map[[2]string]bool{}
	for _, j := range d.settings.Jobs {
		k := [2]string{j.Server, j.Name}
		now[k] = true
		if !d.jobSeries[k] {
			d.Metrics.InitJob(j.Server, j.Name)
		}
		d.Metrics.JobSchedule(j.Server, j.Name, scheduleInterval(j.Schedule, d.now()))
	}
	for k := range d.jobSeries {
		if !now[k] {
			d.Metrics.ForgetJob(k[0], k[1])
		}
	}
	d.jobSeries = now
}

// scheduleInterval is the time between the next two firings of a cron spec; 0 for none.
func scheduleInterval(spec string, now time.Time) time.Duration {
	if spec == "" {
		return 0
	}
	sched, err := config.ParseSchedule(spec)
	if err != nil {
		return 0
	}
	next := sched.Next(now)
	return sched.Next(next).Sub(next)
}

// checkReady calls Ready once every current server has finished its first pass.
func (d *Daemon) checkReady() {
	d.mu.Lock()
	for _, w := range d.workers {
		if !w.firstPassDone() {
			d.mu.Unlock()
			return
		}
	}
	d.mu.Unlock()
	d.readyOnce.Do(func() {
		if d.Ready != nil {
			d.Ready()
		}
	})
}

// Problems lists, per server, the tasks that cannot run on its engine and why, for /readyz: a task is
// never skipped without a word.
func (d *Daemon) Problems() []string {
	d.mu.Lock()
	ws := make([]*worker, 0, len(d.workers))
	for _, w := range d.workers {
		ws = append(ws, w)
	}
	d.mu.Unlock()
	var out []string
	for _, w := range ws {
		out = append(out, w.problems()...)
	}
	slices.Sort(out)
	return out
}

// IsReady tells whether every server has had its first pass.
func (d *Daemon) IsReady() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.workers == nil {
		return false
	}
	for _, w := range d.workers {
		if !w.firstPassDone() {
			return false
		}
	}
	return true
}

func (d *Daemon) connect(ctx context.Context, ep dockerx.Endpoint) (Conn, error) {
	if d.Connect != nil {
		return d.Connect(ctx, ep)
	}
	return dockerx.Connect(ctx, ep)
}

func (d *Daemon) head(ctx context.Context) reconcile.HeadFunc {
	if d.Head != nil {
		return d.Head
	}
	return gitx.Heads(ctx)
}

func (d *Daemon) digest() reconcile.DigestFunc {
	if d.Digest != nil {
		return d.Digest
	}
	return dockerx.ContextDigest
}

// errServerDown marks a pass that could not reach the engine.
type errServerDown struct{ err error }

func (e errServerDown) Error() string { return e.err.Error() }
func (e errServerDown) Unwrap() error { return e.err }
