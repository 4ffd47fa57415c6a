package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/bee2d/bee2d/internal/testdocker"
	"github.com/bee2d/bee2d/pkg/daemon/metrics"
	"github.com/bee2d/bee2d/pkg/dockerx"
	"github.com/bee2d/bee2d/pkg/engine"
	"github.com/bee2d/bee2d/pkg/labels"
	"github.com/bee2d/bee2d/pkg/reconcile"
)

// The health task's cases are timed by the engine's verdicts and by back-offs of minutes to an hour: the
// fake engine gives the verdicts on demand and the fake clock moves the hours. TestHealthRestartOnTheEngine
// runs the first restart on the real engine.

// healthApps has an application restarted when unhealthy, one with a check and no restart, and one without
// a check.
const healthApps = `
servers:
  web1: {}
docker:
  prefix: bee2
applications:
  web:
    server: web1
    image: good:1
    env: {version: 1}
    stop_grace_period: 30s
    healthcheck:
      test: [wget, -q, -O-, http://localhost/health]
      on_unhealthy: restart
  plain:
    server: web1
    image: good:1
    healthcheck:
      test: wget -q -O- http://localhost/health
  nocheck:
    server: web1
    image: good:1
jobs:
  tick:
    server: web1
    image: good:1
`

// healthEngine is the fake engine with the engine's health verdicts, set by the test, and restarts.
type healthEngine struct {
	*fakeEngine

	hmu sync.Mutex
	// restarts are the restarts made, in order; failRestart, if set, is what a restart returns.
	restarts    []restart
	failRestart error
	// rollback names the containers whose start fails as a deploy whose new version failed its check.
	rollback map[string]bool
}

type restart struct {
	name    string
	timeout time.Duration
}

func newHealthEngine() *healthEngine {
	return &healthEngine{fakeEngine: newFakeEngine(), rollback: map[string]bool{}}
}

// RestartContainer restarts the container as the engine does: its check starts over.
func (e *healthEngine) RestartContainer(_ context.Context, id string, timeout time.Duration) error {
	e.mu.Lock()
	c := e.containers[id]
	var name string
	if c != nil {
		name = c.Name
	}
	e.mu.Unlock()
	e.hmu.Lock()
	defer e.hmu.Unlock()
	if c == nil {
		return fmt.Errorf("restart %s: no such container", id)
	}
	if e.failRestart != nil {
		return e.failRestart
	}
	e.restarts = append(e.restarts, restart{name: name, timeout: timeout})
	e.setHealth(name, engine.HealthStarting)
	return nil
}

// StartContainer fails for the names in rollback as a health-gated deploy fails.
func (e *healthEngine) StartContainer(ctx context.Context, id string) error {
	e.mu.Lock()
	var name string
	if c := e.containers[id]; c != nil {
		name = c.Name
	}
	e.mu.Unlock()
	e.hmu.Lock()
	fail := e.rollback[name]
	e.hmu.Unlock()
	if fail {
		return &reconcile.RollbackError{Container: name, Hash: "0123456789abcdef", Failed: name + "-bee2d-failed",
			Reason: "unhealthy", Restored: true}
	}
	return e.fakeEngine.StartContainer(ctx, id)
}

// setHealth gives the engine's verdict on a container.
func (e *healthEngine) setHealth(name, health string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, c := range e.containers {
		if c.Name == name {
			c.Health = health
		}
	}
}

// timeouts returns the timeouts of the restarts so far.
func (e *healthEngine) timeouts() []time.Duration {
	e.hmu.Lock()
	defer e.hmu.Unlock()
	var out []time.Duration
	for _, r := range e.restarts {
		out = append(out, r.timeout)
	}
	return out
}

// restarted returns the names restarted so far.
func (e *healthEngine) restarted() []string {
	e.hmu.Lock()
	defer e.hmu.Unlock()
	var out []string
	for _, r := range e.restarts {
		out = append(out, r.name)
	}
	return out
}

// healthDaemon is testDaemon on eng, by clock.
func healthDaemon(t *testing.T, eng *healthEngine, clock *fakeClock) (*Daemon, *worker, *observer.ObservedLogs) {
	t.Helper()
	d, w, logs := testDaemon(t, healthApps, &connector{eng: eng.fakeEngine}, clock.Now)
	d.Connect = func(context.Context, dockerx.Endpoint) (Conn, error) { return eng, nil }
	return d, w, logs
}

