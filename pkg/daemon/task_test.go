package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/bee2d/bee2d/pkg/daemon/metrics"
	"github.com/bee2d/bee2d/pkg/dockerx"
)

// twoServers has one application on each of two servers, each on an engine of its own.
const twoServers = `
servers:
  web1: {docker: {host: "unix:///run/web1.sock"}}
  web2: {docker: {host: "unix:///run/web2.sock"}}
docker:
  prefix: bee2
applications:
  one:
    server: web1
    image: good:1
    env: {version: 1}
  two:
    server: web2
    image: good:1
    env: {version: 1}
`

// panicky is a task with a bug that panics on one server, as a parser would on odd input.
type panicky struct{ server, on string }

func (p *panicky) Name() string        { return "panicky" }
func (p *panicky) Needs() []Capability { return nil }
func (p *panicky) FollowsPasses() bool { return true }
func (p *panicky) Run(context.Context, *Run) Result {
	if p.server == p.on {
		var fields []string
		_ = fields[len(p.on)] // index out of range, as a parser's slip would be
	}
	return Result{}
}

// A task that panics is recovered: the stack is logged, bee2_task_panics_total counts it, the task backs
// off, and the daemon goes on converging every server, the panicking one too, and serving /metrics.
func TestPanickingTaskIsRecovered(t *testing.T) {
	engines := map[string]*fakeEngine{"unix:///run/web1.sock": newFakeEngine(), "unix:///run/web2.sock": newFakeEngine()}
	path := filepath.Join(t.TempDir(), "settings.yml")
	if err := os.WriteFile(path, []byte(twoServers), 0o644); err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.DebugLevel)
	d := &Daemon{Path: path, Log: zap.New(core), Metrics: metrics.New(), Parallel: 4, Resync: time.Hour,
		Debounce: 10 * time.Millisecond, Grace: 5 * time.Second,
		Connect: func(_ context.Context, ep dockerx.Endpoint) (Conn, error) {
			if e := engines[ep.Host]; e != nil {
				return e, nil
			}
			return nil, errors.New("no engine at " + ep.Host)
		},
		Tasks: append(slices.Clone(Tasks), func(server string) Task { return &panicky{server: server, on: "web1"} }),
	}
	if err := d.LoadInitial(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	metricsSrv := httptest.NewServer(d.Metrics.Handler())
	defer metricsSrv.Close()
	scrape := func() string {
		resp, err := http.Get(metricsSrv.URL)
		if err != nil {
			t.Fatalf("/metrics: %v", err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	running := func(server, name string) (dockerx.Container, bool) {
		c, ok := engines["unix:///run/"+server+".sock"].byName(name)
		return c, ok && c.State == "running"
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); !ok(); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("waited 20s for %s", what)
			}
		}
	}

	waitFor("both servers converged and a panic", func() bool {
		_, one := running("web1", "bee2-app-one")
		_, two := running("web2", "bee2-app-two")
		return one && two && logs.FilterMessage("task panicked").Len() > 0
	})
	got := scrape()
	for _, want := range []string{
		`bee2_task_panics_total{server="web1",task="panicky"} 1`,
		`bee2_task_panics_total{server="web2",task="panicky"} 0`,
		`bee2_task_runs_total{result="panic",server="web1",task="panicky"} 1`,
		`bee2_task_runs_total{result="success",server="web2",task="panicky"} 1`,
		`bee2_task_runs_total{result="success",server="web1",task="converge"} 1`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	entry := logs.FilterMessage("task panicked").All()[0]
	fields := entry.ContextMap()
	if fields["server"] != "web1" || fields["task"] != "panicky" || !strings.Contains(fmt.Sprint(fields["stack"]), "(*panicky).Run") {
		t.Errorf("the panic's log entry lacks the server, the task or the stack: %v", fields)
	}

	// Both servers still converge an edit, the one whose task panicked too.
	before1, _ := running("web1", "bee2-app-one")
	before2, _ := running("web2", "bee2-app-two")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(twoServers, "version: 1", "version: 2")), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor("both applications recreated after the edit", func() bool {
		one, ok1 := running("web1", "bee2-app-one")
		two, ok2 := running("web2", "bee2-app-two")
		return ok1 && ok2 && one.ID != before1.ID && two.ID != before2.ID
	})
	if !strings.Contains(scrape(), `bee2_task_panics_total{server="web1",task="panicky"}`) {
		t.Error("/metrics stopped answering after the panic")
	}

	// The fake engines run no backup helpers and no probes: those tasks are reported, not skipped silently.
	problems := d.Problems()
	for _, want := range []string{
		"server web1: task backup cannot run: the engine offers no backup helpers",
		"server web2: task reload cannot run: the engine offers no file reads, signals and probes",
	} {
		if !slices.Contains(problems, want) {
			t.Errorf("Problems() = %q, lacks %q", problems, want)
		}
	}
	if !strings.Contains(scrape(), `bee2_task_runnable{server="web1",task="backup"} 0`) {
		t.Error("bee2_task_runnable does not say that backup cannot run on web1")
	}
}

