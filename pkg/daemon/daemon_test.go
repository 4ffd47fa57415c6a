package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/bee2d/bee2d/pkg/daemon/metrics"
	"github.com/bee2d/bee2d/pkg/dockerx"
	"github.com/bee2d/bee2d/pkg/labels"
)

// The worker's timing cases (coalescing, back-off, holding a failing container, an engine whose list lags
// its events) need an engine that fails or stalls on demand, which a real one cannot do; the daemon's
// behaviour on the real engine is tested in cmd/bee2d.

// twoApps is a server with two applications from images already on the engine.
const twoApps = `
servers:
  web1: {}
docker:
  prefix: bee2
applications:
  good:
    server: web1
    image: good:1
    env: {version: 1}
  bad:
    server: web1
    image: bad:1
`

// fakeEngine is an in-memory engine. Containers start unless their name is in failStart.
type fakeEngine struct {
	mu         sync.Mutex
	containers map[string]*dockerx.Container // by id
	networks   []dockerx.Network
	images     []dockerx.Image
	nextID     int
	failStart  map[string]bool // container name -> its start fails
	starts     map[string]int  // container name -> start attempts
	creates    map[string]int  // container name -> creates
	lists      int
	// prereqLists counts the network, volume and image lists.
	prereqLists int
	// events are sent on the event stream of every connection.
	events chan dockerx.Event
	// staleUntil keeps a container listed as running after it stopped, as the engine does for a moment
	// after it reports the container's death.
	staleUntil map[string]time.Time
	// streams are the label filters of the event streams opened.
	streams []map[string]string
	// beforeList, if set, runs before each container list with the list's number (1, 2, ...); a test
	// blocks in it to hold a pass.
	beforeList func(n int)
	// removeNetworkErr, if set, is what removing a network returns; removeNetworks counts the tries.
	removeNetworkErr error
	removeNetworks   int
}

func newFakeEngine() *fakeEngine {
	return &fakeEngine{containers: map[string]*dockerx.Container{}, failStart: map[string]bool{},
		starts: map[string]int{}, creates: map[string]int{}, events: make(chan dockerx.Event),
		staleUntil: map[string]time.Time{}}
}

func (e *fakeEngine) CreateNetworkFrom(_ context.Context, spec dockerx.NetworkSpec) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.networks = append(e.networks, dockerx.Network{ID: "net-" + spec.Name, Name: spec.Name, Labels: spec.Labels,
		EnableIPv6: spec.EnableIPv6, Subnets: spec.Subnets, Options: spec.Options})
	return nil
}

func (e *fakeEngine) RemoveNetwork(_ context.Context, name string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.removeNetworks++
	if e.removeNetworkErr != nil {
		return e.removeNetworkErr
	}
	e.networks = slices.DeleteFunc(e.networks, func(n dockerx.Network) bool { return n.Name == name || n.ID == name })
	return nil
}

func (e *fakeEngine) CreateVolume(context.Context, string, map[string]string) error { return nil }

func (e *fakeEngine) BuildImage(_ context.Context, r dockerx.BuildRequest) (string, error) {
	return "", errors.New("fake engine: no builds")
}

func (e *fakeEngine) PullImage(_ context.Context, ref string, _ io.Writer) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.images = append(e.images, dockerx.Image{ID: "sha256:" + ref, Tags: []string{ref}})
	return nil
}

func (e *fakeEngine) CreateContainer(_ context.Context, spec dockerx.ContainerSpec) (string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if spec.Network != "" && !slices.ContainsFunc(e.networks, func(n dockerx.Network) bool { return n.Name == spec.Network }) {
		return "", fmt.Errorf("create %s: network %s not found", spec.Name, spec.Network)
	}
	for _, c := range e.containers {
		if c.Name == spec.Name {
			return "", fmt.Errorf("create %s: name in use", spec.Name)
		}
	}
	e.nextID++
	id := fmt.Sprintf("%064d", e.nextID)
	e.containers[id] = &dockerx.Container{ID: id, Name: spec.Name, Image: spec.Image, State: "created",
		Labels: maps.Clone(spec.Labels), Networks: []string{spec.Network}}
	e.creates[spec.Name]++
	return id, nil
}

