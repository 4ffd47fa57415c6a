package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bee2d/bee2d/pkg/dockerx"
	"github.com/bee2d/bee2d/pkg/labels"
)

// soakPlan is how long and how hard TestDaemonSoak shakes the daemon.
type soakPlan struct {
	apps     int
	duration time.Duration // of the fault injection
	interval time.Duration // mean time between two faults
	settle   time.Duration // before each measurement: the same before and after, so both see a daemon at rest
	samples  int           // of each measurement, 1 s apart; the median is kept
	// recovery bounds each fault's recovery. It is a failure bound, not a measurement: the latencies are
	// reported, never asserted, and the machine may be loaded.
	recovery time.Duration
	// converge bounds the first converge and the final one, which create up to apps containers.
	converge time.Duration
}

// soakFromEnv reads BEE2D_SOAK (a Go duration) and BEE2D_SOAK_APPS. Unset, the soak is short enough for
// every `go test` run; `make soak` sets BEE2D_SOAK=10m and runs 100 applications. BEE2D_SOAK_REPORT names a
// file for the summary line, BEE2D_SOAK_LOG one for the daemon's whole JSON log.
func soakFromEnv(t *testing.T) soakPlan {
	t.Helper()
	p := soakPlan{apps: 20, duration: 15 * time.Second, interval: 1500 * time.Millisecond, settle: 2 * time.Second,
		samples: 5, recovery: 2 * time.Minute, converge: 3 * time.Minute}
	if v := os.Getenv("BEE2D_SOAK"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("BEE2D_SOAK=%q: want a positive Go duration such as 10m", v)
		}
		p.duration, p.apps, p.interval, p.settle, p.converge = d, 100, 3*time.Second, 30*time.Second, 10*time.Minute
	}
	if v := os.Getenv("BEE2D_SOAK_APPS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("BEE2D_SOAK_APPS=%q: want a positive number", v)
		}
		p.apps = n
	}
	return p
}

// Margins of the end state over the start, both taken after the same settle period:
//
//   - goroutines: +5 or +10%, whichever is more. At rest the daemon runs a fixed set (signals, listener,
//     settings watcher, one worker and one event stream per server) plus two per idle connection to the
//     engine, and the HTTP client keeps at most two idle; a goroutine left behind per fault would add
//     hundreds over a full soak.
//   - RSS: +8 MiB or +20%. Go returns freed heap to the OS lazily (the scavenger works in the background
//     over minutes), so RSS after a burst of activity stays above the start for a while without any
//     leak; a leak per fault of even a few KiB over hundreds of faults still goes past it.
//   - heap in use (go_memstats_heap_inuse_bytes): +4 MiB or +25%. It does not wait for the scavenger, so it
//     is the sharper leak signal; the margin covers what was allocated since the last GC.
const (
	soakGoroutineSlack = 5
	soakGoroutineRatio = 0.10
	soakRSSSlack       = 8 << 20
	soakRSSRatio       = 0.20
	soakHeapSlack      = 4 << 20
	soakHeapRatio      = 0.25
)

func soakLimit(before, slack, ratio float64) float64 {
	return before + max(slack, before*ratio)
}