// A task that fails backs off, doubling from a second, and logs the start and the end of its failing streak
// once each; a task's own later retry time is kept.
func TestTaskBackOff(t *testing.T) {
	clock := &fakeClock{now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	fails := 3
	flaky := &funcTask{name: "flaky", run: func(r *Run) Result {
		if fails > 0 {
			fails--
			return Result{Err: errors.New("remote said no")}
		}
		return Result{}
	}}
	own := &funcTask{name: "slow", run: func(r *Run) Result {
		return Result{Err: errors.New("storage full"), Next: r.Now().Add(time.Hour)}
	}}
	_, w, logs := testDaemonWith(t, twoApps, &connector{eng: newFakeEngine()}, clock.Now, []NewTask{newConverge,
		func(string) Task { return flaky }, func(string) Task { return own }})
	state := func(name string) (failures int, notBefore time.Time) {
		w.mu.Lock()
		defer w.mu.Unlock()
		for _, ts := range w.tasks {
			if ts.name == name {
				return ts.failures, ts.notBefore
			}
		}
		t.Fatalf("no task %s", name)
		return 0, time.Time{}
	}
	w.passNow(t)
	for i, wait := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second} {
		failures, notBefore := state("flaky")
		if failures != i+1 || notBefore.Sub(clock.Now()) != wait {
			t.Fatalf("failure %d: %d failures, retry in %v; want %d, %v", i+1, failures, notBefore.Sub(clock.Now()), i+1, wait)
		}
		clock.Advance(wait)
		w.step(t.Context()) // its back-off ended: it runs without a pass
	}
	if failures, notBefore := state("flaky"); failures != 0 || !notBefore.IsZero() {
		t.Errorf("after a good run: %d failures, back-off until %v; want none", failures, notBefore)
	}
	if _, notBefore := state("slow"); notBefore.Sub(clock.Now()) < 50*time.Minute {
		t.Errorf("a task's own retry in an hour was cut to %v", notBefore.Sub(clock.Now()))
	}
	failing := logs.FilterMessage("task failing").FilterField(zap.String("task", "flaky")).Len()
	recovered := logs.FilterMessage("task recovered").FilterField(zap.String("task", "flaky")).Len()
	if failing != 1 || recovered != 1 {
		t.Errorf("logged %d \"task failing\" and %d \"task recovered\" for one streak, want 1 and 1", failing, recovered)
	}
}

// funcTask is a task made of a function, for tests.
type funcTask struct {
	name string
	run  func(*Run) Result
}

func (f *funcTask) Name() string                         { return f.name }
func (f *funcTask) Needs() []Capability                  { return nil }
func (f *funcTask) Run(_ context.Context, r *Run) Result { return f.run(r) }

const scheduledJob = `
servers:
  web1: {}
docker:
  prefix: bee2
jobs:
  tick:
    server: web1
    image: good:1
    schedule: "@every 2s"
`

// A job's schedule, watched by the schedule task, asks for a pass, which runs the job: every firing makes
// one run, with no other wake-up.
func TestScheduleFiresAPass(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		eng := newFakeEngine()
		d, w, logs := testDaemon(t, scheduledJob, &connector{eng: eng}, nil)
		go w.run(t.Context())
		w.kick()
		synctest.Wait()
		runs := func() float64 {
			v, _ := gauge(t, d.Metrics, "bee2_job_runs_total", map[string]string{"server": "web1", "job": "tick", "result": "success"})
			return v
		}
		first := runs() // the first pass runs a job that never ran

		time.Sleep(7 * time.Second)
		synctest.Wait()

		if got := runs() - first; got != 3 {
			t.Errorf("%v runs in 7s of an @every 2s schedule, want 3", got)
		}
		if n := logs.FilterMessage("job run succeeded").FilterField(zap.String("cause", "schedule @every 2s fired")).Len(); n != 3 {
			t.Errorf("%d runs logged with the schedule as their cause, want 3", n)
		}
		w.cancel()
		synctest.Wait()
	})
}