func (e *fakeEngine) ConnectNetwork(_ context.Context, network, id string, _ []string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.containers[id]
	if c == nil {
		return fmt.Errorf("connect %s: no such container", id)
	}
	c.Networks = append(c.Networks, network)
	return nil
}

func (e *fakeEngine) StartContainer(_ context.Context, id string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.containers[id]
	if c == nil {
		return fmt.Errorf("start %s: no such container", id)
	}
	e.starts[c.Name]++
	if e.failStart[c.Name] {
		return fmt.Errorf("start %s: exec format error", c.Name)
	}
	c.State = "running"
	return nil
}

func (e *fakeEngine) StopContainer(_ context.Context, id string, _ time.Duration) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if c := e.containers[id]; c != nil {
		c.State = "exited"
	}
	return nil
}

func (e *fakeEngine) RenameContainer(_ context.Context, id, name string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if c := e.containers[id]; c != nil {
		c.Name = name
	}
	return nil
}

func (e *fakeEngine) RemoveContainer(_ context.Context, id string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.containers, id)
	return nil
}

func (e *fakeEngine) ListContainers(context.Context) ([]dockerx.Container, error) {
	e.mu.Lock()
	e.lists++
	n, hook := e.lists, e.beforeList
	e.mu.Unlock()
	if hook != nil {
		hook(n)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []dockerx.Container
	for _, c := range e.containers {
		cp := *c
		cp.Labels = maps.Clone(c.Labels)
		if time.Now().Before(e.staleUntil[c.Name]) {
			cp.State = "running"
		}
		out = append(out, cp)
	}
	slices.SortFunc(out, func(a, b dockerx.Container) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// ListContainersLabelled filters as the engine does: every label must be present with its value.
func (e *fakeEngine) ListContainersLabelled(ctx context.Context, labels map[string]string) ([]dockerx.Container, error) {
	all, err := e.ListContainers(ctx)
	return slices.DeleteFunc(all, func(c dockerx.Container) bool {
		for k, v := range labels {
			if c.Labels[k] != v {
				return true
			}
		}
		return false
	}), err
}

func (e *fakeEngine) ListNetworks(context.Context) ([]dockerx.Network, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.prereqLists++
	return slices.Clone(e.networks), nil
}

func (e *fakeEngine) ListVolumes(context.Context) ([]dockerx.Volume, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.prereqLists++
	return nil, nil
}

func (e *fakeEngine) ListImages(context.Context) ([]dockerx.Image, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.prereqLists++
	return slices.Clone(e.images), nil
}

// remove deletes a container as `docker rm -f` does and reports its destruction to w, as the event
// stream would.
func (e *fakeEngine) remove(w *worker, name string) {
	e.mu.Lock()
	var id string
	for cid, c := range e.containers {
		if c.Name == name {
			id = cid
			delete(e.containers, cid)
		}
	}
	e.mu.Unlock()
	w.converge().noteDeath(dockerx.Event{Action: "destroy", ID: id, Name: name}, time.Now())
}

func (e *fakeEngine) listCounts() (containers, prereq int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.lists, e.prereqLists
}

// Events passes on what the test sends to e.events and ends with ctx, as the real stream does.
func (e *fakeEngine) Events(ctx context.Context, labels map[string]string) (<-chan dockerx.Event, <-chan error) {
	e.mu.Lock()
	e.streams = append(e.streams, maps.Clone(labels))
	e.mu.Unlock()
	evs, errs := make(chan dockerx.Event), make(chan error)
	go func() {
		defer close(errs)
		defer close(evs)
		for {
			select {
			case <-ctx.Done():
				return
			case ev := <-e.events:
				select {
				case evs <- ev:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return evs, errs
}

// die stops a container as `docker kill` does: the engine reports the death at once, but lists the
// container as running until it has cleaned up after it.
func (e *fakeEngine) die(name string, listedRunningFor time.Duration) {
	e.mu.Lock()
	var id string
	for _, c := range e.containers {
		if c.Name == name {
			c.State, id = "exited", c.ID
			e.staleUntil[name] = time.Now().Add(listedRunningFor)
		}
	}
	e.mu.Unlock()
	e.events <- dockerx.Event{Action: "kill", ID: id, Name: name}
	e.events <- dockerx.Event{Action: "die", ID: id, Name: name}
}

func (e *fakeEngine) Close() error { return nil }

// RunContainer runs a job's container to its end, which comes at once, with exit code 0.
func (e *fakeEngine) RunContainer(ctx context.Context, id string, _ io.Writer) (int, error) {
	if err := e.StartContainer(ctx, id); err != nil {
		return 0, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if c := e.containers[id]; c != nil {
		c.State, c.Status = "exited", "Exited (0) 1 second ago"
	}
	return 0, nil
}

// byName returns the container with that name, if any.
func (e *fakeEngine) byName(name string) (dockerx.Container, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, c := range e.containers {
		if c.Name == name {
			return *c, true
		}
	}
	return dockerx.Container{}, false
}

func (e *fakeEngine) count(m map[string]int, name string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return m[name]
}

// fakeClock is a clock that moves only when told.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// connector is a Connect that fails its first fails calls and then hands out eng. It records when each
// call was made, by the daemon's clock.
type connector struct {
	eng   *fakeEngine
	fails int
	now   func() time.Time

	mu    sync.Mutex
	calls []time.Time
}

func (c *connector) connect(context.Context, dockerx.Endpoint) (Conn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls = append(c.calls, c.now())
	if len(c.calls) <= c.fails {
		return nil, errors.New("dial unix /var/run/docker.sock: connection refused")
	}
	return c.eng, nil
}

func (c *connector) times() []time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.calls)
}

// testDaemon is a daemon as Run sets it up, with the worker of server web1 created but not running: a
// test calls w.passNow() itself or starts w.run(). now nil means time.Now (the bubble's clock in synctest).
func testDaemon(t *testing.T, yml string, conn *connector, now func() time.Time) (*Daemon, *worker, *observer.ObservedLogs) {
	t.Helper()
	return testDaemonWith(t, yml, conn, now, nil)
}

// testDaemonWith is testDaemon with the given tasks; the package's Tasks when nil.
func testDaemonWith(t *testing.T, yml string, conn *connector, now func() time.Time, tasks []NewTask) (*Daemon, *worker, *observer.ObservedLogs) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "settings.yml")
	if err := os.WriteFile(path, []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.DebugLevel)
	d := &Daemon{Path: path, Log: zap.New(core), Metrics: metrics.New(), Parallel: 4, Now: now, Connect: conn.connect, Tasks: tasks}
	conn.now = d.now
	if err := d.LoadInitial(); err != nil {
		t.Fatal(err)
	}
	d.stop, d.work = t.Context(), t.Context()
	d.workers = map[string]*worker{}
	w := d.newWorker("web1")
	d.workers["web1"] = w
	t.Cleanup(w.cancel)
	return d, w, logs
}

// gauge reads one series of a gauge (or a counter) from the daemon's registry.
func gauge(t *testing.T, m *metrics.Metrics, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	families, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, s := range f.GetMetric() {
			got := map[string]string{}
			for _, l := range s.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			match := true
			for k, v := range labels {
				match = match && got[k] == v
			}
			if match && s.GetCounter() != nil {
				return s.GetCounter().GetValue(), true
			}
			if match {
				return s.GetGauge().GetValue(), true
			}
		}
	}
	return 0, false
}

// state is the pass's count of runs, its failing streak and its back-off.
func (w *worker) state() (passes, failures int, notBefore time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pass.runs, w.pass.failures, w.pass.notBefore
}

// passNow runs a pass at once, as a wake-up does when the server is not backing off.
func (w *worker) passNow(t *testing.T) {
	w.mu.Lock()
	w.passWant = true
	w.mu.Unlock()
	w.step(t.Context())
}

// Ten wake-ups during a pass make one more pass, not ten; and an idle worker does not poll.
func TestWorkerCoalescesWakeUps(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		eng := newFakeEngine()
		hold := make(chan struct{})
		eng.beforeList = func(n int) {
			if n == 1 {
				<-hold
			}
		}
		_, w, _ := testDaemon(t, twoApps, &connector{eng: eng}, nil)
		go w.run(t.Context())

		w.kick()
		synctest.Wait() // the first pass is held in its first list call
		for range 10 {
			w.kick()
		}
		close(hold)
		synctest.Wait()
		if passes, _, _ := w.state(); passes != 2 {
			t.Errorf("passes = %d after ten wake-ups during the first pass, want 2", passes)
		}
		for _, name := range []string{"bee2-app-good", "bee2-app-bad"} {
			if n := eng.count(eng.creates, name); n != 1 {
				t.Errorf("%s created %d times, want 1", name, n)
			}
		}

		lists := func() int { eng.mu.Lock(); defer eng.mu.Unlock(); return eng.lists }
		before := lists()
		time.Sleep(24 * time.Hour)
		synctest.Wait()
		if passes, _, _ := w.state(); passes != 2 || lists() != before {
			t.Errorf("an idle worker ran %d passes and %d list calls in a day, want none", passes-2, lists()-before)
		}
		w.cancel()
		synctest.Wait()
	})
}

// A container killed by hand is started again although the pass its "die" event starts still sees it
// running: the engine sends the event before it lists the container as stopped, on a busy engine for
// seconds. A container the engine restarts itself is not looked at again and again.
func TestWorkerLooksAgainAfterADeath(t *testing.T) {
	for _, c := range []struct {
		name string
		// listedRunning is how long the engine lists the dead container as running.
		listedRunning time.Duration
		// restarted: the engine restarts the container itself (its restart policy); restarting: it will,
		// after its back-off.
		restarted, restarting bool
	}{
		{name: "listed running for 20ms", listedRunning: 20 * time.Millisecond},
		{name: "listed running for 3s", listedRunning: 3 * time.Second},
		{name: "listed stopped at once", listedRunning: 0},
		{name: "restarted by the engine", restarted: true},
		{name: "restarting after the engine's back-off", restarting: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				eng := newFakeEngine()
				_, w, _ := testDaemon(t, twoApps, &connector{eng: eng}, nil)
				go w.run(t.Context())
				w.kick()
				synctest.Wait()
				good, _ := eng.byName("bee2-app-good")
				if good.State != "running" {
					t.Fatalf("good is %q after the first pass", good.State)
				}

				switch {
				case c.restarted:
					eng.events <- dockerx.Event{Action: "die", ID: good.ID, Name: good.Name}
					eng.events <- dockerx.Event{Action: "start", ID: good.ID, Name: good.Name}
				case c.restarting:
					eng.mu.Lock()
					eng.containers[good.ID].State = "restarting"
					eng.mu.Unlock()
					eng.events <- dockerx.Event{Action: "die", ID: good.ID, Name: good.Name}
				default:
					eng.die(good.Name, c.listedRunning)
				}
				synctest.Wait()
				lists := func() int { eng.mu.Lock(); defer eng.mu.Unlock(); return eng.lists }
				before := lists()
				time.Sleep(time.Hour) // the worker has no resync: only its own timers run
				synctest.Wait()
				starts := eng.count(eng.starts, good.Name)
				if c.restarted || c.restarting {
					if starts != 1 || lists()-before > 3 {
						t.Errorf("restarted by the engine: %d starts and %d list calls in an hour; want 1 start, a few lists", starts, lists()-before)
					}
				} else if now, _ := eng.byName(good.Name); now.State != "running" || starts != 2 {
					t.Errorf("good is %q after a kill, started %d times; want running, 2", now.State, starts)
				}
				w.cancel()
				synctest.Wait()
			})
		})
	}
}