// The daemon, a process of its own, keeps its applications running while containers are killed or
// removed at random for BEE2D_SOAK: every fault is healed within a bound, the server ends converged
// with exactly one container per application and nothing left aside, and the daemon's goroutines, RSS
// and heap in use end within a margin of where they started.
func TestDaemonSoak(t *testing.T) {
	plan := soakFromEnv(t)
	st := newDaemonStack(t)
	if path := os.Getenv("BEE2D_SOAK_LOG"); path != "" {
		t.Cleanup(func() {
			if err := os.WriteFile(path, []byte(st.logs.String()), 0o644); err != nil {
				t.Error(err)
			}
		})
	}
	bin := buildBee2d(t)
	apps := make([]app, plan.apps)
	for i := range apps {
		apps[i] = app{name: fmt.Sprintf("s%03d", i)}
	}
	// Straight to the engine, not through the recording proxy: it keeps every request, and a soak makes
	// many.
	st.write(strings.Replace(st.settings(apps...), strconv.Quote(st.proxy.Host), strconv.Quote(st.cli.Host()), 1))

	// The engine's events are how the test sees each recovery; subscribed before the daemon starts, so
	// the first converge's starts prove the stream is live.
	ctx, stop := context.WithCancel(t.Context())
	defer stop()
	tr := newFaultTracker(plan.recovery, st.cli.ListContainers)
	evs, errs := st.cli.Events(ctx, map[string]string{labels.Owner: labels.Bee2d, labels.Prefix: st.prefix})
	trackerDone := make(chan error, 1)
	go func() { trackerDone <- tr.run(ctx, evs, errs) }()

	d := startDaemonProcess(t, st, bin, plan.converge)
	waitFor(t, "the first converge", plan.converge, st.converged)
	t.Logf("first converge of %d applications done", plan.apps)
	if tr.startsSeen() == 0 {
		t.Fatal("the event stream saw no container start during the first converge")
	}

	time.Sleep(plan.settle)
	before := d.measure(t, plan.samples)
	t.Logf("baseline: %s", before)

	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, seed>>1))
	t.Logf("injecting faults for %v into %d applications, every %v on average (seed %d)", plan.duration, plan.apps, plan.interval, seed)
	chaos(t, st, tr, rng, plan, trackerDone)

	// The tracker gives up on a fault after plan.recovery; this waits a little longer, so that it does.
	waitFor(t, "every fault recovered or given up", plan.recovery+10*time.Second, func() error {
		if n := tr.pendingCount(); n > 0 {
			return fmt.Errorf("%d faults not recovered yet", n)
		}
		return nil
	})
	stop()
	if err := <-trackerDone; err != nil {
		t.Fatal(err)
	}
	rep := tr.report()
	if len(rep.late) > 0 {
		t.Errorf("%d faults not recovered within %v: %s", len(rep.late), plan.recovery, strings.Join(rep.late, "; "))
	}
	if rep.faults == 0 {
		t.Fatal("no fault injected")
	}

	waitFor(t, "converged after the soak", plan.converge, st.converged)
	waitFor(t, "every resource in sync on /metrics", plan.converge, func() error { return d.inSync(plan.apps) })
	// No duplicate, no container renamed aside and left: exactly one container carries the stack's prefix
	// label per application, whatever its name.
	managed := 0
	for _, c := range listAll(t, st.cli) {
		if c.Labels[labels.Prefix] == st.prefix {
			managed++
		}
	}
	if managed != plan.apps {
		t.Errorf("%d containers carry the prefix %s after the soak, want %d", managed, st.prefix, plan.apps)
	}

	time.Sleep(plan.settle)
	after := d.measure(t, plan.samples)
	t.Logf("after: %s", after)
	failedActions := d.failedActions(t)

	summary := fmt.Sprintf("soak: %d apps, %v: %d faults (%d kill, %d rm -f), %d recovered (%d seen by a list, not their event), "+
		"recovery median %v p95 %v max %v; goroutines %.0f -> %.0f; RSS %s -> %s; heap in use %s -> %s; failed actions %.0f",
		plan.apps, plan.duration, rep.faults, rep.kills, rep.faults-rep.kills, len(rep.latencies), rep.byList,
		rep.quantile(0.5), rep.quantile(0.95), rep.quantile(1),
		before.goroutines, after.goroutines, mib(before.rss), mib(after.rss), mib(before.heap), mib(after.heap), failedActions)
	t.Log(summary)
	if path := os.Getenv("BEE2D_SOAK_REPORT"); path != "" {
		if err := os.WriteFile(path, []byte(summary+"\n"), 0o644); err != nil {
			t.Error(err)
		}
	}
	if len(rep.latencies) != rep.faults {
		t.Errorf("%d of %d faults recovered", len(rep.latencies), rep.faults)
	}
	if limit := soakLimit(before.goroutines, soakGoroutineSlack, soakGoroutineRatio); after.goroutines > limit {
		t.Errorf("goroutines %.0f after the soak, %.0f before: over the limit of %.0f", after.goroutines, before.goroutines, limit)
	}
	if limit := soakLimit(before.rss, soakRSSSlack, soakRSSRatio); after.rss > limit {
		t.Errorf("RSS %s after the soak, %s before: over the limit of %s", mib(after.rss), mib(before.rss), mib(limit))
	}
	if limit := soakLimit(before.heap, soakHeapSlack, soakHeapRatio); after.heap > limit {
		t.Errorf("heap in use %s after the soak, %s before: over the limit of %s", mib(after.heap), mib(before.heap), mib(limit))
	}
	d.stop(t)
}