// verdict gives web's health check a verdict and lets a pass see it.
func verdict(t *testing.T, w *worker, eng *healthEngine, name, health string) {
	t.Helper()
	eng.setHealth(name, health)
	w.passNow(t)
}

// healthTask returns the worker's health task, and the time it asked to run again.
func (w *worker) healthTask(t *testing.T) (*healthTask, time.Time) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, ts := range w.tasks {
		if h, ok := ts.task.(*healthTask); ok {
			return h, ts.next
		}
	}
	t.Fatal("no health task")
	return nil, time.Time{}
}

func restartsMetric(t *testing.T, m *metrics.Metrics, name string) float64 {
	t.Helper()
	v, ok := gauge(t, m, "bee2_health_restarts_total", map[string]string{"server": "web1", "name": name})
	if !ok {
		t.Fatalf("no bee2_health_restarts_total series for %s", name)
	}
	return v
}

// An application restarted when unhealthy is restarted once it turns unhealthy after it was seen healthy,
// with its stop grace; then no sooner than a back-off of 1 min, doubling up to 1 h, whatever the passes.
func TestHealthRestartsWithBackOff(t *testing.T) {
	clock := &fakeClock{now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	eng := newHealthEngine()
	d, w, logs := healthDaemon(t, eng, clock)
	const web = "bee2-app-web"

	w.passNow(t) // creates them; no verdict yet
	eng.setHealth(web, engine.HealthHealthy)
	w.passNow(t)
	if got := eng.restarted(); len(got) != 0 {
		t.Fatalf("restarted %v while healthy", got)
	}
	if v := restartsMetric(t, d.Metrics, web); v != 0 {
		t.Errorf("bee2_health_restarts_total %v before any restart, want 0", v)
	}

	eng.setHealth(web, engine.HealthUnhealthy)
	w.passNow(t)
	if got := eng.restarted(); !slices.Equal(got, []string{web}) {
		t.Fatalf("restarted %v after web turned unhealthy, want [%s]", got, web)
	}
	if got := eng.timeouts(); got[0] != 30*time.Second {
		t.Errorf("restarted with timeout %v, want web's stop grace of 30s", got[0])
	}
	if v := restartsMetric(t, d.Metrics, web); v != 1 {
		t.Errorf("bee2_health_restarts_total %v after a restart, want 1", v)
	}
	entries := logs.FilterMessage("restarted unhealthy container").All()
	if len(entries) != 1 {
		t.Fatalf("%d restarts logged, want 1", len(entries))
	}
	if f := entries[0].ContextMap(); f["server"] != "web1" || f["task"] != "health" || f["name"] != web ||
		!strings.Contains(fmt.Sprint(f["cause"]), "health check failing") {
		t.Errorf("the restart's log entry lacks the server, the task, the name or the cause: %v", f)
	}

	// It is unhealthy again at once: every pass leaves it be until its back-off ends, and the task asks to
	// run then. Each restart doubles the back-off, up to an hour.
	for i, wait := range []time.Duration{1, 2, 4, 8, 16, 32, 60, 60} {
		wait *= time.Minute
		eng.setHealth(web, engine.HealthUnhealthy)
		w.passNow(t)
		clock.Advance(wait - time.Second)
		w.passNow(t)
		if n := len(eng.restarted()); n != i+1 {
			t.Fatalf("restart %d came before its back-off of %v ended (%d restarts)", i+2, wait, n)
		}
		_, next := w.healthTask(t)
		if got := next.Sub(clock.Now()); got != time.Second {
			t.Fatalf("back-off %v: the task asks to run in %v, want 1s, when the back-off ends", wait, got)
		}
		clock.Advance(time.Second)
		w.step(t.Context()) // no pass: the task's own time came
		if n := len(eng.restarted()); n != i+2 {
			t.Fatalf("restart %d did not come when its back-off of %v ended (%d restarts)", i+2, wait, n)
		}
	}
	if v := restartsMetric(t, d.Metrics, web); v != 9 {
		t.Errorf("bee2_health_restarts_total %v after 9 restarts", v)
	}
	if n := logs.FilterMessage("unhealthy container's restart held back").Len(); n != 8 {
		t.Errorf("held-back restarts logged %d times, want once per back-off (8)", n)
	}
}

// The back-off ends once the container stays healthy for as long as it, or when a new spec replaces the
// container; a healthy spell shorter than the back-off does not end it.
func TestHealthBackOffResets(t *testing.T) {
	clock := &fakeClock{now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	eng := newHealthEngine()
	d, w, _ := healthDaemon(t, eng, clock)
	const web = "bee2-app-web"
	// backoff is the time left until web may be restarted again.
	backoff := func() time.Duration {
		h, _ := w.healthTask(t)
		return h.apps[web].notBefore.Sub(clock.Now())
	}
	// unhealthyAgain turns web unhealthy at once after a restart and lets its back-off end: the task
	// restarts it then, on its own time.
	unhealthyAgain := func() {
		t.Helper()
		verdict(t, w, eng, web, engine.HealthUnhealthy)
		clock.Advance(backoff())
		w.step(t.Context())
	}
	check := func(when string, restarts int, wantBackoff time.Duration) {
		t.Helper()
		if n, b := len(eng.restarted()), backoff(); n != restarts || b != wantBackoff {
			t.Fatalf("%s: %d restarts, back-off %v; want %d, %v", when, n, b, restarts, wantBackoff)
		}
	}

	w.passNow(t)
	verdict(t, w, eng, web, engine.HealthHealthy)
	verdict(t, w, eng, web, engine.HealthUnhealthy)
	unhealthyAgain()
	unhealthyAgain()
	check("three restarts in a row", 3, 4*time.Minute)

	// Healthy for 3 minutes of its 4-minute back-off, after it ended: the next restart is at once, but the
	// back-off goes on doubling.
	clock.Advance(4 * time.Minute)
	verdict(t, w, eng, web, engine.HealthHealthy)
	clock.Advance(3 * time.Minute)
	w.step(t.Context())
	verdict(t, w, eng, web, engine.HealthUnhealthy)
	check("healthy for 3m of a 4m back-off", 4, 8*time.Minute)

	// Healthy for the whole 8 minutes: the task looks again when they are over, and the back-off ends.
	clock.Advance(8 * time.Minute)
	verdict(t, w, eng, web, engine.HealthHealthy)
	if _, next := w.healthTask(t); next.Sub(clock.Now()) != 8*time.Minute {
		t.Errorf("healthy in an 8m back-off: the task asks to run in %v, want 8m", next.Sub(clock.Now()))
	}
	clock.Advance(8 * time.Minute)
	w.step(t.Context())
	verdict(t, w, eng, web, engine.HealthUnhealthy)
	check("healthy for 8m of an 8m back-off", 5, time.Minute)
	unhealthyAgain()
	check("unhealthy again at once", 6, 2*time.Minute)

	// A new spec replaces the container: its back-off starts afresh, and it must be seen healthy first.
	if err := os.WriteFile(d.Path, []byte(strings.Replace(healthApps, "version: 1", "version: 2", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if !d.Reload() {
		t.Fatal("the edited settings were not loaded")
	}
	old, _ := eng.byName(web)
	w.passNow(t)
	if now, _ := eng.byName(web); now.ID == old.ID {
		t.Fatal("web was not recreated")
	}
	verdict(t, w, eng, web, engine.HealthUnhealthy)
	if n := len(eng.restarted()); n != 6 {
		t.Errorf("the new container was restarted before it was seen healthy (%d restarts)", n)
	}
	verdict(t, w, eng, web, engine.HealthHealthy)
	verdict(t, w, eng, web, engine.HealthUnhealthy)
	check("the new spec's first restart, within the old one's back-off", 7, time.Minute)
}

// A container never seen healthy is not restarted: neither a new one whose check never passed nor one
// already unhealthy when bee2d starts. One seen healthy by the first pass after a start is.
func TestHealthNeedsAHealthySighting(t *testing.T) {
	clock := &fakeClock{now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	eng := newHealthEngine()
	_, w, logs := healthDaemon(t, eng, clock)
	const web = "bee2-app-web"

	w.passNow(t)
	eng.setHealth(web, engine.HealthStarting)
	w.passNow(t)
	eng.setHealth(web, engine.HealthUnhealthy)
	for range 3 {
		w.passNow(t)
		clock.Advance(time.Hour)
	}
	if got := eng.restarted(); len(got) != 0 {
		t.Errorf("restarted %v, never seen healthy", got)
	}
	if n := logs.FilterMessage("unhealthy container not restarted: it has not been seen healthy since bee2d started or it was created").Len(); n != 1 {
		t.Errorf("a container never seen healthy was logged %d times in three passes, want once", n)
	}

	// bee2d starts again while web is unhealthy: it is left be until seen healthy.
	w.cancel()
	_, w2, _ := healthDaemon(t, eng, clock)
	w2.passNow(t)
	if got := eng.restarted(); len(got) != 0 {
		t.Errorf("restarted %v, unhealthy since before bee2d started", got)
	}
	eng.setHealth(web, engine.HealthHealthy)
	w2.passNow(t)
	eng.setHealth(web, engine.HealthUnhealthy)
	w2.passNow(t)
	if got := eng.restarted(); !slices.Equal(got, []string{web}) {
		t.Errorf("restarted %v after healthy then unhealthy, want [%s]", got, web)
	}

	// Once more, from a first pass that sees it healthy.
	w2.cancel()
	eng.setHealth(web, engine.HealthHealthy)
	_, w3, _ := healthDaemon(t, eng, clock)
	w3.passNow(t)
	eng.setHealth(web, engine.HealthUnhealthy)
	w3.passNow(t)
	if n := len(eng.restarted()); n != 2 {
		t.Errorf("a container healthy at the first pass after a start was not restarted when it turned unhealthy (%d restarts)", n)
	}
}

// Only the containers bee2d made for the application are restarted: not those of applications without
// on_unhealthy: restart, not a container of someone else's under the application's name, not one labelled
// for another server.
func TestHealthLeavesOthersAlone(t *testing.T) {
	for _, c := range []struct {
		name   string
		labels map[string]string // of the container holding bee2-app-web; nil: bee2d's own
	}{
		{name: "applications without restart"},
		{name: "not bee2d's", labels: map[string]string{"com.example.team": "web"}},
		{name: "another server's", labels: map[string]string{labels.Owner: labels.Bee2d, labels.Prefix: "bee2",
			labels.Server: "web2", labels.Kind: "app", labels.Name: "web", labels.SpecHash: "abc"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			clock := &fakeClock{now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
			eng := newHealthEngine()
			_, w, _ := healthDaemon(t, eng, clock)
			names := []string{"bee2-app-plain", "bee2-app-nocheck", "bee2-job-tick"}
			if c.labels != nil {
				eng.containers["f0"] = &dockerx.Container{ID: "f0", Name: "bee2-app-web", Image: "good:1",
					State: "running", Labels: c.labels}
				names = []string{"bee2-app-web"}
			} else {
				eng.failStart["bee2-app-web"] = true // web is not there to be restarted
			}
			w.passNow(t)
			for _, verdict := range []string{engine.HealthHealthy, engine.HealthUnhealthy} {
				for _, n := range names {
					eng.setHealth(n, verdict)
				}
				w.passNow(t)
				clock.Advance(time.Hour)
			}
			w.passNow(t)
			if got := eng.restarted(); len(got) != 0 {
				t.Errorf("restarted %v", got)
			}
		})
	}
}

// A restart the engine refuses backs off as one made does, and fails the task only in part.
func TestHealthRestartFailureBacksOff(t *testing.T) {
	clock := &fakeClock{now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	eng := newHealthEngine()
	eng.failRestart = errors.New("cannot restart: no space left on device")
	d, w, logs := testDaemon(t, healthApps, &connector{eng: eng.fakeEngine}, clock.Now)
	d.Connect = func(context.Context, dockerx.Endpoint) (Conn, error) { return eng, nil }
	const web = "bee2-app-web"
	w.passNow(t)
	eng.setHealth(web, engine.HealthHealthy)
	w.passNow(t)
	eng.setHealth(web, engine.HealthUnhealthy)
	w.passNow(t)
	w.passNow(t)
	if n := logs.FilterMessage("restart of unhealthy container failed").Len(); n != 1 {
		t.Errorf("%d failed restarts within the back-off, want 1", n)
	}
	if v := restartsMetric(t, d.Metrics, web); v != 0 {
		t.Errorf("bee2_health_restarts_total %v after a failed restart, want 0", v)
	}
	h, _ := w.healthTask(t)
	if b := h.apps[web].notBefore.Sub(clock.Now()); b != time.Minute {
		t.Errorf("back-off %v after a failed restart, want 1m", b)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, ts := range w.tasks {
		if ts.name == "health" && (ts.failing == "" || !ts.notBefore.IsZero()) {
			t.Errorf("the task: failing %q, back-off until %v; want failing in part, no back-off of its own", ts.failing, ts.notBefore)
		}
	}
}

// An engine that cannot restart containers runs the rest: the health task is reported, not skipped in
// silence.
func TestHealthNeedsRestarts(t *testing.T) {
	d, w, _ := testDaemon(t, healthApps, &connector{eng: newFakeEngine()}, nil)
	w.passNow(t)
	if want := "server web1: task health cannot run: the engine offers no container restarts"; !slices.Contains(d.Problems(), want) {
		t.Errorf("Problems() = %q, lacks %q", d.Problems(), want)
	}
	if v, ok := gauge(t, d.Metrics, "bee2_task_runnable", map[string]string{"server": "web1", "task": "health"}); !ok || v != 0 {
		t.Errorf("bee2_task_runnable{task=health} = %v (present %v), want 0", v, ok)
	}
}

// The pass's metrics: a container is in sync only when it runs and is healthy or has no check; the
// health gauge is 0, 1 or 2, and absent without a check; a deploy rolled back is counted.
func TestHealthMetricsOfThePass(t *testing.T) {
	clock := &fakeClock{now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	eng := newHealthEngine()
	d, w, _ := healthDaemon(t, eng, clock)
	series := func(metric, name string) (float64, bool) {
		return gauge(t, d.Metrics, metric, map[string]string{"server": "web1", "name": name})
	}
	w.passNow(t)
	eng.setHealth("bee2-app-web", engine.HealthUnhealthy)
	eng.setHealth("bee2-app-plain", engine.HealthStarting)
	w.passNow(t)
	for _, c := range []struct {
		name   string
		inSync float64
		health float64 // -1: absent
	}{
		{"bee2-app-web", 0, 0},
		{"bee2-app-plain", 0, 1},
		{"bee2-app-nocheck", 1, -1},
	} {
		if v, _ := series("bee2_resource_in_sync", c.name); v != c.inSync {
			t.Errorf("%s: in sync %v, want %v", c.name, v, c.inSync)
		}
		v, ok := series("bee2_container_health", c.name)
		if c.health < 0 && ok || c.health >= 0 && (!ok || v != c.health) {
			t.Errorf("%s: health %v (present %v), want %v", c.name, v, ok, c.health)
		}
		if v, ok := series("bee2_rollbacks_total", c.name); !ok || v != 0 {
			t.Errorf("%s: rollbacks %v (present %v), want 0", c.name, v, ok)
		}
	}
	eng.setHealth("bee2-app-plain", engine.HealthHealthy)
	w.passNow(t)
	if v, _ := series("bee2_resource_in_sync", "bee2-app-plain"); v != 1 {
		t.Errorf("plain healthy: in sync %v, want 1", v)
	}
	if v, _ := series("bee2_container_health", "bee2-app-plain"); v != 2 {
		t.Errorf("plain healthy: health %v, want 2", v)
	}

	// A new version of plain fails its check and is rolled back.
	eng.hmu.Lock()
	eng.rollback["bee2-app-plain"] = true
	eng.hmu.Unlock()
	if err := os.WriteFile(d.Path, []byte(strings.Replace(healthApps, "test: wget -q", "test: wget -T 2 -q", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if !d.Reload() {
		t.Fatal("the edited settings were not loaded")
	}
	w.passNow(t)
	if v, _ := series("bee2_rollbacks_total", "bee2-app-plain"); v != 1 {
		t.Errorf("plain rolled back: bee2_rollbacks_total %v, want 1", v)
	}
	if v, _ := series("bee2_rollbacks_total", "bee2-app-web"); v != 0 {
		t.Errorf("web: bee2_rollbacks_total %v, want 0", v)
	}

	// An application that leaves the settings loses its series.
	if err := os.WriteFile(d.Path, []byte(strings.Replace(healthApps, "  nocheck:\n    server: web1\n    image: good:1\n", "", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if !d.Reload() {
		t.Fatal("the edited settings were not loaded")
	}
	w.passNow(t)
	if _, ok := series("bee2_rollbacks_total", "bee2-app-nocheck"); ok {
		t.Error("nocheck left the settings and kept its rollback series")
	}
}

// The health task restarts a container only if bee2d labelled it as the application's, for this prefix and
// server.
func TestOwnContainer(t *testing.T) {
	own := func(change func(map[string]string)) engine.Container {
		l := map[string]string{labels.Owner: labels.Bee2d, labels.Prefix: "bee2", labels.Server: "web1",
			labels.Kind: "app", labels.Name: "web", labels.SpecHash: "abc"}
		if change != nil {
			change(l)
		}
		return engine.Container{ID: "c1", Name: "bee2-app-web", State: "running", Labels: l}
	}
	for _, c := range []struct {
		name string
		ct   engine.Container
		want bool
	}{
		{"bee2d's application", own(nil), true},
		{"no labels", engine.Container{ID: "c1", Name: "bee2-app-web", State: "running"}, false},
		{"another owner", own(func(l map[string]string) { l[labels.Owner] = "compose" }), false},
		{"another server", own(func(l map[string]string) { l[labels.Server] = "web2" }), false},
		{"another prefix", own(func(l map[string]string) { l[labels.Prefix] = "bee3" }), false},
		{"a job", own(func(l map[string]string) { l[labels.Kind] = "job" }), false},
		{"a helper", own(func(l map[string]string) { l[labels.Kind] = labels.KindHelper; delete(l, labels.SpecHash) }), false},
		{"another name", func() engine.Container { c := own(nil); c.Name = "bee2-app-web-bee2d-old-c1"; return c }(), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			snap := &reconcile.Snapshot{Containers: []engine.Container{c.ct}}
			if got := ownContainer(snap, "bee2-app-web", "bee2", "web1") != nil; got != c.want {
				t.Errorf("ownContainer = %v, want %v", got, c.want)
			}
		})
	}
}

// On the real engine: an application that turns unhealthy after it was healthy is restarted, woken by the
// engine's health_status event, keeps its container, and is not restarted again within its back-off.
func TestHealthRestartOnTheEngine(t *testing.T) {
	cli := testdocker.Require(t)
	prefix := testdocker.UniquePrefix(t)
	testdocker.Cleanup(t, cli, prefix)
	dir := t.TempDir()
	testdocker.GoBuildDir(t, filepath.Join(dir, "dockerfiles", "App"), testdocker.SleeperSource)
	// The check writes into a directory of the host's: healthy while it is there.
	probe := filepath.Join(dir, "probe")
	if err := os.MkdirAll(filepath.Join(probe, "ok"), 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "settings.yml")
	yml := fmt.Sprintf(`servers:
  web1: {}
docker:
  prefix: %s
  dockerfiles: %s
applications:
  web:
    server: web1
    build_dir: App
    volumes: ["%s:/probe"]
    stop_grace_period: 2s
    healthcheck:
      test: [/app, write, /probe/ok/beat, x]
      interval: 500ms
      timeout: 2s
      retries: 1
      on_unhealthy: restart
`, prefix, filepath.Join(dir, "dockerfiles"), probe)
	if err := os.WriteFile(path, []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.DebugLevel)
	d := &Daemon{Path: path, Log: zap.New(core), Metrics: metrics.New(), Resync: time.Minute,
		Debounce: 50 * time.Millisecond, Parallel: 4, StopTimeout: 2 * time.Second, Grace: 10 * time.Second}
	if err := d.LoadInitial(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	name := prefix + "-app-web"
	series := func(metric string) float64 {
		v, _ := gauge(t, d.Metrics, metric, map[string]string{"server": "web1", "name": name})
		return v
	}
	healthIs := func(want float64) func() bool {
		return func() bool {
			v, ok := gauge(t, d.Metrics, "bee2_container_health", map[string]string{"server": "web1", "name": name})
			return ok && v == want
		}
	}
	waitFor := func(what string, within time.Duration, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(within); !ok(); time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("waited %v for %s; logs of %s:\n%s", within, what, name, testdocker.Logs("", name))
			}
		}
	}

	waitFor("web healthy", 2*time.Minute, healthIs(2))
	before, err := testdocker.Inspect("", name)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(probe, "ok")); err != nil {
		t.Fatal(err)
	}
	waitFor("web restarted", time.Minute, func() bool { return series("bee2_health_restarts_total") == 1 })
	after, err := testdocker.Inspect("", name)
	if err != nil {
		t.Fatal(err)
	}
	if after.ID != before.ID || !after.State.Running {
		t.Errorf("after the restart: id %.12s -> %.12s, running %v; want the same container, running", before.ID, after.ID, after.State.Running)
	}
	if n := logs.FilterMessage("restarted unhealthy container").FilterField(zap.String("name", name)).Len(); n != 1 {
		t.Errorf("%d restarts logged, want 1", n)
	}

	// The directory is still gone: web turns unhealthy again and stays so, within its back-off of a minute.
	waitFor("web unhealthy again", time.Minute, healthIs(0))
	time.Sleep(2 * time.Second)
	if v := series("bee2_health_restarts_total"); v != 1 {
		t.Errorf("restarted %v times within its back-off, want once", v)
	}
}