// The event stream filters on the settings' prefix; when the prefix changes, a stream on the new one
// replaces it, or the containers made under the new prefix would never wake the worker.
func TestWorkerFollowsAPrefixChange(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		eng := newFakeEngine()
		d, w, _ := testDaemon(t, twoApps, &connector{eng: eng}, nil)
		w.passNow(t)
		if err := os.WriteFile(d.Path, []byte(strings.Replace(twoApps, "prefix: bee2", "prefix: bee3", 1)), 0o644); err != nil {
			t.Fatal(err)
		}
		if !d.Reload() {
			t.Fatal("the new prefix was not loaded")
		}
		w.passNow(t)
		synctest.Wait()
		eng.mu.Lock()
		var prefixes []string
		for _, l := range eng.streams {
			prefixes = append(prefixes, l[labels.Prefix])
		}
		eng.mu.Unlock()
		if !slices.Equal(prefixes, []string{"bee2", "bee3"}) {
			t.Errorf("event streams on prefixes %v, want [bee2 bee3]", prefixes)
		}
		w.cancel()
		synctest.Wait()
	})
}

// A server that cannot be reached is retried after 1 s, 2 s, 4 s, ...; a kick during the back-off
// does not retry early; success resets the back-off.
func TestWorkerBackOffInTheLoop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		conn := &connector{eng: newFakeEngine(), fails: 3}
		_, w, _ := testDaemon(t, twoApps, conn, nil)
		go w.run(t.Context())
		start := time.Now()
		w.kick()
		synctest.Wait()
		time.Sleep(500 * time.Millisecond)
		w.kick() // during the first back-off
		synctest.Wait()
		if n := len(conn.times()); n != 1 {
			t.Fatalf("a kick during the back-off connected again at once (%d connects)", n)
		}
		time.Sleep(time.Hour)
		synctest.Wait()

		var offsets []time.Duration
		for _, at := range conn.times() {
			offsets = append(offsets, at.Sub(start))
		}
		want := []time.Duration{0, time.Second, 3 * time.Second, 7 * time.Second}
		if !slices.Equal(offsets, want) {
			t.Errorf("connects at %v, want %v (back-off 1s, 2s, 4s, then success and no more)", offsets, want)
		}
		passes, failures, notBefore := w.state()
		if failures != 0 || !notBefore.IsZero() {
			t.Errorf("after recovery: failures %d, notBefore %v; want 0, zero", failures, notBefore)
		}
		// A retry timer that fires together with a pass already due may add one no-op pass; no more.
		time.Sleep(24 * time.Hour)
		synctest.Wait()
		if now, _, _ := w.state(); now != passes || passes > 5 {
			t.Errorf("%d passes to recover, then %d more while idle", passes, now-passes)
		}
		w.cancel()
		synctest.Wait()
	})
}