// chaos kills or removes a random running managed container every interval on average, until the plan's
// duration is over or a fault goes unrecovered past its bound. It never waits for a recovery: the tracker
// follows them.
func chaos(t *testing.T, st *daemonStack, tr *faultTracker, rng *rand.Rand, plan soakPlan, trackerDone <-chan error) {
	t.Helper()
	end := time.Now().Add(plan.duration)
	for time.Now().Before(end) {
		// Uniform in [interval/2, 3*interval/2): faults neither in lockstep with the daemon nor bunched.
		wait := plan.interval/2 + time.Duration(rng.Int64N(int64(plan.interval)))
		select {
		case <-time.After(wait):
		case <-tr.lateCh:
			t.Errorf("a fault was not recovered within %v: fault injection stopped", plan.recovery)
			return
		case err := <-trackerDone:
			t.Fatalf("event stream ended during the soak: %v", err)
		}
		// Only running containers without a fault pending, so each start the engine reports after a
		// fault is that fault's recovery.
		var candidates []dockerx.Container
		for _, c := range listAll(t, st.cli) {
			if c.Labels[labels.Prefix] == st.prefix && c.State == "running" && !tr.isPending(c.Name) &&
				c.Name != "" && !strings.Contains(c.Name, "-bee2d-old-") {
				candidates = append(candidates, c)
			}
		}
		if len(candidates) == 0 {
			continue
		}
		c := candidates[rng.IntN(len(candidates))]
		kill := rng.IntN(2) == 0
		tr.inject(c.Name, c.ID, kill)
		var err error
		if kill {
			err = st.cli.SignalContainer(t.Context(), c.ID, "KILL") // docker kill
		} else {
			err = st.cli.RemoveContainer(t.Context(), c.ID) // docker rm -f
		}
		if err != nil {
			// Only the test and the daemon touch these containers, and the daemon had nothing to do with
			// this one: a refused fault means something moved it.
			t.Errorf("fault on %s: %v", c.Name, err)
			tr.cancel(c.Name)
		}
	}
}

func listAll(t *testing.T, cli *dockerx.Client) []dockerx.Container {
	t.Helper()
	list, err := cli.ListContainers(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return list
}

// faultTracker follows the engine's events: a fault is recovered when a container of its name starts
// after it. Its latency is from the fault to that start, both on the engine's host clock.
type faultTracker struct {
	bound  time.Duration
	lateCh chan struct{} // gets a value when a fault goes past bound

	// list lists the engine's containers, for the faults whose start event has not come in time.
	list func(context.Context) ([]dockerx.Container, error)

	mu        sync.Mutex
	pending   map[string]pendingFault // by container name
	byList    int                     // recoveries seen by a list, not by their event
	faults    int
	kills     int
	starts    int
	latencies []time.Duration
	late      []string
}

type pendingFault struct {
	id   string
	kill bool
	at   time.Time
}

func newFaultTracker(bound time.Duration, list func(context.Context) ([]dockerx.Container, error)) *faultTracker {
	return &faultTracker{bound: bound, list: list, lateCh: make(chan struct{}, 1), pending: map[string]pendingFault{}}
}

// inject records a fault just before it is made, so that no start after it can be missed.
func (tr *faultTracker) inject(name, id string, kill bool) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.pending[name] = pendingFault{id: id, kill: kill, at: time.Now()}
	tr.faults++
	if kill {
		tr.kills++
	}
}

// cancel forgets a fault the engine refused.
func (tr *faultTracker) cancel(name string) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if f, ok := tr.pending[name]; ok {
		delete(tr.pending, name)
		tr.faults--
		if f.kill {
			tr.kills--
		}
	}
}

func (tr *faultTracker) isPending(name string) bool {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	_, ok := tr.pending[name]
	return ok
}

func (tr *faultTracker) pendingCount() int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return len(tr.pending)
}

func (tr *faultTracker) startsSeen() int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.starts
}