// The back-off of a failing server doubles from one second up to a minute, by the daemon's clock,
// and resets after a good pass: the next failure waits one second again. Only the start and the end
// of a failing streak are logged above debug level.
func TestWorkerBackOffDoublesAndResets(t *testing.T) {
	clock := &fakeClock{now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	conn := &connector{eng: newFakeEngine(), fails: 11}
	d, w, logs := testDaemon(t, twoApps, conn, clock.Now)
	up := func() float64 {
		v, ok := gauge(t, d.Metrics, "bee2_server_up", map[string]string{"server": "web1"})
		if !ok {
			t.Fatal("no bee2_server_up series")
		}
		return v
	}

	want := []time.Duration{1, 2, 4, 8, 16, 32, 60, 60, 60, 60, 60}
	for i, secs := range want {
		w.passNow(t)
		passes, failures, notBefore := w.state()
		if got := notBefore.Sub(clock.Now()); got != secs*time.Second || failures != i+1 || passes != i+1 {
			t.Fatalf("failure %d: retry in %v, failures %d, passes %d; want %v, %d, %d", i+1, got, failures, passes, secs*time.Second, i+1, i+1)
		}
		if v := up(); v != 0 {
			t.Fatalf("failure %d: bee2_server_up = %v, want 0", i+1, v)
		}
		clock.Advance(secs * time.Second)
	}

	w.passNow(t)
	if _, failures, notBefore := w.state(); failures != 0 || !notBefore.IsZero() {
		t.Fatalf("after a good pass: failures %d, notBefore %v; want 0 and no back-off", failures, notBefore)
	}
	if v := up(); v != 1 {
		t.Errorf("after a good pass bee2_server_up = %v, want 1", v)
	}
	if n := logs.FilterMessage("server pass failing").Len(); n != 1 {
		t.Errorf("%q logged %d times in one streak, want once", "server pass failing", n)
	}
	if n := logs.FilterMessage("server pass recovered").Len(); n != 1 {
		t.Errorf("%q logged %d times, want once", "server pass recovered", n)
	}

	// The connection breaks: the next failure starts the back-off from one second again.
	conn.mu.Lock()
	conn.fails = len(conn.calls) + 1
	conn.mu.Unlock()
	w.closeConn()
	w.passNow(t)
	if _, failures, notBefore := w.state(); failures != 1 || notBefore.Sub(clock.Now()) != time.Second {
		t.Errorf("first failure after a good pass: failures %d, retry in %v; want 1, 1s", failures, notBefore.Sub(clock.Now()))
	}
	if n := logs.FilterMessage("server pass failing").Len(); n != 2 {
		t.Errorf("a new failing streak was not logged (%d)", n)
	}
}

// A container whose start keeps failing is retried after a growing hold while the rest of the server
// converges; the server itself does not back off, and the container counts as out of sync.
func TestWorkerHoldsBackAFailingContainer(t *testing.T) {
	clock := &fakeClock{now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	eng := newFakeEngine()
	eng.failStart["bee2-app-bad"] = true
	d, w, logs := testDaemon(t, twoApps, &connector{eng: eng}, clock.Now)
	inSync := func(name string) float64 {
		v, ok := gauge(t, d.Metrics, "bee2_resource_in_sync", map[string]string{"server": "web1", "kind": "container", "name": name})
		if !ok {
			t.Fatalf("no bee2_resource_in_sync series for %s", name)
		}
		return v
	}
	startsOfBad := func() int { return eng.count(eng.starts, "bee2-app-bad") }
	serverBackoff := func() {
		t.Helper()
		if _, failures, notBefore := w.state(); failures != 0 || !notBefore.IsZero() {
			t.Errorf("the server backs off for one container: failures %d, notBefore %v", failures, notBefore)
		}
	}

	// Pass 1: both are created; bad's start fails.
	w.passNow(t)
	good, _ := eng.byName("bee2-app-good")
	if good.State != "running" {
		t.Fatalf("good is %q, want running", good.State)
	}
	if n := startsOfBad(); n != 1 {
		t.Fatalf("bad started %d times, want 1", n)
	}
	if inSync("bee2-app-good") != 1 || inSync("bee2-app-bad") != 0 {
		t.Errorf("in sync: good %v, bad %v; want 1, 0", inSync("bee2-app-good"), inSync("bee2-app-bad"))
	}
	serverBackoff()

	// Pass 2, within bad's one-second hold: good's settings change and it is recreated; bad is not tried.
	clock.Advance(500 * time.Millisecond)
	if err := os.WriteFile(d.Path, []byte(strings.Replace(twoApps, "version: 1", "version: 2", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if !d.Reload() {
		t.Fatal("the edited settings were not loaded")
	}
	w.passNow(t)
	if now, _ := eng.byName("bee2-app-good"); now.ID == good.ID || now.State != "running" {
		t.Errorf("good was not recreated while bad is held: id %s -> %s, %s", good.ID[:8], now.ID[:8], now.State)
	}
	if n := startsOfBad(); n != 1 {
		t.Errorf("bad was tried during its hold (%d starts)", n)
	}
	if inSync("bee2-app-bad") != 0 {
		t.Error("a held container counts as in sync")
	}
	serverBackoff()

	// Past the hold it is tried again and fails again: the hold doubles to two seconds.
	clock.Advance(600 * time.Millisecond)
	w.passNow(t)
	if n := startsOfBad(); n != 2 {
		t.Fatalf("bad started %d times after its hold, want 2", n)
	}
	clock.Advance(1900 * time.Millisecond)
	w.passNow(t)
	if n := startsOfBad(); n != 2 {
		t.Errorf("bad was tried within its two-second hold (%d starts)", n)
	}
	serverBackoff()

	// It starts once the cause is gone; its hold is forgotten.
	eng.mu.Lock()
	eng.failStart["bee2-app-bad"] = false
	eng.mu.Unlock()
	clock.Advance(200 * time.Millisecond)
	w.passNow(t)
	if bad, _ := eng.byName("bee2-app-bad"); bad.State != "running" {
		t.Errorf("bad is %q after the cause went, want running", bad.State)
	}
	c := w.converge()
	c.mu.Lock()
	held := len(c.crashes)
	c.mu.Unlock()
	if held != 0 || inSync("bee2-app-bad") != 1 {
		t.Errorf("after a good start: %d containers held, in sync %v; want 0, 1", held, inSync("bee2-app-bad"))
	}
	if n := logs.FilterMessage("actions failing").Len(); n != 1 {
		t.Errorf("%q logged %d times for one failing streak, want once", "actions failing", n)
	}
}

// Healing a removed container lists only containers, once, when the networks, volumes and images of
// the last complete snapshot are known good; a failed create drops them, so that a network removed by
// hand is listed and made again on the next try.
func TestWorkerHealsARemovedContainerWithOneList(t *testing.T) {
	clock := &fakeClock{now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	eng := newFakeEngine()
	eng.images = []dockerx.Image{{ID: "sha256:good", Tags: []string{"good:1"}}, {ID: "sha256:bad", Tags: []string{"bad:1"}}}
	_, w, _ := testDaemon(t, twoApps, &connector{eng: eng}, clock.Now)
	running := func(name string) bool {
		c, ok := eng.byName(name)
		return ok && c.State == "running"
	}

	w.passNow(t) // creates the network, then both containers: nothing is cached
	w.passNow(t) // a pass that creates nothing lists nothing but bee2d's containers
	if !running("bee2-app-good") || !running("bee2-app-bad") {
		t.Fatal("the first pass did not converge")
	}

	eng.remove(w, "bee2-app-good")
	c0, p0 := eng.listCounts()
	w.passNow(t) // no cache yet: a fresh complete snapshot, which is then kept
	c1, p1 := eng.listCounts()
	// Two container lists: the complete snapshot's (the destroy skips the cheap one) and the one after the
	// actions, for the metrics.
	if !running("bee2-app-good") || c1-c0 != 2 || p1-p0 != 3 {
		t.Fatalf("first heal: running %v, %d container lists (want 2), %d other lists (want 3)",
			running("bee2-app-good"), c1-c0, p1-p0)
	}

	eng.remove(w, "bee2-app-good")
	w.passNow(t)
	c2, p2 := eng.listCounts()
	if !running("bee2-app-good") || c2-c1 != 2 || p2 != p1 {
		t.Errorf("second heal: running %v, %d container lists (want 2), %d other lists (want 0)", running("bee2-app-good"), c2-c1, p2-p1)
	}

	// The network goes behind bee2d's back: the create fails once against the cache, then the lists are
	// fresh and the network is made again.
	eng.mu.Lock()
	eng.networks = nil
	eng.mu.Unlock()
	eng.remove(w, "bee2-app-good")
	w.passNow(t)
	if running("bee2-app-good") {
		t.Fatal("the create succeeded without its network")
	}
	clock.Advance(2 * time.Second) // past the failed container's hold
	w.passNow(t)
	_, p3 := eng.listCounts()
	if !running("bee2-app-good") || p3 == p2 {
		t.Errorf("after a failed create: running %v, %d other lists (want fresh ones)", running("bee2-app-good"), p3-p2)
	}
}

// Settings that fail to load leave the last good ones in force; the metric says so until a good file
// comes back, and a repeated error is logged once.
func TestReloadKeepsTheLastGoodSettings(t *testing.T) {
	d, w, logs := testDaemon(t, twoApps, &connector{eng: newFakeEngine()}, nil)
	good := d.Settings()
	reload := func() float64 {
		v, _ := gauge(t, d.Metrics, "bee2_config_last_reload_successful", nil)
		return v
	}
	write := func(yml string) {
		t.Helper()
		if err := os.WriteFile(d.Path, []byte(yml), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	write(strings.Replace(twoApps, "image: bad:1", "image: bad:1\n    link: [goood]", 1))
	for range 2 {
		if d.Reload() {
			t.Fatal("invalid settings were loaded")
		}
	}
	if d.Settings() != good || reload() != 0 {
		t.Errorf("after an invalid edit: settings replaced %v, reload metric %v; want kept, 0", d.Settings() != good, reload())
	}
	if n := logs.FilterMessage("settings rejected, keeping the last good settings").Len(); n != 1 {
		t.Errorf("the same error was logged %d times, want once", n)
	}
	if len(w.wake) != 0 {
		t.Error("an invalid edit woke the worker")
	}

	write(strings.Replace(twoApps, "version: 1", "version: 2", 1))
	if !d.Reload() || d.Settings() == good || reload() != 1 {
		t.Errorf("a fixed file was not loaded (reload metric %v)", reload())
	}
	if len(w.wake) != 1 {
		t.Error("new settings did not wake the worker")
	}
}