// run consumes the events until ctx ends (nil) or the stream breaks (its error: recoveries can no longer
// be seen), and moves the faults past their bound to late.
func (tr *faultTracker) run(ctx context.Context, evs <-chan dockerx.Event, errs <-chan error) error {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case ev, ok := <-evs:
			if !ok {
				if ctx.Err() != nil {
					return nil
				}
				return errors.Join(errors.New("event stream closed"), <-errs)
			}
			if ev.Action == "start" {
				tr.started(ev)
			}
		case err, ok := <-errs:
			if ctx.Err() != nil {
				return nil
			}
			if !ok {
				err = errors.New("event stream closed")
			}
			return err
		case now := <-tick.C:
			tr.expire(ctx, now)
		case <-ctx.Done():
			return nil
		}
	}
}

func (tr *faultTracker) started(ev dockerx.Event) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.starts++
	f, ok := tr.pending[ev.Name]
	if !ok || !ev.Time.After(f.at) {
		return
	}
	delete(tr.pending, ev.Name)
	tr.latencies = append(tr.latencies, ev.Time.Sub(f.at))
}

// expire gives up on the faults past their bound, unless the engine lists their container running: the
// fault took (the call succeeded), so it has been started since, and only its event is late or lost (on a
// loaded host the test may read the stream long after the engine wrote it). Such a recovery counts with
// its latency up to now, an upper bound, and the summary says how many there were.
func (tr *faultTracker) expire(ctx context.Context, now time.Time) {
	tr.mu.Lock()
	var overdue []string
	for name, f := range tr.pending {
		if now.Sub(f.at) > tr.bound {
			overdue = append(overdue, name)
		}
	}
	tr.mu.Unlock()
	if len(overdue) == 0 {
		return
	}
	running := map[string]bool{}
	list, err := tr.list(ctx)
	if err != nil {
		return // asked again on the next tick
	}
	for _, c := range list {
		if c.State == "running" {
			running[c.Name] = true
		}
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for _, name := range overdue {
		f, ok := tr.pending[name]
		if !ok {
			continue // its event came meanwhile
		}
		delete(tr.pending, name)
		if running[name] {
			tr.latencies = append(tr.latencies, now.Sub(f.at))
			tr.byList++
			continue
		}
		op := "rm -f"
		if f.kill {
			op = "kill"
		}
		tr.late = append(tr.late, fmt.Sprintf("%s (%s of %.12s at %s)", name, op, f.id, f.at.Format(time.TimeOnly)))
		select {
		case tr.lateCh <- struct{}{}:
		default:
		}
	}
}

// soakReport is what the tracker saw.
type soakReport struct {
	faults, kills int
	byList        int
	latencies     []time.Duration // sorted
	late          []string
}

func (tr *faultTracker) report() soakReport {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	r := soakReport{faults: tr.faults, kills: tr.kills, byList: tr.byList, latencies: slices.Clone(tr.latencies), late: slices.Clone(tr.late)}
	slices.Sort(r.latencies)
	return r
}

// quantile is the nearest-rank quantile of the recovery latencies, rounded to the millisecond.
func (r soakReport) quantile(q float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	i := max(int(math.Ceil(q*float64(len(r.latencies))))-1, 0)
	return r.latencies[i].Round(time.Millisecond)
}

func mib(b float64) string { return fmt.Sprintf("%.1f MiB", b/(1<<20)) }

// waitFor polls check until it returns nil, failing the test after bound.
func waitFor(t *testing.T, what string, bound time.Duration, check func() error) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not %s after %v: %v", what, bound, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// daemonProcess is `bee2d daemon` run from the built binary, so its /metrics shows its own goroutines and
// memory, not the test's.
type daemonProcess struct {
	st   *daemonStack
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited; err is then its Wait error
	err  error
}

// startDaemonProcess runs the daemon with the production defaults but for its listener (a free port on
// loopback, read from its log) and JSON logs kept in st.logs, and waits up to ready for /readyz.
func startDaemonProcess(t *testing.T, st *daemonStack, bin string, ready time.Duration) *daemonProcess {
	t.Helper()
	cmd := exec.Command(bin, "daemon", "-c", st.file, "--listen", "127.0.0.1:0", "--log-format", "json")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &daemonProcess{st: st, cmd: cmd, done: make(chan struct{})}
	listening := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			st.logs.Write([]byte(line + "\n"))
			var e map[string]any
			if json.Unmarshal([]byte(line), &e) == nil && e["msg"] == "serving metrics" {
				listening <- fmt.Sprint(e["listen"])
			}
		}
		d.err = cmd.Wait()
		close(d.done)
	}()
	// Registered after newDaemonStack's cleanup, so it runs first: a daemon left running would heal what
	// the cleanup removes.
	t.Cleanup(func() {
		select {
		case <-d.done:
		default:
			cmd.Process.Kill()
			<-d.done
		}
	})
	select {
	case st.listen = <-listening:
	case <-d.done:
		t.Fatalf("daemon exited before listening: %v", d.err)
	case <-time.After(eventually):
		t.Fatal("daemon did not say where it serves metrics")
	}
	// The first pass creates every container: on a loaded engine that can take longer than eventually.
	waitFor(t, "/readyz answering 200", ready, func() error {
		select {
		case <-d.done:
			t.Fatalf("daemon exited before it was ready: %v", d.err)
		default:
		}
		if code, body := st.get("/readyz"); code != http.StatusOK {
			return fmt.Errorf("%d %s", code, body)
		}
		return nil
	})
	return d
}

// stop sends SIGTERM and expects exit 0 within the grace period.
func (d *daemonProcess) stop(t *testing.T) {
	t.Helper()
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
		if d.err != nil {
			t.Errorf("daemon exit after SIGTERM: %v", d.err)
		}
	case <-time.After(eventually):
		t.Error("daemon did not exit after SIGTERM")
	}
}

func (d *daemonProcess) scrape(t *testing.T) metricSet {
	t.Helper()
	code, body := d.st.get("/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics = %d: %s", code, body)
	}
	m, err := parseMetrics(body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return m
}

// soakSample is the daemon's footprint: the median of several scrapes, each metric on its own.
type soakSample struct {
	goroutines, rss, heap float64
}

func (s soakSample) String() string {
	return fmt.Sprintf("%.0f goroutines, RSS %s, heap in use %s", s.goroutines, mib(s.rss), mib(s.heap))
}

func (d *daemonProcess) measure(t *testing.T, n int) soakSample {
	t.Helper()
	var g, r, h []float64
	for i := range n {
		if i > 0 {
			time.Sleep(time.Second)
		}
		m := d.scrape(t)
		for name, into := range map[string]*[]float64{"go_goroutines": &g, "process_resident_memory_bytes": &r,
			"go_memstats_heap_inuse_bytes": &h} {
			v, ok := m.value(name, nil)
			if !ok {
				t.Fatalf("/metrics has no %s", name)
			}
			*into = append(*into, v)
		}
	}
	return soakSample{goroutines: median(g), rss: median(r), heap: median(h)}
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// inSync checks that /metrics has every resource of the server in sync, and one container series per
// application.
func (d *daemonProcess) inSync(apps int) error {
	code, body := d.st.get("/metrics")
	if code != http.StatusOK {
		return fmt.Errorf("/metrics = %d", code)
	}
	m, err := parseMetrics(body)
	if err != nil {
		return err
	}
	containers := 0
	var out []string
	for _, s := range m.series("bee2_resource_in_sync") {
		if s.labels["kind"] == "container" {
			containers++
		}
		if s.value != 1 {
			out = append(out, s.labels["kind"]+" "+s.labels["name"])
		}
	}
	if len(out) > 0 {
		return fmt.Errorf("out of sync: %s", strings.Join(out, ", "))
	}
	if containers != apps {
		return fmt.Errorf("%d container series, want %d", containers, apps)
	}
	return nil
}

// failedActions sums bee2_reconcile_actions_total{result="failure"}: faults racing the daemon's own
// actions can make some fail and be retried, which the summary shows.
func (d *daemonProcess) failedActions(t *testing.T) float64 {
	t.Helper()
	var n float64
	for _, s := range d.scrape(t).series("bee2_reconcile_actions_total") {
		if s.labels["result"] == "failure" {
			n += s.value
		}
	}
	return n
}
